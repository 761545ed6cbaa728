//! svcauth outbound: every request a service makes carries a short-lived
//! token minted for exactly the service it calls.
//!
//! * [`Signer`]: decides the audience of each destination (a per-request
//!   [`TargetAudience`], else an origin map, else a closure; no audience, no
//!   token), caches tokens per audience and refreshes them ahead of expiry.
//! * Token sources ([`TokenSource`]): [`SelfSigned`] (the default: signed
//!   with the service's own [`svcauth_jwks::KeyRing`]), [`ClientCredentials`]
//!   and [`TokenExchange`] at an STS.
//! * [`SignLayer`]: a tower layer for `http::Request` clients (hyper-util,
//!   tonic: `Signer::tonic_channel` with feature `tonic`) and for
//!   `reqwest::Client`; [`Signer::sign`] for a reqwest
//!   `RequestBuilder`; `SignMiddleware` for reqwest-middleware (feature
//!   `reqwest-middleware`).
//! * Bound mode ([`SignerBuilder::bound_audience`], [`BindRequest`]): a
//!   fresh token per request carrying `htm`, `htu` and `body_sha256`.
//! * [`wimse`]: proof of possession instead of bearer tokens: a Workload
//!   Identity Token and a fresh Workload Proof Token on every request
//!   ([`wimse::ProofLayer`]), and the identity server's side
//!   ([`wimse::WitIssuer`]).
//!
//! * Transaction Tokens ([`SignerBuilder::propagate_txn_tokens`]): the
//!   `Txn-Token` of the request being handled goes along, unmodified, on
//!   calls to the origins of its trust domain, and nowhere else.
//!
//! Tokens never go to a destination without an audience, nor over plain
//! http to a host that is not loopback (unless the `danger_` option says so),
//! and a request that already has an `Authorization` header keeps it.
//!
//! # Example
//!
//! A client signs for `https://b.internal`; the token verifies with
//! `svcauth-verify`, and a request to an unmapped host carries no token.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use bytes::Bytes;
//! use http::Request;
//! use http_body_util::Full;
//! use svcauth_core::Algorithm;
//! use svcauth_jwks::{KeyRing, KeySet, KeySource, SigningKey};
//! use svcauth_sign::{SignLayer, Signer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
//! let signer = Signer::self_signed("https://a.internal", ring.clone()).unwrap()
//!     .audience("https://b.internal", "https://b.internal")
//!     .build()
//!     .unwrap();
//!
//! // A stand-in for the HTTP client: it returns the Authorization header it got.
//! let client = ServiceBuilder::new().layer(SignLayer::new(signer)).service(service_fn(
//!     |req: Request<Full<Bytes>>| async move {
//!         Ok::<_, std::convert::Infallible>(req.headers().get("authorization").cloned())
//!     },
//! ));
//!
//! let to_b = Request::get("https://b.internal/orders").body(Full::default()).unwrap();
//! let header = client.clone().oneshot(to_b).await.unwrap().unwrap();
//! let token = header.to_str().unwrap().strip_prefix("Bearer ").unwrap().to_owned();
//!
//! let keys = KeySource::fixed(KeySet::from_jwks(ring.state().jwks(), 65536).unwrap());
//! let verifier = svcauth_verify::Verifier::builder("https://b.internal")
//!     .trust("https://a.internal", keys).build().unwrap();
//! assert_eq!(verifier.verify(&token).await.unwrap().sub(), "https://a.internal");
//!
//! let elsewhere = Request::get("https://example.com/").body(Full::default()).unwrap();
//! assert!(client.oneshot(elsewhere).await.unwrap().is_none());
//! # }
//! ```

mod base_url;
mod cache;
mod error;
mod future;
mod layer;
mod metrics;
mod origin;
mod reqwest;
mod route;
mod service;
mod signer;
mod source;
mod sts;
#[cfg(feature = "tonic")]
mod tonic;
mod txn;
pub mod wimse;

pub use base_url::{BaseUrl, InvalidBaseUrl, UnsafePath};
pub use error::{ConfigError, SignError};
pub use future::ResponseFuture;
pub use layer::SignLayer;
pub use metrics::SignerMetrics;
#[cfg(feature = "reqwest-middleware")]
pub use reqwest::SignMiddleware;
pub use route::{BindRequest, Destination, TargetAudience};
pub use service::Sign;
pub use signer::{DEFAULT_MAX_AUDIENCES, Signer, SignerBuilder};
pub use source::{
    ClientCredentials, MAX_LIFETIME, OnBehalfOf, SelfSigned, Token, TokenExchange, TokenFuture,
    TokenRequest, TokenSource,
};
pub use sts::{AudienceParameter, ClientAuth, MAX_RESPONSE_BYTES, StsAnswer, StsClient};

/// Entry points for the fuzz targets (`fuzz/`), built only by cargo-fuzz
/// (`--cfg fuzzing`): parsers that are otherwise reached only over HTTP.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// A token endpoint's answer, received at `now`.
    pub fn token_response(bytes: &[u8], now: u64) -> Result<crate::Token, crate::SignError> {
        crate::sts::token_response(bytes, now)
    }
}

/// The README's snippets, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
