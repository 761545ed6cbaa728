//! svcauth inbound: verify the service token of every request, strictly by
//! default, and hand the verified caller to your handlers.
//!
//! * [`Verifier`]: the checks, usable on its own (gRPC, custom stacks).
//! * [`VerifyLayer`] / [`Verify`]: a tower middleware for axum routers and
//!   tonic servers (feature `tonic` for `tonic::transport::Server`);
//!   rejections are RFC 6750 responses, or for a gRPC request a gRPC status
//!   ([`ErrorKind::grpc_code`]). Handlers read the caller with the
//!   extractors, or in tonic with [`Authentication::caller`].
//! * [`Caller`] and [`CallerClaims`] (feature `axum`): extractors.
//! * WIMSE ([`VerifierBuilder::trust_workloads`]): a Workload Identity
//!   Token checked against its trust domain's keys and cached, with a
//!   Workload Proof Token checked on every request and accepted once;
//!   [`VerifyLayer::require_proof`] refuses bearer tokens.
//! * Transaction Tokens ([`VerifierBuilder::trust_txn_tokens`]): a
//!   `Txn-Token` header verified beside the service token against the
//!   trust domain's Transaction Token Service keys, cached, handed to
//!   handlers as a [`Transaction`] and made current for `svcauth-sign` to
//!   pass on; [`VerifyLayer::require_txn_token`] requires one.
//! * SPIFFE JWT-SVIDs ([`VerifierBuilder::trust_jwt_svids`]): bearer
//!   tokens whose trust domain, in `sub`, picks the keys from its bundle.
//! * [`ReplayStore`] and [`RevocationStore`]: state for single-use bound
//!   tokens and deny-lists, in memory here, on Redis in `svcauth-redis`.
//!
//! Defaults: asymmetric algorithms only (`none` and `HS*` are refused),
//! `iss` must be a configured issuer and the key must come from that issuer,
//! `aud` must name this service exactly, `exp` and `iat` required, 30 s
//! leeway, tokens living longer than 10 minutes refused, tokens over 8 KiB
//! refused before decoding, bound tokens accepted once. A token seen before
//! is answered from a cache of verifications with no JSON parse and no
//! signature check.
//!
//! What this does not protect against: a caller whose private key leaked
//! (rotate it, or revoke its kid); tokens sent over plain HTTP to a
//! non-loopback peer (use TLS); a handler that trusts identity headers set
//! by the client rather than [`Caller`].
//!
//! # Example
//!
//! A valid token gets through; an invalid one gets 401 with an RFC 6750
//! challenge.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{Router, routing::get, body::Body};
//! use http::{Request, StatusCode};
//! use svcauth_core::{Algorithm, b64};
//! use svcauth_jwks::{KeySet, KeySource, SigningKey};
//! use svcauth_verify::{Caller, Verifier, VerifyLayer};
//! use tower::ServiceExt;
//!
//! // Service A's key (normally fetched from A's JWKS with KeySource::remote).
//! let a_key = SigningKey::generate(Algorithm::EdDSA).unwrap();
//! let jwks = serde_json::json!({ "keys": [a_key.public_jwk()] }).to_string();
//! let keys = KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 65536).unwrap());
//!
//! let verifier = Verifier::builder("https://b.internal")
//!     .trust("https://a.internal", keys)
//!     .build()
//!     .unwrap();
//! let app = Router::new()
//!     .route("/whoami", get(|caller: Caller| async move { caller.sub().to_owned() }))
//!     .layer(VerifyLayer::new(verifier));
//!
//! // A token as svcauth-sign would mint it.
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
//! let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": a_key.kid() });
//! let claims = serde_json::json!({ "iss": "https://a.internal", "sub": "https://a.internal",
//!     "aud": "https://b.internal", "iat": now, "exp": now + 300, "jti": "1" });
//! let input = format!("{}.{}", b64::encode(header.to_string()), b64::encode(claims.to_string()));
//! let token = format!("{input}.{}", b64::encode(a_key.sign(input.as_bytes()).unwrap()));
//!
//! let ok = app.clone()
//!     .oneshot(Request::get("/whoami").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(ok.status(), StatusCode::OK);
//!
//! let tampered = token.replace(".ey", ".eX");
//! let refused = app
//!     .oneshot(Request::get("/whoami").header("authorization", format!("Bearer {tampered}")).body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
//! assert!(refused.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer error=\"invalid_token\""));
//! # }
//! ```

#[cfg(feature = "axum")]
mod axum;
mod builder;
mod cache;
mod claims;
mod error;
mod facade;
mod future;
mod layer;
mod metrics;
mod policy;
mod rejection;
mod service;
mod store;
mod svid;
mod token;
mod txn;
mod verifier;
mod wimse;

#[cfg(feature = "axum")]
pub use axum::{AuthRejection, Caller, CallerClaims, TransactionContext};
pub use builder::{DEFAULT_CACHE_CAPACITY, MAX_LEEWAY, VerifierBuilder};
pub use claims::{Authentication, Proof, VerifiedClaims};
pub use error::{ConfigError, ErrorKind, VerifyError};
pub use future::ResponseFuture;
pub use layer::VerifyLayer;
pub use metrics::VerifierMetrics;
pub use policy::{HmacAlgorithm, RequestTarget};
pub use service::Verify;
pub use store::{
    MemoryReplayStore, MemoryRevocationStore, ReplayStore, RevocationGeneration, RevocationQuery,
    RevocationStore, StoreError, StoreFuture,
};
pub use txn::{Transaction, TxnTokenClaims};
pub use verifier::Verifier;
