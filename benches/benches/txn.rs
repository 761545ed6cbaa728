//! Transaction Tokens on the request path: a request with a service token
//! and a Txn-Token through the verifying layer, both cache hits, against the
//! same request with the service token only (same verifier, same router);
//! and the signing layer passing the current Txn-Token on, against the same
//! call outside any transaction.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request};
use serde_json::json;
use svcauth_core::Algorithm;
use svcauth_gateway::txn::{TransactionTokenService, TxnGrant};
use svcauth_jwks::{KeyRing, KeySet, KeySource, SigningKey};
use svcauth_verify::{Verifier, VerifyLayer};
use tower::{Layer, ServiceExt};

const AUD: &str = "https://b.internal";
const ISS: &str = "https://a.internal";
const DOMAIN: &str = "example.org";
const TTS: &str = "https://tts.example.org";

fn fixed(jwks: &[u8]) -> KeySource {
    KeySource::fixed(KeySet::from_jwks(jwks, 65536).unwrap())
}

fn verification(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        json!({ "iss": ISS, "sub": ISS, "aud": AUD, "iat": now, "exp": now + 600, "jti": "bench" });
    let service_token = format!(
        "Bearer {}",
        key.sign_jws(claims.to_string().as_bytes()).unwrap()
    );
    // A Txn-Token as the gateway mints one: a user, a scope, a tenant and
    // roles, the client's address, method and path.
    let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let tts = TransactionTokenService::builder(DOMAIN, TTS, ring.clone())
        .lifetime(std::time::Duration::from_secs(600))
        .build()
        .unwrap();
    let mut grant = TxnGrant::new(
        "alice",
        "orders.read orders.write",
        "https://gateway.example.org",
    );
    grant.tctx.insert("tenant".into(), json!("blue"));
    grant.tctx.insert("roles".into(), json!(["buyer"]));
    grant.rctx.insert("req_ip".into(), json!("203.0.113.7"));
    grant.rctx.insert("req_method".into(), json!("GET"));
    grant.rctx.insert("req_path".into(), json!("/orders/42"));
    let txn_token = rt.block_on(tts.mint(grant)).unwrap();

    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    let verifier = Verifier::builder(AUD)
        .trust(ISS, fixed(jwks.as_bytes()))
        .trust_txn_tokens(DOMAIN, TTS, fixed(ring.state().jwks()))
        .build()
        .unwrap();
    let bare: Router = Router::new().route("/", get(|| async { "ok" }));
    let layered = VerifyLayer::new(verifier).layer(bare);
    // Header values made once, as hyper hands them over already parsed:
    // the loop measures the layer, not the validation of header bytes.
    let service_token = HeaderValue::from_str(&service_token).unwrap();
    let txn_token = HeaderValue::from_str(&txn_token).unwrap();
    let request = |txn: bool| {
        let mut request = Request::get("/").header("authorization", service_token.clone());
        if txn {
            request = request.header(svcauth_core::txn::HEADER_NAME, txn_token.clone());
        }
        request.body(Body::empty()).unwrap()
    };
    for txn in [false, true] {
        let status = rt
            .block_on(layered.clone().oneshot(request(txn)))
            .unwrap()
            .status();
        assert_eq!(status, 200, "refused (txn: {txn})");
    }
    let plain_verifier = Verifier::builder(AUD)
        .trust(ISS, fixed(jwks.as_bytes()))
        .build()
        .unwrap();
    let plain =
        VerifyLayer::new(plain_verifier).layer(Router::new().route("/", get(|| async { "ok" })));
    let mut group = c.benchmark_group("txn/EdDSA");
    // The same request to a verifier that does not trust Txn-Tokens: what
    // the header itself costs (built, carried, dropped).
    group.bench_function("txn_header_not_verified", |b| {
        b.to_async(&rt)
            .iter(|| async { plain.clone().oneshot(request(true)).await.unwrap() })
    });
    group.bench_function("service_token_only", |b| {
        b.to_async(&rt)
            .iter(|| async { layered.clone().oneshot(request(false)).await.unwrap() })
    });
    group.bench_function("service_and_txn_token", |b| {
        b.to_async(&rt)
            .iter(|| async { layered.clone().oneshot(request(true)).await.unwrap() })
    });
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
