//! The phantom-token gateway against the real OpenID Provider (panva's
//! oidc-provider, tests/peers/oidc_provider.mjs): its token-exchange grant
//! and its introspection endpoint. service-b is the verifying layer, given
//! only the provider's issuer URL.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Json, Router};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use svcauth_core::{Algorithm, ManualClock};
use svcauth_gateway::{Gateway, GatewayBuilder, Introspected, PhantomTokenLayer};
use svcauth_jwks::{KeySource, SigningKey};
use svcauth_sign::{ClientAuth, StsClient};
use svcauth_tests::{OidcProvider, TOKEN_EXCHANGE, private_key_jwt_client, secret_client};
use svcauth_verify::{Caller, Verifier, VerifyLayer};
use tower::ServiceExt;

const B: &str = "https://service-b.internal";
const SECRET: &str = "a-client-secret-of-at-least-32-bytes!";

struct Setup {
    op: OidcProvider,
    gateway_auth: ClientAuth,
}

fn setup() -> Option<Setup> {
    let keys = OidcProvider::keygen()?;
    let gateway_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let op = OidcProvider::start(json!({
        "keys": keys,
        "clients": [
            private_key_jwt_client("gateway", serde_json::to_value(gateway_key.public_jwk()).unwrap(), &[TOKEN_EXCHANGE]),
            secret_client("gateway-secret", SECRET, &[TOKEN_EXCHANGE]),
            secret_client("edge-app", SECRET, &["client_credentials"]),
        ],
        "resources": { B: { "alg": "ES256", "ttl": 300, "scope": "orders:read" } },
    }))?;
    Some(Setup {
        op,
        gateway_auth: ClientAuth::private_key_jwt(gateway_key),
    })
}

impl Setup {
    fn exchange(&self) -> GatewayBuilder {
        let sts = StsClient::new(
            &self.op.token_endpoint(),
            "gateway",
            self.gateway_auth.clone(),
        )
        .unwrap();
        Gateway::token_exchange(sts, B)
    }

    /// [`exchange`](Self::exchange) on a clock that moves only when told.
    fn exchange_on_a_manual_clock(&self) -> (Arc<ManualClock>, GatewayBuilder) {
        let clock = Arc::new(ManualClock::starting_now());
        (clock.clone(), self.exchange().clock(clock))
    }

    /// A token-exchange gateway with defaults, service-b behind it, and an
    /// outside client's opaque token.
    async fn exchange_in_front_of_service_b(&self) -> (Gateway, Router, String) {
        let gateway = self.exchange().build().unwrap();
        let edge = self
            .service_b()
            .layer(PhantomTokenLayer::new(gateway.clone()));
        (gateway, edge, self.opaque_token().await)
    }

