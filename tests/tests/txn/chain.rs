//! gateway → A → B → C on loopback: the gateway binary swaps the outside
//! client's opaque token and mints the Txn-Token; A, B and C each verify
//! their caller's service token and the Txn-Token, and A and B pass it on
//! through the signing layer, byte for byte. C sees the user and the
//! request that entered at the gateway; each hop's service token names
//! its immediate caller; nothing leaves the trust domain.

use std::process::Stdio;

use axum::extract::State;
use axum::routing::post;
use svcauth_core::body_sha256;
use svcauth_sign::Signer;
use svcauth_tests::{Example, JsonServer, free_port, unix_now};

use super::*;

const AS_ISS: &str = "https://as.example";
const A_AUD: &str = "https://a.internal";
const B_ISS: &str = "https://b.internal";
const C_AUD: &str = "https://c.internal";
const GATEWAY_WORKLOAD: &str = "https://gateway.example.org";

/// The authorization server: `ref-alice` is exchanged for a JWT about
/// alice, for A, acting: the gateway.
async fn authorization_server(key: Arc<SigningKey>) -> String {
    let token = post(move |body: String| {
        let key = key.clone();
        async move {
            if !body.contains("subject_token=ref-alice") {
                let error = json!({ "error": "invalid_grant" });
                return (StatusCode::BAD_REQUEST, axum::Json(error));
            }
            let now = unix_now();
            let claims = json!({
                "iss": AS_ISS, "sub": "alice", "aud": A_AUD, "iat": now, "exp": now + 300,
                "jti": format!("{now}"), "scope": "orders.read orders.write",
                "tenant": "blue", "roles": ["buyer"], "client_id": "mobile-app",
                "act": { "sub": "gateway" },
            });
            let jwt = key.sign_jws(claims.to_string().as_bytes()).unwrap();
            (
                StatusCode::OK,
                axum::Json(json!({
                    "access_token": jwt, "token_type": "Bearer", "expires_in": 300,
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                })),
            )
        }
    });
    let app = Router::new().route("/token", token);
    format!("http://{}/token", svcauth_tests::serve(app).await)
}

/// What a hop says: its caller, the transaction, and what the next said.
fn hop_report(caller: &Caller, txn: &Transaction, next: Value) -> Value {
    json!({
        "caller": caller.caller(),
        "sub": caller.sub(),
        "txn": serde_json::from_slice::<Value>(txn.raw_json()).unwrap(),
        "txn_sha256": body_sha256(txn.token().header_value().as_bytes()),
        "next": next,
    })
}

#[derive(Clone)]
struct Hop {
    signer: Signer,
    http: reqwest::Client,
    next: String,
    outside: Option<String>,
}

/// A hop: verifies, then calls `next` (and `outside`, if any) with its own
/// signer, and reports.
async fn relay(State(hop): State<Hop>, caller: Caller, txn: Transaction) -> axum::Json<Value> {
    let next = hop.signer.sign(hop.http.get(&hop.next)).await.unwrap();
    let next: Value = next.send().await.unwrap().json().await.unwrap();
    let mut report = hop_report(&caller, &txn, next);
    if let Some(outside) = &hop.outside {
        let sent = hop.signer.sign(hop.http.get(outside)).await.unwrap();
        report["outside"] = sent.send().await.unwrap().json().await.unwrap();
    }
    axum::Json(report)
}

fn verifier(aud: &str, iss: &str, keys: KeySource, gateway: &str) -> Verifier {
    let txn_keys = KeySource::remote(&format!("{gateway}/txn-token-service/jwks.json"))
        .unwrap()
        .build()
        .unwrap();
    Verifier::builder(aud)
        .trust(iss, keys)
        .trust_txn_tokens(DOMAIN, gateway, txn_keys)
        .build()
        .unwrap()
}

