//! The attacks of issue 14 that go around the token checks, against the
//! real binaries on loopback: server-side request forgery through the
//! gateway and service-a, identity headers at the edge, floods of junk
//! tokens, and oversized upstream answers. No node needed: the
//! authorization server is a stand-in that exchanges `good-*` tokens.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::routing::get;
use serde_json::Value;

/// Every request a loopback server saw: method, path and query, headers.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String, http::HeaderMap)>>>);

impl Seen {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn last(&self) -> (String, String, http::HeaderMap) {
        self.0.lock().unwrap().last().cloned().unwrap()
    }
}

use svcauth_tests::serve;

/// A server that records every request and answers 200 "seen"; `/big`
/// streams 64 MiB, `/big-announced` announces 64 MiB in Content-Length.
async fn recording_server() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let app = Router::new()
        .route(
            "/base/big",
            get(|| async {
                let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                let stream = futures_util::stream::iter(
                    (0..1024).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                Body::from_stream(stream)
            }),
        )
        .route(
            "/base/big-announced",
            get(|| async { vec![b'x'; 64 * 1024 * 1024] }),
        )
        .fallback(move |request: Request| {
            let record = record.clone();
            async move {
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or("/".to_owned(), |p| p.to_string());
                record.0.lock().unwrap().push((
                    request.method().to_string(),
                    target,
                    request.headers().clone(),
                ));
                "seen"
            }
        });
    (serve(app).await, seen)
}

use svcauth_tests::{Example, MockAuthorizationServer, free_port};

async fn start(binary: &str, args: &[String]) -> Example {
    Example::start(binary, args, |_| true).await
}

async fn gateway(upstream: SocketAddr, auth: &MockAuthorizationServer, extra: &[&str]) -> Example {
    let secret = std::env::temp_dir().join(format!("svcauth-edge-{}.secret", free_port()));
    std::fs::write(&secret, "a-client-secret").unwrap();
    let mut args: Vec<String> = [
        "--upstream",
        &format!("http://{upstream}/base"),
        "--token-endpoint",
        &auth.token_endpoint(),
        "--client-id",
        "gateway",
        "--client-secret-file",
        secret.to_str().unwrap(),
        "--audience",
        "https://b.internal",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    start("gateway", &args).await
}

/// One request with a raw request target (reqwest would normalise `..` and
/// backslashes away): the status code, or 0 if the server hung up.
async fn raw(port: u16, target: &str, headers: &[(&str, &str)]) -> u16 {
    let target = target.to_owned();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n");
        for (name, value) in &headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    })
    .await
    .unwrap()
}

