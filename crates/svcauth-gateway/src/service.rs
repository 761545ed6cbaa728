//! [`PhantomToken`]: the service the [`crate::PhantomTokenLayer`] wraps
//! around yours. For each request:
//!
//! 1. identity headers a client could forge ([`crate::IDENTITY_HEADERS`])
//!    are removed;
//! 2. the bearer token is read; a JWT is refused (or passed through, if so
//!    configured);
//! 3. the reference token is swapped ([`Gateway::swap`]): its
//!    `Authorization` becomes `Bearer <internal JWT>` (token exchange), or
//!    the header is removed and [`crate::Introspected`] goes into the
//!    extensions (validation only);
//! 4. the inner service gets the request. A failed swap is a response
//!    ([`crate::Rejection`]); the inner service never sees that request.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, header};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::gateway::{Gateway, Swapped};
use crate::layer::PhantomTokenLayer;
use crate::metrics::Event;
use crate::response::Rejection;

/// The gateway service. A rejection is a response, never an `Err`: the
/// error type stays the inner service's.
///
/// See the crate docs for an example.
#[derive(Clone, Debug)]
pub struct PhantomToken<S> {
    inner: S,
    gateway: Gateway,
}

impl<S> PhantomToken<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, gateway: Gateway) -> Self {
        PhantomToken { inner, gateway }
    }

    /// A [`PhantomTokenLayer`] for `gateway`.
    pub fn layer(gateway: Gateway) -> PhantomTokenLayer {
        PhantomTokenLayer::new(gateway)
    }
}

/// A request header a client could forge an identity with, under any
/// spelling, and any header the client's `Connection` header names (RFC
/// 9110 §7.6.1: those are for this hop only, and naming an identity header
/// there is a way to have it dropped, or kept, by the wrong hop).
fn strip_forgeable(gateway: &Gateway, headers: &mut http::HeaderMap) {
    let mut doomed: Vec<http::HeaderName> = headers
        .keys()
        .filter(|name| gateway.strips(name.as_str()))
        .cloned()
        .collect();
    for value in headers.get_all(header::CONNECTION) {
        for name in value.to_str().unwrap_or("").split(',') {
            if let Ok(name) = http::HeaderName::try_from(name.trim()) {
                doomed.push(name);
            }
        }
    }
    for name in doomed {
        headers.remove(name);
    }
}

/// Who is asking, for the per-client miss budget, as found on the request:
/// cheap to take (an address, or the trusted header's value), and turned
/// into the limiter's key only on a cache miss.
enum ClientKey {
    Header(http::HeaderValue),
    Addr(std::net::IpAddr),
}

impl ClientKey {
    /// The configured header's value (set by a trusted proxy), else the
    /// peer address.
    fn of<B>(gateway: &Gateway, request: &Request<B>) -> Option<Self> {
        if let Some(name) = gateway.client_header() {
            let value = request.headers().get_all(name).iter().next_back()?;
            return Some(ClientKey::Header(value.clone()));
        }
        if let Some(crate::ClientAddr(ip)) = request.extensions().get() {
            return Some(ClientKey::Addr(*ip));
        }
        #[cfg(feature = "axum")]
        if let Some(axum::extract::ConnectInfo(peer)) =
            request
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            return Some(ClientKey::Addr(peer.ip()));
        }
        None
    }

    /// The limiter's key: the header's last entry, or the address.
    fn key(&self) -> Option<String> {
        match self {
            ClientKey::Header(value) => {
                let last = value.to_str().ok()?.rsplit(',').next()?.trim();
                (!last.is_empty()).then(|| last.to_owned())
            }
            ClientKey::Addr(ip) => Some(ip.to_string()),
        }
    }
}

/// Whether `token` is a JWS (three segments, the first a JSON header with
/// an `alg`): reference tokens never look like that.
fn looks_like_jwt(token: &str) -> bool {
    svcauth_core::jws::peek(token).is_some()
}

impl<S, B, ResBody> Service<Request<B>> for PhantomToken<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        strip_forgeable(&self.gateway, request.headers_mut());
        let token = match svcauth_core::bearer_token(request.headers())
            .map_err(|_| Rejection::InvalidRequest)
        {
            Ok(Some(token)) => token,
            Ok(None) => return ResponseFuture::ready(Ok(Rejection::MissingToken.into_response())),
            Err(rejection) => return ResponseFuture::ready(Ok(rejection.into_response())),
        };
        if looks_like_jwt(token) {
            let counters = self.gateway.counters();
            if self.gateway.passes_through_jwts() {
                counters.count(Event::JwtPassed);
                return ResponseFuture::inner(self.inner.call(request));
            }
            counters.count(Event::JwtRefused);
            tracing::debug!("a JWT presented at the edge was refused");
            return ResponseFuture::ready(Ok(Rejection::JwtAtEdge.into_response()));
        }
        // The reference token leaves the request here; the copy lives only
        // as long as the swap.
        let token = token.to_owned();
        let client = ClientKey::of(&self.gateway, &request);
        request.headers_mut().remove(header::AUTHORIZATION);
        let gateway = self.gateway.clone();
        // The ready service goes into the future; a clone stays (tower's
        // "be careful when cloning inner services").
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::swap(Box::pin(async move {
            let client_key = || client.as_ref().and_then(ClientKey::key);
            let swapped = match gateway.swap_keyed(&token, client_key).await {
                Ok(swapped) => swapped,
                Err(error) => return Ok(Rejection::from_swap(&error).into_response()),
            };
            drop(token);
            if let Some(tts) = gateway.txn_token_service() {
                let ip = client.as_ref().and_then(ClientKey::key);
                let entered = (request.method().clone(), request.uri().path().to_owned());
                match mint_at_edge(tts, &swapped, entered, ip).await {
                    Ok(value) => {
                        request
                            .headers_mut()
                            .insert(svcauth_core::txn::HEADER, value);
                    }
                    Err(rejection) => return Ok(rejection.into_response()),
                }
            }
            match swapped {
                Swapped::Jwt(value) => {
                    request.headers_mut().insert(header::AUTHORIZATION, value);
                }
                Swapped::Introspected(claims) => {
                    request.extensions_mut().insert(claims);
                }
            }
            inner.call(request).await
        }))
    }
}

