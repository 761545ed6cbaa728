//! [`VerifierBuilder`]: the configuration of a [`Verifier`], each default
//! set and explained here; the rules themselves are in `policy.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Uri};
use svcauth_core::{AlgorithmSet, SharedClock, system_clock};
use svcauth_jwks::KeySource;

use crate::cache::VerifiedCache;
use crate::error::ConfigError;
use crate::metrics::Metrics;
use crate::policy::{HmacAlgorithm, Policy};
use crate::store::{MemoryReplayStore, ReplayStore, RevocationStore};
use crate::txn::TxnTrust;
use crate::verifier::{Inner, Issuer, IssuerKeys, Verifier};
use crate::wimse::{ProofTarget, WorkloadTrust};

/// Default clock leeway: 30 s.
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Largest leeway accepted: 5 min.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// Default maximum token lifetime (`exp - iat`): 10 min.
pub(crate) const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(600);
/// Default maximum token size: 8 KiB.
pub(crate) const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default maximum body buffered to check a request binding: 1 MiB.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default capacity of the verification cache.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
/// Default capacity of the in-memory replay store.
pub(crate) const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// Builds a [`Verifier`]. Start with [`Verifier::builder`].
#[must_use]
pub struct VerifierBuilder {
    policy: Policy,
    issuers: Vec<Issuer>,
    cache_capacity: usize,
    replay: Option<Arc<dyn ReplayStore>>,
    replay_disabled: bool,
    revocation: Option<Arc<dyn RevocationStore>>,
    clock: SharedClock,
    leeway: Duration,
    error: Option<ConfigError>,
    workload_domains: Vec<(String, KeySource)>,
    proof_targets: Vec<ProofTarget>,
    proof_headers: Vec<HeaderName>,
    max_wit_lifetime: Duration,
    max_proof_lifetime: Duration,
    /// (trust domain, TTS issuer, its keys) for Txn-Tokens.
    txn_services: Vec<(String, String, KeySource)>,
    max_txn_lifetime: Duration,
}

/// Default longest Txn-Token lifetime (`exp - iat`): 10 minutes.
const DEFAULT_MAX_TXN_LIFETIME: Duration = Duration::from_secs(600);

/// Default longest WIT lifetime (`exp - iat`): 24 hours.
const DEFAULT_MAX_WIT_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default longest WPT lifetime (`exp` ahead of now): 5 minutes.
const DEFAULT_MAX_PROOF_LIFETIME: Duration = Duration::from_secs(300);

impl VerifierBuilder {
    pub(crate) fn new(audience: &str) -> Self {
        VerifierBuilder {
            policy: Policy {
                audience: audience.to_owned(),
                algorithms: AlgorithmSet::all(),
                leeway: DEFAULT_LEEWAY.as_secs(),
                max_lifetime: DEFAULT_MAX_LIFETIME.as_secs(),
                max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                accepted_types: vec!["JWT".into(), "at+jwt".into()],
                allow_missing_type: true,
                public_base_url: None,
            },
            issuers: Vec::new(),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            replay: None,
            replay_disabled: false,
            revocation: None,
            clock: system_clock(),
            leeway: DEFAULT_LEEWAY,
            error: None,
            workload_domains: Vec::new(),
            proof_targets: Vec::new(),
            proof_headers: Vec::new(),
            max_wit_lifetime: DEFAULT_MAX_WIT_LIFETIME,
            max_proof_lifetime: DEFAULT_MAX_PROOF_LIFETIME,
            txn_services: Vec::new(),
            max_txn_lifetime: DEFAULT_MAX_TXN_LIFETIME,
        }
    }

    /// Trusts tokens whose `iss` is exactly `issuer`, verified only with keys
    /// from `keys`. A key of one issuer never verifies another's token.
    pub fn trust(mut self, issuer: &str, keys: KeySource) -> Self {
        self.issuers.push(Issuer {
            iss: issuer.to_owned(),
            keys: IssuerKeys::Source(keys),
            jwt_svid: false,
        });
        self
    }