fn jwks_of(ring: &KeyRing) -> Value {
    serde_json::from_slice(ring.state().jwks()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_service_of_a_chain_knows_who_asked_and_through_which_path() {
    let as_key = Arc::new(SigningKey::generate(Algorithm::ES256).unwrap());
    let as_jwks = JsonServer::start(json!({ "keys": [as_key.public_jwk()] })).await;
    let token_endpoint = authorization_server(as_key).await;
    let gateway_port = free_port();
    let gateway_url = format!("http://127.0.0.1:{gateway_port}");

    // Anything outside the trust domain: says whether a Txn-Token came.
    let outside = Router::new().fallback(|headers: http::HeaderMap| async move {
        axum::Json(json!({ "txn_token_seen": headers.contains_key("txn-token") }))
    });
    let outside = format!("http://{}/", svcauth_tests::serve(outside).await);

    let (ring_a, ring_b) = (
        KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap()),
        KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap()),
    );
    let (jwks_a, jwks_b) = (
        JsonServer::start(jwks_of(&ring_a)).await,
        JsonServer::start(jwks_of(&ring_b)).await,
    );
    let remote = |server: &JsonServer| KeySource::remote(&server.url()).unwrap().build().unwrap();

    // Every listener first, the gateway next, and the services (whose key
    // sources fetch the gateway's JWKS) once it answers.
    let bind = || async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() };
    let (a_listener, b_listener, c_listener) = (bind().await, bind().await, bind().await);
    let origin = |l: &tokio::net::TcpListener| format!("http://{}", l.local_addr().unwrap());
    let (a_origin, b_origin, c_origin) = (
        origin(&a_listener),
        origin(&b_listener),
        origin(&c_listener),
    );
    let secret = std::env::temp_dir().join(format!("svcauth-txn-secret-{gateway_port}"));
    std::fs::write(&secret, "a-client-secret-of-at-least-32-bytes!").unwrap();
    let args = [
        "--upstream",
        &a_origin,
        "--token-endpoint",
        &token_endpoint,
        "--client-id",
        "gateway",
        "--client-secret-file",
        secret.to_str().unwrap(),
        "--audience",
        A_AUD,
        "--txn-token-service",
        "--trust-domain",
        DOMAIN,
        "--txn-workload",
        GATEWAY_WORKLOAD,
    ];
    let gateway = Example::spawn_on(gateway_port, "gateway", &args, Stdio::inherit())
        .ready(|body| body["ready"] == true)
        .await;

    // C: the end of the chain.
    let c = Router::new()
        .route(
            "/orders/42",
            get(|caller: Caller, txn: Transaction| async move {
                axum::Json(hop_report(&caller, &txn, Value::Null))
            }),
        )
        .layer(
            VerifyLayer::new(verifier(C_AUD, B_ISS, remote(&jwks_b), &gateway_url))
                .require_txn_token(),
        );
    tokio::spawn(async move { axum::serve(c_listener, c).await });
    // B calls C.
    let domain = [b_origin.as_str(), c_origin.as_str()];
    let signer_b = Signer::self_signed(B_ISS, ring_b)
        .unwrap()
        .audience(&c_origin, C_AUD)
        .propagate_txn_tokens(DOMAIN, domain)
        .build()
        .unwrap();
    let hop_b = Hop {
        http: reqwest::Client::builder()
            .redirect(signer_b.redirect_policy())
            .build()
            .unwrap(),
        signer: signer_b,
        next: format!("{c_origin}/orders/42"),
        outside: None,
    };
    let b = Router::new()
        .route("/orders/42", get(relay))
        .layer(
            VerifyLayer::new(verifier(B_AUD, A_ISS, remote(&jwks_a), &gateway_url))
                .require_txn_token(),
        )
        .with_state(hop_b);
    tokio::spawn(async move { axum::serve(b_listener, b).await });
    // A calls B, and somewhere outside.
    let signer_a = Signer::self_signed(A_ISS, ring_a)
        .unwrap()
        .audience(&b_origin, B_AUD)
        .propagate_txn_tokens(DOMAIN, domain)
        .build()
        .unwrap();
    let hop_a = Hop {
        http: reqwest::Client::builder()
            .redirect(signer_a.redirect_policy())
            .build()
            .unwrap(),
        signer: signer_a,
        next: format!("{b_origin}/orders/42"),
        outside: Some(outside),
    };
    let as_keys = KeySource::remote(&as_jwks.url()).unwrap().build().unwrap();
    let a = Router::new()
        .route("/orders/42", get(relay))
        .layer(VerifyLayer::new(verifier(A_AUD, AS_ISS, as_keys, &gateway_url)).require_txn_token())
        .with_state(hop_a);
    tokio::spawn(async move { axum::serve(a_listener, a).await });

    let http = reqwest::Client::new();
    let call = |forged: Option<&str>| {
        let mut request = http.get(gateway.url("/orders/42")).bearer_auth("ref-alice");
        if let Some(forged) = forged {
            request = request.header("txn-token", forged);
        }
        request.send()
    };
    let response = call(None).await.unwrap();
    assert_eq!(response.status(), 200);
    let at_a: Value = response.json().await.unwrap();
    let at_b = &at_a["next"];
    let at_c = &at_b["next"];

    // C knows who asked, for what, from where and through which path.
    let txn = &at_c["txn"];
    assert_eq!(txn["sub"], "alice");
    assert_eq!(txn["aud"], DOMAIN);
    assert_eq!(txn["iss"], gateway_url.as_str());
    assert_eq!(txn["scope"], "orders.read orders.write");
    assert_eq!(txn["req_wl"], GATEWAY_WORKLOAD);
    assert_eq!(txn["tctx"], json!({ "tenant": "blue", "roles": ["buyer"] }));
    assert_eq!(txn["rctx"]["req_ip"], "127.0.0.1");
    assert_eq!(txn["rctx"]["req_method"], "GET");
    assert_eq!(txn["rctx"]["req_path"], "/orders/42");
    // An exchanged JWT's client_id is the gateway's own: not the client.
    assert!(txn["rctx"].get("client_id").is_none());
    // One token, unmodified, at every hop.
    assert_eq!(at_a["txn_sha256"], at_c["txn_sha256"]);
    assert_eq!(at_b["txn_sha256"], at_c["txn_sha256"]);
    assert_eq!(at_a["txn"]["txn"], txn["txn"]);
    // Each hop's service token names the immediate caller.
    assert_eq!(
        (at_a["caller"].as_str(), at_a["sub"].as_str()),
        (Some("gateway"), Some("alice"))
    );
    assert_eq!(at_b["caller"], A_ISS);
    assert_eq!(at_c["caller"], B_ISS);
    // Nothing went outside the trust domain.
    assert_eq!(at_a["outside"]["txn_token_seen"], false);

    // A Txn-Token from outside is never let in: the gateway's own replaces it.
    let forged = "eyJhbGciOiJub25lIiwidHlwIjoidHhudG9rZW4rand0In0.e30.";
    let at_a: Value = call(Some(forged)).await.unwrap().json().await.unwrap();
    assert_ne!(at_a["txn_sha256"], body_sha256(forged.as_bytes()));
    assert_eq!(at_a["next"]["next"]["txn"]["sub"], "alice");
    // Each request is its own transaction.
    assert_ne!(at_a["txn"]["txn"], txn["txn"]);

    // The published keys are the ones the chain verified with; an unknown
    // opaque token gets no transaction.
    let response = http
        .get(gateway.url("/orders/42"))
        .bearer_auth("ref-mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let _ = std::fs::remove_file(secret);
}

