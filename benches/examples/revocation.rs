//! Target 10 of the benchmarks: revocation at cache-hit cost, against a
//! real redis-server started here.
//!
//! `revocation [--requests N] [--revocations R]` (default 100,000 and
//! 1,000): two replicas (each a `Verifier` behind its own `RedisStores`,
//! replay and revocation on Redis) verify N requests with cached tokens
//! and N/100 with tokens seen once, while Redis counts the commands it
//! serves (`INFO commandstats`); then R revocations are written through
//! one replica, and for each the time until the other one's mirror
//! enforces it is measured. Prints one JSON line.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use svcauth_benches::arg;
use svcauth_core::{Algorithm, Clock, SystemClock};
use svcauth_jwks::{KeySet, KeySource, SigningKey};
use svcauth_redis::{RedisConfig, RedisStores};
use svcauth_verify::{RevocationQuery, RevocationStore, Verifier};

const ISS: &str = "https://a.internal";
const AUD: &str = "https://b.internal";

/// Calls Redis served, by command, from `INFO commandstats`.
async fn command_calls(redis: &redis::Client) -> BTreeMap<String, u64> {
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

fn main() {
    let (requests, revocations) = (arg("--requests", 100_000), arg("--revocations", 1000));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis = svcauth_tests::RedisServer::start().expect("redis-server is installed");
    runtime.block_on(async {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
        let keys = KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 65536).unwrap());
        let replica = || async {
            let stores = RedisStores::connect(RedisConfig::new(&redis.url())).await.unwrap();
            let verifier = Verifier::builder(AUD)
                .trust(ISS, keys.clone())
                .replay_store(Arc::new(stores.replay()))
                .revocation_store(Arc::new(stores.revocation()))
                .build()
                .unwrap();
            (stores, verifier)
        };
        let ((one, v1), (two, v2)) = (replica().await, replica().await);
        let now = SystemClock.now_secs();
        let token = |jti: &str| {
            let claims = json!({ "iss": ISS, "sub": ISS, "aud": AUD, "iat": now, "exp": now + 600, "jti": jti });
            key.sign_jws(claims.to_string().as_bytes()).unwrap()
        };
        let cached = [token("cached-1"), token("cached-2")];
        let fresh: Vec<String> = (0..requests / 100).map(|i| token(&format!("fresh-{i}"))).collect();
        for t in &cached {
            v1.verify(t).await.unwrap();
            v2.verify(t).await.unwrap();
        }

        let client = redis::Client::open(redis.url()).unwrap();
        let before = command_calls(&client).await;
        let started = Instant::now();
        for i in 0..requests {
            let verifier = if i % 2 == 0 { &v1 } else { &v2 };
            verifier.verify(&cached[i % 2]).await.unwrap();
        }
        for (i, t) in fresh.iter().enumerate() {
            let verifier = if i % 2 == 0 { &v1 } else { &v2 };
            verifier.verify(t).await.unwrap();
        }
        let seconds = started.elapsed().as_secs_f64();
        let after = command_calls(&client).await;
        let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
        // The mirrors' own reads (the feed, its heartbeat) do not grow with
        // requests: they are counted apart, and measured alone below.
        let feed: u64 = ["xread", "xrevrange", "zrange"].iter().map(|c| delta(c)).sum();
        let info = ["info"].iter().map(|c| delta(c)).sum::<u64>();
        let all: u64 = after.keys().map(|c| delta(c)).sum();
        let request_path = all - feed - info;
        let verified = requests + fresh.len();
        // Two idle seconds: what the mirrors cost Redis with no traffic.
        let idle_before = command_calls(&client).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_after = command_calls(&client).await;
        let xread = |m: &BTreeMap<String, u64>| *m.get("xread").unwrap_or(&0);
        let idle_reads = xread(&idle_after) - xread(&idle_before);

        let (writer, reader) = (one.revocation(), two.revocation());
        let mut delays = Vec::with_capacity(revocations);
        for i in 0..revocations {
            let jti = format!("revoked-{i}");
            let query = RevocationQuery { iss: ISS, jti: Some(&jti), kid: None, exp: now + 600 };
            let started = Instant::now();
            writer.revoke_jti(ISS, &jti, now + 600).await.unwrap();
            while reader.is_revoked(query).await != Ok(true) {
                assert!(started.elapsed() < Duration::from_secs(5), "revocation {i} never arrived");
                tokio::time::sleep(Duration::from_micros(50)).await;
            }
            delays.push(started.elapsed().as_micros() as u64);
        }
        delays.sort_unstable();
        let out = json!({
            "verified": verified,
            "cached": requests,
            "seen_once": fresh.len(),
            "redis_ops_request_path": request_path,
            "redis_ops_per_verified_request": request_path as f64 / verified as f64,
            "mirror_reads_per_second_per_replica": idle_reads as f64 / 2.0 / 2.0,
            "seconds": seconds,
            "revocations": revocations,
            "propagation_median_us": delays[delays.len() / 2],
            "propagation_p99_us": delays[delays.len() * 99 / 100],
            "propagation_max_us": delays[delays.len() - 1],
            "staleness_bound_ms": svcauth_redis::DEFAULT_STALENESS.as_millis() as u64,
        });
        println!("{out}");
    });
}
