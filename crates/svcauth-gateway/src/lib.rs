//! svcauth at the edge: the phantom-token pattern. Clients outside hold only
//! opaque reference tokens; the gateway swaps each one, once, for a JWT that
//! internal services verify with the issuer's public keys, and caches the
//! swap. Clients never see (nor come to depend on) JWT contents, and
//! internal services never call the authorization server.
//!
//! * [`Gateway::token_exchange`]: OAuth 2.0 Token Exchange (RFC 8693) at the
//!   authorization server, the gateway authenticated as a client
//!   (`private_key_jwt` preferred, `client_secret_basic` supported, through
//!   [`svcauth_sign::StsClient`]); the JWT replaces the `Authorization`
//!   header. With an RFC 8693-conformant server the JWT says `sub` = the
//!   token's owner and `act` = the gateway.
//! * [`Gateway::introspection`]: validation only, by RFC 7662 introspection
//!   (optionally RFC 9701 signed answers); the claims go into the request's
//!   extensions as [`Introspected`] and no token is forwarded.
//! * [`txn::TransactionTokenService`]: the trust domain's Transaction Token
//!   Service (draft-ietf-oauth-transaction-tokens): with
//!   [`GatewayBuilder::txn_token_service`], every request let in goes on
//!   with a `Txn-Token` (the user, the scope, the request that entered);
//!   workloads ask for Txn-Tokens by RFC 8693 token exchange.
//! * [`PhantomTokenLayer`] / [`PhantomToken`]: the tower layer. It also
//!   strips [`IDENTITY_HEADERS`] a client could forge, and refuses JWTs
//!   presented at the edge (unless [`GatewayBuilder::pass_through_jwts`]).
//!
//! # Caching, and what it means for revocation
//!
//! A swap is reused until the earlier of the JWT's `exp` (less
//! 10 s) and [`GatewayBuilder::max_ttl`] (default
//! 5 minutes). **A reference token revoked at the
//! authorization server keeps working at this gateway until its entry
//! ends: at most `max_ttl`.** Lower it where revocation must bite sooner;
//! every entry that ends costs one more exchange.
//!
//! Tokens are cached under their SHA-256; the token itself is neither
//! stored nor logged. Inactive tokens are remembered for
//! [`GatewayBuilder::negative_ttl`]; questions to the authorization server
//! are single-flight per token and limited overall by
//! [`GatewayBuilder::miss_rate_limit`], so a flood of random tokens costs
//! the server at most `burst + rate × seconds` requests. An authorization
//! server that cannot be reached gives 503 with `Retry-After`: never a 401,
//! never a forwarded request.
//!
//! # Example
//!
//! A stand-in authorization server exchanges `ref-alice` for a JWT and
//! calls anything else `invalid_grant`; the inner service shows what it got.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{Form, Json, Router, routing::post};
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use http::{Request, StatusCode};
//! use std::collections::HashMap;
//! use svcauth_gateway::{Gateway, PhantomTokenLayer};
//! use svcauth_sign::{ClientAuth, StsClient};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # const JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
//! // The authorization server's token endpoint (RFC 8693).
//! let token = post(|Form(form): Form<HashMap<String, String>>| async move {
//!     match form.get("subject_token").map(String::as_str) {
//!         Some("ref-alice") => (StatusCode::OK, Json(serde_json::json!({
//!             "access_token": JWT, "token_type": "Bearer", "expires_in": 300,
//!             "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
//!         }))),
//!         _ => (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": "invalid_grant"}))),
//!     }
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let endpoint = format!("http://{}/token", listener.local_addr().unwrap());
//! tokio::spawn(async move {
//!     axum::serve(listener, Router::new().route("/token", token)).await.unwrap()
//! });
//!
//! let sts = StsClient::new(&endpoint, "gateway", ClientAuth::client_secret_basic("s3cret")).unwrap();
//! let gateway = Gateway::token_exchange(sts, "https://orders.internal").build().unwrap();
//! let edge = ServiceBuilder::new()
//!     .layer(PhantomTokenLayer::new(gateway.clone()))
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         let auth = req.headers().get("authorization").unwrap().clone();
//!         let mut response = http::Response::new(Full::<Bytes>::default());
//!         response.headers_mut().insert("x-seen-authorization", auth);
//!         Ok::<_, std::convert::Infallible>(response)
//!     }));
//!
//! let request = |token: &str| {
//!     Request::get("/orders").header("authorization", format!("Bearer {token}"))
//!         .body(Full::default()).unwrap()
//! };
//! for _ in 0..3 {
//!     let response = edge.clone().oneshot(request("ref-alice")).await.unwrap();
//!     assert_eq!(response.headers()["x-seen-authorization"], format!("Bearer {JWT}"));
//! }
//! assert_eq!(gateway.metrics().misses, 1); // one exchange, then the cache
//!
//! let response = edge.clone().oneshot(request("ref-mallory")).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! // A JWT is not accepted at the edge.
//! let response = edge.oneshot(request(JWT)).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

mod builder;
mod cache;
mod error;
mod future;
mod gateway;
mod headers;
mod introspection;
mod layer;
mod limiter;
mod metrics;
mod response;
mod service;
pub mod txn;

pub use builder::GatewayBuilder;
pub use error::{ConfigError, SwapError};
pub use future::ResponseFuture;
pub use gateway::{Gateway, Swapped};
pub use headers::IDENTITY_HEADERS;

/// A request extension naming the client's address, for the per-client
/// miss budget ([`GatewayBuilder::client_miss_rate_limit`]), when neither
/// axum's `ConnectInfo` nor a trusted proxy header says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);
pub use introspection::Introspected;
pub use layer::PhantomTokenLayer;
pub use metrics::GatewayMetrics;
pub use response::Rejection;
pub use service::PhantomToken;

/// Entry points for the fuzz targets (`fuzz/`), built only by cargo-fuzz
/// (`--cfg fuzzing`): parsers that are otherwise reached only over HTTP.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use svcauth_jwks::KeySource;

    /// An introspection answer (`content_type`, `body`) as the gateway reads
    /// it: signed (RFC 9701, from `jwt_issuer` with `keys`) when `keys` is
    /// given, else plain JSON; for client `client_id`, checked against
    /// `audience` at `now`. The usable claims, or why not.
    pub async fn introspection(
        content_type: &str,
        body: &[u8],
        jwt: Option<(String, KeySource)>,
        client_id: &str,
        audience: Option<&str>,
        now: u64,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let response =
            crate::introspection::classify(content_type, body).map_err(|e| e.to_string())?;
        crate::introspection::read(response, jwt.as_ref(), client_id, audience, now)
            .await
            .map(|claims| claims.claims().clone())
            .map_err(|e| e.to_string())
    }
}
