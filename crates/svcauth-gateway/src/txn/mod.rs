//! The Transaction Token Service (draft-ietf-oauth-transaction-tokens, the
//! editor's copy after -08): it mints the short-lived `txntoken+jwt` that
//! carries a transaction's subject, purpose and context through every hop
//! of its call chain.
//!
//! * At the edge: after a phantom-token swap, the gateway mints one
//!   Txn-Token per request from what the swap said of the user (`sub`,
//!   `scope`, chosen claims into `tctx`) and from the request (`rctx`: the
//!   client's address, the method and path that entered the trust domain),
//!   and forwards it in the `Txn-Token` header
//!   ([`GatewayBuilder::txn_token_service`](crate::GatewayBuilder::txn_token_service)).
//! * On request: an RFC 8693 token exchange from an authenticated workload
//!   (`requested_token_type` = `urn:ietf:params:oauth:token-type:txn_token`),
//!   in `exchange.rs`; the HTTP endpoint (feature `axum`) is in
//!   `endpoint.rs`.
//!
//! Tokens are signed with the service's [`KeyRing`] and verified with the
//! JWKS it publishes ([`TransactionTokenService::jwks`]).

#[cfg(feature = "axum")]
mod endpoint;
mod exchange;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};
use svcauth_core::txn::{self, TxnClaims};
use svcauth_core::{Audience, SharedClock, system_clock};
use svcauth_jwks::KeyRing;
use svcauth_verify::Verifier;

pub(crate) use exchange::subject_claims;
pub use exchange::{ExchangeError, Requester, TxnTokenResponse};

/// Default Txn-Token lifetime: 2 minutes (the draft: minutes or less).
pub const DEFAULT_TXN_LIFETIME: Duration = Duration::from_secs(120);
/// The longest lifetime a service may be configured with: 10 minutes,
/// what `svcauth-verify` accepts by default.
pub const MAX_TXN_LIFETIME: Duration = Duration::from_secs(600);

/// What a Txn-Token is minted from: who, for what, in which context.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TxnGrant {
    /// The transaction's principal (`sub`).
    pub sub: String,
    /// Its purpose (`scope`), space-separated.
    pub scope: String,
    /// The requesting workload(s) (`req_wl`).
    pub req_wl: String,
    /// The immutable authorisation context (`tctx`).
    pub tctx: Map<String, Value>,
    /// The request context (`rctx`).
    pub rctx: Map<String, Value>,
    /// The transaction id to keep (a replacement); a new one when `None`.
    pub txn: Option<String>,
    /// No later expiry than this (a replacement never outlives the token
    /// it replaces).
    pub not_after: Option<u64>,
}

impl TxnGrant {
    /// A grant for `sub`, with purpose `scope`, requested by `req_wl`.
    pub fn new(sub: &str, scope: &str, req_wl: &str) -> Self {
        TxnGrant {
            sub: sub.to_owned(),
            scope: scope.to_owned(),
            req_wl: req_wl.to_owned(),
            ..TxnGrant::default()
        }
    }
}

/// Why a Txn-Token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// The subject is unusable: no `sub`, or no scope to bound the
    /// transaction's (the draft: an unknown scope is never unconstrained).
    #[error("cannot mint a Txn-Token: {0}")]
    Subject(&'static str),
    /// The signing key failed.
    #[error("signing the Txn-Token failed: {0}")]
    Key(String),
}

/// Configuration errors of a [`TransactionTokenService`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnConfigError {
    /// A setting is out of range or empty.
    #[error("invalid Transaction Token Service setting: {0}")]
    Invalid(&'static str),
    /// The verifier of the service's own tokens could not be built.
    #[error("the service's own keys are unusable: {0}")]
    OwnKeys(String),
}

/// A Transaction Token Service: mints Txn-Tokens for one trust domain,
/// signed with its key ring. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use svcauth_core::Algorithm;
/// use svcauth_gateway::txn::{TransactionTokenService, TxnGrant};
/// use svcauth_jwks::{KeyRing, KeySet, KeySource, SigningKey};
///
/// let ring = KeyRing::new(SigningKey::generate(Algorithm::ES256).unwrap());
/// let tts = TransactionTokenService::builder("example.org", "https://tts.example.org", ring)
///     .build()
///     .unwrap();
/// let mut grant = TxnGrant::new("alice", "orders.read", "https://gateway.example.org");
/// grant.tctx.insert("tenant".into(), "blue".into());
/// let token = tts.mint(grant).await.unwrap();
///
/// // A service of the trust domain verifies it with the published JWKS.
/// let keys = KeySource::fixed(KeySet::from_jwks(&tts.jwks(), 65536).unwrap());
/// let verifier = svcauth_verify::Verifier::builder("https://orders.example.org")
///     .trust_txn_tokens("example.org", "https://tts.example.org", keys)
///     .build()
///     .unwrap();
/// let value = http::HeaderValue::from_str(&token).unwrap();
/// let txn = verifier.verify_txn_token(&value).await.unwrap();
/// assert_eq!((txn.sub(), txn.scope()), ("alice", "orders.read"));
/// assert_eq!(txn.tctx().unwrap()["tenant"], "blue");
/// # }
/// ```
#[derive(Clone)]
pub struct TransactionTokenService {
    inner: Arc<Inner>,
}

