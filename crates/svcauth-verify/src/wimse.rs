//! WIMSE inbound: a Workload Identity Token, checked against the keys of
//! the trust domain its `sub` names and cached like a bearer token, and
//! its Workload Proof Token, checked on every request and accepted once
//! (draft-ietf-wimse-workload-creds-03, draft-ietf-wimse-wpt-02).
//!
//! Trust is anchored in the trust domain: the WIT's `iss` is never used
//! to find keys, and the WPT's `aud` is compared with targets built from
//! configured origins and the request's path, never from `Host` or
//! `X-Forwarded-Host`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, header};
use serde_json::Value;
use svcauth_core::wimse::{
    TXN_TOKEN, WIT_TYPE, WORKLOAD_IDENTITY_TOKEN, WORKLOAD_PROOF_TOKEN, WPT_TYPE, WitClaims,
    WorkloadId, WptClaims, is_type, token_hash,
};
use svcauth_core::{Algorithm, Audience, Claims, jws};
use svcauth_jwks::{KeyLookup, KeySource, VerifyingKey};

use crate::cache::{Entry, VerifiedCache};
use crate::claims::VerifiedClaims;
use crate::error::{ErrorKind, VerifyError};
use crate::policy::{RequestTarget, RouteRules};
use crate::verifier::Verifier;

/// The workload behind a verified WIT, and the key its proofs must use.
pub(crate) struct ProofKey {
    pub(crate) workload: WorkloadId,
    pub(crate) key: VerifyingKey,
    /// `cnf.jwk.alg`: a proof's `alg` must equal it, string for string.
    pub(crate) alg: Algorithm,
    /// The index of its trust domain (for counting).
    pub(crate) domain: usize,
    /// The WIT's hash, which a proof's `wth` must equal: computed once,
    /// since the cache hands this out only for the very same WIT.
    pub(crate) wit_hash: String,
}

/// Where a WPT's `aud` may point, from configuration only: the normalised
/// `scheme://authority` (as `htu` writes it) and a path prefix, so that a
/// proof for `<path>` names `<base><path>`.
#[derive(Debug, Clone)]
pub(crate) struct ProofTarget {
    pub(crate) base: String,
}

impl ProofTarget {
    /// `None` for a scheme other than http(s) or an unusable authority.
    pub(crate) fn new(scheme: &str, authority: &str, prefix: &str) -> Option<Self> {
        let origin = svcauth_core::htu(scheme, authority, "/").ok()?;
        let origin = origin.strip_suffix('/').unwrap_or(&origin);
        Some(ProofTarget {
            base: format!("{origin}{}", prefix.trim_end_matches('/')),
        })
    }

    /// Whether `aud` names this target with the request's `path`, compared
    /// without building the URI.
    fn named_by(&self, aud: &Audience, path: &str) -> bool {
        let path = if path.is_empty() { "/" } else { path };
        aud.iter().any(|a| {
            a.len() == self.base.len() + path.len()
                && a.starts_with(self.base.as_str())
                && a.ends_with(path)
        })
    }
}

/// The WIMSE part of a verifier's configuration and state.
pub(crate) struct WorkloadTrust {
    /// Trust domain -> its index in `keys`.
    pub(crate) domains: HashMap<String, usize>,
    pub(crate) keys: Vec<KeySource>,
    /// Verified WITs, apart from bearer tokens: a WIT found here must never
    /// pass as a bearer token, nor a bearer token as a WIT.
    pub(crate) cache: VerifiedCache,
    pub(crate) targets: Vec<ProofTarget>,
    /// Header names a WPT's `oth` may bind (lower case).
    pub(crate) other_headers: Vec<HeaderName>,
    pub(crate) max_wit_lifetime: u64,
    pub(crate) max_proof_lifetime: u64,
}

/// Whether a request carries WIMSE credentials (either header).
pub(crate) fn presents_workload(headers: &HeaderMap) -> bool {
    headers.contains_key(WORKLOAD_IDENTITY_TOKEN) || headers.contains_key(WORKLOAD_PROOF_TOKEN)
}

/// The one value of `name` as text: `Ok(None)` when absent, `Err(())`
/// when repeated or not visible ASCII.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    value.to_str().map(|v| Some(v.trim())).map_err(|_| ())
}

impl Verifier {
    /// Verifies the WIT and WPT of a request: the WIT against the keys of
    /// the trust domain in its `sub` (cached), the WPT against the WIT's
    /// `cnf.jwk` with its `alg`, its `aud` against the configured targets
    /// and the request path, `wth`, `ath`, `tth` and `oth` against the
    /// request's tokens, then its `jti` once through the replay store.
    ///
    /// Without [`VerifierBuilder::trust_workloads`](crate::VerifierBuilder::trust_workloads)
    /// every WIT is refused as untrusted.
    pub async fn verify_workload(
        &self,
        target: RequestTarget<'_>,
    ) -> Result<Arc<VerifiedClaims>, VerifyError> {
        self.check_workload(target, &RouteRules::default()).await
    }

