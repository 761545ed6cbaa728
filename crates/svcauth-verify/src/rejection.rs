//! Turning a [`VerifyError`] into an HTTP response (RFC 6750 §3).
//!
//! * 401 with `WWW-Authenticate: Bearer` when no token came, and with
//!   `Bearer error="invalid_token", error_description="..."` for a bad one;
//! * 403 with `error="insufficient_scope"` for a caller the route does not admit;
//! * 503 with `Retry-After` when the issuer's keys or the token stores are
//!   unavailable; 413 for a bound body over the limit; 400 for an unusable
//!   `Authorization` header or body.
//!
//! A gRPC request (`content-type: application/grpc...`) gets a gRPC status
//! instead: a trailers-only response (HTTP 200, no body) whose
//! `grpc-status` is 16 UNAUTHENTICATED, 7 PERMISSION_DENIED or 14
//! UNAVAILABLE (see [`ErrorKind::grpc_code`]), with `grpc-message` and the
//! same `WWW-Authenticate` challenge. A gRPC client would read an HTTP 401
//! page as a broken transport (13 INTERNAL or 12 UNIMPLEMENTED), not as
//! "your token is bad".
//!
//! The body is small JSON by default (`{"error":..,"error_description":..}`),
//! replaceable with [`crate::VerifyLayer::rejection_body`]. The
//! [`VerifyError`] rides in the response's extensions so outer layers can
//! log or count it. Descriptions never repeat token contents.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, header};

use svcauth_core::BodyFromBytes;

use crate::error::{ErrorKind, VerifyError};

/// Seconds a client is told to wait after a 503.
pub(crate) const RETRY_AFTER_SECS: u32 = 30;

/// Makes the body of a rejection: `(content type, bytes)`.
pub(crate) type BodyFn = Arc<dyn Fn(&VerifyError) -> (HeaderValue, Bytes) + Send + Sync>;

/// How rejection bodies are made.
#[derive(Clone, Default)]
pub(crate) struct RejectionBody(pub(crate) Option<BodyFn>);

impl fmt::Debug for RejectionBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "custom" } else { "json" })
    }
}

fn default_body(error: &VerifyError) -> (HeaderValue, Bytes) {
    let kind = error.kind();
    let body = serde_json::json!({
        "error": kind.oauth_error().unwrap_or(kind.as_str()),
        "error_description": kind.description(),
    });
    (
        HeaderValue::from_static("application/json"),
        Bytes::from(body.to_string()),
    )
}

/// The `WWW-Authenticate` value for `kind`, if it has one.
pub(crate) fn challenge(kind: ErrorKind) -> Option<HeaderValue> {
    match kind.oauth_error() {
        _ if kind == ErrorKind::MissingToken => Some(HeaderValue::from_static("Bearer")),
        Some(code) => HeaderValue::from_str(&format!(
            "Bearer error=\"{code}\", error_description=\"{}\"",
            kind.description()
        ))
        .ok(),
        None => None,
    }
}

/// Whether `headers` are a gRPC request's (`application/grpc`, `+proto`,
/// `+json`, ...), which must be refused with a gRPC status.
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The rejection response for `error`: a gRPC status when `grpc`, else an
/// HTTP one.
pub(crate) fn response<B: BodyFromBytes>(
    error: VerifyError,
    body: &RejectionBody,
    grpc: bool,
) -> Response<B> {
    if grpc {
        return grpc_response(error);
    }
    let (content_type, bytes) = match &body.0 {
        Some(make) => make(&error),
        None => default_body(&error),
    };
    let mut response = Response::new(B::from_bytes(bytes));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = challenge(error.kind()) {
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    }
    if error.status() == http::StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response.extensions_mut().insert(error);
    response
}

/// A trailers-only gRPC response: status and message in the headers, an
/// empty body, so HTTP/2 sends one HEADERS frame that ends the stream.
fn grpc_response<B: BodyFromBytes>(error: VerifyError) -> Response<B> {
    let kind = error.kind();
    let mut response = Response::new(B::from_bytes(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(kind.grpc_code()));
    // The descriptions are printable ASCII without `%`: they need none of
    // the percent-encoding gRPC allows in `grpc-message`.
    headers.insert("grpc-message", HeaderValue::from_static(kind.description()));
    if let Some(challenge) = challenge(kind) {
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    }
    if kind.status() == http::StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    response.extensions_mut().insert(error);
    response
}