struct Inner {
    trust_domain: String,
    issuer: String,
    ring: KeyRing,
    lifetime: u64,
    edge_workload: String,
    tctx_claims: Vec<String>,
    clock: SharedClock,
    policy: exchange::Policy,
    /// Client assertions seen, each accepted once.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    assertions: svcauth_verify::MemoryReplayStore,
    /// Verifies this service's own tokens (replacements), rebuilt when the
    /// ring's JWKS changes.
    own: std::sync::Mutex<Option<(String, Verifier)>>,
}

/// Builds a [`TransactionTokenService`].
#[must_use]
pub struct TxnServiceBuilder {
    trust_domain: String,
    issuer: String,
    ring: KeyRing,
    lifetime: Duration,
    edge_workload: Option<String>,
    tctx_claims: Vec<String>,
    clock: SharedClock,
    policy: exchange::Policy,
}

impl TransactionTokenService {
    /// A service for `trust_domain` (every token's `aud`), naming itself
    /// `issuer` (`iss`), signing with `ring`.
    pub fn builder(trust_domain: &str, issuer: &str, ring: KeyRing) -> TxnServiceBuilder {
        TxnServiceBuilder {
            trust_domain: trust_domain.to_owned(),
            issuer: issuer.to_owned(),
            ring,
            lifetime: DEFAULT_TXN_LIFETIME,
            edge_workload: None,
            tctx_claims: vec!["tenant".into(), "roles".into()],
            clock: system_clock(),
            policy: exchange::Policy::default(),
        }
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.inner.trust_domain
    }

    /// The service's `iss`.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The JWKS to publish: the ring's current, next and retiring keys.
    pub fn jwks(&self) -> Bytes {
        self.inner.ring.state().jwks().clone()
    }

    /// The key ring (for rotation).
    pub fn key_ring(&self) -> &KeyRing {
        &self.inner.ring
    }

    /// Mints a Txn-Token for `grant`: a new `txn` unless the grant keeps
    /// one, `iat` now, `exp` after the service's lifetime (or the grant's
    /// `not_after`, if sooner).
    pub async fn mint(&self, grant: TxnGrant) -> Result<String, TxnError> {
        self.mint_for(grant).await.map(|(token, _)| token)
    }

    /// [`mint`](Self::mint), and the seconds the token lives.
    pub(crate) async fn mint_for(&self, grant: TxnGrant) -> Result<(String, u64), TxnError> {
        let inner = &self.inner;
        let now = inner.clock.now_secs();
        let exp = (now + inner.lifetime).min(grant.not_after.unwrap_or(u64::MAX));
        let claims = TxnClaims {
            iss: Some(inner.issuer.clone()),
            iat: now,
            aud: Audience::One(inner.trust_domain.clone()),
            exp,
            txn: grant.txn.unwrap_or_else(transaction_id),
            sub: grant.sub,
            scope: grant.scope,
            req_wl: grant.req_wl,
            tctx: Some(grant.tctx),
            rctx: Some(grant.rctx),
            extra: Map::new(),
        };
        if let Err(claim) = claims.check() {
            return Err(TxnError::Subject(match claim {
                "sub" => "no subject",
                "scope" => "no scope",
                _ => "a required claim is empty",
            }));
        }
        if exp <= now {
            return Err(TxnError::Subject("the transaction has expired"));
        }
        let payload = serde_json::to_vec(&claims).map_err(|e| TxnError::Key(e.to_string()))?;
        let signer = inner.ring.signer();
        let token = svcauth_jwks::sign_jws(&*signer, txn::TYPE, &payload)
            .await
            .map_err(|e| TxnError::Key(e.to_string()))?;
        Ok((token, exp - now))
    }

    /// The grant for a request entering the trust domain at the edge:
    /// `subject` is what the swap said of the user's token (a JWT's claims,
    /// or the introspection answer), `rctx` the request's context.
    pub fn edge_grant(
        &self,
        subject: &Map<String, Value>,
        rctx: Map<String, Value>,
    ) -> Result<TxnGrant, TxnError> {
        let text = |name: &str| subject.get(name).and_then(Value::as_str).unwrap_or("");
        let sub = text("sub");
        if sub.is_empty() {
            return Err(TxnError::Subject("the access token names no subject"));
        }
        let scope = text("scope");
        if scope.split(' ').all(str::is_empty) {
            return Err(TxnError::Subject(
                "the access token carries no scope to bound the transaction's",
            ));
        }
        let mut grant = TxnGrant::new(sub, scope, &self.inner.edge_workload);
        grant.tctx = self.context_of(subject);
        grant.rctx = rctx;
        Ok(grant)
    }