    /// [`verify_workload`](Self::verify_workload) under a route's rules.
    pub(crate) async fn check_workload(
        &self,
        target: RequestTarget<'_>,
        rules: &RouteRules,
    ) -> Result<Arc<VerifiedClaims>, VerifyError> {
        let result = async {
            let trust = self.workloads().ok_or(ErrorKind::WitUntrusted)?;
            let wit = single(target.headers, WORKLOAD_IDENTITY_TOKEN)
                .map_err(|()| ErrorKind::WitInvalid)?
                .ok_or(ErrorKind::WitInvalid)?;
            let wpt = single(target.headers, WORKLOAD_PROOF_TOKEN)
                .map_err(|()| ErrorKind::ProofInvalid)?
                .ok_or(ErrorKind::ProofInvalid)?;
            let (claims, cache_hit) = self.workload_identity(trust, wit).await?;
            let proof = claims.workload.as_ref().ok_or(ErrorKind::WitInvalid)?;
            let (jti, until) = self.check_proof(trust, proof, wpt, target)?;
            if rules.require_binding {
                return Err(ErrorKind::BindingRequired.into());
            }
            rules.authorize(&claims)?;
            let id = format!("wpt\n{}\n{jti}", proof.workload);
            self.first_use(&id, until, ErrorKind::ProofReplayed).await?;
            // Counted under the trust domain (see the builder).
            let domain = self.inner().issuers.len() + proof.domain;
            self.inner().metrics.accepted(cache_hit, domain);
            Ok(claims)
        }
        .await;
        if let Err(error) = &result {
            self.reject(error);
        }
        result
    }

    /// The WIT's verified claims: from the cache, or checked in full.
    async fn workload_identity(
        &self,
        trust: &WorkloadTrust,
        wit: &str,
    ) -> Result<(Arc<VerifiedClaims>, bool), VerifyError> {
        let clock = self.inner().clock.now();
        let (now, revocations) = (clock.as_secs(), self.revocations(clock));
        let hit = trust.cache.hit(wit.as_bytes(), |entry| {
            now >= entry.valid_from
                && now <= entry.valid_until
                && trust.keys[entry.issuer].generation() == entry.generation
                && revocations.covers(entry.revocations)
        });
        if let Some(claims) = hit {
            if revocations.ask() {
                self.check_revocation(&claims).await?;
            }
            return Ok((claims, true));
        }
        let (claims, mut entry) = self.verify_wit(trust, wit, now).await?;
        self.check_revocation(&claims).await?;
        entry.revocations = revocations.stamp();
        trust.cache.insert(wit, entry, now);
        Ok((claims, false))
    }

