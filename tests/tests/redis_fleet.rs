//! service-b replicas on a Redis Cluster (`--redis-cluster`, repeatable) and
//! behind Sentinel (`--redis-sentinel`, `--redis-service`), with their
//! revocation mirrors (`--revocation-staleness-ms`): the command-line
//! contract other tools test against.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use svcauth_core::{Algorithm, Clock, RequestBinding, SystemClock};
use svcauth_jwks::SigningKey;
use svcauth_redis::{RedisConfig, RedisStores};
use svcauth_tests::{
    Example, JsonServer, RedisCluster, RedisSentinel, SENTINEL_SERVICE, free_port,
};

const ISS: &str = "https://a.internal";
const AUD: &str = "https://b.internal";
/// Both replicas check bindings against this, as they would behind one
/// load balancer.
const PUBLIC: &str = "http://b.internal";

fn token(key: &SigningKey, jti: &str, bound: bool) -> String {
    let now = SystemClock.now_secs();
    let mut claims =
        json!({ "iss": ISS, "sub": ISS, "aud": AUD, "iat": now, "exp": now + 300, "jti": jti });
    if bound {
        let b = RequestBinding::for_parts(
            &reqwest::Method::POST,
            "http",
            "b.internal",
            "/echo",
            b"pay",
        )
        .unwrap();
        claims["htm"] = b.htm.into();
        claims["htu"] = b.htu.into();
        claims["body_sha256"] = b.body_sha256.into();
    }
    key.sign_jws(claims.to_string().as_bytes()).unwrap()
}

/// A service-b replica trusting `jwks`, with `redis` flags.
async fn replica(jwks: &JsonServer, redis: &[String]) -> Example {
    let mut args = vec![
        "--audience".to_owned(),
        AUD.to_owned(),
        "--trust".to_owned(),
        format!("{ISS}=http://{}/jwks.json", jwks.addr),
        "--public-base-url".to_owned(),
        PUBLIC.to_owned(),
    ];
    args.extend(redis.iter().cloned());
    Example::spawn_on(free_port(), "service-b", &args, Stdio::null())
        .ready(|h| h["ready"] == true)
        .await
}

async fn post_echo(client: &reqwest::Client, b: &Example, token: &str) -> u16 {
    client
        .post(b.url("/echo"))
        .header("authorization", format!("Bearer {token}"))
        .body("pay")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_service_b_replicas_on_a_cluster_accept_each_of_1000_bound_tokens_once() {
    let Some(cluster) = RedisCluster::start(0) else {
        return;
    };
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let jwks = JsonServer::start(json!({ "keys": [key.public_jwk()] })).await;
    let mut flags = Vec::new();
    for url in cluster.urls() {
        flags.extend(["--redis-cluster".to_owned(), url]);
    }
    flags.extend(["--redis-timeout-ms".to_owned(), "2000".to_owned()]);
    let replicas = Arc::new([replica(&jwks, &flags).await, replica(&jwks, &flags).await]);
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let token = Arc::new(token(&key, &format!("fleet-{i}"), true));
        for r in 0..2 {
            let (replicas, client, token) = (replicas.clone(), client.clone(), token.clone());
            tasks.spawn(async move { post_echo(&client, &replicas[r], &token).await });
        }
    }
    let statuses = tasks.join_all().await;
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!((accepted, refused), (1000, 1000), "{statuses:?}");
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_b_behind_sentinel_enforces_a_revocation_within_its_staleness_bound() {
    let Some(sentinel) = RedisSentinel::start() else {
        return;
    };
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let jwks = JsonServer::start(json!({ "keys": [key.public_jwk()] })).await;
    let flags = [
        "--redis-sentinel".to_owned(),
        sentinel.sentinel_url(),
        "--redis-service".to_owned(),
        SENTINEL_SERVICE.to_owned(),
        "--revocation-staleness-ms".to_owned(),
        "300".to_owned(),
    ];
    let b = replica(&jwks, &flags).await;
    let client = reqwest::Client::new();
    let whoami = |token: String| {
        let (client, url) = (client.clone(), b.url("/whoami"));
        async move {
            client
                .get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let cached = token(&key, "to-revoke", false);
    assert_eq!(whoami(cached.clone()).await, 200);
    assert_eq!(whoami(cached.clone()).await, 200, "a cache hit");
    // Revoked through another process's stores, on the same Sentinel service.
    let url = sentinel.sentinel_url();
    let stores = RedisStores::connect(RedisConfig::sentinel(&[&url], SENTINEL_SERVICE))
        .await
        .unwrap();
    stores
        .revocation()
        .revoke_jti(ISS, "to-revoke", SystemClock.now_secs() + 300)
        .await
        .unwrap();
    let revoked = Instant::now();
    while whoami(cached.clone()).await == 200 {
        assert!(
            revoked.elapsed() < Duration::from_millis(300),
            "not enforced within the bound"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(whoami(cached).await, 401);
    assert_eq!(whoami(token(&key, "other", false)).await, 200);
}