    /// The configured claims of `subject`, for `tctx`.
    fn context_of(&self, subject: &Map<String, Value>) -> Map<String, Value> {
        let claims = &self.inner.tctx_claims;
        claims
            .iter()
            .filter_map(|name| Some((name.clone(), subject.get(name)?.clone())))
            .collect()
    }

    /// A verifier of this service's own Txn-Tokens, for the ring's keys now.
    fn own_verifier(&self) -> Result<Verifier, TxnConfigError> {
        let inner = &self.inner;
        let state = inner.ring.state();
        let mut own = inner.own.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((etag, verifier)) = &*own
            && etag == state.etag()
        {
            return Ok(verifier.clone());
        }
        let keys = svcauth_jwks::KeySet::from_jwks(state.jwks(), 1 << 20)
            .map_err(|e| TxnConfigError::OwnKeys(e.to_string()))?;
        let verifier = Verifier::builder(&inner.issuer)
            .trust_txn_tokens(
                &inner.trust_domain,
                &inner.issuer,
                svcauth_jwks::KeySource::fixed(keys),
            )
            .max_txn_lifetime(Duration::from_secs(inner.lifetime.max(1)))
            .clock(inner.clock.clone())
            .cache_capacity(0)
            .build()
            .map_err(|e| TxnConfigError::OwnKeys(e.to_string()))?;
        *own = Some((state.etag().to_owned(), verifier.clone()));
        Ok(verifier)
    }
}

impl TxnServiceBuilder {
    /// How long a Txn-Token lives (default 2 minutes, at most 10).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The `req_wl` of tokens minted at the edge (default: the issuer).
    pub fn edge_workload(mut self, workload: &str) -> Self {
        self.edge_workload = Some(workload.to_owned());
        self
    }

    /// The claims of the user's token copied into `tctx` at the edge
    /// (default `tenant` and `roles`; absent ones are skipped).
    pub fn tctx_claims<'a>(mut self, claims: impl IntoIterator<Item = &'a str>) -> Self {
        self.tctx_claims = claims.into_iter().map(str::to_owned).collect();
        self
    }

    /// Lets workload `requester` (the `sub` of its service token, or the
    /// client id of its `private_key_jwt`) start transactions itself (a
    /// self-signed or unsigned-JSON subject token) with scopes among
    /// `scopes`, and replace Txn-Tokens (narrowing only). Workloads not
    /// listed get `unauthorized_client`: the draft wants a TTS selective.
    pub fn allow_requester<'a>(
        mut self,
        requester: &str,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let scopes = scopes.into_iter().map(str::to_owned).collect();
        self.policy.requesters.insert(requester.to_owned(), scopes);
        self
    }

    /// The verifier of requesting workloads' credentials: their service
    /// tokens or `private_key_jwt` assertions (at the HTTP endpoint), and
    /// their self-signed subject tokens. Its audience is this service's
    /// identifier; it trusts the workloads' issuers.
    pub fn authenticate_workloads(mut self, verifier: Verifier) -> Self {
        self.policy.workloads = Some(verifier);
        self
    }

    /// Accepts OAuth access tokens as subject tokens, swapped (and cached)
    /// by `gateway` as at the edge.
    pub fn access_tokens(mut self, gateway: crate::Gateway) -> Self {
        self.policy.gateway = Some(gateway);
        self
    }

    /// The clock.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the service.
    pub fn build(self) -> Result<TransactionTokenService, TxnConfigError> {
        if self.trust_domain.is_empty() || self.trust_domain == "*" {
            return Err(TxnConfigError::Invalid("the trust domain"));
        }
        if self.issuer.is_empty() {
            return Err(TxnConfigError::Invalid("the issuer"));
        }
        if self.lifetime.is_zero() || self.lifetime > MAX_TXN_LIFETIME {
            return Err(TxnConfigError::Invalid(
                "the lifetime (1 second to 10 minutes)",
            ));
        }
        let edge_workload = self.edge_workload.unwrap_or_else(|| self.issuer.clone());
        let service = TransactionTokenService {
            inner: Arc::new(Inner {
                trust_domain: self.trust_domain,
                issuer: self.issuer,
                ring: self.ring,
                lifetime: self.lifetime.as_secs(),
                edge_workload,
                tctx_claims: self.tctx_claims,
                assertions: svcauth_verify::MemoryReplayStore::new(100_000, self.clock.clone()),
                clock: self.clock,
                policy: self.policy,
                own: std::sync::Mutex::new(None),
            }),
        };
        service.own_verifier()?;
        Ok(service)
    }
}

impl fmt::Debug for TransactionTokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionTokenService")
            .field("trust_domain", &self.inner.trust_domain)
            .field("issuer", &self.inner.issuer)
            .field("lifetime", &self.inner.lifetime)
            .finish_non_exhaustive()
    }
}

/// A fresh transaction id: a random (version 4) UUID, as the draft's
/// examples write it.
fn transaction_id() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("the system RNG is available");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