/// The path forms an attacker tries to leave the upstream with.
const HOSTILE_PATHS: &[&str] = &[
    "/http://ATTACKER/x",
    "/https:%2F%2FATTACKER/x",
    "/\\\\ATTACKER/x",
    "//ATTACKER/x",
    "/%5C%5CATTACKER/x",
    "/../x",
    "/%2e%2e/x",
    "/%2E%2E/%2e%2e/x",
    "/a/..%2fx",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_forwards_only_under_its_upstream() {
    let (upstream, upstream_seen) = recording_server().await;
    let (attacker, attacker_seen) = recording_server().await;
    let auth = MockAuthorizationServer::start().await;
    let gw = gateway(upstream, &auth, &[]).await;
    let token = ("authorization", "Bearer good-alice-0001");

    for path in HOSTILE_PATHS {
        let path = path.replace("ATTACKER", &attacker.to_string());
        let status = raw(gw.port(), &path, &[token]).await;
        assert_eq!(status, 400, "{path}");
    }
    assert_eq!(attacker_seen.count(), 0, "nothing reached the attacker");
    assert_eq!(upstream_seen.count(), 0, "nothing was forwarded at all");

    // A URL inside the query is just a query; a `#` never leaves the client.
    let path = format!("/orders/7?next=http://{attacker}/y");
    assert_eq!(raw(gw.port(), &path, &[token]).await, 200);
    let (method, target, headers) = upstream_seen.last();
    assert_eq!(method, "GET");
    assert_eq!(target, format!("/base/orders/7?next=http://{attacker}/y"));
    assert!(
        headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Bearer ey"),
        "the exchanged JWT, not the reference token"
    );
    assert_eq!(attacker_seen.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_strips_forgeable_headers_under_any_spelling() {
    let (upstream, seen) = recording_server().await;
    let auth = MockAuthorizationServer::start().await;
    let gw = gateway(upstream, &auth, &["--strip-header", "x-tenant"]).await;
    let status = raw(
        gw.port(),
        "/whoami",
        &[
            ("authorization", "Bearer good-alice-0002"),
            ("X_Forwarded_User", "admin"),
            ("x-forwarded-user", "admin"),
            ("x-amzn-oidc-identity", "admin"),
            ("x-goog-authenticated-user-email", "admin@example.com"),
            ("cf-access-authenticated-user-email", "admin@example.com"),
            ("x-ms-client-principal-name", "admin"),
            ("x-auth-request-groups", "admins"),
            ("x-tenant", "someone-else"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "203.0.113.9"),
            ("connection", "close, x-keep-me-out"),
            ("x-keep-me-out", "1"),
            ("x-request-id", "kept"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let (_, _, headers) = seen.last();
    for name in [
        "x_forwarded_user",
        "x-forwarded-user",
        "x-amzn-oidc-identity",
        "x-goog-authenticated-user-email",
        "cf-access-authenticated-user-email",
        "x-ms-client-principal-name",
        "x-auth-request-groups",
        "x-tenant",
        "x-real-ip",
        "x-keep-me-out",
    ] {
        assert!(!headers.contains_key(name), "{name} reached the upstream");
    }
    assert_eq!(headers["x-request-id"], "kept");
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "the address the gateway saw, not the client's claim"
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_upstream_answer_is_refused_or_cut_without_buffering_it() {
    let (upstream, _) = recording_server().await;
    let auth = MockAuthorizationServer::start().await;
    let gw = gateway(upstream, &auth, &["--max-response-bytes", "1048576"]).await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(gw.url(path))
            .bearer_auth("good-alice-0003")
            .send()
    };
    assert_eq!(get("/whoami").await.unwrap().status(), 200);
    let before = peak_rss_kib(gw.pid());

    let announced = get("/big-announced").await.unwrap();
    assert_eq!(announced.status(), 502, "Content-Length over the cap");

    // 64 MiB streamed: the client gets at most the cap, then a cut.
    let streamed = get("/big").await.unwrap();
    assert_eq!(streamed.status(), 200);
    let mut received = 0usize;
    let mut streamed = streamed;
    while let Ok(Some(chunk)) = streamed.chunk().await {
        received += chunk.len();
    }
    assert!(received <= 1024 * 1024, "{received} bytes passed the cap");
    let grown = peak_rss_kib(gw.pid()).saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "the gateway's peak memory grew by {grown} KiB for 128 MiB of answers"
    );
    assert_eq!(get("/whoami").await.unwrap().status(), 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_flooding_junk_tokens_does_not_lock_out_the_others() {
    let (upstream, _) = recording_server().await;
    let auth = MockAuthorizationServer::start().await;
    // Clients told apart by a header a trusted proxy would set.
    let gw = gateway(upstream, &auth, &["--client-ip-header", "x-test-client"]).await;
    let client = reqwest::Client::new();
    let url = gw.url("/whoami");
    let mut refused = 0;
    for i in 0..300 {
        let status = client
            .get(&url)
            .bearer_auth(format!("junk-token-{i:06}"))
            .header("x-test-client", "192.0.2.66")
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            status == 401 || status == 429,
            "junk gets 401 or 429, got {status}"
        );
        refused += usize::from(status == 429);
    }
    assert!(
        refused >= 250,
        "the flooding client is held to its own budget"
    );
    assert!(
        auth.asked() <= 40,
        "the authorization server was asked {} times for junk",
        auth.asked()
    );
    // Twenty first-time users, each from its own address, all get through.
    for i in 0..20 {
        let status = client
            .get(&url)
            .bearer_auth(format!("good-user-{i:04}"))
            .header("x-test-client", format!("198.51.100.{i}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "legitimate user {i}");
    }
    // Junk shorter than any real reference token is refused without asking.
    let before = auth.asked();
    let status = client
        .get(&url)
        .bearer_auth("x")
        .header("x-test-client", "198.51.100.200")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert_eq!(auth.asked(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_a_calls_only_the_configured_origin() {
    let (b, b_seen) = recording_server().await;
    let (attacker, attacker_seen) = recording_server().await;
    let a = start(
        "service-a",
        &[
            "--issuer".into(),
            "https://a.internal".into(),
            "--call".into(),
            format!("https://b.internal=http://{b}/base"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let call = |path: String| {
        let url = reqwest::Url::parse_with_params(
            &a.url("/call"),
            &[
                ("aud", "https://b.internal"),
                ("path", path.as_str()),
                ("method", "GET"),
            ],
        )
        .unwrap();
        client.post(url).send()
    };
    let port = attacker.port();
    let mut hostile: Vec<String> = HOSTILE_PATHS
        .iter()
        .map(|p| p.replace("ATTACKER", &attacker.to_string()))
        .collect();
    hostile.extend([
        format!(":{port}/x"),
        format!("@127.0.0.1:{port}/x"),
        format!(".attacker.example:{port}/x"),
        "whoami".into(),
        "/x#@evil/y".into(),
    ]);
    for path in hostile {
        let response = call(path.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("refused"),
            "{body}"
        );
    }
    assert_eq!(attacker_seen.count(), 0);
    assert_eq!(b_seen.count(), 0);

    let response = call(format!("/ok?next=http://{attacker}/y")).await.unwrap();
    assert_eq!(response.status(), 200);
    let (_, target, headers) = b_seen.last();
    assert_eq!(target, format!("/base/ok?next=http://{attacker}/y"));
    assert!(headers.contains_key("authorization"));
    assert_eq!(attacker_seen.count(), 0);
}
