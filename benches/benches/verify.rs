//! Inbound verification: the verification-cache hit, the uncached path, a
//! bare jsonwebtoken `decode` and jwt-authorizer's `check_auth` with the same
//! key, in the same groups so each is read as a ratio; and the whole layer in
//! an axum Router against a bare Router, beside jwt-authorizer's layer in its
//! own (axum 0.7) Router, for each algorithm; and a cache hit with the
//! deny-list checked (in memory, and mirrored from a real redis-server).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use jsonwebtoken::{DecodingKey, Validation, decode, jwk};
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer, RegisteredClaims};
use serde_json::json;
use std::sync::Arc;
use svcauth_core::Algorithm;
use svcauth_jwks::{KeySet, KeySource, SigningKey};
use svcauth_verify::{MemoryRevocationStore, RevocationStore, Verifier, VerifyLayer};
use tower::{Layer, ServiceExt};

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

/// jwt-authorizer with the same public key as a local JWKS, checking the
/// same `iss` and `aud` (and, by default, `exp` and `nbf`).
fn jwt_authorizer(rt: &tokio::runtime::Runtime, key: &SigningKey) -> Authorizer<RegisteredClaims> {
    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    rt.block_on(
        JwtAuthorizer::<RegisteredClaims>::from_jwks_text(&jwks)
            .validation(jwt_authorizer::Validation::new().aud(&[AUD]).iss(&[ISS]))
            .build(),
    )
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
        let peer = jwt_authorizer(&rt, &key);
        rt.block_on(peer.check_auth(&token)).unwrap();

        let mut group = c.benchmark_group(format!("verify/{alg}"));
        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                decode::<serde_json::Value>(black_box(&token), &decoding, &validation).unwrap()
            })
        });
        group.bench_function("jwt_authorizer_check_auth", |b| {
            b.to_async(&rt)
                .iter(|| async { peer.check_auth(black_box(&token)).await.unwrap() })
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
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let key = SigningKey::generate(alg).unwrap();
        let token = format!("Bearer {}", token(&key));
        let bare: Router = Router::new().route("/", get(|| async { "ok" }));
        // What any tower layer costs in an axum Router (a clone of the inner
        // route per request), so the part that is svcauth's own is visible.
        let noop = bare
            .clone()
            .layer(tower::util::MapRequestLayer::new(|r: Request<Body>| r));
        let cached = bare.clone().layer(VerifyLayer::new(verifier(&key, 1000)));
        // The same layer wrapped around the whole Router instead of each
        // route (no per-route clone of the layer's service).
        let around = VerifyLayer::new(verifier(&key, 1000)).layer(bare.clone());
        // Cache capacity 0: every request is a first sight of its token.
        let uncached = bare.clone().layer(VerifyLayer::new(verifier(&key, 0)));
        let bare07: axum07::Router =
            axum07::Router::new().route("/", axum07::routing::get(|| async { "ok" }));
        let peer = bare07
            .clone()
            .layer([jwt_authorizer(&rt, &key)].into_layer());
        let request = || {
            Request::get("/")
                .header("authorization", &token)
                .body(Body::empty())
                .unwrap()
        };
        let request07 = || {
            Request::get("/")
                .header("authorization", &token)
                .body(axum07::body::Body::empty())
                .unwrap()
        };
        for (router, name) in [(&cached, "cached"), (&uncached, "uncached")] {
            let status = rt
                .block_on(router.clone().oneshot(request()))
                .unwrap()
                .status();
            assert_eq!(status, 200, "svcauth {name} refused the token");
        }
        let status = rt
            .block_on(peer.clone().oneshot(request07()))
            .unwrap()
            .status();
        assert_eq!(status, 200, "jwt-authorizer refused the token");

        let mut group = c.benchmark_group(format!("layer/{alg}"));
        // The routers of the same type (axum 0.8, layered or not).
        for (name, router) in [
            ("bare_router", &bare),
            ("noop_layer", &noop),
            ("verify_layer_cache_hit", &cached),
            ("verify_layer_first_sight", &uncached),
        ] {
            group.bench_function(name, |b| {
                b.to_async(&rt)
                    .iter(|| async { router.clone().oneshot(request()).await.unwrap() })
            });
        }
        group.bench_function("verify_layer_around_router", |b| {
            b.to_async(&rt)
                .iter(|| async { around.clone().oneshot(request()).await.unwrap() })
        });
        group.bench_function("bare_router_axum07", |b| {
            b.to_async(&rt)
                .iter(|| async { bare07.clone().oneshot(request07()).await.unwrap() })
        });
        group.bench_function("jwt_authorizer_layer", |b| {
            b.to_async(&rt)
                .iter(|| async { peer.clone().oneshot(request07()).await.unwrap() })
        });
        group.finish();
    }
}

/// Target 10: a cache hit with revocation checked costs what one without
/// does. The in-memory store and the Redis store's mirror (against a real
/// redis-server) keep the deny-list in the process: a hit compares the
/// entry's deny-list generation with the current one and asks nothing.
fn revocation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let token = token(&key);
    let with = |store: Arc<dyn RevocationStore>| {
        let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
        let keys = KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 65536).unwrap());
        let verifier = Verifier::builder(AUD)
            .trust(ISS, keys)
            .revocation_store(store)
            .build()
            .unwrap();
        rt.block_on(verifier.verify(&token)).unwrap();
        verifier
    };
    let plain = verifier(&key, 1000);
    rt.block_on(plain.verify(&token)).unwrap();
    let memory = with(Arc::new(MemoryRevocationStore::new(
        svcauth_core::system_clock(),
    )));
    let redis =
        svcauth_tests::RedisServer::start().expect("redis-server (cargo xtask bench installs it)");
    let stores = rt
        .block_on(svcauth_redis::RedisStores::connect(
            svcauth_redis::RedisConfig::new(&redis.url()),
        ))
        .unwrap();
    let mirrored = with(Arc::new(stores.revocation()));
    let mut group = c.benchmark_group("revocation/EdDSA");
    group.bench_function("cache_hit_without_revocation", |b| {
        b.iter(|| plain.cached(black_box(&token)).unwrap())
    });
    group.bench_function("cache_hit_memory_revocation", |b| {
        b.iter(|| memory.cached(black_box(&token)).unwrap())
    });
    group.bench_function("cache_hit_redis_mirror", |b| {
        b.iter(|| mirrored.cached(black_box(&token)).unwrap())
    });
    group.finish();
    drop(redis);
}

criterion_group!(benches, verification, layer, revocation);
criterion_main!(benches);
