//! Rejections at the edge, as RFC 6750 responses.
//!
//! * 401 `WWW-Authenticate: Bearer` without a token; `error="invalid_token"`
//!   for an inactive, unknown or malformed reference token, and for a JWT
//!   presented where a reference token is expected;
//! * 400 `error="invalid_request"` for several `Authorization` headers or an
//!   empty token;
//! * 503 with `Retry-After` when the authorization server cannot be asked
//!   (never 401: the token may well be good) or the miss rate limit is hit;
//! * 429 with `Retry-After` when one client has spent its own budget of
//!   unknown tokens.
//!
//! The [`Rejection`] rides in the response's extensions for outer layers
//! to log or count. Descriptions never repeat the token.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::error::SwapError;

/// Why the gateway answered instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No `Authorization: Bearer` credentials.
    MissingToken,
    /// Several `Authorization` headers, or an empty or non-ASCII one.
    InvalidRequest,
    /// The reference token is not active (or not one at all).
    InactiveToken,
    /// A JWT where a reference token is expected.
    JwtAtEdge,
    /// The authorization server could not be asked.
    Unavailable {
        /// Seconds announced in `Retry-After`.
        retry_after: u64,
    },
    /// Too many unknown tokens right now.
    RateLimited,
    /// Too many unknown tokens from this client: 429.
    ClientRateLimited,
    /// No Transaction Token can be minted for the token: it names no
    /// subject or no scope (403).
    NoTransaction,
    /// The Transaction Token could not be signed (503).
    TransactionUnavailable,
}

impl Rejection {
    pub(crate) fn from_swap(error: &SwapError) -> Self {
        match error {
            SwapError::Inactive | SwapError::Malformed => Rejection::InactiveToken,
            SwapError::Unavailable { retry_after } => Rejection::Unavailable {
                retry_after: *retry_after,
            },
            SwapError::Server(_) => Rejection::Unavailable { retry_after: 1 },
            SwapError::RateLimited => Rejection::RateLimited,
            SwapError::ClientRateLimited => Rejection::ClientRateLimited,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::MissingToken | Rejection::InactiveToken | Rejection::JwtAtEdge => {
                StatusCode::UNAUTHORIZED
            }
            Rejection::InvalidRequest => StatusCode::BAD_REQUEST,
            Rejection::NoTransaction => StatusCode::FORBIDDEN,
            Rejection::TransactionUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::ClientRateLimited => StatusCode::TOO_MANY_REQUESTS,
            Rejection::Unavailable { .. } | Rejection::RateLimited => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_and_description(&self) -> (&'static str, &'static str) {
        match self {
            Rejection::MissingToken => ("invalid_request", "a bearer token is required"),
            Rejection::InvalidRequest => (
                "invalid_request",
                "exactly one Authorization: Bearer header is required",
            ),
            Rejection::InactiveToken => ("invalid_token", "the access token is not active"),
            Rejection::JwtAtEdge => (
                "invalid_token",
                "present the opaque access token issued to this client, not a JWT",
            ),
            Rejection::Unavailable { .. } => (
                "temporarily_unavailable",
                "the authorization server cannot be reached; try again later",
            ),
            Rejection::RateLimited => (
                "temporarily_unavailable",
                "too many unknown tokens; try again shortly",
            ),
            Rejection::ClientRateLimited => (
                "slow_down",
                "too many unknown tokens from this client; try again shortly",
            ),
            Rejection::NoTransaction => (
                "insufficient_scope",
                "the access token names no subject or scope for a transaction",
            ),
            Rejection::TransactionUnavailable => (
                "temporarily_unavailable",
                "the transaction token could not be issued; try again later",
            ),
        }
    }

    /// The response.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let (error, description) = self.error_and_description();
        let body = serde_json::json!({ "error": error, "error_description": description });
        let mut response = Response::new(B::from(Bytes::from(body.to_string())));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let challenge = match self {
            Rejection::MissingToken => Some(HeaderValue::from_static("Bearer")),
            Rejection::InvalidRequest | Rejection::InactiveToken | Rejection::JwtAtEdge => {
                HeaderValue::from_str(&format!(
                    "Bearer error=\"{error}\", error_description=\"{description}\""
                ))
                .ok()
            }
            _ => None,
        };
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        let retry_after = match self {
            Rejection::Unavailable { retry_after } => Some(retry_after),
            Rejection::RateLimited
            | Rejection::ClientRateLimited
            | Rejection::TransactionUnavailable => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(self);
        response
    }
}
