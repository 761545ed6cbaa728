//! Scaling of the cached paths from 1 to 2 threads: each thread runs the
//! same number of operations, so equal times per iteration mean twice the
//! throughput (the ratio is 2 x t(1 thread) / t(2 threads)). A lock or a
//! contended cache line on the hot path would show here.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use svcauth_core::Algorithm;
use svcauth_jwks::{KeyRing, KeySet, KeySource, SigningKey};
use svcauth_sign::Signer;
use svcauth_verify::Verifier;

fn on_threads(threads: usize, iters: u64, work: impl Fn() + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..iters {
                    work();
                }
            });
        }
    });
    start.elapsed()
}

fn scaling(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({ "iss": "https://a.internal", "sub": "https://a.internal", "aud": "https://b.internal",
        "iat": now, "exp": now + 600, "jti": "x" });
    let token = key.sign_jws(claims.to_string().as_bytes()).unwrap();
    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    let verifier = Verifier::builder("https://b.internal")
        .trust(
            "https://a.internal",
            KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 65536).unwrap()),
        )
        .build()
        .unwrap();
    rt.block_on(verifier.verify(&token)).unwrap();

    let signer = Signer::self_signed("https://a.internal", KeyRing::new(key))
        .unwrap()
        .audience("https://b.internal", "https://b.internal")
        .build()
        .unwrap();
    rt.block_on(signer.token("https://b.internal")).unwrap();

    let mut group = c.benchmark_group("concurrency");
    for threads in [1, 2] {
        // The machine's own ceiling: work that shares nothing (hashing the
        // token into a thread's own state), for the ideal ratio in this run.
        group.bench_function(format!("baseline_shared_nothing/{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || {
                    use std::hash::{BuildHasher, Hasher};
                    let mut h =
                        std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default()
                            .build_hasher();
                    h.write(black_box(token.as_bytes()));
                    black_box(h.finish());
                })
            })
        });
        group.bench_function(format!("verify_cache_hit/{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || {
                    drop(black_box(verifier.cached(black_box(&token))))
                })
            })
        });
        group.bench_function(format!("sign_cache_hit/{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || {
                    drop(black_box(
                        signer.cached_authorization(black_box("https://b.internal")),
                    ))
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, scaling);
criterion_main!(benches);