#[tokio::test]
async fn a_redirect_out_of_the_trust_domain_is_not_followed_with_the_txn_token() {
    let outside = Router::new().fallback(|headers: http::HeaderMap| async move {
        axum::Json(json!({ "txn_token_seen": headers.contains_key("txn-token") }))
    });
    let outside = format!("http://{}/stolen", svcauth_tests::serve(outside).await);
    let bouncer = Router::new().fallback(move || {
        let to = outside.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", to)]) }
    });
    let bouncer = format!("http://{}", svcauth_tests::serve(bouncer).await);
    let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let signer = Signer::self_signed(A_ISS, ring)
        .unwrap()
        .audience(&bouncer, B_AUD)
        .propagate_txn_tokens(DOMAIN, [bouncer.as_str()])
        .build()
        .unwrap();
    let guarded = reqwest::Client::builder()
        .redirect(signer.redirect_policy())
        .build()
        .unwrap();
    let token = svcauth_core::txn::TxnToken::new(http::HeaderValue::from_static("a.b.c"), DOMAIN);
    let response = token
        .clone()
        .scope(async {
            signer
                .sign(guarded.get(&bouncer))
                .await
                .unwrap()
                .send()
                .await
                .unwrap()
        })
        .await;
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    // reqwest's own policy would have followed, header and all: why the
    // signer's policy exists.
    let naive = reqwest::Client::new();
    let followed: Value = token
        .scope(async {
            signer
                .sign(naive.get(&bouncer))
                .await
                .unwrap()
                .send()
                .await
                .unwrap()
        })
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(followed["txn_token_seen"], true);
}
