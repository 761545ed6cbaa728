//! Serving a [`KeyRing`]'s public keys at `/.well-known/jwks.json`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tower_service::Service;

use crate::key_ring::KeyRing;

/// Default `max-age` of the published JWKS: 5 minutes.
pub(crate) const DEFAULT_PUBLISH_MAX_AGE: Duration = Duration::from_secs(300);

/// A tower service answering `GET` with the ring's public JWKS.
///
/// `Content-Type: application/json`, `Cache-Control: public, max-age=N` and
/// a strong `ETag`; `If-None-Match` gets `304 Not Modified`. The ring is read
/// lock-free on every request, so a rotation shows on the next one. Any
/// method but `GET` and `HEAD` gets `405`.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use http::{Request, StatusCode};
/// use svcauth_core::Algorithm;
/// use svcauth_jwks::{JwksService, KeyRing, SigningKey};
/// use tower::ServiceExt;
///
/// let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
/// let response = JwksService::new(ring)
///     .oneshot(Request::get("/.well-known/jwks.json").body(()).unwrap())
///     .await
///     .unwrap();
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(response.headers()["cache-control"], "public, max-age=300");
/// # }
/// ```
///
/// With axum: `Router::new().route_service("/.well-known/jwks.json", JwksService::new(ring))`.
#[derive(Debug, Clone)]
pub struct JwksService {
    ring: KeyRing,
    cache_control: HeaderValue,
}

impl JwksService {
    /// Serves `ring` with the default `max-age` (5 minutes).
    pub fn new(ring: KeyRing) -> Self {
        JwksService {
            ring,
            cache_control: cache_control(DEFAULT_PUBLISH_MAX_AGE),
        }
    }

    /// Sets the `max-age` verifiers may cache the set for. A rotation's
    /// `add_next` must precede `promote_next` by at least this much.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.cache_control = cache_control(max_age);
        self
    }

    fn respond(
        &self,
        method: &Method,
        if_none_match: Option<&HeaderValue>,
    ) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let state = self.ring.state();
        let etag = HeaderValue::from_str(state.etag()).expect("ETag is base64url in quotes");
        let not_modified = if_none_match.is_some_and(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim() == state.etag() || t.trim() == "*")
            })
        });
        let (status, body) = if not_modified {
            (StatusCode::NOT_MODIFIED, Bytes::new())
        } else if method == Method::HEAD {
            (StatusCode::OK, Bytes::new())
        } else {
            (StatusCode::OK, state.jwks().clone())
        };
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, self.cache_control.clone());
        h.insert(header::ETAG, etag);
        r
    }
}

fn cache_control(max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("public, max-age={}", max_age.as_secs()))
        .expect("digits are a valid header value")
}

impl<B> Service<Request<B>> for JwksService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(
            req.method(),
            req.headers().get(header::IF_NONE_MATCH),
        )))
    }
}
