//! The Redis stores against a real `redis-server`, started here on a free
//! loopback port. Without `redis-server` these tests say they are skipped;
//! with `SVCAUTH_REQUIRE_PEERS=1` (set by `cargo xtask test`) that is a failure.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::post;
use http::{Request, StatusCode};
use svcauth_core::{Clock, SystemClock};
use svcauth_redis::{RedisConfig, RedisStores};
use svcauth_tests::RedisServer;
use svcauth_verify::{ErrorKind, Verifier, VerifyError, VerifyLayer};
use tower::ServiceExt;

#[path = "common/redis.rs"]
mod common;
use common::*;

/// One replica's stores. Tests other than the timeout test give Redis 2 s, so
/// a loaded CI machine cannot turn a slow answer into a failure.
async fn stores(
    redis: &RedisServer,
    prefix: &str,
    timeout: Duration,
    fails_open: bool,
) -> RedisStores {
    let config = RedisConfig::new(&redis.url())
        .prefix(prefix)
        .timeout(timeout)
        .revocation_fails_open(fails_open)
        .revocation_staleness(STALENESS);
    RedisStores::connect(config).await.unwrap()
}

/// The mirrors' staleness bound in these tests.
const STALENESS: Duration = Duration::from_millis(200);

/// Verifies `token` until it is refused as revoked: each replica's mirror
/// learns a revocation within the staleness bound, not at once.
async fn refused_as_revoked(verifier: &Verifier, token: &str) {
    let started = std::time::Instant::now();
    loop {
        match verifier.verify(token).await {
            Err(e) if e.kind() == ErrorKind::Revoked => return,
            other => assert!(
                started.elapsed() < STALENESS,
                "not revoked within the bound: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

const RELAXED: Duration = Duration::from_secs(2);

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_accept_a_bound_token_once_in_total() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let peer = peer();
    let prefix = prefix();
    let shared = stores(&redis, &prefix, RELAXED, false).await;
    let (one, two) = (
        verifier(&peer, &shared),
        verifier(&peer, &stores(&redis, &prefix, RELAXED, false).await),
    );
    let token = bound(&peer, "once");
    assert_eq!(verify_bound(&one, &token).await, Ok(()));
    assert_eq!(verify_bound(&two, &token).await, Err(ErrorKind::Replayed));
    assert_eq!(verify_bound(&one, &token).await, Err(ErrorKind::Replayed));

    // 100 concurrent replays over both replicas: exactly one is accepted.
    let token = Arc::new(bound(&peer, "race"));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (verifier, token) = (
            if i % 2 == 0 { one.clone() } else { two.clone() },
            token.clone(),
        );
        tasks.spawn(async move { verify_bound(&verifier, &token).await });
    }
    let results = tasks.join_all().await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(ErrorKind::Replayed)))
    );
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test]
async fn a_revoked_jti_or_key_is_refused_by_every_replica() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let peer = peer();
    let prefix = prefix();
    let shared = stores(&redis, &prefix, RELAXED, false).await;
    let other = stores(&redis, &prefix, RELAXED, false).await;
    let (one, two) = (verifier(&peer, &shared), verifier(&peer, &other));
    let token = token(&peer, "to-revoke", None);
    assert!(one.verify(&token).await.is_ok());
    assert!(two.verify(&token).await.is_ok(), "cached on both");
    shared
        .revocation()
        .revoke_jti(ISS, "to-revoke", SystemClock.now_secs() + 300)
        .await
        .unwrap();
    refused_as_revoked(&one, &token).await;
    refused_as_revoked(&two, &token).await;

    let fresh = self::token(&peer, "fresh", None);
    assert!(two.verify(&fresh).await.is_ok());
    other
        .revocation()
        .revoke_key(ISS, peer.key.kid(), None)
        .await
        .unwrap();
    refused_as_revoked(&one, &fresh).await;
}

fn echo_app(verifier: Verifier) -> Router {
    Router::new()
        .route("/echo", post(|b: Bytes| async move { b }))
        .layer(VerifyLayer::new(verifier))
}

