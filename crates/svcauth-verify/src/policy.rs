//! Every rule that accepts or refuses a token, in one place: the header
//! (`typ`, `alg` on the allow-list), the claims (`aud`, `exp`, `nbf`,
//! `iat`, lifetime, `jti`), and a route's callers, scopes and proof of
//! possession. The WIT and WPT rules are in `wimse.rs`. The
//! [`crate::Verifier`] applies them in order; the defaults are set, and
//! explained, in [`crate::VerifierBuilder`].

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri, header};
use svcauth_core::{AlgorithmSet, Claims, RequestBinding};

use crate::claims::VerifiedClaims;
use crate::error::{ErrorKind, VerifyError};
use crate::token::{Header, HeaderAlg};

/// The longest `jti` accepted: 256 bytes (svcauth's own are 22).
const MAX_JTI_BYTES: usize = 256;

/// An HMAC algorithm, for [`VerifierBuilder::danger_trust_hmac_issuer`](crate::VerifierBuilder::danger_trust_hmac_issuer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HmacAlgorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
}

/// The claim and header rules, shared by every request.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) audience: String,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) leeway: u64,
    pub(crate) max_lifetime: u64,
    pub(crate) max_token_bytes: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) accepted_types: Vec<String>,
    pub(crate) allow_missing_type: bool,
    pub(crate) public_base_url: Option<Uri>,
}

/// The parts of a request a binding is checked against.
#[derive(Debug, Clone, Copy)]
pub struct RequestTarget<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI (origin-form or absolute).
    pub uri: &'a Uri,
    /// The headers (`Host` is read when the URI has no authority).
    pub headers: &'a HeaderMap,
}

impl Policy {
    /// A bound token's `htm`, `htu`, `query_sha256` and `body_sha256`
    /// against the request as received: scheme and authority from the
    /// public base URL when configured, else from the request.
    pub(crate) fn check_binding(
        &self,
        claims: &VerifiedClaims,
        target: RequestTarget<'_>,
        body: &[u8],
    ) -> Result<(), VerifyError> {
        let Ok(Some(bound)) = claims.claims.binding() else {
            return Err(ErrorKind::BindingRequired.into());
        };
        let (scheme, authority, prefix) = match &self.public_base_url {
            Some(base) => (
                base.scheme_str().unwrap_or("https"),
                base.authority().map(|a| a.as_str()).unwrap_or(""),
                base.path().trim_end_matches('/'),
            ),
            None => {
                let host = target.uri.authority().map(|a| a.as_str()).or_else(|| {
                    target
                        .headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                });
                (
                    target.uri.scheme_str().unwrap_or("http"),
                    host.unwrap_or(""),
                    "",
                )
            }
        };
        let path = match target.uri.query() {
            Some(query) => format!("{prefix}{}?{query}", target.uri.path()),
            None => format!("{prefix}{}", target.uri.path()),
        };
        let expected = RequestBinding::for_parts(target.method, scheme, authority, &path, body)
            .map_err(|_| ErrorKind::BindingMismatch)?;
        if bound.matches(&expected) {
            Ok(())
        } else {
            Err(ErrorKind::BindingMismatch.into())
        }
    }

    /// The header: an accepted `typ`, and an asymmetric `alg` on the
    /// allow-list (an HMAC `alg` is matched against the issuer's secret
    /// later, and refused for issuers with public keys).
    pub(crate) fn check_header(&self, header: &Header) -> Result<(), ErrorKind> {
        self.check_type(header.typ.as_deref())?;
        match header.alg {
            HeaderAlg::Asymmetric(alg) if !self.algorithms.contains(alg) => {
                Err(ErrorKind::UnsupportedAlgorithm)
            }
            _ => Ok(()),
        }
    }

