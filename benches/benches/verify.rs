//! Inbound verification: the verification-cache hit, the uncached path and a
//! bare jsonwebtoken `decode` with the same key, in the same groups so each
//! is read as a ratio; and the whole layer in an axum Router against a bare
//! Router.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use jsonwebtoken::{DecodingKey, Validation, decode, jwk};
use serde_json::json;
use svcauth_core::Algorithm;
use svcauth_jwks::{KeySet, KeySource, SigningKey};
use svcauth_verify::{Verifier, VerifyLayer};
use tower::ServiceExt;

const AUD: &str = "https://b.internal";
const ISS: &str = "https://a.internal";

fn token(key: &SigningKey) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims =
        json!({ "iss": ISS, "sub": ISS, "aud": AUD, "iat": now, "exp": now + 600, "jti": "bench" });
    key.sign_jws(claims.to_string().as_bytes()).unwrap()
}

fn verifier(key: &SigningKey, cache: usize) -> Verifier {
    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    let keys = KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 65536).unwrap());
    Verifier::builder(AUD)
        .trust(ISS, keys)
        .cache_capacity(cache)
        .build()
        .unwrap()
}

fn verification(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let key = SigningKey::generate(alg).unwrap();
        let token = token(&key);
        let cached = verifier(&key, 1000);
        rt.block_on(cached.verify(&token)).unwrap();
        let uncached = verifier(&key, 0);
        let jwk: jwk::Jwk =
            serde_json::from_value(serde_json::to_value(key.public_jwk()).unwrap()).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(alg.as_str().parse().unwrap());
        validation.set_audience(&[AUD]);
        validation.set_issuer(&[ISS]);

        let mut group = c.benchmark_group(format!("verify/{alg}"));
        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                decode::<serde_json::Value>(black_box(&token), &decoding, &validation).unwrap()
            })
        });
        group.bench_function("svcauth_uncached", |b| {
            b.to_async(&rt)
                .iter(|| async { uncached.verify(black_box(&token)).await.unwrap() })
        });
        group.bench_function("svcauth_cache_hit", |b| {
            b.iter(|| cached.cached(black_box(&token)).unwrap())
        });
        group.finish();
    }
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let token = format!("Bearer {}", token(&key));
    let bare: Router = Router::new().route("/", get(|| async { "ok" }));
    let verified = bare.clone().layer(VerifyLayer::new(verifier(&key, 1000)));
    let request = |auth: &str| {
        Request::get("/")
            .header("authorization", auth)
            .body(Body::empty())
            .unwrap()
    };

    let mut group = c.benchmark_group("layer/EdDSA");
    group.bench_function("bare_router", |b| {
        b.to_async(&rt)
            .iter(|| async { bare.clone().oneshot(request(&token)).await.unwrap() })
    });
    group.bench_function("verify_layer_cache_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { verified.clone().oneshot(request(&token)).await.unwrap() })
    });
    group.finish();
}

criterion_group!(benches, verification, layer);
criterion_main!(benches);
