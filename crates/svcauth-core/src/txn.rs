//! Transaction Tokens (draft-ietf-oauth-transaction-tokens, the editor's
//! copy after -08): the wire contract, and the Txn-Token a service is
//! handling a request for.
//!
//! A Txn-Token is minted once, at the edge of a trust domain, by its
//! Transaction Token Service, and travels unmodified in the `Txn-Token`
//! header through the whole call chain beside each hop's own service token.
//! It says on whose behalf (`sub`), for what (`scope`, `tctx`) and from where
//! (`rctx`, `req_wl`) the transaction started; the service token says which
//! service is calling now. It is never a credential: never in
//! `Authorization`, never accepted outside its trust domain (`aud`).
//!
//! [`TxnToken`] is the token as received, passed on byte for byte:
//! `svcauth-verify` makes it current while a request's handler runs
//! ([`TxnToken::scope`]) and `svcauth-sign` copies the current one onto
//! outbound calls to origins of its trust domain.
//!
//! ```
//! use svcauth_core::txn::TxnToken;
//!
//! let token = TxnToken::new(http::HeaderValue::from_static("eyJ0eXAi.e30.c2ln"), "example.org");
//! assert!(TxnToken::current().is_none());
//! let seen = token.sync_scope(|| TxnToken::current().map(|t| t.trust_domain().to_owned()));
//! assert_eq!(seen.as_deref(), Some("example.org"));
//! assert!(TxnToken::current().is_none());
//! ```

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderValue;
use pin_project_lite::pin_project;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::claims::{Audience, numeric_date};

/// The request header carrying a Txn-Token (lower case, as `http` wants).
pub const HEADER: &str = crate::wimse::TXN_TOKEN;
/// [`HEADER`] as a header name: a lookup with it parses nothing.
pub const HEADER_NAME: http::HeaderName = http::HeaderName::from_static(HEADER);
/// The JWS `typ` of a Txn-Token.
pub const TYPE: &str = "txntoken+jwt";
/// The token type URN: `requested_token_type` and `issued_token_type` of a
/// Txn-Token request, and `subject_token_type` of a replacement.
pub const TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:txn_token";
/// `subject_token_type` of a self-signed JWT subject token.
pub const SELF_SIGNED_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:self_signed";
/// `subject_token_type` of an unsigned JSON object subject token.
pub const UNSIGNED_JSON_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:unsigned_json";
/// `subject_token_type` of an OAuth access token (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// `subject_token_type` of a refresh token: never accepted for a Txn-Token.
pub const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// The claims of a Txn-Token. Types are strict (`exp: "1"` is an error);
/// the REQUIRED claims of the draft are not optional here, and
/// [`check`](Self::check) refuses empty ones.
///
/// ```
/// use svcauth_core::txn::TxnClaims;
///
/// let json = r#"{"iat":1686536226,"aud":"trust-domain.example","exp":1686536586,
///   "txn":"97053963-771d-49cc-a4e3-20aad399c312","sub":"d084sdrt234fsaw34tr23t",
///   "req_wl":"apigateway.trust-domain.example","scope":"trade.stocks",
///   "rctx":{"req_ip":"69.151.72.123"},"tctx":{"action":"BUY","ticker":"MSFT"}}"#;
/// let claims: TxnClaims = serde_json::from_str(json).unwrap();
/// assert!(claims.check().is_ok());
/// assert_eq!(claims.tctx.unwrap()["ticker"], "MSFT");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxnClaims {
    /// The Transaction Token Service that signed it (OPTIONAL in the draft).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Issued at, seconds since the Unix epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub iat: u64,
    /// The trust domain in which the token is valid, and only there.
    pub aud: Audience,
    /// Expiry, seconds since the Unix epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: u64,
    /// The transaction's unique id (RFC 8417 §2.2), kept by replacements.
    pub txn: String,
    /// The principal of the transaction, unique within the trust domain.
    pub sub: String,
    /// The purpose of the transaction, space-separated (RFC 8693 §4.2).
    pub scope: String,
    /// The workload that requested the token; after replacements, each
    /// requester in order, comma-separated.
    pub req_wl: String,
    /// The immutable authorisation context, decided by the TTS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tctx: Option<Map<String, Value>>,
    /// The request context: where the transaction entered the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rctx: Option<Map<String, Value>>,
    /// Every other claim, as found.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TxnClaims {
    /// The scopes of `scope`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// The required string claims are non-empty, and `scope` names at least
    /// one scope. Returns the first claim that is not.
    pub fn check(&self) -> Result<(), &'static str> {
        for (name, value) in [
            ("txn", &self.txn),
            ("sub", &self.sub),
            ("req_wl", &self.req_wl),
        ] {
            if value.trim().is_empty() {
                return Err(name);
            }
        }
        if self.scopes().next().is_none() {
            return Err("scope");
        }
        if self.iss.as_deref().is_some_and(str::is_empty) {
            return Err("iss");
        }
        Ok(())
    }
}

