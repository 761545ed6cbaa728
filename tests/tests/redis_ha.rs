//! Past one Redis: a three-master Redis Cluster and a Sentinel-watched
//! primary with a replica, started here on loopback; and the revocation
//! mirror, which answers every verification without asking Redis.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use svcauth_core::{Clock, SystemClock};
use svcauth_redis::{RedisConfig, RedisStores};
use svcauth_tests::{RedisCluster, RedisSentinel, RedisServer, SENTINEL_SERVICE};
use svcauth_verify::{ErrorKind, RevocationQuery, RevocationStore};

#[path = "common/redis.rs"]
mod common;
use common::*;

/// Generous timeouts: a loaded CI machine must not turn slowness into a
/// failure here (the timeout's own behaviour is tested in redis.rs).
fn relaxed(config: RedisConfig, prefix: &str) -> RedisConfig {
    config.prefix(prefix).timeout(Duration::from_secs(2))
}

/// 1,000 bound tokens, each sent twice, concurrently, spread over two
/// replicas: exactly 1,000 accepted, every other answer `Replayed`.
async fn each_bound_token_once(config: impl Fn() -> RedisConfig) {
    let peer = peer();
    let one = verifier(&peer, &RedisStores::connect(config()).await.unwrap());
    let two = verifier(&peer, &RedisStores::connect(config()).await.unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let token = Arc::new(bound(&peer, &format!("bound-{i}")));
        for verifier in [one.clone(), two.clone()] {
            let token = token.clone();
            tasks.spawn(async move { verify_bound(&verifier, &token).await });
        }
    }
    let results = tasks.join_all().await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let others: Vec<_> = results
        .iter()
        .filter(|r| !matches!(r, Ok(()) | Err(ErrorKind::Replayed)))
        .collect();
    assert_eq!(accepted, 1000, "{others:?}");
    assert!(others.is_empty(), "{others:?}");
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_three_master_cluster_two_replicas_accept_each_bound_token_once() {
    let Some(cluster) = RedisCluster::start(0) else {
        return;
    };
    let prefix = prefix();
    each_bound_token_once(|| relaxed(RedisConfig::cluster(&cluster.urls()), &prefix)).await;
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel_two_replicas_accept_each_bound_token_once() {
    let Some(sentinel) = RedisSentinel::start() else {
        return;
    };
    let prefix = prefix();
    let url = sentinel.sentinel_url();
    each_bound_token_once(|| relaxed(RedisConfig::sentinel(&[&url], SENTINEL_SERVICE), &prefix))
        .await;
}

/// Revocations written through one replica, seen by the other's mirror:
/// the delay of each, sorted.
async fn propagation(config: impl Fn() -> RedisConfig, count: usize) -> Vec<Duration> {
    let writer = RedisStores::connect(config()).await.unwrap().revocation();
    let reader = RedisStores::connect(config()).await.unwrap().revocation();
    let mut delays = Vec::with_capacity(count);
    for i in 0..count {
        let jti = format!("revoked-{i}");
        let query = RevocationQuery {
            iss: ISS,
            jti: Some(&jti),
            kid: None,
            exp: SystemClock.now_secs() + 300,
        };
        let started = Instant::now();
        writer.revoke_jti(ISS, &jti, query.exp).await.unwrap();
        while reader.is_revoked(query).await != Ok(true) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "revocation {i} never arrived"
            );
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        delays.push(started.elapsed());
    }
    delays.sort();
    delays
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_the_other_replica_well_within_the_bound_on_a_cluster_too() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let prefix = prefix();
    let single = propagation(|| relaxed(RedisConfig::new(&redis.url()), &prefix), 200).await;
    let Some(cluster) = RedisCluster::start(0) else {
        return;
    };
    let clustered = propagation(
        || relaxed(RedisConfig::cluster(&cluster.urls()), &prefix),
        200,
    )
    .await;
    for (name, delays) in [("single", &single), ("cluster", &clustered)] {
        let (median, max) = (delays[delays.len() / 2], delays[delays.len() - 1]);
        eprintln!("{name}: median {median:?}, max {max:?}");
        assert!(max < svcauth_redis::DEFAULT_STALENESS, "{name}: {max:?}");
    }
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_is_refused_on_the_first_request_after_its_revocation_arrives() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let peer = peer();
    let prefix = prefix();
    let config = || relaxed(RedisConfig::new(&redis.url()), &prefix);
    let (a, b) = (
        RedisStores::connect(config()).await.unwrap(),
        RedisStores::connect(config()).await.unwrap(),
    );
    let (one, two) = (verifier(&peer, &a), verifier(&peer, &b));
    let token = token(&peer, "cached", None);
    for verifier in [&one, &two] {
        assert!(verifier.verify(&token).await.is_ok());
        assert!(
            verifier.cached(&token).is_some(),
            "a cache hit asks Redis nothing"
        );
    }
    a.revocation()
        .revoke_jti(ISS, "cached", SystemClock.now_secs() + 300)
        .await
        .unwrap();
    let started = Instant::now();
    while two.verify(&token).await.is_ok() {
        assert!(
            started.elapsed() < svcauth_redis::DEFAULT_STALENESS,
            "not enforced within the bound"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for verifier in [&one, &two] {
        assert!(verifier.cached(&token).is_none());
        assert_eq!(
            verifier.verify(&token).await.unwrap_err().kind(),
            ErrorKind::Revoked
        );
    }
    // Other tokens keep their cache hits once verified again.
    let other = self::token(&peer, "other", None);
    assert!(two.verify(&other).await.is_ok());
    assert!(two.cached(&other).is_some());
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_cut_off_past_the_bound_fails_closed_or_open_and_resyncs_what_it_missed() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let peer = peer();
    let prefix = prefix();
    let bound = Duration::from_millis(300);
    let config = |open: bool| {
        relaxed(RedisConfig::new(&redis.url()), &prefix)
            .revocation_staleness(bound)
            .revocation_fails_open(open)
    };
    let closed = RedisStores::connect(config(false)).await.unwrap();
    let open = RedisStores::connect(config(true)).await.unwrap();
    let (strict, lenient) = (verifier(&peer, &closed), verifier(&peer, &open));
    let token = token(&peer, "during-outage", None);
    assert!(strict.verify(&token).await.is_ok());

    redis.kill();
    tokio::time::sleep(bound * 2).await;
    assert_eq!(
        strict.verify(&token).await.unwrap_err().kind(),
        ErrorKind::StoreUnavailable
    );
    assert!(strict.cached(&token).is_none());
    assert!(
        lenient.verify(&token).await.is_ok(),
        "fails open as configured"
    );

    // Back, with a revocation that never went through the feed (as if its
    // message had been lost): the resynchronisation brings it.
    redis.restart();
    let started = Instant::now();
    while !closed.revocation().mirror_is_current() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the mirror never resynced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(strict.verify(&token).await.is_ok());
    let member = {
        // As the store names it: kind, then SHA-256 of issuer and id.
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{ISS}\nduring-outage").as_bytes(),
        );
        format!("jti:{}", svcauth_core::b64::encode(digest))
    };
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(format!("{prefix}{{revocations}}:list"))
        .arg(SystemClock.now_secs() + 300)
        .arg(&member)
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut raw)
        .await
        .unwrap();
    let started = Instant::now();
    while strict
        .verify(&token)
        .await
        .map(|_| ())
        .map_err(|e| e.kind())
        != Err(ErrorKind::Revoked)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the resync never brought the revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_fails_closed_admits_nothing_twice_and_recovers_by_itself() {
    let Some(mut sentinel) = RedisSentinel::start() else {
        return;
    };
    let peer = peer();
    let prefix = prefix();
    let url = sentinel.sentinel_url();
    let config = || {
        RedisConfig::sentinel(&[&url], SENTINEL_SERVICE)
            .prefix(&prefix)
            .timeout(Duration::from_millis(200))
    };
    let one = verifier(&peer, &RedisStores::connect(config()).await.unwrap());
    let two = verifier(&peer, &RedisStores::connect(config()).await.unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let token = bound(&peer, &format!("f-{i}"));
                let (a, b) = tokio::join!(verify_bound(&one, &token), verify_bound(&two, &token));
                outcomes.push((Instant::now(), a, b));
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            outcomes
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    sentinel.kill_primary();
    let started = Instant::now();
    while sentinel.primary_port() != sentinel.replica_port() {
        assert!(started.elapsed() < Duration::from_secs(30), "no failover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcomes = traffic.await.unwrap();

    let twice = outcomes
        .iter()
        .filter(|(_, a, b)| a.is_ok() && b.is_ok())
        .count();
    assert_eq!(twice, 0, "a bound token admitted twice");
    for (_, a, b) in &outcomes {
        for r in [a, b] {
            assert!(
                matches!(
                    r,
                    Ok(()) | Err(ErrorKind::Replayed | ErrorKind::StoreUnavailable)
                ),
                "{r:?}"
            );
        }
    }
    let unavailable: Vec<_> = outcomes
        .iter()
        .filter(|(_, a, b)| a.is_err() && b.is_err())
        .collect();
    assert!(
        !unavailable.is_empty(),
        "no request failed closed while no primary answered"
    );
    let recovered = outcomes
        .iter()
        .rev()
        .take_while(|(_, a, b)| a.is_ok() || b.is_ok())
        .last()
        .map(|(at, ..)| at.duration_since(killed))
        .expect("traffic recovered by itself");
    eprintln!(
        "failover: {} pairs, {} failed closed, traffic back {recovered:?} after the primary died",
        outcomes.len(),
        unavailable.len()
    );
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replica_acks_a_bound_token_waits_for_a_replica_and_fails_closed_without_one() {
    let Some(mut sentinel) = RedisSentinel::start() else {
        return;
    };
    let peer = peer();
    let url = sentinel.sentinel_url();
    let config = RedisConfig::sentinel(&[&url], SENTINEL_SERVICE)
        .prefix(&prefix())
        .timeout(Duration::from_millis(400))
        .replay_replica_acks(1);
    let verifier = verifier(&peer, &RedisStores::connect(config).await.unwrap());
    let first = bound(&peer, "acked");
    assert_eq!(verify_bound(&verifier, &first).await, Ok(()));
    assert_eq!(
        verify_bound(&verifier, &first).await,
        Err(ErrorKind::Replayed)
    );
    // No replica to hold the id: refused, never accepted unreplicated.
    sentinel.kill_replica();
    assert_eq!(
        verify_bound(&verifier, &bound(&peer, "unacked")).await,
        Err(ErrorKind::StoreUnavailable)
    );
    // A cluster cannot route WAIT to an id's master: refused at set-up.
    assert!(
        RedisStores::new(RedisConfig::cluster(&["redis://127.0.0.1:1"]).replay_replica_acks(1))
            .is_err()
    );
}
