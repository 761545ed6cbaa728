//! The svcauth wire contract: what a service token says and how it is bound
//! to a request. No I/O lives here; the signer (`svcauth-sign`) and the
//! verifier (`svcauth-verify`) both build on these types, so the two halves
//! cannot drift apart.
//!
//! * [`Claims`]: `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `act`
//!   (RFC 8693 §4.1), the binding claims `htm`/`htu`/`body_sha256`, and any
//!   extra claims.
//! * [`RequestBinding`]: the binding computation, identical on both sides.
//! * [`Algorithm`] and [`AlgorithmSet`]: the asymmetric allow-list. `none`
//!   and `HS*` cannot be expressed.
//! * [`Clock`]: injectable time, with [`SystemClock`] and [`ManualClock`].
//! * [`b64`]: strict base64url.
//! * [`wimse`]: the WIMSE Workload Identity and Proof Tokens and workload
//!   identifiers.
//!
//! # Example
//!
//! ```
//! use http::Method;
//! use svcauth_core::{Algorithm, AlgorithmSet, Claims, RequestBinding};
//!
//! // The allow-list a verifier would use: only EdDSA and ES256.
//! let allowed: AlgorithmSet = [Algorithm::EdDSA, Algorithm::ES256].into_iter().collect();
//! assert!(allowed.contains("ES256".parse().unwrap()));
//! assert!("HS256".parse::<Algorithm>().is_err());
//!
//! // A bound request, as the signer computes it and the verifier recomputes it.
//! let uri = "http://service-b.internal:8080/echo?x=1".parse().unwrap();
//! let binding = RequestBinding::for_request(&Method::POST, &uri, b"hello").unwrap();
//! assert_eq!(binding.htu, "http://service-b.internal:8080/echo");
//!
//! let claims: Claims = serde_json::from_value(serde_json::json!({
//!     "iss": "https://a.internal", "sub": "https://a.internal",
//!     "aud": "https://b.internal", "iat": 1_700_000_000, "exp": 1_700_000_300,
//!     "htm": binding.htm, "htu": binding.htu, "body_sha256": binding.body_sha256,
//!     "query_sha256": binding.query_sha256,
//! })).unwrap();
//! let bound = claims.binding().unwrap().unwrap();
//! assert_eq!(bound, binding);
//! // The token holds for this request, and not with another query.
//! let other = "http://service-b.internal:8080/echo?x=2".parse().unwrap();
//! assert!(bound.matches(&RequestBinding::for_request(&Method::POST, &uri, b"hello").unwrap()));
//! assert!(!bound.matches(&RequestBinding::for_request(&Method::POST, &other, b"hello").unwrap()));
//! ```

mod alg;
pub mod b64;
mod bearer;
mod binding;
mod body;
mod bounded;
mod claims;
mod clock;
pub mod jws;
mod per_thread;
pub mod txn;
pub mod wimse;

/// Plumbing the svcauth crates share (the bounded lock-free map behind
/// every cache, per-thread copies of hot entries). Not part of the API of
/// the wire contract: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::bounded::{BoundedMap, Equivalent};
    pub use crate::per_thread::PerThread;
}

pub use alg::{Algorithm, AlgorithmSet, KeyFamily, UnsupportedAlgorithm};
pub use bearer::{InvalidAuthorization, bearer_token, bearer_token_bytes};
pub use binding::{BindingError, RequestBinding, body_sha256, htu, query_sha256};
pub use body::BodyFromBytes;
pub use claims::{Actor, Audience, Claims};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock, system_clock};
