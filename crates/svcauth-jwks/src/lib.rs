//! svcauth keys.
mod der;
mod error;
mod key_ring;
mod key_set;
mod public_key;
mod publish;
mod signing_key;
pub use error::{ConfigError, FetchError, JwksError, KeyError};
pub use key_ring::{KeyRing, RetiringKey, RingError, RingState};
pub use key_set::{
    DEFAULT_MAX_JWKS_BYTES, KeySet, MAX_KEYS_PER_SET, SignatureError, SkipReason, SkippedKey,
    VerifyingKey,
};
pub use public_key::{Jwk, MAX_RSA_BITS, MIN_RSA_BITS, PublicKeyMaterial};
pub use publish::{DEFAULT_PUBLISH_MAX_AGE, JwksService};
pub use signing_key::{SigningKey, generate_pkcs8_pem};
