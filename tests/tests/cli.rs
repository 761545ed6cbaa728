//! Every command-line flag of service-a and service-b takes effect: each is
//! exercised on the real binaries, started as processes on loopback.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use svcauth_core::Algorithm;
use svcauth_jwks::{SigningKey, generate_pkcs8_pem};

const A: &str = "https://a.internal";
const B: &str = "https://b.internal";

fn binaries() -> &'static PathBuf {
    svcauth_tests::example_binaries()
}

use svcauth_tests::{Example, free_port, unix_now};

async fn start(binary: &str, args: &[String], ready: impl Fn(&Value) -> bool) -> Example {
    Example::start(binary, args, ready).await
}

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

async fn service_a(extra: &[&str]) -> Example {
    start("service-a", &s(extra), |_| true).await
}

/// service-b with `args` only, ready once its keys are.
async fn service_b(args: &[&str]) -> Example {
    start("service-b", &s(args), |h| h["ready"] == true).await
}

/// service-b on `port`, trusting A's JWKS at `a`, ready once its keys are.
async fn service_b_on(port: u16, a: &Example, extra: &[&str]) -> Example {
    let mut args = s(&["--audience", B, "--trust"]);
    args.push(format!("{A}={}", a.url("/.well-known/jwks.json")));
    args.extend(s(extra));
    Example::spawn_on(port, "service-b", &args, Stdio::null())
        .ready(|h| h["ready"] == true)
        .await
}

/// A and B wired together: A calls B as `B`.
async fn pair(a_extra: &[&str], b_extra: &[&str]) -> (Example, Example) {
    // A must know B's address and B A's JWKS: choose B's port first, then
    // start A, then B.
    let b_port = free_port();
    let mut a_args = s(&["--issuer", A, "--call"]);
    a_args.push(format!("{B}=http://127.0.0.1:{b_port}"));
    a_args.extend(s(a_extra));
    let a = start("service-a", &a_args, |_| true).await;
    let b = service_b_on(b_port, &a, b_extra).await;
    (a, b)
}

