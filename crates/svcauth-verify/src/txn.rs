//! Transaction Tokens inbound: the `Txn-Token` header, verified beside the
//! service token against the keys of the trust domain's Transaction Token
//! Service, cached like service tokens, and handed to handlers as a
//! [`Transaction`] (draft-ietf-oauth-transaction-tokens, the editor's copy
//! after -08).
//!
//! A Txn-Token is never a credential: the layer authenticates the caller by
//! its service token (or WIT), and a Txn-Token found in `Authorization` is
//! refused ([`ErrorKind::TxnTokenAsCredential`]). Its own cache keeps it
//! apart from service tokens, so that neither can pass as the other.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use svcauth_core::txn::{self, TxnClaims, TxnToken};
use svcauth_core::{Algorithm, jws, wimse::is_type};
use svcauth_jwks::{KeyLookup, KeySource, SignatureError};

use crate::cache::{Entry, VerifiedCache};
use crate::error::{ErrorKind, VerifyError};
use crate::policy::RouteRules;
use crate::verifier::Verifier;

/// The Txn-Token part of a verifier's configuration and state.
pub(crate) struct TxnTrust {
    /// This workload's trust domain: a Txn-Token's `aud` must name it.
    pub(crate) trust_domain: Arc<str>,
    /// The Transaction Token Services trusted, by issuer, with their keys.
    pub(crate) services: Vec<(String, KeySource)>,
    pub(crate) cache: VerifiedCache<TxnTokenClaims>,
    pub(crate) max_lifetime: u64,
}

/// A verified Txn-Token: its claims, its payload as signed, and the token
/// itself for passing on. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct TxnTokenClaims {
    claims: TxnClaims,
    payload: Bytes,
    token: TxnToken,
    kid: Option<String>,
    alg: Algorithm,
}

impl TxnTokenClaims {
    /// The transaction id (`txn`): the same at every hop, for audit logs.
    pub fn txn(&self) -> &str {
        &self.claims.txn
    }

    /// The principal of the transaction (`sub`): the user, or the workload
    /// that started it.
    pub fn sub(&self) -> &str {
        &self.claims.sub
    }

    /// The purpose of the transaction (`scope`), space-separated.
    pub fn scope(&self) -> &str {
        &self.claims.scope
    }

    /// The scopes of `scope`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.claims.scopes()
    }

    /// The workloads that requested the token (`req_wl`), first the one
    /// that started the transaction, then any that had it replaced.
    pub fn requesting_workloads(&self) -> impl Iterator<Item = &str> {
        self.claims.req_wl.split(',').map(str::trim)
    }

    /// The immutable authorisation context (`tctx`), if any.
    pub fn tctx(&self) -> Option<&Map<String, Value>> {
        self.claims.tctx.as_ref()
    }

    /// The request context (`rctx`): where the transaction entered.
    pub fn rctx(&self) -> Option<&Map<String, Value>> {
        self.claims.rctx.as_ref()
    }

    /// The Transaction Token Service that signed it (`iss`), if named.
    pub fn iss(&self) -> Option<&str> {
        self.claims.iss.as_deref()
    }

    /// Expiry (`exp`), seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.claims.exp
    }

    /// The `kid` of the key that signed it.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm it was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// All typed claims.
    pub fn claims(&self) -> &TxnClaims {
        &self.claims
    }

    /// The verified JSON payload, exactly as signed.
    pub fn raw_json(&self) -> &[u8] {
        &self.payload
    }

    /// The token as received, for passing on unmodified (`svcauth-sign`
    /// does so for calls made while the request is handled).
    pub fn token(&self) -> &TxnToken {
        &self.token
    }

    /// Reads `tctx` as your own type (an absent `tctx` reads as `{}`).
    pub fn tctx_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.claims.tctx {
            Some(tctx) => T::deserialize(tctx),
            None => serde_json::from_str("{}"),
        }
    }
}

impl fmt::Debug for TxnTokenClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnTokenClaims")
            .field("txn", &self.claims.txn)
            .field("sub", &self.claims.sub)
            .field("scope", &self.claims.scope)
            .field("req_wl", &self.claims.req_wl)
            .field("exp", &self.claims.exp)
            .finish_non_exhaustive()
    }
}

/// The request extension the verifying layer inserts for a request with a
/// verified `Txn-Token`; the axum extractor of it (feature `axum`). In
/// tonic handlers read it with [`Transaction::of`].
///
/// ```
/// use svcauth_verify::Transaction;
///
/// async fn handler(txn: Transaction) -> String {
///     format!("{} for {} ({})", txn.txn(), txn.sub(), txn.scope())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Transaction(pub Arc<TxnTokenClaims>);

