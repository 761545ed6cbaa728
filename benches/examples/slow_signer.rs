//! Target 9 of the benchmarks: a signing key that takes 20 ms per signature
//! (as an HSM or a cloud KMS does) costs calls nothing while a valid token
//! is cached, because tokens are renewed in the background.
//!
//! `slow_signer [--rounds R] [--secs S]` (default 6 and 3) runs the same
//! calls through a `Signer` whose key is in memory and through one whose
//! key answers after 20 ms, in alternating rounds: concurrent clients call
//! a `VerifyLayer`-protected service on loopback over HTTP. Tokens live 10 s
//! and are renewed from 10 % of their remaining life, so every round of the
//! slow key renews many of them, each after 20 ms, while calls go on. It
//! prints one JSON line: each mode's p50 and p99 (the median over rounds)
//! and the slow key's signatures during the measured rounds.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::json;
use svcauth_benches::arg;
use svcauth_core::Algorithm;
use svcauth_jwks::{Jwk, JwsSigner, KeyRing, KeySet, KeySource, SignatureFuture, SigningKey};
use svcauth_sign::{SelfSigned, Signer};
use svcauth_verify::{Verifier, VerifyLayer};

const ISS: &str = "https://a.internal";
const AUD: &str = "https://b.internal";
const CLIENTS: usize = 8;
const DELAY: Duration = Duration::from_millis(20);

/// An in-memory key behind a 20 ms wait: a remote signer's latency.
struct Slow {
    key: SigningKey,
    signatures: Arc<AtomicU64>,
}

impl JwsSigner for Slow {
    fn kid(&self) -> &str {
        self.key.kid()
    }
    fn alg(&self) -> Algorithm {
        self.key.algorithm()
    }
    fn public_jwk(&self) -> Jwk {
        self.key.public_jwk()
    }
    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(DELAY).await;
            self.signatures.fetch_add(1, Ordering::Relaxed);
            self.key.sign(signing_input)
        })
    }
    fn backend(&self) -> &'static str {
        "slow"
    }
}

fn signer(ring: KeyRing, origin: &str) -> Signer {
    let source = SelfSigned::new(ISS, ring)
        .unwrap()
        .lifetime(Duration::from_secs(10))
        .unwrap();
    Signer::builder(source)
        .audience(origin, AUD)
        .refresh_at(0.1)
        .build()
        .unwrap()
}

/// `CLIENTS` tasks calling `url` for `secs`: every call's latency, in µs.
async fn round(signer: &Signer, url: &str, secs: u64) -> Vec<u64> {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (signer, url) = (signer.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let started = Instant::now();
                let response = signer
                    .sign(client.get(&url))
                    .await
                    .unwrap()
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                latencies.push(started.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    all
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn main() {
    let (rounds, secs) = (arg("--rounds", 6), arg("--secs", 3));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let signatures = Arc::new(AtomicU64::new(0));
        let memory = KeyRing::new(SigningKey::generate(Algorithm::ES256).unwrap());
        let slow = KeyRing::new(Slow {
            key: SigningKey::generate(Algorithm::ES256).unwrap(),
            signatures: signatures.clone(),
        });
        let jwks = json!({ "keys": [memory.signer().public_jwk(), slow.signer().public_jwk()] });
        let keys = KeySource::fixed(KeySet::from_jwks(jwks.to_string().as_bytes(), 65536).unwrap());
        let verifier = Verifier::builder(AUD).trust(ISS, keys).build().unwrap();
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(VerifyLayer::new(verifier));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("{origin}/");
        let modes = [("memory", signer(memory, &origin)), ("remote_20ms", signer(slow, &origin))];
        for (_, signer) in &modes {
            round(signer, &url, 1).await; // warm: connections, caches, first token
            // The premise is a warm cache: while the other mode's round
            // runs, this one's tokens are kept renewed, as live traffic
            // would keep them.
            let signer = signer.clone();
            tokio::spawn(async move {
                loop {
                    let _ = signer.token(AUD).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
        let before = signatures.load(Ordering::Relaxed);
        let mut p50 = [Vec::new(), Vec::new()];
        let mut p99 = [Vec::new(), Vec::new()];
        let mut calls = [0usize; 2];
        for _ in 0..rounds {
            for (i, (_, signer)) in modes.iter().enumerate() {
                let latencies = round(signer, &url, secs).await;
                p50[i].push(percentile(&latencies, 0.50));
                p99[i].push(percentile(&latencies, 0.99));
                calls[i] += latencies.len();
            }
        }
        let slow_signatures = signatures.load(Ordering::Relaxed) - before;
        let report = |i: usize| {
            json!({ "p50_us": median(p50[i].clone()), "p99_us": median(p99[i].clone()), "calls": calls[i],
                    "p99_rounds_us": p99[i] })
        };
        let out = json!({
            "rounds": rounds, "secs": secs, "clients": CLIENTS, "delay_ms": DELAY.as_millis() as u64,
            "memory": report(0), "remote_20ms": report(1), "remote_signatures": slow_signatures,
        });
        println!("{out}");
    });
}