/// Runs service-a as `A` with `args`, which it must refuse: its stderr.
fn refused_at_start(args: &[&str]) -> String {
    let out = Command::new(binaries().join("service-a"))
        .args(["--listen", "127.0.0.1:0", "--issuer", A])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "service-a started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON body of `GET url`.
async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The status of `method url` with `token` as a bearer token and `body`.
async fn send(method: reqwest::Method, url: String, token: Option<&str>, body: &str) -> u16 {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn call(a: &Example, query: &str, body: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = reqwest::Client::new()
        .post(a.url(&format!("/call?{query}")))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

/// `POST /rotate{query}` on service-a: the status and the JSON reply.
async fn rotate(a: &Example, query: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(a.url(&format!("/rotate{query}")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn whoami(a: &Example) -> (u16, Value) {
    let (status, body, _) = call(a, &format!("aud={B}&path=/whoami&method=GET"), "").await;
    (status, body)
}

fn mint(key: &SigningKey, claims: Value) -> String {
    key.sign_jws(claims.to_string().as_bytes()).unwrap()
}

fn temp_key(alg: Algorithm) -> (PathBuf, SigningKey) {
    let path = std::env::temp_dir().join(format!(
        "svcauth-cli-{}-{}.pem",
        std::process::id(),
        now_nanos()
    ));
    let pem = generate_pkcs8_pem(alg).unwrap();
    std::fs::write(&path, pem.as_bytes()).unwrap();
    (
        path.clone(),
        SigningKey::from_pem_file(&path, Some(alg)).unwrap(),
    )
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn service_a_issuer_call_and_listen() {
    let (a, _b) = pair(&[], &[]).await;
    let (status, body) = whoami(&a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["iss"].as_str(),
            body["sub"].as_str(),
            body["aud"].as_str()
        ),
        (Some(A), Some(A), Some(B))
    );
    let (status, body, _) = call(&a, "aud=https://unknown.internal", "").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("unknown audience"),
        "{body}"
    );
}

#[tokio::test]
async fn service_a_key_and_alg() {
    let (path, key) = temp_key(Algorithm::ES256);
    let (a, _b) = pair(&["--key", path.to_str().unwrap(), "--alg", "ES256"], &[]).await;
    let (status, body) = whoami(&a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kid"], key.kid());
    let jwks = get_json(a.url("/.well-known/jwks.json")).await;
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    // A key that does not fit the algorithm is refused at start.
    let refusal = refused_at_start(&["--key", path.to_str().unwrap(), "--alg", "EdDSA"]);
    assert!(refusal.contains("--key"), "{refusal}");
    // Without --key, a key of --alg is generated.
    let generated = service_a(&["--issuer", A, "--alg", "PS256"]).await;
    let jwks = get_json(generated.url("/.well-known/jwks.json")).await;
    assert_eq!(jwks["keys"][0]["alg"], "PS256");
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn service_a_lifetime_and_jwks_max_age() {
    let (a, _b) = pair(
        &["--lifetime-secs", "120", "--jwks-max-age-secs", "77"],
        &[],
    )
    .await;
    let (_, body) = whoami(&a).await;
    let claims = &body["claims"];
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        120
    );
    let r = reqwest::get(a.url("/.well-known/jwks.json")).await.unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=77");
    // Lifetimes over an hour are refused.
    refused_at_start(&["--lifetime-secs", "3601"]);
}

#[tokio::test]
async fn service_a_expose_tokens_and_rotate() {
    let (a, _b) = pair(&["--danger-expose-tokens"], &[]).await;
    let (_, _, headers) = call(&a, &format!("aud={B}&path=/whoami&method=GET"), "").await;
    assert!(
        headers["x-svcauth-sent-authorization"]
            .to_str()
            .unwrap()
            .starts_with("Bearer ey")
    );
    let (plain, _b2) = pair(&[], &[]).await;
    let (_, _, headers) = call(&plain, &format!("aud={B}&path=/whoami&method=GET"), "").await;
    assert!(
        !headers.contains_key("x-svcauth-sent-authorization"),
        "tokens stay private by default"
    );
    // Rotation from loopback is accepted by default (--allow-remote-rotate
    // opens it to other addresses; its check is unit-tested in service-a).
    let r = rotate(&a, "").await.1;
    assert_ne!(r["old_kid"], r["new_kid"]);
}

#[tokio::test]
async fn service_a_danger_allow_insecure_http() {
    // An IPv4-mapped IPv6 address reaches loopback but is not a loopback
    // address to the signer: it counts as plain http to another host.
    let b_port = free_port();
    let target = format!("{B}=http://[::ffff:127.0.0.1]:{b_port}");
    let a = service_a(&["--issuer", A, "--call", &target]).await;
    let insecure = service_a(&[
        "--issuer",
        A,
        "--call",
        &target,
        "--danger-allow-insecure-http",
    ])
    .await;
    let _b = service_b_on(b_port, &a, &[]).await;
    let (_, _, headers) = call(&a, &format!("aud={B}&path=/whoami&method=GET"), "").await;
    assert_eq!(headers["www-authenticate"], "Bearer", "no token was sent");
    let (status, _, headers) =
        call(&insecure, &format!("aud={B}&path=/whoami&method=GET"), "").await;
    assert_ne!(
        headers.get("www-authenticate").map(|v| v.to_str().unwrap()),
        Some("Bearer"),
        "a token was sent ({status})"
    );
}

#[tokio::test]
async fn service_b_audience_trust_and_allow_caller() {
    let a = service_a(&["--issuer", A]).await;
    let jwks = format!("{A}={}", a.url("/.well-known/jwks.json"));
    // A's token for B, minted through A, sent to services configured differently.
    let (path, key) = temp_key(Algorithm::EdDSA);
    let keyed = service_a(&["--issuer", A, "--key", path.to_str().unwrap()]).await;
    let keyed_jwks = format!("{A}={}", keyed.url("/.well-known/jwks.json"));
    let token = mint(
        &key,
        json!({ "iss": A, "sub": A, "aud": B, "iat": unix_now(), "exp": unix_now() + 300 }),
    );
    let bearer = format!("Bearer {token}");
    let get = |b: &Example| send(reqwest::Method::GET, b.url("/whoami"), Some(&bearer), "");
    let other_trust = jwks.replace(A, "https://x.internal");
    for (args, expect) in [
        (vec!["--audience", B, "--trust", &keyed_jwks], 200),
        (
            vec![
                "--audience",
                "https://other.internal",
                "--trust",
                &keyed_jwks,
            ],
            401,
        ),
        (vec!["--audience", B, "--trust", &other_trust], 401),
        (
            vec![
                "--audience",
                B,
                "--trust",
                &keyed_jwks,
                "--allow-caller",
                "https://x.internal",
            ],
            403,
        ),
        (
            vec!["--audience", B, "--trust", &keyed_jwks, "--allow-caller", A],
            200,
        ),
    ] {
        let b = service_b(&args).await;
        assert_eq!(get(&b).await, expect, "{args:?}");
    }
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn service_b_leeway_and_max_lifetime() {
    let (path, key) = temp_key(Algorithm::EdDSA);
    let a = service_a(&["--issuer", A, "--key", path.to_str().unwrap()]).await;
    let jwks = format!("{A}={}", a.url("/.well-known/jwks.json"));
    let expired_45s = mint(
        &key,
        json!({ "iss": A, "sub": A, "aud": B, "iat": unix_now() - 345, "exp": unix_now() - 45 }),
    );
    let long_lived = mint(
        &key,
        json!({ "iss": A, "sub": A, "aud": B, "iat": unix_now(), "exp": unix_now() + 900 }),
    );
    let status = async |b: &Example, token: &str| {
        let bearer = format!("Bearer {token}");
        send(reqwest::Method::GET, b.url("/whoami"), Some(&bearer), "").await
    };
    let strict = service_b(&["--audience", B, "--trust", &jwks]).await;
    assert_eq!(status(&strict, &expired_45s).await, 401);
    assert_eq!(status(&strict, &long_lived).await, 401);
    let lenient = service_b(&[
        "--audience",
        B,
        "--trust",
        &jwks,
        "--leeway-secs",
        "60",
        "--max-lifetime-secs",
        "1000",
    ])
    .await;
    assert_eq!(status(&lenient, &expired_45s).await, 200);
    assert_eq!(status(&lenient, &long_lived).await, 200);
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn service_b_trust_oidc() {
    let a_port = free_port();
    let discovery = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let doc = json!({ "issuer": issuer, "jwks_uri": format!("http://127.0.0.1:{a_port}/.well-known/jwks.json") });
        let app = axum::Router::new().route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        issuer
    };
    let b_port = free_port();
    let mut a_args = s(&["--issuer", &discovery, "--call"]);
    a_args.push(format!("{B}=http://127.0.0.1:{b_port}"));
    let a = Example::spawn_on(a_port, "service-a", &a_args, Stdio::null())
        .ready(|_| true)
        .await;
    // The keys are on A's origin, not the issuer's: refused by default, so
    // that whoever serves the discovery document cannot point key fetches
    // anywhere...
    let refused = start(
        "service-b",
        &s(&["--audience", B, "--trust-oidc", &discovery]),
        |_| true,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = get_json(refused.url("/healthz")).await;
    assert_eq!(health["ready"], false, "{health}");
    assert!(
        health["issuers"][&discovery]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("outside the issuer's origin")),
        "{health}"
    );
    drop(refused);
    // ... and accepted once that origin is allowed.
    let b_args = s(&[
        "--audience",
        B,
        "--trust-oidc",
        &discovery,
        "--allow-jwks-uri-origin",
        &format!("http://127.0.0.1:{a_port}"),
    ]);
    let b = Example::spawn_on(b_port, "service-b", &b_args, Stdio::null())
        .ready(|h| h["ready"] == true)
        .await;
    let mut last = (0, Value::Null);
    for _ in 0..100 {
        last = whoami(&a).await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, 200, "{}", last.1);
    assert_eq!(last.1["iss"], discovery.as_str());
    drop(b);
}

#[tokio::test]
async fn service_b_unknown_kid_cooldown() {
    // Default cooldown (30 s): a key rotated right after B's first fetch is
    // not found yet. With 1 s, it is found after a second.
    for (cooldown, expect) in [(None, 401), (Some("1"), 200)] {
        let extra: Vec<&str> = cooldown
            .map(|c| vec!["--unknown-kid-cooldown-secs", c])
            .unwrap_or_default();
        let (a, _b) = pair(&[], &extra).await;
        assert_eq!(whoami(&a).await.0, 200);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // At once: B meets a kid it has not fetched.
        rotate(&a, "?now=true").await;
        assert_eq!(whoami(&a).await.0, expect, "cooldown {cooldown:?}");
    }
}

#[tokio::test]
async fn service_a_rotation_overlap_publishes_first_and_signs_later() {
    let (a, _b) = pair(
        &["--rotation-overlap-secs", "2"],
        &["--unknown-kid-cooldown-secs", "1"],
    )
    .await;
    let (status, first, _) = call(&a, &format!("aud={B}&path=/whoami"), "").await;
    assert_eq!(status, 200, "{first}");
    let r = rotate(&a, "").await.1;
    let next = r["new_kid"].as_str().unwrap().to_owned();
    assert_eq!(r["signing_kid"], first["kid"], "{r}");
    assert_eq!(r["promotes_in_secs"], 2);
    let jwks = get_json(a.url("/.well-known/jwks.json")).await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == next.as_str()),
        "the next key is published at once: {jwks}"
    );
    // A second rotation while one is under way is refused, not stacked.
    assert_eq!(rotate(&a, "").await.0, 409);
    let (_, still, _) = call(&a, &format!("aud={B}&path=/whoami"), "").await;
    assert_eq!(
        still["kid"], first["kid"],
        "the old key signs until the overlap ends"
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (status, after, _) = call(&a, &format!("aud={B}&path=/whoami"), "").await;
    assert_eq!(
        (status, after["kid"].as_str()),
        (200, Some(next.as_str())),
        "{after}"
    );
}

#[tokio::test]
async fn service_a_call_errors_say_what_to_change() {
    let (a, _b) = pair(&[], &[]).await;
    for (query, says) in [
        (
            "aud=https://nobody.internal&path=/whoami",
            "unknown audience",
        ),
        (&format!("aud={B}") as &str, "path is required"),
        (&format!("aud={B}&path=whoami"), "must start with"),
        (&format!("aud={B}&path=/whoami&bind=maybe"), "bind must be"),
        (
            &format!("aud={B}&path=/whoami&method=G%20T"),
            "invalid method",
        ),
    ] {
        let (status, body, _) = call(&a, query, "").await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
    // The obvious first call works: GET when there is no body, and aud may
    // be left out when only one service is configured.
    let (status, body, _) = call(&a, "path=/whoami", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], A);
}

#[tokio::test]
async fn service_b_public_base_url_and_max_body_bytes() {
    let bound = async |a: &Example, body: &str| {
        let url = a.url(&format!("/call?aud={B}&path=/echo&bind=true"));
        send(reqwest::Method::POST, url, None, body).await
    };
    let (a, _b) = pair(&[], &[]).await;
    assert_eq!(bound(&a, "hello").await, 200);
    let (a, _b) = pair(&[], &["--public-base-url", "https://b.example"]).await;
    assert_eq!(
        bound(&a, "hello").await,
        401,
        "htu must name the public URL"
    );
    let (a, _b) = pair(&[], &["--max-body-bytes", "1024"]).await;
    assert_eq!(bound(&a, &"x".repeat(1000)).await, 200);
    assert_eq!(bound(&a, &"x".repeat(2000)).await, 413);
}

#[cfg_attr(svcauth_peer_missing_redis, ignore = "needs redis-server")]
#[tokio::test]
async fn service_b_redis_shares_replay_state_between_replicas() {
    let Some(redis) = svcauth_tests::RedisServer::start() else {
        return;
    };
    let redis_url = redis.url();
    // Replica 1 is the one A calls; replica 2 sits behind the same public URL.
    let (a, b1) = pair(&["--danger-expose-tokens"], &["--redis", &redis_url]).await;
    let public = b1.url("");
    let shared = service_b_on(
        free_port(),
        &a,
        &["--public-base-url", &public, "--redis", &redis_url],
    )
    .await;
    let alone = service_b_on(free_port(), &a, &["--public-base-url", &public]).await;

    let replay_to = async |b: &Example, token: String| {
        send(reqwest::Method::POST, b.url("/echo"), Some(&token), "pay").await
    };
    let spend = || async {
        let (status, _, headers) = call(&a, &format!("aud={B}&path=/echo&bind=true"), "pay").await;
        assert_eq!(status, 200);
        headers["x-svcauth-sent-authorization"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        replay_to(&shared, spend().await).await,
        401,
        "spent at replica 1, refused at replica 2"
    );
    assert_eq!(
        replay_to(&alone, spend().await).await,
        200,
        "without --redis each replica remembers alone"
    );
    drop(redis);
}

/// The lines of a Prometheus text page for `name` whose labels include every
/// one of `labels` (`key="value"`), with their values.
fn samples(page: &str, name: &str, labels: &[&str]) -> Vec<f64> {
    page.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect()
}

#[tokio::test]
async fn metrics_on_the_listener_or_on_their_own() {
    let (a, b) = pair(&[], &[]).await;
    for _ in 0..3 {
        assert_eq!(whoami(&a).await.0, 200);
    }
    let (status, _, _) = call(&a, "aud=https://b.internal&path=/whoami&bind=maybe", "").await;
    assert_eq!(status, 400);
    let response = reqwest::get(b.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let page = response.text().await.unwrap();
    let issuer = format!("issuer=\"{A}\"");
    let accepted = |cache: &str| {
        samples(
            &page,
            "svcauth_verifications_total",
            &["result=\"accepted\"", &issuer, cache],
        )
    };
    assert_eq!(accepted("cache=\"miss\""), [1.0], "{page}");
    assert_eq!(accepted("cache=\"hit\""), [2.0], "{page}");
    let jwks = format!("source=\"{}\"", a.url("/.well-known/jwks.json"));
    assert_eq!(
        samples(
            &page,
            "svcauth_jwks_fetches_total",
            &[&jwks, "outcome=\"ok\""]
        ),
        [1.0],
        "{page}"
    );
    assert_eq!(samples(&page, "svcauth_jwks_stale", &[&jwks]), [0.0]);
    assert!(
        !samples(
            &page,
            "svcauth_verification_duration_seconds_count",
            &["cache=\"miss\""]
        )
        .is_empty()
    );

    // A rejected token: counted by reason, and what the caller wrote is no label.
    let forged = format!(
        "Bearer {}",
        "e30.eyJpc3MiOiJodHRwczovL2V2aWwuZXhhbXBsZSJ9.c2ln"
    );
    assert_eq!(
        send(reqwest::Method::GET, b.url("/whoami"), Some(&forged), "").await,
        401
    );
    let page = reqwest::get(b.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        samples(
            &page,
            "svcauth_verifications_total",
            &["result=\"rejected\""]
        )
        .iter()
        .sum::<f64>(),
        1.0,
        "{page}"
    );
    assert!(!page.contains("evil.example"));

    // --metrics-listen: there, and only there.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (_, separate) = pair(&[], &["--metrics-listen", &listen]).await;
    assert_eq!(
        send(reqwest::Method::GET, separate.url("/metrics"), None, "").await,
        404
    );
    let page = reqwest::get(format!("http://{listen}/metrics"))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // service-a's page: one token minted for B, the other calls from the cache.
    let page = reqwest::get(a.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let minted = samples(
        &page,
        "svcauth_tokens_minted_total",
        &[&format!("audience=\"{B}\""), "source=\"self_signed\""],
    );
    assert_eq!(minted, [1.0], "{page}");
    assert_eq!(
        samples(&page, "svcauth_token_cache_hits_total", &[]),
        [2.0],
        "{page}"
    );
}

#[tokio::test]
async fn the_request_trace_never_shows_a_credential() {
    let (a, b) = pair(&["--danger-expose-tokens"], &[]).await;
    let (status, _, headers) = call(&a, &format!("aud={B}&path=/whoami&method=GET"), "").await;
    assert_eq!(status, 200);
    let token = headers["x-svcauth-sent-authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    // A second service-b, tracing every request with its headers.
    let log = std::env::temp_dir().join(format!("svcauth-trace-{}.log", free_port()));
    let port = free_port();
    let jwks = format!("{A}={}", a.url("/.well-known/jwks.json"));
    let mut traced = Command::new(binaries().join("service-b"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--audience",
            B,
            "--trust",
            &jwks,
        ])
        .env("RUST_LOG", "tower_http=debug,info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
        if let Ok(r) = health
            && r.json::<Value>().await.is_ok_and(|h| h["ready"] == true)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("http://127.0.0.1:{port}/whoami");
    let answered = send(reqwest::Method::GET, url, Some(&token), "").await;
    let _ = traced.kill();
    let _ = traced.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert_eq!(answered, 200, "{text}");
    assert!(text.contains("\"authorization\": Sensitive"), "{text}");
    let secret = token.trim_start_matches("Bearer ");
    assert!(
        !text.contains(&secret[secret.len() - 20..]),
        "the token was logged:\n{text}"
    );
    drop(b);
}
