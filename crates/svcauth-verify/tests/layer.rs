//! The layer's behaviour beyond single tokens: extractors, per-route rules,
//! unavailable keys, the verification cache, options and configuration.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::*;
use http::{HeaderValue, Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use svcauth_core::{Algorithm, AlgorithmSet, Clock, ManualClock, SystemClock, b64};
use svcauth_jwks::{KeySet, KeySource, SigningKey};
use svcauth_verify::{
    Caller, CallerClaims, ConfigError, ErrorKind, HmacAlgorithm, Verifier, VerifyError, VerifyLayer,
};
use tower::ServiceExt;

fn get_with(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

fn fixed(keys: &[&SigningKey]) -> KeySource {
    KeySource::fixed(KeySet::from_jwks(jwks(keys).to_string().as_bytes(), 65536).unwrap())
}

/// An EdDSA key and a verifier that trusts it for `ISS_A`, everything else default.
fn eddsa_verifier() -> (SigningKey, Verifier) {
    let key = new_key(Algorithm::EdDSA);
    let verifier = Verifier::builder(AUD)
        .trust(ISS_A, fixed(&[&key]))
        .build()
        .unwrap();
    (key, verifier)
}

async fn code(app: &Router, uri: &str, token: Option<&str>) -> StatusCode {
    send(app, get_with(uri, token)).await.status()
}

async fn status(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = send(app, request).await;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn extractor_without_the_layer_is_a_500_that_says_so() {
    let app: Router = Router::new().route("/", get(|c: Caller| async move { c.sub().to_owned() }));
    let (code, body) = status(&app, get_with("/", None)).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("VerifyLayer is not installed"), "{body}");
}

#[derive(Deserialize)]
struct Tenant {
    tenant: String,
}

#[tokio::test]
async fn optional_routes_and_typed_claims() {
    let (key, verifier) = eddsa_verifier();
    let app = Router::new()
        .route(
            "/maybe",
            get(|c: Option<Caller>| async move {
                c.map_or("anonymous".to_owned(), |c| c.sub().to_owned())
            }),
        )
        .route(
            "/tenant",
            get(|CallerClaims(t): CallerClaims<Tenant>| async move { t.tenant }),
        )
        .layer(VerifyLayer::new(verifier).optional());
    let now = SystemClock.now_secs();
    let mut claims = claims_at(now);
    claims["tenant"] = "blue".into();
    let token = sign(&header_for(&key), &claims, &key);

    assert_eq!(
        status(&app, get_with("/maybe", None)).await,
        (StatusCode::OK, "anonymous".into())
    );
    assert_eq!(
        status(&app, get_with("/maybe", Some(&token))).await,
        (StatusCode::OK, ISS_A.into())
    );
    assert_eq!(
        status(&app, get_with("/tenant", Some(&token))).await,
        (StatusCode::OK, "blue".into())
    );
    // Optional does not mean a bad token passes.
    assert_eq!(
        code(&app, "/maybe", Some("a.b.c")).await,
        StatusCode::UNAUTHORIZED
    );
    // A handler that needs a caller still refuses anonymous requests.
    assert_eq!(code(&app, "/tenant", None).await, StatusCode::UNAUTHORIZED);
    // Claims that do not fit the handler's type.
    let plain = sign(&header_for(&key), &claims_at(now), &key);
    assert_eq!(
        code(&app, "/tenant", Some(&plain)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn per_route_callers_and_scopes_answer_403_insufficient_scope() {
    let (a, b) = (new_key(Algorithm::EdDSA), new_key(Algorithm::ES256));
    let verifier = Verifier::builder(AUD)
        .trust(ISS_A, fixed(&[&a]))
        .trust(ISS_B, fixed(&[&b]))
        .build()
        .unwrap();
    let ok = || get(|| async { "ok" });
    let app = Router::new()
        .route("/open", ok())
        .merge(
            Router::new()
                .route("/admin", ok())
                .route_layer(VerifyLayer::new(verifier.clone()).allow_caller(ISS_A, Some(ISS_A))),
        )
        .merge(
            Router::new()
                .route("/scoped", ok())
                .route_layer(VerifyLayer::new(verifier.clone()).require_scopes(["orders:write"])),
        )
        .merge(Router::new().route("/pred", ok()).route_layer(
            VerifyLayer::new(verifier.clone()).allow_if(|c| c.sub().ends_with(".internal")),
        ))
        .layer(VerifyLayer::new(verifier));
    let now = SystemClock.now_secs();
    let from_a = sign(&header_for(&a), &claims_at(now), &a);
    let mut b_claims = claims_at(now);
    b_claims["iss"] = ISS_B.into();
    b_claims["sub"] = "batch-job".into();
    b_claims["scope"] = "orders:read orders:write".into();
    let from_b = sign(&header_for(&b), &b_claims, &b);

    assert_eq!(code(&app, "/admin", Some(&from_a)).await, StatusCode::OK);
    let refused = send(&app, get_with("/admin", Some(&from_b))).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"insufficient_scope\"")
    );
    assert_eq!(code(&app, "/scoped", Some(&from_b)).await, StatusCode::OK);
    let scoped = send(&app, get_with("/scoped", Some(&from_a))).await;
    assert_eq!(refusal(&scoped), ErrorKind::InsufficientScope);
    assert_eq!(code(&app, "/pred", Some(&from_a)).await, StatusCode::OK);
    assert_eq!(
        code(&app, "/pred", Some(&from_b)).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn keys_never_loaded_answer_503_with_retry_after() {
    let key = new_key(Algorithm::EdDSA);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = KeySource::remote(&format!("http://127.0.0.1:{port}/jwks.json"))
        .unwrap()
        .background_refresh(false)
        .build()
        .unwrap();
    let verifier = Verifier::builder(AUD).trust(ISS_A, source).build().unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(VerifyLayer::new(verifier));
    let token = sign(&header_for(&key), &claims_at(SystemClock.now_secs()), &key);
    let response = app.oneshot(get_with("/", Some(&token))).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "30");
    assert_eq!(refusal(&response), ErrorKind::KeysUnavailable);
}

#[tokio::test]
async fn cache_hits_skip_verification_until_exp_or_a_key_set_change() {
    let (old, new) = (new_key(Algorithm::ES256), new_key(Algorithm::ES256));
    let server_state = Arc::new(std::sync::Mutex::new(jwks(&[&old])));
    let state = server_state.clone();
    let jwks_app = Router::new().route(
        "/jwks.json",
        get(move || {
            let body = state.lock().unwrap().to_string();
            async move { body }
        }),
    );
    let url = format!("http://{}/jwks.json", svcauth_tests::serve(jwks_app).await);

    let now = SystemClock.now_secs();
    let clock = ManualClock::at_secs(now);
    let source = KeySource::remote(&url)
        .unwrap()
        .background_refresh(false)
        .build()
        .unwrap();
    let verifier = Verifier::builder(AUD)
        .trust(ISS_A, source.clone())
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(VerifyLayer::new(verifier.clone()));
    let token = sign(&header_for(&old), &claims_at(now), &old);

    for _ in 0..10 {
        assert_eq!(code(&app, "/", Some(&token)).await, StatusCode::OK);
    }
    let metrics = verifier.metrics();
    assert_eq!((metrics.accepted, metrics.cache_hits), (10, 9));

    // Past exp + leeway the cached entry no longer answers.
    clock.advance(Duration::from_secs(331));
    let response = send(&app, get_with("/", Some(&token))).await;
    assert_eq!(refusal(&response), ErrorKind::Expired);
    clock.set_secs(now);

    // The issuer drops the old key: after the refresh the cached token fails.
    assert_eq!(code(&app, "/", Some(&token)).await, StatusCode::OK);
    *server_state.lock().unwrap() = jwks(&[&new]);
    source.refresh().await.unwrap();
    let response = send(&app, get_with("/", Some(&token))).await;
    assert_eq!(refusal(&response), ErrorKind::UnknownKey);
    assert_eq!(verifier.metrics().rejected["unknown_key"], 1);
}

#[tokio::test]
async fn cache_stays_within_its_capacity() {
    let key = new_key(Algorithm::EdDSA);
    let verifier = Verifier::builder(AUD)
        .trust(ISS_A, fixed(&[&key]))
        .cache_capacity(64)
        .build()
        .unwrap();
    let now = SystemClock.now_secs();
    for _ in 0..500 {
        let token = sign(&header_for(&key), &claims_at(now), &key);
        verifier.verify(&token).await.unwrap();
        assert!(verifier.cache_len() <= 64);
    }
}

#[tokio::test]
async fn hmac_only_behind_the_danger_option_with_a_long_secret() {
    let secret = [7u8; 32];
    assert_eq!(
        Verifier::builder(AUD)
            .danger_trust_hmac_issuer(ISS_A, HmacAlgorithm::HS256, &secret[..31])
            .build()
            .unwrap_err(),
        ConfigError::WeakHmacSecret
    );
    let verifier = Verifier::builder(AUD)
        .danger_trust_hmac_issuer(ISS_A, HmacAlgorithm::HS256, &secret)
        .build()
        .unwrap();
    let mint = |alg: &str, secret: &[u8]| {
        let input = format!(
            "{}.{}",
            b64::encode(json!({"alg": alg}).to_string()),
            b64::encode(claims_at(SystemClock.now_secs()).to_string())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        format!(
            "{input}.{}",
            b64::encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref())
        )
    };
    assert!(verifier.verify(&mint("HS256", &secret)).await.is_ok());
    assert_eq!(
        verifier
            .verify(&mint("HS256", &[8u8; 32]))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidSignature
    );
    assert_eq!(
        verifier
            .verify(&mint("HS384", &secret))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::KeyAlgorithmMismatch
    );
}

#[tokio::test]
async fn rejection_body_can_be_replaced_but_not_the_challenge() {
    let (_, verifier) = eddsa_verifier();
    let layer = VerifyLayer::new(verifier).rejection_body(|e| {
        (
            HeaderValue::from_static("text/plain"),
            format!("nope: {}", e.kind().as_str()).into(),
        )
    });
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    let response = send(&app, get_with("/", Some("x.y.z"))).await;
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer error=\"invalid_token\"")
    );
    assert_eq!(
        status(&app, get_with("/", Some("x.y.z"))).await,
        (StatusCode::UNAUTHORIZED, "nope: malformed".into())
    );
}

#[tokio::test]
async fn default_body_is_small_json() {
    let (_, verifier) = eddsa_verifier();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(VerifyLayer::new(verifier));
    let (code, body) = status(&app, get_with("/", Some("x.y.z"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "invalid_token");
}

#[test]
fn configuration_is_checked() {
    let key = new_key(Algorithm::EdDSA);
    let base = |aud: &str| Verifier::builder(aud).trust(ISS_A, fixed(&[&key]));
    assert_eq!(base("*").build().unwrap_err(), ConfigError::BadAudience);
    assert_eq!(base("").build().unwrap_err(), ConfigError::BadAudience);
    assert_eq!(
        Verifier::builder(AUD).build().unwrap_err(),
        ConfigError::NoIssuers
    );
    assert_eq!(
        base(AUD)
            .leeway(Duration::from_secs(301))
            .build()
            .unwrap_err(),
        ConfigError::LeewayTooLarge
    );
    assert_eq!(
        base(AUD)
            .algorithms(AlgorithmSet::EMPTY)
            .build()
            .unwrap_err(),
        ConfigError::NoAlgorithms
    );
    assert!(matches!(
        base(AUD).trust(ISS_A, fixed(&[&key])).build().unwrap_err(),
        ConfigError::DuplicateIssuer(_)
    ));
}

#[tokio::test]
async fn algorithm_allow_list_is_enforced_before_any_key_lookup() {
    let key = new_key(Algorithm::RS256);
    let verifier = Verifier::builder(AUD)
        .trust(ISS_A, fixed(&[&key]))
        .algorithms([Algorithm::EdDSA, Algorithm::ES256].into_iter().collect())
        .build()
        .unwrap();
    let token = sign(&header_for(&key), &claims_at(SystemClock.now_secs()), &key);
    assert_eq!(
        verifier.verify(&token).await.unwrap_err().kind(),
        ErrorKind::UnsupportedAlgorithm
    );
}

/// `verify_request` for `POST http://b.internal/echo` with the body `x`.
async fn post_echo_x(
    verifier: &Verifier,
    token: &str,
    require_binding: bool,
) -> Result<Arc<svcauth_verify::VerifiedClaims>, VerifyError> {
    let uri: http::Uri = "/echo".parse().unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("host", "b.internal".parse().unwrap());
    let target = svcauth_verify::RequestTarget {
        method: &http::Method::POST,
        uri: &uri,
        headers: &headers,
    };
    verifier
        .verify_request(token, target, b"x", require_binding)
        .await
}

#[tokio::test]
async fn bound_tokens_are_not_accepted_by_plain_verify() {
    let (key, verifier) = eddsa_verifier();
    let mut claims = claims_at(SystemClock.now_secs());
    claims["htm"] = "POST".into();
    claims["htu"] = "http://b.internal/echo".into();
    claims["body_sha256"] = svcauth_core::body_sha256(b"x").into();
    let token = sign(&header_for(&key), &claims, &key);
    assert_eq!(
        verifier.verify(&token).await.unwrap_err().kind(),
        ErrorKind::BindingMismatch
    );
    assert!(post_echo_x(&verifier, &token, false).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replays_of_a_bound_token_accept_exactly_one() {
    let (key, verifier) = eddsa_verifier();
    let binding = svcauth_core::RequestBinding::for_parts(
        &http::Method::POST,
        "http",
        "b.internal",
        "/echo",
        b"x",
    )
    .unwrap();
    let mut claims = claims_at(SystemClock.now_secs());
    claims["htm"] = binding.htm.into();
    claims["htu"] = binding.htu.into();
    claims["body_sha256"] = binding.body_sha256.into();
    let token = Arc::new(sign(&header_for(&key), &claims, &key));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (verifier, token) = (verifier.clone(), token.clone());
        tasks.spawn(async move { post_echo_x(&verifier, &token, true).await.is_ok() });
    }
    let accepted = tasks.join_all().await.into_iter().filter(|ok| *ok).count();
    assert_eq!(accepted, 1);
    assert_eq!(verifier.metrics().rejected["replayed"], 99);
}

#[tokio::test]
async fn caller_rules_see_the_actor_of_a_delegated_token_not_its_user() {
    let (key, verifier) = eddsa_verifier();
    const SVC: &str = "https://svc.internal";
    let app = Router::new()
        .route("/svc-only", get(|| async { "ok" }))
        .route_layer(VerifyLayer::new(verifier).allow_caller(ISS_A, Some(SVC)));
    let token = |sub: &str, actor: Option<&str>| {
        let mut claims = claims_at(SystemClock.now_secs());
        claims["sub"] = sub.into();
        if let Some(actor) = actor {
            claims["act"] = json!({ "sub": actor });
        }
        sign(&header_for(&key), &claims, &key)
    };
    let direct = token(SVC, None);
    assert_eq!(code(&app, "/svc-only", Some(&direct)).await, 200);
    // A user whose id equals the service's, delegated by another service,
    // is not that service calling.
    let impostor = token(SVC, Some("https://other.internal"));
    assert_eq!(
        code(&app, "/svc-only", Some(&impostor)).await,
        StatusCode::FORBIDDEN
    );
    // The service itself, acting for a user, is.
    let on_behalf = token("alice", Some(SVC));
    assert_eq!(code(&app, "/svc-only", Some(&on_behalf)).await, 200);
}
