//! [`VerifyLayer`]: the verifying middleware and its per-route options.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use tower_layer::Layer;

use crate::claims::VerifiedClaims;
use crate::error::VerifyError;
use crate::policy::RouteRules;
use crate::rejection::RejectionBody;
use crate::service::Verify;
use crate::verifier::Verifier;

/// Per-route options of a [`VerifyLayer`]: the route's rules (in
/// `policy.rs`), and how the layer answers.
#[derive(Clone, Default, Debug)]
pub(crate) struct RouteOptions {
    pub(crate) optional: bool,
    pub(crate) rules: RouteRules,
    pub(crate) body: RejectionBody,
}

/// Verifies the bearer token of every request before the inner service sees
/// it, and puts the verified claims in the request extensions as
/// [`crate::Authentication`]. A request with a `Workload-Identity-Token`,
/// when the verifier trusts workloads
/// ([`crate::VerifierBuilder::trust_workloads`]), is verified by its WIT
/// and proof instead; its `Authorization` token, if any, must be bound by
/// the proof (`ath`) and is left to the application.
///
/// Several layers (for routes with different rules) can share one
/// [`Verifier`], and so its key sources and cache.
///
/// See the crate docs for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct VerifyLayer {
    verifier: Verifier,
    options: Arc<RouteOptions>,
}

impl VerifyLayer {
    /// A layer that requires a valid token on every request.
    pub fn new(verifier: Verifier) -> Self {
        VerifyLayer {
            verifier,
            options: Arc::new(RouteOptions::default()),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut RouteOptions)) -> Self {
        f(Arc::make_mut(&mut self.options));
        self
    }

    /// Requests without an `Authorization` header pass, with
    /// `Authentication(None)`. A token that is present must still be valid.
    pub fn optional(self) -> Self {
        self.with(|o| o.optional = true)
    }

    /// Only request-bound tokens are accepted on these routes.
    pub fn require_binding(self) -> Self {
        self.with(|o| o.rules.require_binding = true)
    }

    /// Admits callers from `iss` (any caller of that issuer when `sub` is
    /// `None`). The caller is the token's `sub`, or for a delegated token
    /// the current actor (`act.sub`): a user whose id happens to equal a
    /// service's is not that service. Once any caller is listed, unlisted
    /// callers get 403.
    pub fn allow_caller(self, iss: &str, sub: Option<&str>) -> Self {
        let caller = (iss.to_owned(), sub.map(str::to_owned));
        self.with(|o| o.rules.callers.push(caller))
    }

    /// Admits only callers for which `predicate` holds (403 otherwise).
    pub fn allow_if(
        self,
        predicate: impl Fn(&VerifiedClaims) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.with(|o| o.rules.predicate = Some(Arc::new(predicate)))
    }

    /// Requires every scope in `scopes` in the token's `scope` claim (403
    /// `insufficient_scope` otherwise).
    pub fn require_scopes<'a>(self, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        let scopes: Vec<String> = scopes.into_iter().map(str::to_owned).collect();
        self.with(|o| o.rules.scopes.extend(scopes))
    }

    /// Refuses bearer tokens on these routes: callers must present a
    /// Workload Identity Token and its proof (401 `proof_required`
    /// otherwise).
    pub fn require_proof(self) -> Self {
        self.with(|o| o.rules.require_proof = true)
    }

    /// Refuses bearer tokens whose `iss` is `iss` (for a WIT caller, its
    /// trust domain `spiffe://example.org`), so that a fleet migrates to
    /// proof of possession caller by caller while others keep bearer
    /// tokens.
    pub fn require_proof_from(self, iss: &str) -> Self {
        let iss = iss.to_owned();
        self.with(|o| o.rules.require_proof_from.push(iss))
    }

    /// Requires a verified `Txn-Token` on these routes (403
    /// `txn_token_required` without one). A `Txn-Token` that is present is
    /// verified on every route of a verifier that trusts Txn-Tokens
    /// ([`VerifierBuilder::trust_txn_tokens`](crate::VerifierBuilder::trust_txn_tokens)),
    /// required or not.
    pub fn require_txn_token(self) -> Self {
        self.with(|o| o.rules.require_txn = true)
    }

    /// Requires a `Txn-Token` whose `scope` has every scope in `scopes`
    /// (403 `insufficient_scope` otherwise): the transaction's purpose,
    /// as the Transaction Token Service decided it.
    pub fn require_txn_scopes<'a>(self, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        let scopes: Vec<String> = scopes.into_iter().map(str::to_owned).collect();
        self.with(|o| o.rules.txn_scopes.extend(scopes))
    }

    /// Replaces the JSON body of rejections. Status and `WWW-Authenticate`
    /// stay as RFC 6750 wants them.
    pub fn rejection_body(
        self,
        make: impl Fn(&VerifyError) -> (HeaderValue, Bytes) + Send + Sync + 'static,
    ) -> Self {
        self.with(|o| o.body = RejectionBody(Some(Arc::new(make))))
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = Verify<S>;

    fn layer(&self, inner: S) -> Verify<S> {
        Verify::new(inner, self.verifier.clone(), self.options.clone())
    }
}
