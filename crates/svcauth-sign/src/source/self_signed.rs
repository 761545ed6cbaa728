//! The default token source: tokens signed with the service's own key ring.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use svcauth_core::{Actor, SharedClock, b64, system_clock};
use svcauth_jwks::{JwsSigner, KeyRing};

use crate::error::{ConfigError, SignError};
use crate::source::{OnBehalfOf, Token, TokenFuture, TokenRequest, TokenSource};

/// Default token lifetime: 5 minutes.
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest lifetime a self-signed token may have: 1 hour.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// How far `iat` and `nbf` are set back, for receivers whose clock is behind.
pub(crate) const BACKDATE: Duration = Duration::from_secs(5);

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

    /// Mints a token now. A key held in this process signs at once; a
    /// remote one (an HSM, a KMS) is awaited.
    pub async fn mint(&self, request: TokenRequest<'_>) -> Result<Token, SignError> {
        let key = self.ring.signer();
        let (claims, iat, exp) = self.claims(request)?;
        let token = match key.local() {
            Some(local) => local.sign_jws(&claims)?,
            None => svcauth_jwks::sign_jws(&*key, "JWT", &claims).await?,
        };
        self.minted(&token, &*key, request, iat, exp)
    }

    /// The token's claims as JSON, with its `iat` and `exp`.
    fn claims(&self, request: TokenRequest<'_>) -> Result<(Vec<u8>, u64, u64), SignError> {
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
        let jti = random_id();
        // The claims as `Claims` serialises them, borrowed rather than
        // copied into one: a bound token is minted for every request.
        let claims = MintedClaims {
            iss: &self.issuer,
            sub: &sub,
            aud: request.audience,
            exp,
            nbf: iat,
            iat,
            jti: &jti,
            act: act.as_ref(),
            htm: binding.map(|b| b.htm.as_str()),
            htu: binding.map(|b| b.htu.as_str()),
            body_sha256: binding.map(|b| b.body_sha256.as_str()),
            query_sha256: binding.and_then(|b| b.query_sha256.as_deref()),
        };
        let claims = serde_json::to_vec(&claims).map_err(|e| SignError::Key(e.to_string()))?;
        Ok((claims, iat, exp))
    }

    fn minted(
        &self,
        token: &str,
        key: &dyn JwsSigner,
        request: TokenRequest<'_>,
        iat: u64,
        exp: u64,
    ) -> Result<Token, SignError> {
        tracing::debug!(
            aud = request.audience,
            kid = key.kid(),
            backend = key.backend(),
            bound = request.binding.is_some(),
            "token minted"
        );
        Token::minted(token, iat, exp)
    }
}

impl TokenSource for SelfSigned {
    fn token<'a>(&'a self, request: TokenRequest<'a>) -> TokenFuture<'a> {
        Box::pin(self.mint(request))
    }

    fn name(&self) -> &'static str {
        "self_signed"
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

/// The claims of a self-signed token, in `Claims`' order and names.
#[derive(Serialize)]
struct MintedClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a Actor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    htm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    htu: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_sha256: Option<&'a str>,
}

/// Random ids drawn from the system RNG 64 at a time: one RNG call costs
/// about as much for 16 bytes as for 1 KiB, and bound mode needs an id for
/// every request.
const IDS_PER_DRAW: usize = 64;

thread_local! {
    static RANDOM: std::cell::RefCell<(usize, [u8; 16 * IDS_PER_DRAW])> =
        const { std::cell::RefCell::new((IDS_PER_DRAW, [0; 16 * IDS_PER_DRAW])) };
}

/// A random 128-bit id, base64url.
pub(crate) fn random_id() -> String {
    RANDOM.with(|r| {
        let (next, pool) = &mut *r.borrow_mut();
        if *next == IDS_PER_DRAW {
            aws_lc_rs::rand::fill(pool).expect("the system RNG is available");
            *next = 0;
        }
        let id = &mut pool[16 * *next..16 * (*next + 1)];
        let encoded = b64::encode(&*id);
        // Never hand out the same bytes twice, even by mistake.
        id.fill(0);
        *next += 1;
        encoded
    })
}

/// A compact JWS of `claims`, signed by `key` (header `alg`, `typ: JWT`,
/// `kid`), whatever holds the key.
pub(crate) async fn compact_jws(
    key: &dyn JwsSigner,
    claims: &impl Serialize,
) -> Result<String, SignError> {
    let claims = serde_json::to_vec(claims).map_err(|e| SignError::Key(e.to_string()))?;
    Ok(svcauth_jwks::sign_jws(key, "JWT", &claims).await?)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use http::Method;
    use svcauth_core::{Algorithm, Claims, ManualClock, RequestBinding};
    use svcauth_jwks::SigningKey;

    use super::*;

    #[tokio::test]
    async fn minted_claims_read_back_as_claims() {
        let clock = ManualClock::at_secs(1_700_000_000);
        let source = SelfSigned::new(
            "https://a.internal",
            KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap()),
        )
        .unwrap()
        .clock(Arc::new(clock));
        let uri = "https://b.internal/x?y=1".parse().unwrap();
        let binding = RequestBinding::for_request(&Method::POST, &uri, b"body").unwrap();
        let token = source
            .mint(TokenRequest {
                audience: "https://b.internal",
                binding: Some(&binding),
                on_behalf_of: Some(&OnBehalfOf::Subject("alice".into())),
            })
            .await
            .unwrap();
        let payload = token.as_str().split('.').nth(1).unwrap();
        let claims: Claims = serde_json::from_slice(&b64::decode(payload).unwrap()).unwrap();
        assert_eq!(claims.iss, "https://a.internal");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.act.as_ref().unwrap().sub, "https://a.internal");
        assert_eq!(claims.iat, 1_700_000_000 - 5);
        assert_eq!(claims.nbf, Some(claims.iat));
        assert_eq!(claims.exp, claims.iat + 300);
        assert_eq!(claims.binding().unwrap(), Some(binding));
        assert!(claims.extra.is_empty());
        assert_eq!(claims.jti.as_ref().unwrap().len(), 22);
    }

    #[test]
    fn random_ids_do_not_repeat_across_draws() {
        let ids: HashSet<String> = (0..10 * IDS_PER_DRAW).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 10 * IDS_PER_DRAW);
        assert!(ids.iter().all(|id| id.len() == 22));
    }
}
