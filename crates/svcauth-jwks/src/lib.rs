//! svcauth keys: the signing side's key ring, the verifying side's key
//! sources, and the JWKS documents between them.
//!
//! * [`SigningKey`]: a private key, parsed once, from PKCS#8 PEM (file,
//!   string, environment variable) or generated; `kid` = RFC 7638 thumbprint.
//! * [`JwsSigner`]: what signs, wherever the private key is kept:
//!   [`SigningKey`] in this process, a PKCS#11 token (feature `pkcs11`,
//!   `pkcs11::Pkcs11Signer`), or a KMS backend of your own.
//! * [`KeyRing`]: this service's signing key plus the public keys it keeps
//!   publishing around a rotation, readable lock-free; [`JwksService`]
//!   publishes it at `/.well-known/jwks.json`.
//! * [`KeySet`] and [`VerifyingKey`]: an issuer's public keys by `kid`,
//!   each pinned to the algorithms its JWK allows. [`KeySet::from_jwks`]
//!   skips unusable keys (symmetric, private, `use: enc`, RSA < 2048 bits,
//!   unknown types, duplicate kids) and keeps the rest.
//! * [`KeySource`]: where a verifier gets one issuer's keys: a remote JWKS
//!   cache ([`KeySource::remote`], [`KeySource::discover`]), a SPIFFE trust
//!   bundle ([`KeySource::spiffe_bundle`], [`KeySource::spiffe_bundle_file`],
//!   the keys of one [`SvidKind`]) or a static set, behind one lock-free
//!   lookup.
//!
//! Cryptography is aws-lc-rs, the one backend of the workspace.
//!
//! # Example
//!
//! A service publishes its keys; another fetches them over HTTP and checks a
//! signature; the first rotates, and the second follows.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use svcauth_core::Algorithm;
//! use svcauth_jwks::{JwksService, KeyLookup, KeyRing, KeySource, SigningKey};
//!
//! // Service A publishes its key ring.
//! let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
//! let app = axum::Router::new().route_service("/.well-known/jwks.json", JwksService::new(ring.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! // Service B trusts A's JWKS.
//! let keys = KeySource::remote(&url).unwrap().cooldown(Duration::ZERO).build().unwrap();
//! let signature = ring.signer().sign(b"msg").await.unwrap();
//! let KeyLookup::Found(key) = keys.resolve(Some(ring.signer().kid())).await else { panic!() };
//! assert!(key.verify(Algorithm::EdDSA, b"msg", &signature).is_ok());
//!
//! // A rotates; B finds the new kid with one fetch.
//! ring.rotate(SigningKey::generate(Algorithm::EdDSA).unwrap(), Duration::from_secs(600)).unwrap();
//! assert!(matches!(keys.resolve(Some(ring.signer().kid())).await, KeyLookup::Found(_)));
//! # }
//! ```
mod der;
mod error;
mod key_ring;
mod key_set;
mod public_key;
mod publish;
mod signer;
mod signing_key;
mod source;
mod spiffe;
pub use der::ecdsa_der_to_jose;
pub use error::{ConfigError, FetchError, JwksError, KeyError};
pub use key_ring::{KeyRing, RetiringKey, RingError, RingState};
pub use key_set::{KeySet, SignatureError, SkipReason, SkippedKey, VerifyingKey};
pub use public_key::{Jwk, MAX_RSA_BITS, MIN_RSA_BITS, PublicKeyMaterial};
pub use publish::JwksService;
#[cfg(feature = "pkcs11")]
pub use signer::pkcs11;
pub use signer::{JwsSigner, SignatureFuture, jws_header, sign_jws};
pub use signing_key::{SigningKey, generate_pkcs8_pem};
pub use source::{KeyLookup, KeySource, KeySourceStats, RemoteBuilder, http_client_builder};
pub use spiffe::SvidKind;

/// Entry points for the fuzz targets (`fuzz/`), built only by cargo-fuzz
/// (`--cfg fuzzing`): parsers that are otherwise reached only over HTTP.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// The `jwks_uri` an OpenID discovery document yields for `issuer`,
    /// fetched from `discovery_url`.
    pub fn discovery(
        body: &[u8],
        issuer: &str,
        discovery_url: &url::Url,
        allow_insecure_http: bool,
    ) -> Result<url::Url, String> {
        crate::source::remote::discovered_jwks_uri(
            body,
            issuer,
            discovery_url,
            allow_insecure_http,
            &[],
        )
        .map_err(|e| e.to_string())
    }
}