    /// Accepts SPIFFE JWT-SVIDs (bearer tokens in `Authorization`) of
    /// workloads in `trust_domain` (`example.org`), verified only with
    /// `keys`: the trust domain's bundle, read with
    /// [`SvidKind::Jwt`](svcauth_jwks::SvidKind::Jwt) from
    /// [`KeySource::spiffe_bundle`] or [`KeySource::spiffe_bundle_file`].
    ///
    /// The trust domain in `sub` chooses the keys, never `iss`; the
    /// verified claims then carry `iss` = `spiffe://<trust_domain>` (the
    /// name [`allow_caller`](crate::VerifyLayer::allow_caller) and
    /// [`require_proof_from`](crate::VerifyLayer::require_proof_from)
    /// match). The JWT-SVID header rules hold on top of this verifier's:
    /// RS, ES or PS only, `typ` absent, `JWT` or `JOSE`, no header member
    /// but `alg`, `kid` and `typ`; `aud` must name this verifier's
    /// audience, and `iat` is required for the lifetime cap.
    pub fn trust_jwt_svids(mut self, trust_domain: &str, keys: KeySource) -> Self {
        if svcauth_core::wimse::WorkloadId::check_trust_domain(trust_domain).is_err() {
            self.error = Some(ConfigError::Invalid("not a valid trust domain"));
        }
        self.issuers.push(Issuer {
            iss: format!("spiffe://{trust_domain}"),
            keys: IssuerKeys::Source(keys),
            jwt_svid: true,
        });
        self
    }

    /// DANGER: trusts `issuer`'s tokens signed with HMAC and a secret shared
    /// with it. Anyone holding the secret can mint tokens for any audience
    /// that trusts it, and it cannot be published or rotated like a public
    /// key. For legacy peers only; the secret (at least 32 bytes) is set here,
    /// never taken from a JWKS.
    pub fn danger_trust_hmac_issuer(
        mut self,
        issuer: &str,
        alg: HmacAlgorithm,
        secret: &[u8],
    ) -> Self {
        if secret.len() < 32 {
            self.error = Some(ConfigError::WeakHmacSecret);
            return self;
        }
        let algorithm = match alg {
            HmacAlgorithm::HS256 => aws_lc_rs::hmac::HMAC_SHA256,
            HmacAlgorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
            HmacAlgorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
        };
        self.issuers.push(Issuer {
            iss: issuer.to_owned(),
            keys: IssuerKeys::Hmac {
                alg,
                key: Box::new(aws_lc_rs::hmac::Key::new(algorithm, secret)),
            },
            jwt_svid: false,
        });
        self
    }

    /// The asymmetric algorithms accepted (default: all nine).
    pub fn algorithms(mut self, algorithms: AlgorithmSet) -> Self {
        self.policy.algorithms = algorithms;
        self
    }