/// A Txn-Token as received: the exact header value (passed on byte for
/// byte) and the trust domain it was verified for. Its `Debug` never shows
/// the token (the draft forbids logging it verbatim).
#[derive(Clone)]
pub struct TxnToken(Arc<Held>);

/// One allocation, so that passing the token around is one reference count.
struct Held {
    value: HeaderValue,
    trust_domain: Box<str>,
}

thread_local! {
    /// The Txn-Token of the request whose handler this thread is polling.
    static CURRENT: RefCell<Option<TxnToken>> = const { RefCell::new(None) };
}

impl TxnToken {
    /// The token in `value`, valid in `trust_domain`. `svcauth-verify`
    /// makes one for each verified `Txn-Token` header.
    pub fn new(value: HeaderValue, trust_domain: &str) -> Self {
        TxnToken(Arc::new(Held {
            value,
            trust_domain: trust_domain.into(),
        }))
    }

    /// The header value, exactly as received.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0.value
    }

    /// The trust domain the token was verified for (its `aud`).
    pub fn trust_domain(&self) -> &str {
        &self.0.trust_domain
    }

    /// The Txn-Token of the request being handled: set while a future in
    /// [`scope`](Self::scope) is polled. A task spawned from the handler
    /// does not inherit it: pass it on with `scope` there too.
    pub fn current() -> Option<TxnToken> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Whether a Txn-Token is current, without cloning it.
    pub fn is_current() -> bool {
        CURRENT.with(|c| c.borrow().is_some())
    }

    /// Runs `future` with this token current (for each of its polls).
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            future,
            token: Some(self),
        }
    }

    /// Runs `f` with this token current.
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        let mut slot = Some(self);
        let _guard = Swap::enter(&mut slot);
        f()
    }

    /// Calls `call` with this token current, and scopes the future it
    /// returns ([`scope`](Self::scope)): for a service whose `call` does
    /// work of its own before its future is polled.
    pub fn scope_call<F: Future>(self, call: impl FnOnce() -> F) -> Scoped<F> {
        let mut slot = Some(self);
        let future = {
            let _guard = Swap::enter(&mut slot);
            call()
        };
        Scoped {
            future,
            token: slot,
        }
    }
}

impl fmt::Debug for TxnToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnToken")
            .field("trust_domain", &self.0.trust_domain)
            .field("bytes", &self.0.value.len())
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// A future polled with a [`TxnToken`] current; see [`TxnToken::scope`].
    pub struct Scoped<F> {
        #[pin]
        future: F,
        token: Option<TxnToken>,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = Swap::enter(this.token);
        this.future.poll(cx)
    }
}

/// Moves a token into the thread's slot, and the slot's previous value back
/// out when dropped (also on a panic), so scopes nest and never leak into
/// the next task the thread polls.
struct Swap<'a> {
    slot: &'a mut Option<TxnToken>,
}

impl<'a> Swap<'a> {
    fn enter(slot: &'a mut Option<TxnToken>) -> Self {
        CURRENT.with(|c| std::mem::swap(&mut *c.borrow_mut(), slot));
        Swap { slot }
    }
}

impl Drop for Swap<'_> {
    fn drop(&mut self) {
        CURRENT.with(|c| std::mem::swap(&mut *c.borrow_mut(), self.slot));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn token(domain: &str) -> TxnToken {
        TxnToken::new(HeaderValue::from_static("a.b.c"), domain)
    }

    #[test]
    fn scopes_nest_and_end() {
        assert!(!TxnToken::is_current());
        token("outer").sync_scope(|| {
            assert_eq!(TxnToken::current().unwrap().trust_domain(), "outer");
            token("inner").sync_scope(|| {
                assert_eq!(TxnToken::current().unwrap().trust_domain(), "inner");
            });
            assert_eq!(TxnToken::current().unwrap().trust_domain(), "outer");
        });
        assert!(!TxnToken::is_current());
    }

    #[test]
    fn a_panic_inside_a_scope_does_not_leave_the_token_current() {
        let result = std::panic::catch_unwind(|| token("x").sync_scope(|| panic!("handler")));
        assert!(result.is_err());
        assert!(!TxnToken::is_current());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let shown = format!("{:?}", token("example.org"));
        assert!(!shown.contains("a.b.c"), "{shown}");
    }

    #[test]
    fn empty_required_claims_are_named() {
        let json = r#"{"iat":1,"aud":"d","exp":2,"txn":"t","sub":"s","req_wl":"w","scope":"  "}"#;
        let claims: TxnClaims = serde_json::from_str(json).unwrap();
        assert_eq!(claims.check(), Err("scope"));
        let missing = r#"{"iat":1,"aud":"d","exp":2,"sub":"s","req_wl":"w","scope":"a"}"#;
        assert!(serde_json::from_str::<TxnClaims>(missing).is_err());
    }
}