impl Transaction {
    /// The verified Txn-Token in `extensions`, if the layer put one there.
    pub fn of(extensions: &http::Extensions) -> Option<&TxnTokenClaims> {
        extensions.get::<Transaction>().map(|t| &*t.0)
    }
}

impl Deref for Transaction {
    type Target = TxnTokenClaims;

    fn deref(&self) -> &TxnTokenClaims {
        &self.0
    }
}

/// What a request carries in `Txn-Token`.
pub(crate) enum TxnHeader<'a> {
    Absent,
    One(&'a HeaderValue),
    /// Repeated: the draft wants exactly one token.
    Repeated,
}

pub(crate) fn txn_header(headers: &HeaderMap) -> TxnHeader<'_> {
    let mut values = headers.get_all(&txn::HEADER_NAME).iter();
    match (values.next(), values.next()) {
        (None, _) => TxnHeader::Absent,
        (Some(value), None) => TxnHeader::One(value),
        (Some(_), Some(_)) => TxnHeader::Repeated,
    }
}

/// How the layer's fast path can settle a request's Txn-Token.
pub(crate) enum TxnFast {
    /// Settled: the verified token (from the cache), or none.
    Ready(Option<Transaction>),
    /// A token to verify on the slow path.
    Verify,
}

impl Verifier {
    /// The fast path's part: a cached Txn-Token, no token where none is
    /// required, or a rejection; otherwise the slow path must verify.
    #[inline]
    pub(crate) fn txn_fast(
        &self,
        headers: &HeaderMap,
        rules: &RouteRules,
        now: u64,
    ) -> Result<TxnFast, VerifyError> {
        let Some(trust) = self.txn_trust() else {
            return match rules.requires_txn() {
                true => Err(ErrorKind::TxnTokenRequired.into()),
                false => Ok(TxnFast::Ready(None)),
            };
        };
        match txn_header(headers) {
            TxnHeader::Absent => {
                rules.authorize_txn(None)?;
                Ok(TxnFast::Ready(None))
            }
            TxnHeader::Repeated => Err(ErrorKind::TxnTokenInvalid.into()),
            TxnHeader::One(value) => match self.cached_txn(trust, value.as_bytes(), now) {
                Some(claims) => {
                    rules.authorize_txn(Some(&claims))?;
                    Ok(TxnFast::Ready(Some(Transaction(claims))))
                }
                None => Ok(TxnFast::Verify),
            },
        }
    }

    /// The request's Txn-Token under the route's rules, verified in full
    /// when not cached (the slow paths).
    pub(crate) async fn admit_txn(
        &self,
        headers: &HeaderMap,
        rules: &RouteRules,
    ) -> Result<Option<Transaction>, VerifyError> {
        if let TxnFast::Ready(settled) = self.txn_fast(headers, rules, self.now())? {
            return Ok(settled);
        }
        // Not settled: trusted, one header, not cached.
        let (Some(trust), TxnHeader::One(value)) = (self.txn_trust(), txn_header(headers)) else {
            return Err(ErrorKind::TxnTokenInvalid.into());
        };
        let claims = self.verify_and_cache(trust, value).await?;
        rules.authorize_txn(Some(&claims))?;
        Ok(Some(Transaction(claims)))
    }

    /// Verifies one `Txn-Token` header value: `typ` `txntoken+jwt`, `alg`
    /// on the allow-list, the signature with the key of a trusted
    /// Transaction Token Service, `aud` naming this trust domain, `exp`,
    /// `iat` and the lifetime cap, and the draft's required claims. Cached.
    ///
    /// Without [`VerifierBuilder::trust_txn_tokens`](crate::VerifierBuilder::trust_txn_tokens)
    /// every Txn-Token is refused as untrusted.
    pub async fn verify_txn_token(
        &self,
        value: &HeaderValue,
    ) -> Result<Arc<TxnTokenClaims>, VerifyError> {
        let result = self.check_txn_token(value).await;
        if let Err(error) = &result {
            self.reject(error);
        }
        result
    }

    async fn check_txn_token(
        &self,
        value: &HeaderValue,
    ) -> Result<Arc<TxnTokenClaims>, VerifyError> {
        let trust = self.txn_trust().ok_or(ErrorKind::TxnTokenUntrusted)?;
        if let Some(claims) = self.cached_txn(trust, value.as_bytes(), self.now()) {
            return Ok(claims);
        }
        self.verify_and_cache(trust, value).await
    }