    /// `typ` (RFC 7515 §4.1.9): compared case-insensitively, with or
    /// without its `application/` prefix.
    fn check_type(&self, typ: Option<&str>) -> Result<(), ErrorKind> {
        let Some(typ) = typ else {
            return if self.allow_missing_type {
                Ok(())
            } else {
                Err(ErrorKind::UnacceptedType)
            };
        };
        let bare = match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        };
        if self
            .accepted_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(bare))
        {
            Ok(())
        } else {
            Err(ErrorKind::UnacceptedType)
        }
    }

    /// `aud`, `exp`, `nbf`, `iat` and the lifetime cap.
    pub(crate) fn check_claims(&self, claims: &Claims, now: u64) -> Result<(), ErrorKind> {
        if !claims.aud.contains(&self.audience) {
            return Err(ErrorKind::WrongAudience);
        }
        let leeway = self.leeway;
        if now > claims.exp.saturating_add(leeway) {
            return Err(ErrorKind::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(ErrorKind::NotYetValid);
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(ErrorKind::IssuedInFuture);
        }
        if claims.exp < claims.iat {
            return Err(ErrorKind::InvalidClaims);
        }
        if claims.exp - claims.iat > self.max_lifetime {
            return Err(ErrorKind::LifetimeTooLong);
        }
        // A jti is an id, not a payload: the replay store keeps one per bound
        // token, and its bound counts entries, not bytes.
        if claims
            .jti
            .as_ref()
            .is_some_and(|jti| jti.len() > MAX_JTI_BYTES)
        {
            return Err(ErrorKind::InvalidClaims);
        }
        Ok(())
    }
}

type Predicate = Arc<dyn Fn(&VerifiedClaims) -> bool + Send + Sync>;

/// A route's rules, on top of the [`Policy`]: which callers it admits, which
/// scopes it requires, whether only bound tokens will do.
#[derive(Clone, Default)]
pub(crate) struct RouteRules {
    pub(crate) require_binding: bool,
    pub(crate) callers: Vec<(String, Option<String>)>,
    pub(crate) predicate: Option<Predicate>,
    pub(crate) scopes: Vec<String>,
    /// Bearer tokens are refused: a WIT and its proof only.
    pub(crate) require_proof: bool,
    /// Bearer tokens of these issuers are refused (migration, caller by
    /// caller).
    pub(crate) require_proof_from: Vec<String>,
    /// A verified `Txn-Token` is required.
    pub(crate) require_txn: bool,
    /// Scopes the `Txn-Token` must carry (and so requires one).
    pub(crate) txn_scopes: Vec<String>,
}

impl RouteRules {
    /// Caller and scope rules: 403 when they do not hold. The caller is
    /// whoever presented the token: for a delegated token (RFC 8693 `act`),
    /// the current actor, not the user in `sub`.
    pub(crate) fn authorize(&self, claims: &VerifiedClaims) -> Result<(), VerifyError> {
        if claims.workload.is_none()
            && (self.require_proof || self.require_proof_from.iter().any(|i| i == claims.iss()))
        {
            return Err(ErrorKind::ProofRequired.into());
        }
        let listed = self.callers.is_empty()
            || self.callers.iter().any(|(iss, sub)| {
                iss == claims.iss() && sub.as_deref().is_none_or(|s| s == claims.caller())
            });
        if !listed || self.predicate.as_ref().is_some_and(|p| !p(claims)) {
            return Err(ErrorKind::CallerNotAllowed.into());
        }
        has_all(&self.scopes, || claims.scopes())
    }

    /// Whether a request without a `Txn-Token` is refused.
    pub(crate) fn requires_txn(&self) -> bool {
        self.require_txn || !self.txn_scopes.is_empty()
    }

    /// The route's rules for the request's Txn-Token, `None` when it has
    /// none.
    pub(crate) fn authorize_txn(
        &self,
        txn: Option<&crate::txn::TxnTokenClaims>,
    ) -> Result<(), VerifyError> {
        let Some(txn) = txn else {
            return match self.requires_txn() {
                true => Err(ErrorKind::TxnTokenRequired.into()),
                false => Ok(()),
            };
        };
        has_all(&self.txn_scopes, || txn.scopes())
    }
}

/// Every scope of `required` among those `have` lists (403
/// `insufficient_scope` otherwise).
fn has_all<'a, I: Iterator<Item = &'a str>>(
    required: &[String],
    have: impl Fn() -> I,
) -> Result<(), VerifyError> {
    match required.iter().all(|s| have().any(|h| h == s)) {
        true => Ok(()),
        false => Err(ErrorKind::InsufficientScope.into()),
    }
}

impl fmt::Debug for RouteRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteRules")
            .field("require_binding", &self.require_binding)
            .field("callers", &self.callers)
            .field("predicate", &self.predicate.is_some())
            .field("scopes", &self.scopes)
            .field("require_proof", &self.require_proof)
            .field("require_proof_from", &self.require_proof_from)
            .field("require_txn", &self.require_txn)
            .field("txn_scopes", &self.txn_scopes)
            .finish()
    }
}
