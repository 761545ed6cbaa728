//! [`WitIssuer`]: signs Workload Identity Tokens for one trust domain.

use std::time::Duration;

use serde_json::{Value, json};
use svcauth_core::wimse::{WIT_TYPE, WorkloadId};
use svcauth_core::{SharedClock, system_clock};
use svcauth_jwks::{Jwk, KeyRing, VerifyingKey};

use super::WimseError;
use crate::error::ConfigError;
use crate::source::self_signed::random_id;

/// The longest WIT lifetime [`WitIssuer::lifetime`] takes: one day. The
/// draft expects hours; a WIT cannot be revoked any faster than it expires.
const MAX_WIT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The identity server of one trust domain, as a library: signs WITs
/// (`typ: wit+jwt`) with the trust domain's [`KeyRing`], whose JWKS is what
/// verifiers trust for that domain (publish it with
/// [`svcauth_jwks::JwksService`]).
///
/// It signs what it is asked: deciding *which* workload may have a WIT for
/// which identifier (attestation) is the caller's job. It never sees a
/// private key: the workload keeps its own and sends the public JWK.
///
/// ```
/// use svcauth_core::Algorithm;
/// use svcauth_jwks::{KeyRing, SigningKey};
/// use svcauth_sign::wimse::{WitIssuer, WorkloadIdentity};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let issuer = WitIssuer::new("example.org", KeyRing::new(SigningKey::generate(Algorithm::ES256).unwrap())).unwrap();
/// // The workload makes its key and sends only the public part.
/// let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
/// let wit = issuer.issue(&"spiffe://example.org/billing".parse().unwrap(), &key.public_jwk()).await.unwrap();
/// let identity = WorkloadIdentity::new(key, &wit).unwrap();
/// assert_eq!(identity.wit().workload().as_str(), "spiffe://example.org/billing");
/// // Another trust domain's workload is not this issuer's to vouch for.
/// let other = SigningKey::generate(Algorithm::EdDSA).unwrap();
/// assert!(issuer.issue(&"spiffe://other.org/x".parse().unwrap(), &other.public_jwk()).await.is_err());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct WitIssuer {
    trust_domain: String,
    ring: KeyRing,
    iss: Option<String>,
    lifetime: Duration,
    clock: SharedClock,
}

impl WitIssuer {
    /// An issuer for `trust_domain` (`example.org`, as in
    /// `spiffe://example.org/...`) signing with `ring`. WITs live one hour
    /// and carry no `iss` unless set.
    pub fn new(trust_domain: &str, ring: KeyRing) -> Result<Self, ConfigError> {
        WorkloadId::check_trust_domain(trust_domain).map_err(|_| {
            ConfigError::Invalid("the trust domain is not a valid SPIFFE trust domain")
        })?;
        Ok(WitIssuer {
            trust_domain: trust_domain.to_owned(),
            ring,
            iss: None,
            lifetime: Duration::from_secs(3600),
            clock: system_clock(),
        })
    }

    /// Puts `iss` in every WIT (recommended by the draft, for audit; never
    /// used by verifiers to find keys).
    pub fn issuer(mut self, iss: &str) -> Self {
        self.iss = Some(iss.to_owned());
        self
    }

    /// How long a WIT lives: 1 second to 24 hours (default one hour).
    pub fn lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        if lifetime < Duration::from_secs(1) || lifetime > MAX_WIT_LIFETIME {
            return Err(ConfigError::Invalid(
                "a WIT lifetime is between 1 second and 24 hours",
            ));
        }
        self.lifetime = lifetime;
        Ok(self)
    }

    /// The clock WITs are dated by (tests).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The trust domain this issuer vouches for.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The key ring that signs (publish its JWKS for verifiers).
    pub fn key_ring(&self) -> &KeyRing {
        &self.ring
    }

    /// A WIT for `workload`, confirming `key` (the workload's public JWK,
    /// which must name its `alg`). Refused: a workload of another trust
    /// domain, a key with private or symmetric material, a key without
    /// `alg`.
    /// The trust domain's key signs it, wherever it is kept: a remote one
    /// (an HSM, a KMS) is awaited.
    pub async fn issue(&self, workload: &WorkloadId, key: &Jwk) -> Result<String, WimseError> {
        if workload.trust_domain() != self.trust_domain {
            return Err(WimseError::ForeignWorkload {
                workload: workload.to_string(),
                trust_domain: self.trust_domain.clone(),
            });
        }
        let jwk = confirmation_jwk(key)?;
        let now = self.clock.now_secs();
        let mut claims = json!({
            "sub": workload.as_str(),
            "iat": now,
            "exp": now + self.lifetime.as_secs(),
            "jti": random_id(),
            "cnf": { "jwk": jwk },
        });
        if let Some(iss) = &self.iss {
            claims["iss"] = Value::from(iss.as_str());
        }
        let claims = serde_json::to_vec(&claims).map_err(|e| WimseError::Key(e.to_string()))?;
        let signer = self.ring.signer();
        Ok(svcauth_jwks::sign_jws(&*signer, WIT_TYPE, &claims).await?)
    }
}

/// The public JWK a WIT confirms, checked as a verifier will check it and
/// reduced to its public members, `alg` and `kid`.
pub(crate) fn confirmation_jwk(key: &Jwk) -> Result<Value, WimseError> {
    let Value::Object(map) =
        serde_json::to_value(key).map_err(|e| WimseError::ProofKey(e.to_string()))?
    else {
        return Err(WimseError::ProofKey("not a JSON object".into()));
    };
    if key.alg.is_none() {
        return Err(WimseError::ProofKey("the key must name its alg".into()));
    }
    let parsed = VerifyingKey::from_jwk(&map).map_err(|e| WimseError::ProofKey(e.to_string()))?;
    let mut jwk =
        serde_json::to_value(parsed.to_jwk()).map_err(|e| WimseError::ProofKey(e.to_string()))?;
    if let Value::Object(jwk) = &mut jwk {
        jwk.remove("use");
    }
    Ok(jwk)
}
