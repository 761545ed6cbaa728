//! [`SignLayer`]: attach tokens to a client's requests.

use tower_layer::Layer;

use crate::error::ConfigError;
use crate::origin::PinnedOrigin;
use crate::service::Sign;
use crate::signer::Signer;

/// Wraps an HTTP client service (hyper-util's client, a tonic channel,
/// `reqwest::Client`) so that every request to a destination with an
/// audience carries `Authorization: Bearer <token for that audience>`.
///
/// A request that already has an `Authorization` header is left alone.
///
/// See the crate docs for an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct SignLayer {
    signer: Signer,
    origin: Option<PinnedOrigin>,
}

impl SignLayer {
    /// A layer attaching `signer`'s tokens.
    pub fn new(signer: Signer) -> Self {
        SignLayer {
            signer,
            origin: None,
        }
    }

    /// For a client that reaches exactly one origin and is handed requests
    /// with a path only, such as a tonic `Channel` (its generated clients
    /// send `/package.Service/Method`; the channel adds its endpoint's
    /// origin). Relative request URIs are given `origin`, and so are signed
    /// for its audience; a request naming another origin fails with
    /// [`SignError::OriginMismatch`](crate::SignError::OriginMismatch).
    ///
    /// `origin` must be the one the client connects to: build both from the
    /// same value (with feature `tonic`, `Signer::tonic_channel` does).
    pub fn origin(mut self, origin: &str) -> Result<Self, ConfigError> {
        self.origin = Some(PinnedOrigin::parse(origin)?);
        Ok(self)
    }
}

impl<S> Layer<S> for SignLayer {
    type Service = Sign<S>;

    fn layer(&self, inner: S) -> Sign<S> {
        Sign::new(inner, self.signer.clone(), self.origin.clone())
    }
}