    /// Clock leeway for `exp`, `nbf` and `iat` (default 30 s, at most 5 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Longest accepted `exp - iat` (default 10 min).
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.policy.max_lifetime = max.as_secs();
        self
    }

    /// Longest accepted token, checked before any decoding (default 8 KiB).
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.policy.max_token_bytes = max;
        self
    }

    /// Largest body buffered to check a request binding (default 1 MiB;
    /// larger bound requests get 413).
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.policy.max_body_bytes = max;
        self
    }

    /// Accepted `typ` values (default `JWT` and `at+jwt`), and whether a
    /// token without `typ` is accepted (default yes).
    pub fn accepted_types<'a>(
        mut self,
        types: impl IntoIterator<Item = &'a str>,
        allow_missing: bool,
    ) -> Self {
        self.policy.accepted_types = types.into_iter().map(str::to_owned).collect();
        self.policy.allow_missing_type = allow_missing;
        self
    }

    /// The URL clients use to reach this service (`https://api.example/b`),
    /// for checking `htu` behind a proxy. Without it, `htu` is checked
    /// against the request's own scheme (`http` unless the request URI is
    /// absolute) and `Host` header.
    pub fn public_base_url(mut self, url: Uri) -> Self {
        self.policy.public_base_url = Some(url);
        self
    }

    /// Capacity of the cache of verified tokens (default 10,000; 0 turns the
    /// cache off).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// The store that makes bound tokens single-use (default: in memory,
    /// 100,000 ids; use `svcauth-redis` for several replicas).
    pub fn replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay = Some(store);
        self.replay_disabled = false;
        self
    }

    /// DANGER: bound tokens may be used more than once, so an intercepted
    /// bound request can be sent again as is.
    pub fn danger_disable_replay_protection(mut self) -> Self {
        self.replay = None;
        self.replay_disabled = true;
        self
    }

    /// A deny-list consulted after every signature check and on every cache
    /// hit (default: none).
    pub fn revocation_store(mut self, store: Arc<dyn RevocationStore>) -> Self {
        self.revocation = Some(store);
        self
    }

    /// The clock (tests use [`svcauth_core::ManualClock`]).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Accepts Workload Identity Tokens of workloads in `trust_domain`
    /// (`example.org`, as in `spiffe://example.org/...`), verified only with
    /// `keys` (the domain's identity server's JWKS), each with a Workload
    /// Proof Token. A WIT whose `sub` is in another trust domain is refused
    /// whatever its `iss` says.
    pub fn trust_workloads(mut self, trust_domain: &str, keys: KeySource) -> Self {
        if svcauth_core::wimse::WorkloadId::check_trust_domain(trust_domain).is_err() {
            self.error = Some(ConfigError::Invalid("not a valid trust domain"));
        }
        self.workload_domains.push((trust_domain.to_owned(), keys));
        self
    }

    /// An origin (and path prefix) that callers' proofs may name in `aud`:
    /// `https://b.example` accepts `aud` = `https://b.example<path>` for a
    /// request to `<path>`. Default: the audience, when it is an http(s)
    /// URL, and the [`public_base_url`](Self::public_base_url). The
    /// request's `Host` is never used.
    pub fn proof_target(mut self, url: Uri) -> Self {
        match proof_target(&url) {
            Some(target) => self.proof_targets.push(target),
            None => {
                self.error = Some(ConfigError::Invalid(
                    "a proof target is an absolute http(s) URL",
                ))
            }
        }
        self
    }

    /// A header (beside `Authorization` and `Txn-Token`) whose token a
    /// proof binds through `oth`: when present it must be covered, and a
    /// proof naming a header not listed here is refused.
    pub fn proof_header(mut self, name: HeaderName) -> Self {
        self.proof_headers.push(name);
        self
    }

    /// The longest WIT accepted, `exp - iat` (default 24 hours).
    pub fn max_wit_lifetime(mut self, max: Duration) -> Self {
        self.max_wit_lifetime = max;
        self
    }

    /// How far ahead a WPT's `exp` may be (default 5 minutes).
    pub fn max_proof_lifetime(mut self, max: Duration) -> Self {
        self.max_proof_lifetime = max;
        self
    }

    /// Verifies the `Txn-Token` of requests (draft-ietf-oauth-transaction-tokens):
    /// this workload is in `trust_domain`, so a Txn-Token's `aud` must name
    /// it; the token must be signed by the Transaction Token Service
    /// `tts_issuer` with a key from `keys` (its JWKS). Call again for
    /// another TTS of the same trust domain (a token without `iss` is then
    /// refused: it cannot say whose key verifies it).
    pub fn trust_txn_tokens(
        mut self,
        trust_domain: &str,
        tts_issuer: &str,
        keys: KeySource,
    ) -> Self {
        let entry = (trust_domain.to_owned(), tts_issuer.to_owned(), keys);
        self.txn_services.push(entry);
        self
    }

    /// The longest Txn-Token accepted, `exp - iat` (default 10 minutes).
    pub fn max_txn_lifetime(mut self, max: Duration) -> Self {
        self.max_txn_lifetime = max;
        self
    }

    /// Builds the verifier, checking the configuration.
    pub fn build(mut self) -> Result<Verifier, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let audience = &self.policy.audience;
        if audience.is_empty() || audience == "*" {
            return Err(ConfigError::BadAudience);
        }
        if self.issuers.is_empty()
            && self.workload_domains.is_empty()
            && self.txn_services.is_empty()
        {
            return Err(ConfigError::NoIssuers);
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLarge);
        }
        self.policy.leeway = self.leeway.as_secs();
        if self.policy.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        if self.policy.max_lifetime == 0 || self.policy.max_token_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max lifetime and max token size must be positive",
            ));
        }
        let (mut by_iss, mut svid_domains) = (HashMap::new(), HashMap::new());
        for (i, issuer) in self.issuers.iter().enumerate() {
            if issuer.iss.is_empty() {
                return Err(ConfigError::Invalid("an issuer is a non-empty string"));
            }
            let (map, key) = match issuer.iss.strip_prefix("spiffe://") {
                Some(domain) if issuer.jwt_svid => (&mut svid_domains, domain),
                _ => (&mut by_iss, issuer.iss.as_str()),
            };
            if map.insert(key.to_owned(), i).is_some() {
                return Err(ConfigError::DuplicateIssuer(issuer.iss.clone()));
            }
        }
        let workloads = self.workload_trust()?;
        let txn = self.txn_trust()?;
        let replay = match (self.replay, self.replay_disabled) {
            (Some(store), _) => Some(store),
            (None, true) => None,
            (None, false) => Some(Arc::new(MemoryReplayStore::new(
                DEFAULT_REPLAY_CAPACITY,
                self.clock.clone(),
            )) as Arc<dyn ReplayStore>),
        };
        // Workloads are counted under their trust domain, after the issuers.
        let mut domains: Vec<(usize, String)> = workloads
            .iter()
            .flat_map(|w| w.domains.iter())
            .map(|(domain, i)| (*i, format!("spiffe://{domain}")))
            .collect();
        domains.sort();
        let names: Vec<&str> = self
            .issuers
            .iter()
            .map(|i| i.iss.as_str())
            .chain(domains.iter().map(|(_, d)| d.as_str()))
            .collect();
        let metrics = Metrics::new(&names);
        Ok(Verifier::from_inner(Inner {
            policy: self.policy,
            issuers: self.issuers,
            by_iss,
            svid_domains,
            cache: VerifiedCache::new(self.cache_capacity),
            replay,
            revocation_generation: self
                .revocation
                .as_ref()
                .and_then(|store| store.generation()),
            revocation: self.revocation,
            metrics,
            rejection_log: Default::default(),
            clock: self.clock,
            workloads,
            txn,
        }))
    }

    fn txn_trust(&mut self) -> Result<Option<TxnTrust>, ConfigError> {
        let Some((domain, _, _)) = self.txn_services.first() else {
            return Ok(None);
        };
        let trust_domain: Arc<str> = domain.as_str().into();
        if trust_domain.is_empty() || &*trust_domain == "*" {
            return Err(ConfigError::Invalid(
                "a trust domain is a non-empty exact name",
            ));
        }
        if self.max_txn_lifetime.is_zero() {
            return Err(ConfigError::Invalid(
                "the Txn-Token lifetime must be positive",
            ));
        }
        let mut services: Vec<(String, KeySource)> = Vec::new();
        for (domain, iss, keys) in self.txn_services.drain(..) {
            if *domain != *trust_domain {
                return Err(ConfigError::Invalid("Txn-Tokens of one trust domain only"));
            }
            if iss.is_empty() || services.iter().any(|(i, _)| *i == iss) {
                return Err(ConfigError::DuplicateIssuer(iss));
            }
            services.push((iss, keys));
        }
        Ok(Some(TxnTrust {
            trust_domain,
            services,
            cache: VerifiedCache::new(self.cache_capacity),
            max_lifetime: self.max_txn_lifetime.as_secs(),
        }))
    }

    fn workload_trust(&mut self) -> Result<Option<WorkloadTrust>, ConfigError> {
        if self.workload_domains.is_empty() {
            return Ok(None);
        }
        let mut domains = HashMap::new();
        let mut keys = Vec::new();
        for (domain, source) in self.workload_domains.drain(..) {
            if domains.insert(domain.clone(), keys.len()).is_some() {
                return Err(ConfigError::DuplicateIssuer(domain));
            }
            keys.push(source);
        }
        let mut targets = std::mem::take(&mut self.proof_targets);
        if targets.is_empty() {
            let defaults = [
                self.policy.audience.parse::<Uri>().ok(),
                self.policy.public_base_url.clone(),
            ];
            targets.extend(defaults.iter().flatten().filter_map(proof_target));
        }
        if targets.is_empty() {
            return Err(ConfigError::Invalid(
                "WITs need a proof target: an http(s) audience, a public base URL or proof_target",
            ));
        }
        if self.max_wit_lifetime.is_zero() || self.max_proof_lifetime.is_zero() {
            return Err(ConfigError::Invalid(
                "WIT and proof lifetimes must be positive",
            ));
        }
        Ok(Some(WorkloadTrust {
            domains,
            keys,
            cache: VerifiedCache::new(self.cache_capacity),
            targets,
            other_headers: std::mem::take(&mut self.proof_headers),
            max_wit_lifetime: self.max_wit_lifetime.as_secs(),
            max_proof_lifetime: self.max_proof_lifetime.as_secs(),
        }))
    }
}

/// `scheme://authority/prefix` of an absolute http(s) URL, without query.
fn proof_target(url: &Uri) -> Option<ProofTarget> {
    let scheme = url
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))?;
    let authority = url.authority()?.as_str();
    if authority.contains('@') || url.query().is_some() {
        return None;
    }
    ProofTarget::new(scheme, authority, url.path())
}
