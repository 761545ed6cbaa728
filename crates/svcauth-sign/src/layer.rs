//! [`SignLayer`]: attach tokens to a client's requests.

use tower_layer::Layer;

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
}

impl SignLayer {
    /// A layer attaching `signer`'s tokens.
    pub fn new(signer: Signer) -> Self {
        SignLayer { signer }
    }
}

impl<S> Layer<S> for SignLayer {
    type Service = Sign<S>;

    fn layer(&self, inner: S) -> Sign<S> {
        Sign::new(inner, self.signer.clone())
    }
}
