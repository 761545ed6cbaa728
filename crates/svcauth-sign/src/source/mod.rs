//! Tokens and where they come from: the [`TokenSource`] trait, and one file
//! per source ([`SelfSigned`], [`ClientCredentials`], [`TokenExchange`]). A
//! new source goes in a file of its own here.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use http::HeaderValue;
use svcauth_core::RequestBinding;

use crate::error::SignError;

mod client_credentials;
pub(crate) mod self_signed;
mod token_exchange;

pub use client_credentials::ClientCredentials;
pub use self_signed::{MAX_LIFETIME, SelfSigned};
pub use token_exchange::TokenExchange;

/// What [`TokenSource::token`] returns: a boxed future of the token, so
/// that the trait stays dyn-compatible and the signer can hold any source.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Token, SignError>> + Send + 'a>>;

/// A bearer token with its lifetime, ready to attach.
///
/// `Debug` never shows the token.
#[derive(Clone)]
pub struct Token {
    header: HeaderValue,
    issued_at: u64,
    expires_at: u64,
}

impl Token {
    /// A token valid from `issued_at` to `expires_at` (seconds since the
    /// Unix epoch). The token must have RFC 6750's `b64token` syntax (what
    /// `Authorization: Bearer` can carry unchanged): letters, digits,
    /// `-._~+/`, then `=` padding.
    pub fn new(token: &str, issued_at: u64, expires_at: u64) -> Result<Self, SignError> {
        // Fuzzing found that a header value takes bytes over 0x7f, so a
        // token with them went out as it came, and `as_str` gave "".
        let body = token.trim_end_matches('=');
        let b64token = !body.is_empty()
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        if !b64token {
            return Err(SignError::TokenResponse(
                "the token is not an RFC 6750 b64token".into(),
            ));
        }
        Self::from_b64token(token, issued_at, expires_at)
    }

    /// A compact JWS this process has just encoded: base64url segments and
    /// dots only, so a `b64token` by construction (checked in debug builds);
    /// it is minted for every bound request, so the scan is not repeated.
    pub(crate) fn minted(jws: &str, issued_at: u64, expires_at: u64) -> Result<Self, SignError> {
        debug_assert!(
            jws.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        );
        Self::from_b64token(jws, issued_at, expires_at)
    }

    fn from_b64token(token: &str, issued_at: u64, expires_at: u64) -> Result<Self, SignError> {
        let mut header = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
            SignError::TokenResponse("the token has characters a header cannot carry".into())
        })?;
        header.set_sensitive(true);
        Ok(Token {
            header,
            issued_at,
            expires_at,
        })
    }

    /// `Bearer <token>`, marked sensitive so that tracing and HTTP/2 HPACK
    /// leave it alone.
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }

    /// The token itself.
    pub fn as_str(&self) -> &str {
        self.header
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("Bearer "))
            .unwrap_or("")
    }

    /// When it was issued, seconds since the Unix epoch.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// When it expires, seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// On whose behalf a call is made, when not the service's own.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnBehalfOf {
    /// A user (or other subject) the service acts for: self-signed tokens
    /// get `sub` = this subject and `act` = `{"sub": <this service>}`
    /// (RFC 8693 §4.1).
    Subject(String),
    /// The inbound token of the user, exchanged at the STS for a token to
    /// the next audience (RFC 8693 token exchange).
    SubjectToken(String),
}

impl fmt::Debug for OnBehalfOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnBehalfOf::Subject(sub) => f.debug_tuple("Subject").field(sub).finish(),
            OnBehalfOf::SubjectToken(_) => f.write_str("SubjectToken(<redacted>)"),
        }
    }
}

/// What a token is asked for.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The one audience of the token: the service called.
    pub audience: &'a str,
    /// In bound mode, the request the token must be bound to.
    pub binding: Option<&'a RequestBinding>,
    /// Whose identity the token carries, if not the service's own.
    pub on_behalf_of: Option<&'a OnBehalfOf>,
}

/// Produces tokens: self-signed, or from an STS. The signer caches what it
/// returns per audience, so a source is asked again only near expiry.
pub trait TokenSource: Send + Sync + 'static {
    /// A fresh token for `request`.
    fn token<'a>(&'a self, request: TokenRequest<'a>) -> TokenFuture<'a>;

    /// A short name for the `source` label of the signer's metrics
    /// (`self_signed`, `client_credentials`, `token_exchange`; `custom`
    /// unless a source says otherwise).
    fn name(&self) -> &'static str {
        "custom"
    }
}