async fn send(app: &Router, token: &str) -> (StatusCode, Option<ErrorKind>) {
    let request = Request::post("/echo")
        .header("host", "b.internal")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from("pay"))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    (
        response.status(),
        response.extensions().get::<VerifyError>().map(|e| e.kind()),
    )
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_closed_and_loses_nothing() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let peer = peer();
    let prefix = prefix();
    let shared = stores(&redis, &prefix, RELAXED, false).await;
    let app = echo_app(verifier(&peer, &shared));
    let open = stores(&redis, &prefix, RELAXED, true).await;
    let lenient = Verifier::builder(AUD)
        .trust(ISS, peer.keys.clone())
        .revocation_store(Arc::new(open.revocation()))
        .build()
        .unwrap();

    let spent = bound(&peer, "spent-before-outage");
    assert_eq!(send(&app, &spent).await, (StatusCode::OK, None));

    redis.kill();
    // Replay protection fails closed: 503, never an unchecked bound request.
    assert_eq!(
        send(&app, &bound(&peer, "during")).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(ErrorKind::StoreUnavailable)
        )
    );
    // Revocation fails closed by default, open when configured so, once
    // the mirrors have not heard from Redis for their staleness bound.
    tokio::time::sleep(STALENESS + Duration::from_millis(100)).await;
    let unbound = token(&peer, "unbound", None);
    let verifier_closed = verifier(&peer, &shared);
    assert_eq!(
        verifier_closed.verify(&unbound).await.unwrap_err().kind(),
        ErrorKind::StoreUnavailable
    );
    assert!(lenient.verify(&unbound).await.is_ok());

    // Redis comes back (with its append-only file): service resumes, and the
    // token spent before the outage is still spent.
    redis.restart();
    let mut recovered = false;
    for _ in 0..100 {
        if send(
            &app,
            &bound(&peer, &format!("after-{}", SystemClock.now().as_nanos())),
        )
        .await
        .0 == StatusCode::OK
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "requests succeed again after Redis restarts");
    assert_eq!(
        send(&app, &spent).await,
        (StatusCode::UNAUTHORIZED, Some(ErrorKind::Replayed))
    );
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test]
async fn a_hung_redis_is_bounded_by_the_timeout() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let peer = peer();
    // The default 50 ms timeout, on an established connection.
    let shared = stores(&redis, &prefix(), svcauth_redis::DEFAULT_TIMEOUT, false).await;
    let verifier = verifier(&peer, &shared);
    redis.signal("-STOP");
    // The answer comes from the 50 ms timeout, not from Redis: fail closed.
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        verify_bound(&verifier, &bound(&peer, "hung")),
    )
    .await;
    redis.signal("-CONT");
    assert_eq!(
        result.expect("bounded by the store timeout"),
        Err(ErrorKind::StoreUnavailable)
    );
}

/// A request body whose bytes arrive when the test sends them. `asked`
/// fires when the layer first reads the body, that is once the token has
/// passed every header-time check.
struct HeldBody {
    bytes: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    asked: Option<tokio::sync::oneshot::Sender<()>>,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(asked) = self.asked.take() {
            let _ = asked.send(());
        }
        self.bytes
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// Sends one captured bound request (`POST /echo`, body `pay`) on four
/// connections at once, all but the last body byte first; then, if
/// `expire`, moves the clock past `exp` + leeway; then the last byte.
/// Returns the statuses.
async fn held_back_requests(
    verifier: Verifier,
    clock: &svcauth_core::ManualClock,
    token: &str,
    expire: bool,
) -> Vec<StatusCode> {
    let app = Router::new()
        .route("/echo", post(|body: Bytes| async move { body }))
        .layer(VerifyLayer::new(verifier));
    let mut senders = Vec::new();
    let mut asked = Vec::new();
    let mut responses = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (send, bytes) = tokio::sync::mpsc::unbounded_channel();
        let (told, ask) = tokio::sync::oneshot::channel();
        send.send(Bytes::from_static(b"pa")).unwrap();
        let request = Request::post("/echo")
            .header("host", "b.internal")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::new(HeldBody {
                bytes,
                asked: Some(told),
            }))
            .unwrap();
        let app = app.clone();
        responses.spawn(async move { app.oneshot(request).await.unwrap().status() });
        senders.push(send);
        asked.push(ask);
    }
    for ask in asked {
        ask.await.unwrap();
    }
    if expire {
        // exp is now + 300, the default leeway 30 s.
        clock.advance(Duration::from_secs(331));
    }
    for send in senders {
        send.send(Bytes::from_static(b"y")).unwrap();
    }
    responses.join_all().await
}

/// For a replay store made by `store` (given the test's clock): the held-back
/// request is used exactly once when it ends in time, and never when its
/// last byte comes after `exp` + leeway.
async fn held_back_case<F>(store: impl Fn(svcauth_core::SharedClock) -> F)
where
    F: std::future::Future<Output = Arc<dyn svcauth_verify::ReplayStore>>,
{
    let peer = peer();
    for expire in [false, true] {
        let clock = svcauth_core::ManualClock::starting_now();
        let shared: svcauth_core::SharedClock = Arc::new(clock.clone());
        let verifier = Verifier::builder(AUD)
            .trust(ISS, peer.keys.clone())
            .replay_store(store(shared.clone()).await)
            .clock(shared)
            .build()
            .unwrap();
        let token = bound(&peer, &format!("held-{expire}-{}", prefix()));
        let statuses = held_back_requests(verifier.clone(), &clock, &token, expire).await;
        let accepted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        if expire {
            assert_eq!(accepted, 0, "{statuses:?}");
            assert_eq!(verifier.metrics().rejected["expired"], 4);
        } else {
            assert_eq!(accepted, 1, "in time, exactly one use: {statuses:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_request_finished_after_exp_is_refused_with_the_memory_store() {
    held_back_case(|clock| async move {
        Arc::new(svcauth_verify::MemoryReplayStore::new(1000, clock))
            as Arc<dyn svcauth_verify::ReplayStore>
    })
    .await;
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_request_finished_after_exp_is_refused_with_the_redis_store() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    held_back_case(|clock| {
        let config = RedisConfig::new(&redis.url())
            .prefix(&prefix())
            .timeout(RELAXED)
            .clock(clock);
        async move {
            Arc::new(RedisStores::connect(config).await.unwrap().replay())
                as Arc<dyn svcauth_verify::ReplayStore>
        }
    })
    .await;
}
