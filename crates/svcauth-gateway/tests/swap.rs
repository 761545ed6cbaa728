//! The gateway layer against a stand-in authorization server on loopback
//! (the test kit's `MockAuthorizationServer`), so these run without node:
//! one question per reference token, inactive tokens remembered, an
//! unreachable server never a 401, per-client budgets, forged identity
//! headers removed under any spelling. tests/tests/gateway.rs runs the same
//! layer against a real OpenID Provider.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use svcauth_gateway::{ClientAddr, Gateway, GatewayBuilder, PhantomTokenLayer};
use svcauth_sign::{ClientAuth, StsClient};
use svcauth_tests::MockAuthorizationServer;
use tower::ServiceExt;

fn gateway(server: &MockAuthorizationServer) -> GatewayBuilder {
    let sts = StsClient::new(
        &server.token_endpoint(),
        "gateway",
        ClientAuth::client_secret_basic("a-client-secret"),
    )
    .unwrap();
    Gateway::token_exchange(sts, "https://b.internal")
}

/// The inner service answers with the headers it was given, as JSON.
fn app(gateway: Gateway) -> Router {
    Router::new()
        .fallback(|headers: HeaderMap| async move {
            let seen: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
                .collect();
            axum::Json(seen)
        })
        .layer(PhantomTokenLayer::new(gateway))
}

async fn send(app: &Router, token: &str, client: u8) -> (StatusCode, serde_json::Value) {
    let mut request = Request::get("/x")
        .header("authorization", format!("Bearer {token}"))
        .header("X_Forwarded_User", "admin")
        .header("x-amzn-oidc-identity", "admin")
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ClientAddr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, client))));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_question_per_token_and_inactive_tokens_are_remembered() {
    let server = MockAuthorizationServer::start().await;
    let app = app(gateway(&server).build().unwrap());
    for _ in 0..20 {
        let (status, seen) = send(&app, "good-alice-0001", 1).await;
        assert_eq!(status, 200);
        assert!(
            seen["authorization"]
                .as_str()
                .unwrap()
                .starts_with("Bearer eyJ"),
            "the exchanged token, not the reference token: {seen}"
        );
        assert!(seen.get("x_forwarded_user").is_none(), "{seen}");
        assert!(seen.get("x-amzn-oidc-identity").is_none(), "{seen}");
    }
    assert_eq!(server.asked(), 1, "one exchange for twenty requests");
    for _ in 0..5 {
        assert_eq!(send(&app, "unknown-token-1", 1).await.0, 401);
    }
    assert_eq!(server.asked(), 2, "an inactive token is asked about once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_503_never_a_401() {
    let server = MockAuthorizationServer::start().await;
    server.set_down(true);
    let app = app(gateway(&server).build().unwrap());
    let (status, _) = send(&app, "good-bob-00001", 1).await;
    assert_eq!(status, 503, "the token may be good: not a 401");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_has_its_own_budget_of_unknown_tokens() {
    let server = MockAuthorizationServer::start().await;
    let app = app(gateway(&server)
        .client_miss_rate_limit(1, 5)
        .build()
        .unwrap());
    let mut refused = 0;
    for i in 0..50 {
        match send(&app, &format!("junk-token-{i:04}"), 66).await.0 {
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            status => assert_eq!(status, 401),
        }
    }
    assert!(
        refused >= 40,
        "client 66 is held to its budget ({refused} refused)"
    );
    assert!(server.asked() <= 10, "asked {} times", server.asked());
    // Another client is not affected.
    assert_eq!(send(&app, "good-carol-0001", 7).await.0, 200);
}

#[tokio::test]
async fn events_reach_the_metrics_recorder() {
    let server = MockAuthorizationServer::start().await;
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let gateway = metrics::with_local_recorder(&recorder, || gateway(&server).build().unwrap());
    let app = app(gateway);
    for _ in 0..3 {
        assert_eq!(send(&app, "good-metrics", 1).await.0, StatusCode::OK);
    }
    assert_eq!(
        send(&app, "bad-metrics", 1).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, "bad-metrics", 1).await.0,
        StatusCode::UNAUTHORIZED
    );
    let mut counts = std::collections::BTreeMap::new();
    let mut timed = 0;
    for (key, _, _, value) in recorder.snapshotter().snapshot().into_vec() {
        let key = key.key().clone();
        match value {
            metrics_util::debugging::DebugValue::Counter(n) => {
                let event = key.labels().next().unwrap().value().to_owned();
                counts.insert(event, n);
            }
            metrics_util::debugging::DebugValue::Histogram(values) => timed += values.len(),
            _ => {}
        }
    }
    assert_eq!(counts["hit"], 2, "{counts:?}");
    assert_eq!(counts["miss"], 2, "{counts:?}");
    assert_eq!(counts["negative_hit"], 1, "{counts:?}");
    assert_eq!(timed, 2, "one timing per question asked");
}