    /// A token not in the cache: verified in full, then cached.
    async fn verify_and_cache(
        &self,
        trust: &TxnTrust,
        value: &HeaderValue,
    ) -> Result<Arc<TxnTokenClaims>, VerifyError> {
        let token = value.to_str().map_err(|_| ErrorKind::TxnTokenInvalid)?;
        let (claims, entry) = self.verify_txn_uncached(trust, token, value).await?;
        if trust.cache.enabled() {
            trust.cache.insert(token, entry, self.now());
        }
        Ok(claims)
    }

    fn cached_txn(&self, trust: &TxnTrust, token: &[u8], now: u64) -> Option<Arc<TxnTokenClaims>> {
        trust.cache.hit(token, |entry| {
            now <= entry.valid_until
                && trust.services[entry.issuer].1.generation() == entry.generation
        })
    }

    async fn verify_txn_uncached(
        &self,
        trust: &TxnTrust,
        token: &str,
        value: &HeaderValue,
    ) -> Result<(Arc<TxnTokenClaims>, Entry<TxnTokenClaims>), VerifyError> {
        let invalid = ErrorKind::TxnTokenInvalid;
        let policy = self.policy();
        let parsed = jws::parse(token, policy.max_token_bytes).map_err(|_| invalid)?;
        if !is_type(parsed.header.typ.as_deref(), txn::TYPE) {
            return Err(invalid.into());
        }
        let alg: Algorithm = parsed.header.alg.parse().map_err(|_| invalid)?;
        if !policy.algorithms.contains(alg) {
            return Err(invalid.into());
        }
        let claims: TxnClaims = serde_json::from_slice(&parsed.payload).map_err(|_| invalid)?;
        claims.check().map_err(|_| invalid)?;
        // The issuer before any key lookup: an unknown TTS never causes a
        // fetch. Without `iss` (the draft makes it optional), only a domain
        // with one TTS can tell whose key to use.
        let index = match (&claims.iss, trust.services.len()) {
            (Some(iss), _) => trust.services.iter().position(|(i, _)| i == iss),
            (None, 1) => Some(0),
            (None, _) => None,
        }
        .ok_or(ErrorKind::TxnTokenUntrusted)?;
        if !claims.aud.contains(&trust.trust_domain) {
            return Err(ErrorKind::TxnTokenWrongDomain.into());
        }
        let (now, leeway) = (self.now(), policy.leeway);
        let expired = now > claims.exp.saturating_add(leeway)
            || claims.iat > now.saturating_add(leeway)
            || claims.exp < claims.iat
            || claims.exp - claims.iat > trust.max_lifetime;
        if expired {
            return Err(ErrorKind::TxnTokenExpired.into());
        }
        let (found, generation) = trust.services[index]
            .1
            .resolve_versioned(parsed.header.kid.as_deref())
            .await;
        let key = match found {
            KeyLookup::Found(key) => key,
            KeyLookup::UnknownKid => return Err(ErrorKind::TxnTokenUntrusted.into()),
            _ => return Err(ErrorKind::KeysUnavailable.into()),
        };
        key.verify(alg, parsed.signing_input.as_bytes(), &parsed.signature)
            .map_err(|e| match e {
                SignatureError::AlgorithmNotAllowed(_) => ErrorKind::TxnTokenUntrusted,
                _ => invalid,
            })?;
        let valid_until = claims.exp.saturating_add(leeway);
        let claims = Arc::new(TxnTokenClaims {
            claims,
            payload: Bytes::from(parsed.payload),
            token: TxnToken::new(value.clone(), &trust.trust_domain),
            kid: parsed.header.kid,
            alg,
        });
        let entry = Entry {
            claims: claims.clone(),
            valid_from: 0,
            valid_until,
            issuer: index,
            generation,
            revocations: 0,
        };
        Ok((claims, entry))
    }

    fn txn_trust(&self) -> Option<&TxnTrust> {
        self.inner().txn.as_ref()
    }

    /// The trust domain whose Txn-Tokens this verifier accepts.
    pub fn trust_domain(&self) -> Option<&str> {
        self.txn_trust().map(|t| &*t.trust_domain)
    }
}

/// Refuses a bearer token that is a Txn-Token (by its `typ`, read before
/// any other check), with a reason that says so: it is not a credential.
pub(crate) fn not_a_credential(typ: Option<&str>) -> Result<(), ErrorKind> {
    match is_type(typ, txn::TYPE) {
        true => Err(ErrorKind::TxnTokenAsCredential),
        false => Ok(()),
    }
}