    async fn verify_wit(
        &self,
        trust: &WorkloadTrust,
        wit: &str,
        now: u64,
    ) -> Result<(Arc<VerifiedClaims>, Entry), VerifyError> {
        let invalid = ErrorKind::WitInvalid;
        let policy = self.policy();
        let parsed = jws::parse(wit, policy.max_token_bytes).map_err(|_| invalid)?;
        if !is_type(parsed.header.typ.as_deref(), WIT_TYPE) {
            return Err(invalid.into());
        }
        let alg: Algorithm = parsed.header.alg.parse().map_err(|_| invalid)?;
        if !policy.algorithms.contains(alg) {
            return Err(invalid.into());
        }
        let claims: WitClaims = serde_json::from_slice(&parsed.payload).map_err(|_| invalid)?;
        let index = *trust
            .domains
            .get(claims.sub.trust_domain())
            .ok_or(ErrorKind::WitUntrusted)?;
        let leeway = policy.leeway;
        if now > claims.exp.saturating_add(leeway)
            || claims
                .nbf
                .is_some_and(|nbf| nbf > now.saturating_add(leeway))
            || claims
                .iat
                .is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err(ErrorKind::WitExpired.into());
        }
        let born = claims.iat.unwrap_or(now);
        if claims.exp.saturating_sub(born) > trust.max_wit_lifetime {
            return Err(ErrorKind::WitExpired.into());
        }
        let (found, generation) = trust.keys[index]
            .resolve_versioned(parsed.header.kid.as_deref())
            .await;
        let key = match found {
            KeyLookup::Found(key) => key,
            KeyLookup::UnknownKid => return Err(invalid.into()),
            _ => return Err(ErrorKind::KeysUnavailable.into()),
        };
        key.verify(alg, parsed.signing_input.as_bytes(), &parsed.signature)
            .map_err(|_| invalid)?;
        // The workload's key: a public key with an `alg` we accept.
        let cnf_alg = match claims.cnf.jwk.get("alg") {
            Some(Value::String(name)) => name.parse::<Algorithm>().map_err(|_| invalid)?,
            _ => return Err(invalid.into()),
        };
        if !policy.algorithms.contains(cnf_alg) {
            return Err(invalid.into());
        }
        let proof_key = VerifyingKey::from_jwk(&claims.cnf.jwk).map_err(|_| invalid)?;
        let domain = format!("{}://{}", claims.sub.scheme(), claims.sub.trust_domain());
        let valid_from = claims.nbf.unwrap_or(0).saturating_sub(leeway);
        let verified = Arc::new(VerifiedClaims {
            claims: Claims {
                iss: domain,
                sub: claims.sub.to_string(),
                aud: Audience::Many(Vec::new()),
                exp: claims.exp,
                nbf: claims.nbf,
                iat: claims.iat.unwrap_or(0),
                jti: claims.jti,
                act: None,
                htm: None,
                htu: None,
                body_sha256: None,
                query_sha256: None,
                extra: claims.extra,
            },
            payload: Bytes::from(parsed.payload),
            kid: parsed.header.kid,
            alg: Some(alg),
            valid_from,
            workload: Some(Arc::new(ProofKey {
                workload: claims.sub,
                key: proof_key,
                alg: cnf_alg,
                wit_hash: token_hash(wit),
                domain: index,
            })),
        });
        let entry = Entry {
            claims: verified.clone(),
            valid_from,
            valid_until: claims.exp.saturating_add(leeway),
            issuer: index,
            generation,
            revocations: u64::MAX,
        };
        Ok((verified, entry))
    }

    /// Every check of the WPT but single use; returns its `jti` and until
    /// when the replay store must remember it.
    fn check_proof(
        &self,
        trust: &WorkloadTrust,
        proof: &ProofKey,
        wpt: &str,
        target: RequestTarget<'_>,
    ) -> Result<(String, u64), VerifyError> {
        let invalid = ErrorKind::ProofInvalid;
        let mismatch = ErrorKind::ProofMismatch;
        let policy = self.policy();
        let parsed = jws::parse(wpt, policy.max_token_bytes).map_err(|_| invalid)?;
        if !is_type(parsed.header.typ.as_deref(), WPT_TYPE)
            || parsed.header.alg != proof.alg.as_str()
        {
            return Err(invalid.into());
        }
        proof
            .key
            .verify(
                proof.alg,
                parsed.signing_input.as_bytes(),
                &parsed.signature,
            )
            .map_err(|_| invalid)?;
        let claims: WptClaims = serde_json::from_slice(&parsed.payload).map_err(|_| invalid)?;
        let (now, leeway) = (self.now(), policy.leeway);
        if now > claims.exp.saturating_add(leeway) {
            return Err(ErrorKind::ProofExpired.into());
        }
        if claims.exp > now.saturating_add(trust.max_proof_lifetime + leeway)
            || claims
                .iat
                .is_some_and(|iat| iat > now.saturating_add(leeway))
        {
            return Err(ErrorKind::ProofExpired.into());
        }
        if claims.jti.is_empty() || claims.jti.len() > 256 {
            return Err(invalid.into());
        }
        if claims.wth != proof.wit_hash {
            return Err(mismatch.into());
        }
        let path = target.uri.path();
        if !trust.targets.iter().any(|t| t.named_by(&claims.aud, path)) {
            return Err(mismatch.into());
        }
        let headers = target.headers;
        let access = single(headers, header::AUTHORIZATION.as_str()).map_err(|()| mismatch)?;
        let access = access.map(|value| {
            value
                .split_once(' ')
                .map_or(value, |(_, token)| token.trim_start())
        });
        bound(access, claims.ath.as_deref())?;
        let txn = single(headers, TXN_TOKEN).map_err(|()| mismatch)?;
        bound(txn, claims.tth.as_deref())?;
        let oth = claims.oth.unwrap_or_default();
        // An entry not understood refuses the proof (the draft's MUST).
        if oth
            .keys()
            .any(|name| !trust.other_headers.iter().any(|h| h.as_str() == name))
        {
            return Err(invalid.into());
        }
        for name in &trust.other_headers {
            let value = single(headers, name.as_str()).map_err(|()| mismatch)?;
            let hash = match oth.get(name.as_str()) {
                Some(Value::String(hash)) => Some(hash.as_str()),
                Some(_) => return Err(invalid.into()),
                None => None,
            };
            bound(value, hash)?;
        }
        let until = claims.exp.saturating_add(leeway).saturating_add(1);
        Ok((claims.jti, until))
    }
}

/// A token the request carries and the hash the proof gives for it: both
/// absent, or both present and equal.
fn bound(token: Option<&str>, hash: Option<&str>) -> Result<(), VerifyError> {
    match (token, hash) {
        (None, None) => Ok(()),
        (Some(token), Some(hash)) if token_hash(token) == hash => Ok(()),
        _ => Err(ErrorKind::ProofMismatch.into()),
    }
}