/// The Txn-Token for a request entering the trust domain: the user as the
/// swap found them, and where the request came from and went.
async fn mint_at_edge(
    tts: &crate::txn::TransactionTokenService,
    swapped: &Swapped,
    (method, path): (http::Method, String),
    client_ip: Option<String>,
) -> Result<http::HeaderValue, Rejection> {
    use serde_json::Value;
    let subject = crate::txn::subject_claims(swapped);
    let mut rctx = serde_json::Map::new();
    if let Some(ip) = client_ip {
        rctx.insert("req_ip".into(), Value::String(ip));
    }
    rctx.insert("req_method".into(), method.as_str().into());
    rctx.insert("req_path".into(), path.into());
    // The client the user's token was issued to: what introspection says.
    // An exchanged JWT's `client_id` names the gateway itself (RFC 9068).
    if let Swapped::Introspected(_) = swapped
        && let Some(client_id) = subject.get("client_id").and_then(Value::as_str)
    {
        rctx.insert("client_id".into(), client_id.into());
    }
    let grant = tts.edge_grant(&subject, rctx).map_err(|error| {
        tracing::debug!(%error, "no Txn-Token for this request");
        Rejection::NoTransaction
    })?;
    let token = tts.mint(grant).await.map_err(|error| {
        tracing::warn!(%error, "Txn-Token not minted");
        Rejection::TransactionUnavailable
    })?;
    http::HeaderValue::from_str(&token).map_err(|_| Rejection::TransactionUnavailable)
}

#[cfg(test)]
mod tests {
    use svcauth_core::b64;

    use super::*;

    #[test]
    fn jwts_are_told_apart_from_reference_tokens() {
        let header = b64::encode(r#"{"alg":"ES256","typ":"at+jwt"}"#);
        assert!(looks_like_jwt(&format!("{header}.e30.c2ln")));
        for reference in [
            "MtvM3TU2FU8L4-M9ZjUfuO1GfvmRY5znByGOUBIvDQW",
            "a.b.c",
            "",
            &format!("{header}.e30"),
            &format!("{header}.e30.c2ln.x"),
            &format!("{}.e30.c2ln", b64::encode(r#"{"typ":"JWT"}"#)),
        ] {
            assert!(!looks_like_jwt(reference), "{reference}");
        }
    }

    /// At the edge, the Txn-Token says who and what from the swap, and
    /// where from the request; `client_id` only from introspection (an
    /// exchanged JWT's names the gateway).
    #[test]
    fn the_edge_mints_from_the_swap_and_the_request() {
        use svcauth_core::Algorithm;
        use svcauth_jwks::{KeyRing, SigningKey};
        let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
        let tts = crate::txn::TransactionTokenService::builder("example.org", "https://tts", ring)
            .build()
            .unwrap();
        let answer = serde_json::json!({ "active": true, "sub": "alice", "scope": "orders.read",
            "client_id": "mobile", "tenant": "blue", "password": "never-copied" });
        let introspected = Swapped::Introspected(crate::introspection::Introspected::from_answer(
            answer.as_object().unwrap().clone(),
        ));
        let entered = (http::Method::POST, "/orders/42".to_owned());
        let mint = mint_at_edge(&tts, &introspected, entered, Some("203.0.113.7".into()));
        let value = block_on(mint).unwrap();
        let (_, payload) = svcauth_core::jws::peek(value.to_str().unwrap()).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            (claims["sub"].as_str(), claims["scope"].as_str()),
            (Some("alice"), Some("orders.read"))
        );
        assert_eq!(claims["tctx"], serde_json::json!({ "tenant": "blue" }));
        assert_eq!(
            claims["rctx"],
            serde_json::json!({ "req_ip": "203.0.113.7", "req_method": "POST",
                "req_path": "/orders/42", "client_id": "mobile" })
        );
        // No scope: no transaction, never an unconstrained one.
        let unscoped = Swapped::Introspected(crate::introspection::Introspected::from_answer(
            serde_json::json!({ "active": true, "sub": "alice" })
                .as_object()
                .unwrap()
                .clone(),
        ));
        let entered = (http::Method::GET, "/".to_owned());
        let refused = block_on(mint_at_edge(&tts, &unscoped, entered, None));
        assert_eq!(refused.unwrap_err(), Rejection::NoTransaction);
    }

    /// A future signed with a key in memory is ready at its first poll.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(future).poll(&mut cx) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("an in-memory key signs at once"),
        }
    }

    #[test]
    fn rejections_answer_rfc_6750() {
        let response: Response<bytes::Bytes> = Rejection::InactiveToken.into_response();
        assert_eq!(response.status(), 401);
        assert!(
            response.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer error=\"invalid_token\"")
        );
        let response: Response<bytes::Bytes> =
            Rejection::Unavailable { retry_after: 2 }.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
        let response: Response<bytes::Bytes> = Rejection::MissingToken.into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            response.extensions().get::<Rejection>(),
            Some(&Rejection::MissingToken)
        );
    }
}
