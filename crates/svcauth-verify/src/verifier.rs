//! The [`Verifier`]: everything that decides whether a token is accepted,
//! usable without tower (gRPC servers, custom stacks).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use svcauth_core::SharedClock;
use svcauth_jwks::{KeyLookup, KeySource, SignatureError};
use tracing::Instrument;

use crate::builder::VerifierBuilder;
use crate::cache::{Entry, VerifiedCache};
use crate::claims::VerifiedClaims;
use crate::error::{ErrorKind, VerifyError};
use crate::metrics::{Metrics, VerifierMetrics};
use crate::policy::{HmacAlgorithm, Policy, RequestTarget, RouteRules};
use crate::store::{ReplayStore, RevocationStore};
use crate::token::{self, HeaderAlg, Hmac};

pub(crate) enum IssuerKeys {
    Source(KeySource),
    Hmac {
        alg: HmacAlgorithm,
        key: Box<aws_lc_rs::hmac::Key>,
    },
}

pub(crate) struct Issuer {
    /// The trusted `iss`; for a JWT-SVID trust domain, `spiffe://<domain>`.
    pub(crate) iss: String,
    pub(crate) keys: IssuerKeys,
    /// A trust domain's JWT-SVIDs, found by `sub`, not by `iss`.
    pub(crate) jwt_svid: bool,
}

impl Issuer {
    /// The generation of the issuer's current key set.
    pub(crate) fn generation(&self) -> u64 {
        match &self.keys {
            IssuerKeys::Source(source) => source.generation(),
            IssuerKeys::Hmac { .. } => 0,
        }
    }
}

/// How an accepted token was found: from the cache or not, and whose.
#[derive(Clone, Copy)]
pub(crate) struct Found {
    pub(crate) cache_hit: bool,
    /// The index of its issuer in [`Inner::issuers`].
    pub(crate) issuer: usize,
}

impl Found {
    fn new(cache_hit: bool, issuer: usize) -> Self {
        Found { cache_hit, issuer }
    }
}

pub(crate) struct Inner {
    pub(crate) policy: Policy,
    pub(crate) issuers: Vec<Issuer>,
    pub(crate) by_iss: HashMap<String, usize>,
    /// Trust domains whose JWT-SVIDs are accepted -> their issuer index.
    pub(crate) svid_domains: HashMap<String, usize>,
    pub(crate) cache: VerifiedCache,
    pub(crate) replay: Option<Arc<dyn ReplayStore>>,
    pub(crate) revocation: Option<Arc<dyn RevocationStore>>,
    /// The revocation store's local copy, when it keeps one.
    pub(crate) revocation_generation: Option<Arc<crate::store::RevocationGeneration>>,
    pub(crate) metrics: Metrics,
    pub(crate) rejection_log: crate::metrics::RejectionLog,
    pub(crate) clock: SharedClock,
    /// Trust domains for WITs, when configured.
    pub(crate) workloads: Option<crate::wimse::WorkloadTrust>,
    /// The trust domain and Transaction Token Services, when configured.
    pub(crate) txn: Option<crate::txn::TxnTrust>,
}