    async fn opaque_token(&self) -> String {
        self.op.client_credentials("edge-app", SECRET, None).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// service-b: verifies by discovery of the provider, says who called.
    fn service_b(&self) -> Router {
        let verifier = Verifier::builder(B)
            .trust(
                &self.op.issuer,
                KeySource::discover(&self.op.issuer)
                    .unwrap()
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        Router::new()
            .route(
                "/whoami",
                get(|caller: Caller| async move {
                    Json(serde_json::from_slice::<Value>(caller.raw_json()).unwrap())
                }),
            )
            .layer(VerifyLayer::new(verifier))
    }
}

fn request(token: &str) -> Request<Body> {
    Request::get("/whoami")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// The `WWW-Authenticate` challenge of an answer.
fn challenge(headers: &http::HeaderMap) -> &str {
    headers["www-authenticate"].to_str().unwrap()
}

/// An inner service that counts what reaches it.
fn counting() -> (Router, Arc<AtomicU64>) {
    let reached = Arc::new(AtomicU64::new(0));
    let counter = reached.clone();
    let app = Router::new().fallback(move || async move {
        counter.fetch_add(1, Ordering::Relaxed);
        "forwarded"
    });
    (app, reached)
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_token_goes_in_and_service_b_accepts_the_exchanged_jwt() {
    let Some(s) = setup() else { return };
    let (_, edge, opaque) = s.exchange_in_front_of_service_b().await;
    assert_eq!(opaque.split('.').count(), 1, "clients hold opaque tokens");

    let mut forged = request(&opaque);
    forged
        .headers_mut()
        .insert("x-forwarded-user", "admin".parse().unwrap());
    let (status, _, claims) = send(&edge, forged).await;
    assert_eq!(status, 200, "{claims}");
    assert_eq!(claims["sub"], "edge-app", "the original client");
    assert_eq!(claims["act"]["sub"], "gateway", "the gateway acts");
    assert_eq!(claims["aud"], B);
    assert_eq!(claims["iss"], s.op.issuer.as_str());

    // The same with client_secret_basic.
    let sts = StsClient::new(
        &s.op.token_endpoint(),
        "gateway-secret",
        ClientAuth::client_secret_basic(SECRET),
    )
    .unwrap();
    let edge = s.service_b().layer(PhantomTokenLayer::new(
        Gateway::token_exchange(sts, B).build().unwrap(),
    ));
    let (status, _, claims) = send(&edge, request(&opaque)).await;
    assert_eq!(status, 200);
    assert_eq!(claims["act"]["sub"], "gateway-secret");
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_from_the_client_never_reach_the_inside() {
    const IDENTITY: [&str; 5] = [
        "x-forwarded-user",
        "x-user-id",
        "x-auth-request-email",
        "x-tenant",
        "x-jwt-assertion",
    ];
    let Some(s) = setup() else { return };
    let gateway = s.exchange().strip_header("x-tenant").build().unwrap();
    let seen = Router::new()
        .fallback(|headers: http::HeaderMap| async move {
            Json(json!(
                headers
                    .keys()
                    .map(|k| k.as_str().to_owned())
                    .collect::<Vec<_>>()
            ))
        })
        .layer(PhantomTokenLayer::new(gateway));
    let mut req = request(&s.opaque_token().await);
    for name in IDENTITY {
        req.headers_mut().insert(name, "admin".parse().unwrap());
    }
    req.headers_mut()
        .insert("x-request-id", "42".parse().unwrap());
    let (status, _, names) = send(&seen, req).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(names.contains(&"authorization"));
    assert!(names.contains(&"x-request-id"), "other headers pass");
    for name in IDENTITY {
        assert!(!names.contains(&name), "{name} was forwarded");
    }
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_with_one_reference_token_cause_one_exchange() {
    let Some(s) = setup() else { return };
    let (gateway, edge, opaque) = s.exchange_in_front_of_service_b().await;
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (edge, opaque) = (edge.clone(), opaque.clone());
        tasks.push(tokio::spawn(async move {
            send(&edge, request(&opaque)).await.0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(s.op.counts().await["token_exchange"], 1);
    let m = gateway.metrics();
    assert_eq!((m.misses, m.hits), (1, 999));
    assert!(m.exchange_latency_mean().is_some());
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_tokens_cost_the_provider_at_most_the_miss_burst() {
    let Some(s) = setup() else { return };
    // Time stands still, so the bound is exactly the burst: misses allowed
    // are burst + rate x elapsed seconds, and no second elapses here.
    let (clock, gateway) = s.exchange_on_a_manual_clock();
    let gateway = gateway.miss_rate_limit(5, 20).build().unwrap();
    let (inner, reached) = counting();
    let edge = inner.layer(PhantomTokenLayer::new(gateway.clone()));
    let randoms: Vec<String> = (0..1000)
        .map(|i| format!("random-{i}-{}", svcauth_core::b64::encode(i.to_string())))
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for chunk in randoms.chunks(100) {
        let mut tasks = Vec::new();
        for token in chunk {
            let (edge, token) = (edge.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let (status, headers, _) = send(&edge, request(&token)).await;
                if status == 503 {
                    assert_eq!(headers["retry-after"], "1");
                }
                status.as_u16()
            }));
        }
        for task in tasks {
            *statuses.entry(task.await.unwrap()).or_insert(0) += 1;
        }
    }
    let exchanges = s.op.counts().await["token_exchange"].as_u64().unwrap();
    assert_eq!(exchanges, 20, "the burst, and not one more");
    assert_eq!(statuses.get(&401), Some(&20), "{statuses:?}");
    assert_eq!(statuses.get(&503), Some(&980), "{statuses:?}");
    assert_eq!(reached.load(Ordering::Relaxed), 0, "nothing forwarded");

    // The tokens found inactive are remembered: asking again costs nothing.
    for token in &randoms[..100] {
        let status = send(&edge, request(token)).await.0;
        assert!(status == 401 || status == 503);
    }
    assert_eq!(s.op.counts().await["token_exchange"], exchanges);
    assert!(gateway.metrics().negative_hits >= 20);
    // A second later, `rate` more questions are allowed.
    clock.advance(Duration::from_secs(1));
    for token in &randoms[500..600] {
        send(&edge, request(token)).await;
    }
    assert_eq!(s.op.counts().await["token_exchange"], exchanges + 5);
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_at_the_provider_stops_working_when_its_entry_ends() {
    let Some(s) = setup() else { return };
    let (clock, gateway) = s.exchange_on_a_manual_clock();
    let gateway = gateway.max_ttl(Duration::from_secs(60)).build().unwrap();
    let edge = s.service_b().layer(PhantomTokenLayer::new(gateway));
    let opaque = s.opaque_token().await;
    assert_eq!(send(&edge, request(&opaque)).await.0, 200);

    s.op.revoke("edge-app", SECRET, &opaque).await;
    // Within max_ttl the cached swap still serves: the documented window.
    clock.advance(Duration::from_secs(59));
    assert_eq!(send(&edge, request(&opaque)).await.0, 200);
    // Once the entry ends, the provider is asked again and says no.
    clock.advance(Duration::from_secs(2));
    let (status, headers, _) = send(&edge, request(&opaque)).await;
    assert_eq!(status, 401);
    assert!(challenge(&headers).contains("invalid_token"));
    assert_eq!(s.op.counts().await["token_exchange"], 2);
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_answers_503_with_retry_after_and_forwards_nothing() {
    let Some(mut s) = setup() else { return };
    let gateway = s.exchange().build().unwrap();
    let (inner, reached) = counting();
    let edge = inner.layer(PhantomTokenLayer::new(gateway.clone()));
    let cached = s.opaque_token().await;
    let fresh = s.opaque_token().await;
    assert_eq!(send(&edge, request(&cached)).await.0, 200);
    assert_eq!(reached.load(Ordering::Relaxed), 1);

    s.op.stop();
    let (status, headers, body) = send(&edge, request(&fresh)).await;
    assert_eq!(status, 503, "never 401: the token may be good");
    assert!(headers.contains_key("retry-after"));
    assert!(!headers.contains_key("www-authenticate"));
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(reached.load(Ordering::Relaxed), 1, "nothing forwarded");
    assert!(gateway.metrics().server_errors >= 1);
    // A swap cached before the outage keeps serving.
    assert_eq!(send(&edge, request(&cached)).await.0, 200);
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_at_the_edge_is_refused_by_default_and_passed_through_on_request() {
    let Some(s) = setup() else { return };
    let jwt = s.op.client_credentials("edge-app", SECRET, Some(B)).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (inner, reached) = counting();
    let edge = inner
        .clone()
        .layer(PhantomTokenLayer::new(s.exchange().build().unwrap()));
    let (status, headers, body) = send(&edge, request(&jwt)).await;
    assert_eq!(status, 401);
    assert!(challenge(&headers).contains("invalid_token"));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not a JWT")
    );
    assert_eq!(reached.load(Ordering::Relaxed), 0);
    assert_eq!(s.op.counts().await["token_exchange"], 0);

    // Passed through, the verifying layer behind decides.
    let edge = s.service_b().layer(PhantomTokenLayer::new(
        s.exchange().pass_through_jwts().build().unwrap(),
    ));
    let (status, _, claims) = send(&edge, request(&jwt)).await;
    assert_eq!(status, 200);
    assert_eq!(claims["sub"], "edge-app");
    assert!(claims.get("act").is_none(), "not exchanged");
    assert_eq!(s.op.counts().await["token_exchange"], 0);
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_mode_validates_and_puts_the_claims_in_the_extensions() {
    let Some(s) = setup() else { return };
    let app = Router::new().route(
        "/whoami",
        get(
            |Extension(claims): Extension<Introspected>, headers: http::HeaderMap| async move {
                Json(json!({
                    "subject": claims.subject(),
                    "client_id": claims.client_id(),
                    "forwarded_authorization": headers.contains_key("authorization"),
                }))
            },
        ),
    );
    let sts = || StsClient::new(&s.op.token_endpoint(), "gateway", s.gateway_auth.clone()).unwrap();
    let endpoint = s.op.introspection_endpoint();
    let keys = KeySource::discover(&s.op.issuer).unwrap().build().unwrap();
    let modes = [
        ("RFC 7662 JSON", Gateway::introspection(sts(), &endpoint)),
        (
            "RFC 9701 JWT",
            Gateway::introspection(sts(), &endpoint)
                .jwt_introspection_responses(&s.op.issuer, keys),
        ),
    ];
    for (mode, builder) in modes {
        let gateway = builder.build().unwrap();
        let edge = app.clone().layer(PhantomTokenLayer::new(gateway.clone()));
        let opaque = s.opaque_token().await;
        let (status, _, body) = send(&edge, request(&opaque)).await;
        assert_eq!(status, 200, "{mode}: {body}");
        assert_eq!(body["subject"], "edge-app", "{mode}");
        assert_eq!(body["forwarded_authorization"], false, "{mode}");
        for _ in 0..10 {
            assert_eq!(send(&edge, request(&opaque)).await.0, 200);
        }
        assert_eq!(gateway.metrics().misses, 1, "{mode}: cached");

        s.op.revoke("edge-app", SECRET, &opaque).await;
        let revoked_fresh = s.opaque_token().await;
        s.op.revoke("edge-app", SECRET, &revoked_fresh).await;
        assert_eq!(send(&edge, request(&revoked_fresh)).await.0, 401, "{mode}");
        assert_eq!(send(&edge, request("no-such-token")).await.0, 401, "{mode}");
    }

    // A signed answer from someone else's keys is not believed: 503.
    let impostor = svcauth_jwks::KeyRing::new(SigningKey::generate(Algorithm::ES256).unwrap());
    let other_keys =
        KeySource::fixed(svcauth_jwks::KeySet::from_jwks(impostor.state().jwks(), 65536).unwrap());
    let gateway = Gateway::introspection(sts(), &endpoint)
        .jwt_introspection_responses(&s.op.issuer, other_keys)
        .build()
        .unwrap();
    let edge = app.layer(PhantomTokenLayer::new(gateway));
    let (status, _, _) = send(&edge, request(&s.opaque_token().await)).await;
    assert_eq!(status, 503);
}
