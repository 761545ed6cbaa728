//! The default token source: tokens signed with the service's own key ring.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use svcauth_core::{Actor, Audience, Claims, SharedClock, b64, system_clock};
use svcauth_jwks::{KeyRing, SigningKey};

use crate::error::{ConfigError, SignError};
use crate::token::{BoxFuture, OnBehalfOf, Token, TokenRequest, TokenSource};

/// Default token lifetime: 5 minutes.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest lifetime a self-signed token may have: 1 hour.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// How far `iat` and `nbf` are set back, for receivers whose clock is behind.
pub const BACKDATE: Duration = Duration::from_secs(5);

/// Signs tokens with the current key of a [`KeyRing`]: `iss` = `sub` = the
/// service, `aud` = exactly one audience, `iat` and `nbf` five seconds in
/// the past, `exp` = `iat` + lifetime, a random 128-bit `jti`; header
/// `typ: JWT` and `kid` = the key's RFC 7638 thumbprint.
///
/// The ring is read on every mint, so rotating its key takes effect on the
/// next token, without a restart and without a failed call.
#[derive(Clone)]
pub struct SelfSigned {
    issuer: String,
    ring: KeyRing,
    lifetime: Duration,
    clock: SharedClock,
}

impl SelfSigned {
    /// Tokens of `issuer`, signed with `ring`, living 5 minutes.
    pub fn new(issuer: &str, ring: KeyRing) -> Result<Self, ConfigError> {
        if issuer.is_empty() {
            return Err(ConfigError::Empty("issuer"));
        }
        Ok(SelfSigned {
            issuer: issuer.to_owned(),
            ring,
            lifetime: DEFAULT_LIFETIME,
            clock: system_clock(),
        })
    }

    /// Sets the lifetime (at most 1 hour; verifiers refuse more than 10
    /// minutes by default).
    pub fn lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        if lifetime.is_zero() || lifetime > MAX_LIFETIME {
            return Err(ConfigError::Lifetime);
        }
        self.lifetime = lifetime;
        Ok(self)
    }

    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key ring.
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// Mints a token now.
    pub fn mint(&self, request: TokenRequest<'_>) -> Result<Token, SignError> {
        let iat = self.clock.now_secs().saturating_sub(BACKDATE.as_secs());
        let exp = iat + self.lifetime.as_secs();
        let (sub, act) = match request.on_behalf_of {
            None => (self.issuer.clone(), None),
            Some(OnBehalfOf::Subject(user)) => {
                (user.clone(), Some(Actor::new(self.issuer.clone())))
            }
            Some(OnBehalfOf::SubjectToken(_)) => {
                return Err(SignError::Unsupported(
                    "exchanging a subject token (use TokenExchange)",
                ));
            }
        };
        let binding = request.binding;
        let claims = Claims {
            iss: self.issuer.clone(),
            sub,
            aud: Audience::One(request.audience.to_owned()),
            exp,
            nbf: Some(iat),
            iat,
            jti: Some(random_id()),
            act,
            htm: binding.map(|b| b.htm.clone()),
            htu: binding.map(|b| b.htu.clone()),
            body_sha256: binding.map(|b| b.body_sha256.clone()),
            extra: serde_json::Map::new(),
        };
        let key = self.ring.signing_key();
        let token = compact_jws(&key, &claims)?;
        tracing::debug!(
            aud = request.audience,
            kid = key.kid(),
            bound = binding.is_some(),
            "token minted"
        );
        Token::new(&token, iat, exp)
    }
}

impl TokenSource for SelfSigned {
    fn token<'a>(&'a self, request: TokenRequest<'a>) -> BoxFuture<'a, Result<Token, SignError>> {
        Box::pin(std::future::ready(self.mint(request)))
    }
}

impl fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSigned")
            .field("issuer", &self.issuer)
            .field("ring", &self.ring)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// A random 128-bit id, base64url.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system RNG is available");
    b64::encode(bytes)
}

/// A compact JWS of `claims`, signed by `key` (header `alg`, `typ`, `kid`).
pub(crate) fn compact_jws(key: &SigningKey, claims: &impl Serialize) -> Result<String, SignError> {
    let claims = serde_json::to_vec(claims).map_err(|e| SignError::Key(e.to_string()))?;
    Ok(key.sign_jws(&claims)?)
}