/// Verifies service tokens. Cheap to clone; clones share the key sources,
/// the verification cache and the counters.
///
/// The checks, in order: size; three segments of strict base64url; header
/// (`alg` on the allow-list, no `crit`, no `b64: false`, accepted `typ`);
/// claims of the right JSON types and no duplicate members; `iss` trusted;
/// `aud`; `exp`, `nbf`, `iat` with leeway and the lifetime cap; the key of
/// *that* issuer for `kid`, with `alg` pinned on it; the signature; the
/// revocation store. Then, for bound tokens: the request binding and the
/// replay store.
///
/// See the crate docs for an example.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl Verifier {
    /// Starts a verifier for tokens addressed to `audience` (this service).
    pub fn builder(audience: &str) -> VerifierBuilder {
        VerifierBuilder::new(audience)
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Verifier {
            inner: Arc::new(inner),
        }
    }

    /// The audience this verifier accepts.
    pub fn audience(&self) -> &str {
        &self.inner.policy.audience
    }

    /// The largest body buffered for a binding check.
    pub fn max_body_bytes(&self) -> usize {
        self.inner.policy.max_body_bytes
    }

    /// Verifies an unbound token.
    ///
    /// A bound token (one carrying `htm`/`htu`/`body_sha256`) is refused
    /// here with [`ErrorKind::BindingMismatch`]: use
    /// [`verify_request`](Verifier::verify_request), which can check it.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedClaims>, VerifyError> {
        let result =
            self.authenticate(token)
                .await
                .and_then(|(claims, found)| match claims.is_bound() {
                    true => Err(VerifyError::new(ErrorKind::BindingMismatch)),
                    false => Ok((claims, found)),
                });
        self.record(result)
    }

    /// Verifies a token for a request: bound tokens must match the request's
    /// method, URL and `body` (the exact bytes) and are accepted once.
    /// With `require_binding`, unbound tokens are refused.
    pub async fn verify_request(
        &self,
        token: &str,
        target: RequestTarget<'_>,
        body: &[u8],
        require_binding: bool,
    ) -> Result<Arc<VerifiedClaims>, VerifyError> {
        let rules = RouteRules {
            require_binding,
            ..RouteRules::default()
        };
        let read_body = || std::future::ready(Ok(Bytes::copy_from_slice(body)));
        self.check(token, &rules, target, read_body)
            .await
            .map(|(claims, _)| claims)
    }

    /// The whole check of one request, the one pipeline every entry point
    /// runs (the layer's slow path, [`verify_request`](Self::verify_request)):
    /// the token (cache, or parse, policy, key, signature, revocation); the
    /// route's rules; then for a bound token its body, read only now by
    /// `read_body`, and the binding, expiry, revocation and single use;
    /// an unbound token where the route requires binding is refused.
    /// Returns the claims, and the body when it was read.
    pub(crate) async fn check<F>(
        &self,
        token: &str,
        rules: &RouteRules,
        target: RequestTarget<'_>,
        read_body: impl FnOnce() -> F,
    ) -> Result<(Arc<VerifiedClaims>, Option<Bytes>), VerifyError>
    where
        F: std::future::Future<Output = Result<Bytes, VerifyError>>,
    {
        let result = async {
            let (claims, found) = self.authenticate(token).await?;
            rules.authorize(&claims)?;
            let body = if claims.is_bound() {
                let body = read_body().await?;
                self.admit_bound(&claims, target, &body).await?;
                Some(body)
            } else if rules.require_binding {
                return Err(VerifyError::new(ErrorKind::BindingRequired));
            } else {
                None
            };
            Ok(((claims, found), body))
        }
        .await;
        match result {
            Ok((found, body)) => Ok((self.record(Ok(found))?, body)),
            Err(error) => {
                self.reject(&error);
                Err(error)
            }
        }
    }

    /// The counters of outcomes so far.
    pub fn metrics(&self) -> VerifierMetrics {
        self.inner.metrics.snapshot()
    }

    /// Number of tokens in the verification cache.
    pub fn cache_len(&self) -> usize {
        self.inner.cache.len()
    }

    pub(crate) fn record(
        &self,
        result: Result<(Arc<VerifiedClaims>, Found), VerifyError>,
    ) -> Result<Arc<VerifiedClaims>, VerifyError> {
        match result {
            Ok((claims, found)) => {
                self.inner.metrics.accepted(found.cache_hit, found.issuer);
                Ok(claims)
            }
            Err(error) => {
                self.reject(&error);
                Err(error)
            }
        }
    }

    /// Counts a rejection and logs it: at `info`, at most once a second
    /// per reason (with the number not logged since), so that a flood of
    /// bad tokens cannot flood the logs; every one at `debug`. The token is
    /// never logged.
    pub(crate) fn reject(&self, error: &VerifyError) {
        let kind = error.kind();
        self.inner.metrics.rejected(kind);
        match self
            .inner
            .rejection_log
            .due(kind, self.inner.clock.now_secs())
        {
            Some(suppressed) => tracing::info!(
                reason = kind.as_str(),
                not_logged_since = suppressed,
                "token rejected"
            ),
            None => tracing::debug!(reason = kind.as_str(), "token rejected"),
        }
    }

    /// Signature, claims and revocation; the cache in front. Returns whether
    /// the answer came from the cache.
    pub(crate) async fn authenticate(
        &self,
        token: &str,
    ) -> Result<(Arc<VerifiedClaims>, Found), VerifyError> {
        if let Some((claims, issuer, revocations, _)) = self.cache_hit(token.as_bytes()) {
            if revocations.ask() {
                self.check_revocation(&claims).await?;
            }
            return Ok((claims, Found::new(true, issuer)));
        }
        let start = std::time::Instant::now();
        let span = tracing::debug_span!(
            "svcauth.verify",
            outcome = tracing::field::Empty,
            reason = tracing::field::Empty,
            iss = tracing::field::Empty,
            sub = tracing::field::Empty
        );
        let result = self.verify_uncached(token).instrument(span.clone()).await;
        match &result {
            Ok((claims, _)) => {
                span.record("outcome", "accepted");
                span.record("iss", claims.iss());
                span.record("sub", claims.sub());
            }
            Err(error) => {
                span.record("outcome", "rejected");
                span.record("reason", error.kind().as_str());
            }
        }
        self.inner.metrics.facade.duration(false, start.elapsed());
        result.map(|(claims, issuer)| (claims, Found::new(false, issuer)))
    }

    /// The claims and the index of their issuer, or why not.
    async fn verify_uncached(
        &self,
        token: &str,
    ) -> Result<(Arc<VerifiedClaims>, usize), VerifyError> {
        let inner = &*self.inner;
        let policy = &inner.policy;
        let parsed = token::parse(token, policy.max_token_bytes)?;
        crate::txn::not_a_credential(parsed.header.typ.as_deref())?;
        // The issuer first: an untrusted iss never causes a key lookup or
        // fetch. Failing that, a JWT-SVID of a trusted trust domain, under
        // its own header rules.
        let index = match inner.by_iss.get(parsed.claims.iss.as_str()) {
            Some(&index) => {
                policy.check_header(&parsed.header)?;
                index
            }
            None => match self.jwt_svid_issuer(token, &parsed)? {
                Some(index) => index,
                None => {
                    policy.check_header(&parsed.header)?;
                    return Err(ErrorKind::UntrustedIssuer.into());
                }
            },
        };
        let issuer = &inner.issuers[index];
        let clock = inner.clock.now();
        let now = clock.as_secs();
        // Read before the store is asked: a revocation learnt meanwhile
        // moves the generation past the one this entry records.
        let revocations = self.revocations(clock);
        policy.check_claims(&parsed.claims, now)?;
        if parsed.claims.binding().is_err() {
            return Err(ErrorKind::InvalidClaims.into());
        }

        let kid = parsed.header.kid.as_deref();
        // The generation of the very set the key came from: if the set is
        // swapped later, the cache entry made here stops answering.
        let mut generation = 0;
        let alg = match (&issuer.keys, parsed.header.alg) {
            (IssuerKeys::Source(source), HeaderAlg::Asymmetric(alg)) => {
                // The source decides: the key, a fetch for an unknown kid
                // (single flight, cooldown), or why not.
                let (found, seen) = source.resolve_versioned(kid).await;
                generation = seen;
                let key = match found {
                    KeyLookup::Found(key) => key,
                    KeyLookup::UnknownKid => return Err(ErrorKind::UnknownKey.into()),
                    _ => return Err(ErrorKind::KeysUnavailable.into()),
                };
                key.verify(alg, parsed.signing_input.as_bytes(), &parsed.signature)
                    .map_err(|e| match e {
                        SignatureError::AlgorithmNotAllowed(_) => ErrorKind::KeyAlgorithmMismatch,
                        _ => ErrorKind::InvalidSignature,
                    })?;
                Some(alg)
            }
            (IssuerKeys::Hmac { alg, key }, HeaderAlg::Hmac(used)) if hmac_matches(*alg, used) => {
                aws_lc_rs::hmac::verify(key, parsed.signing_input.as_bytes(), &parsed.signature)
                    .map_err(|_| ErrorKind::InvalidSignature)?;
                None
            }
            (IssuerKeys::Source(_), HeaderAlg::Hmac(_)) => {
                return Err(ErrorKind::UnsupportedAlgorithm.into());
            }
            _ => return Err(ErrorKind::KeyAlgorithmMismatch.into()),
        };

        let leeway = policy.leeway;
        let mut claims = parsed.claims;
        if issuer.jwt_svid {
            // Whatever `iss` a JWT-SVID carries, its trust domain vouched for it.
            claims.iss.clone_from(&issuer.iss);
        }
        let claims = Arc::new(VerifiedClaims {
            valid_from: claims.nbf.unwrap_or(0).saturating_sub(leeway),
            claims,
            payload: Bytes::from(parsed.payload),
            kid: parsed.header.kid,
            alg,
            workload: None,
        });
        self.check_revocation(&claims).await?;
        if !claims.is_bound() {
            inner.cache.insert(
                token,
                Entry {
                    claims: claims.clone(),
                    valid_from: claims.valid_from,
                    valid_until: claims.claims.exp.saturating_add(leeway),
                    issuer: index,
                    generation,
                    revocations: revocations.stamp(),
                },
                now,
            );
        }
        Ok((claims, index))
    }

    /// Admits a bound token for the request whose body has now been read:
    /// the binding, then (because reading the body takes as long as the
    /// client likes) the expiry and the revocation store once more, then
    /// the single use, then the expiry again. A captured request whose last
    /// body byte is held back until after `exp` is therefore refused, on
    /// however many connections it is sent.
    async fn admit_bound(
        &self,
        claims: &VerifiedClaims,
        target: RequestTarget<'_>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        self.inner.policy.check_binding(claims, target, body)?;
        self.check_unexpired(claims)?;
        if self.inner.revocation.is_some() {
            self.check_revocation(claims).await?;
        }
        self.check_replay(claims).await?;
        self.check_unexpired(claims)
    }

    /// `exp` (with leeway) against the clock now, not when the headers came.
    fn check_unexpired(&self, claims: &VerifiedClaims) -> Result<(), VerifyError> {
        let until = claims.expires_at().saturating_add(self.inner.policy.leeway);
        if self.inner.clock.now_secs() > until {
            return Err(ErrorKind::Expired.into());
        }
        Ok(())
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(crate) fn workloads(&self) -> Option<&crate::wimse::WorkloadTrust> {
        self.inner.workloads.as_ref()
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    pub(crate) fn now(&self) -> u64 {
        self.inner.clock.now_secs()
    }
}

fn hmac_matches(configured: HmacAlgorithm, used: Hmac) -> bool {
    matches!(
        (configured, used),
        (HmacAlgorithm::HS256, Hmac::Hs256)
            | (HmacAlgorithm::HS384, Hmac::Hs384)
            | (HmacAlgorithm::HS512, Hmac::Hs512)
    )
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("audience", &self.inner.policy.audience)
            .field(
                "issuers",
                &self
                    .inner
                    .issuers
                    .iter()
                    .map(|i| &i.iss)
                    .collect::<Vec<_>>(),
            )
            .field("algorithms", &self.inner.policy.algorithms)
            .finish_non_exhaustive()
    }
}
