//! gRPC end to end: `VerifyLayer` on tonic's server, `SignLayer` on a tonic
//! channel (`Signer::tonic_channel`), the Demo service of the example pair,
//! and Python's grpcio with PyJWT tokens as a client from another stack.
//!
//! What must hold: a refused call is a gRPC status in a trailers-only
//! response (16 UNAUTHENTICATED, 7 PERMISSION_DENIED, 14 UNAVAILABLE) with
//! `grpc-message` and the `WWW-Authenticate` challenge, never an HTTP error
//! page; a stream is authenticated once, when the call starts; a key
//! rotation in the middle of a run of calls fails none of them.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use demo_grpc::demo_client::DemoClient;
use demo_grpc::demo_server::DemoServer;
use demo_grpc::{CountRequest, Demo, WhoAmIRequest};
use serde_json::{Value, json};
use svcauth_core::Algorithm;
use svcauth_jwks::{JwksService, KeyRing, KeySet, KeySource, SigningKey};
use svcauth_sign::Signer;
use svcauth_tests::{Example, PemFiles, Pki, free_port, python, run_peer, unix_now};
use svcauth_verify::{Verifier, VerifyLayer};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const A: &str = "https://a.internal";
const B: &str = "https://b.internal";

/// Serves the Demo service behind `layer` on a free loopback port, with
/// tonic's own server, as a tonic user would.
async fn grpc_server(layer: VerifyLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(DemoServer::new(Demo))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}")).unwrap()
}

/// A client with no signer: tokens, if any, are put in by hand.
fn plain_client(addr: SocketAddr) -> DemoClient<Channel> {
    DemoClient::new(endpoint(addr).connect_lazy())
}

/// A token signed by `key` with `claims`, as a peer would mint it.
fn token(key: &SigningKey, claims: Value) -> String {
    key.sign_jws(claims.to_string().as_bytes()).unwrap()
}

fn claims(aud: &str, iat: u64, exp: u64) -> Value {
    json!({ "iss": A, "sub": A, "aud": aud, "iat": iat, "exp": exp, "jti": format!("{iat}-{aud}") })
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A's ring and a verifier for B that trusts it with fixed keys.
fn fixed_pair() -> (KeyRing, Verifier) {
    let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let keys = KeySource::fixed(KeySet::from_jwks(ring.state().jwks(), 65536).unwrap());
    let verifier = Verifier::builder(B).trust(A, keys).build().unwrap();
    (ring, verifier)
}

fn signer(ring: &KeyRing, addr: SocketAddr) -> Signer {
    Signer::self_signed(A, ring.clone())
        .unwrap()
        .audience(&format!("http://{addr}"), B)
        .build()
        .unwrap()
}

/// The status of a failed call, its message and its challenge.
fn refusal<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (Code, String, String) {
    let status = result.expect_err("the call must be refused");
    let challenge = status
        .metadata()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status.code(), status.message().to_owned(), challenge)
}

#[tokio::test]
async fn signed_channel_calls_and_refusals_are_grpc_statuses() {
    let (ring, verifier) = fixed_pair();
    let addr = grpc_server(VerifyLayer::new(verifier)).await;

    // Through the signing channel: OK, and the handler saw the caller.
    let mut signed = DemoClient::new(signer(&ring, addr).tonic_channel(&endpoint(addr)).unwrap());
    let reply = signed
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.iss.as_str(), reply.sub.as_str()), (A, A));
    assert_eq!(reply.aud, [B]);
    assert_eq!(reply.kid, ring.signer().kid());

    let mut plain = plain_client(addr);
    // No token: UNAUTHENTICATED with the bare challenge.
    let (code, message, challenge) = refusal(plain.who_am_i(WhoAmIRequest {}).await);
    assert_eq!(code, Code::Unauthenticated);
    assert_eq!(message, "a bearer token is required");
    assert_eq!(challenge, "Bearer");

    let signer = ring.signer();
    let key = signer.local().expect("an in-memory key");
    let t = unix_now();
    for (name, bad, expect) in [
        (
            "expired",
            token(key, claims(B, t - 900, t - 600)),
            "the token has expired",
        ),
        (
            "wrong audience",
            token(key, claims("https://c.internal", t, t + 60)),
            "the token is not for this audience",
        ),
        (
            "tampered",
            token(key, claims(B, t, t + 60)).replace(".ey", ".eX"),
            "",
        ),
        ("not a JWT", "not-a-jwt".to_owned(), ""),
    ] {
        let (code, message, challenge) =
            refusal(plain.who_am_i(with_token(WhoAmIRequest {}, &bad)).await);
        assert_eq!(code, Code::Unauthenticated, "{name}");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        if !expect.is_empty() {
            assert_eq!(message, expect, "{name}");
        }
    }
    // The server still serves after all that.
    assert!(signed.who_am_i(WhoAmIRequest {}).await.is_ok());
}

#[tokio::test]
async fn refusals_are_trailers_only_and_plain_http_keeps_its_401() {
    let (_, verifier) = fixed_pair();
    let addr = grpc_server(VerifyLayer::new(verifier)).await;
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("http://{addr}/svcauth.demo.Demo/WhoAmI");
    // A gRPC request: HTTP 200, the status in the headers, no body, so the
    // one HEADERS frame ends the stream (trailers-only).
    let response = http
        .post(&url)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8; 5])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["grpc-status"], "16");
    assert_eq!(headers["grpc-message"], "a bearer token is required");
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(headers["content-type"], "application/grpc");
    assert!(response.bytes().await.unwrap().is_empty());

    // The same path asked as plain HTTP gets RFC 6750's 401, not a status.
    let response = http.post(&url).body("x").send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("grpc-status").is_none());
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn route_rules_answer_permission_denied_and_missing_keys_unavailable() {
    let (ring, verifier) = fixed_pair();
    // Only another caller is admitted here: A gets 7 PERMISSION_DENIED.
    let addr =
        grpc_server(VerifyLayer::new(verifier).allow_caller("https://c.internal", None)).await;
    let mut client = DemoClient::new(signer(&ring, addr).tonic_channel(&endpoint(addr)).unwrap());
    let (code, message, challenge) = refusal(client.who_am_i(WhoAmIRequest {}).await);
    assert_eq!(code, Code::PermissionDenied);
    assert_eq!(message, "the caller is not allowed here");
    assert!(challenge.contains("insufficient_scope"), "{challenge}");

    // B's keys for A come from a JWKS URL where nothing answers: 14
    // UNAVAILABLE, which a gRPC client may retry, not 16.
    let closed = svcauth_tests::free_port();
    let keys = KeySource::remote(&format!("http://127.0.0.1:{closed}/jwks.json"))
        .unwrap()
        .build()
        .unwrap();
    let verifier = Verifier::builder(B).trust(A, keys).build().unwrap();
    let addr = grpc_server(VerifyLayer::new(verifier)).await;
    let mut client = DemoClient::new(signer(&ring, addr).tonic_channel(&endpoint(addr)).unwrap());
    let (code, message, _) = refusal(client.who_am_i(WhoAmIRequest {}).await);
    assert_eq!(code, Code::Unavailable);
    assert_eq!(message, "the issuer's keys are unavailable");
}

#[tokio::test]
async fn a_stream_is_authenticated_once_per_call() {
    let (ring, verifier) = fixed_pair();
    let addr = grpc_server(VerifyLayer::new(verifier.clone())).await;
    let mut client = DemoClient::new(signer(&ring, addr).tonic_channel(&endpoint(addr)).unwrap());
    let mut stream = client
        .count(CountRequest { count: 500 })
        .await
        .unwrap()
        .into_inner();
    let mut replies = 0;
    while let Some(reply) = stream.message().await.unwrap() {
        assert_eq!(reply.sub, A);
        replies += 1;
    }
    assert_eq!(replies, 500);
    let metrics = verifier.metrics();
    assert_eq!(metrics.accepted, 1, "one verification for the whole stream");
    assert!(metrics.rejected.is_empty(), "{:?}", metrics.rejected);
}

#[tokio::test]
async fn the_signing_channel_refuses_an_origin_it_does_not_reach() {
    let (ring, _) = fixed_pair();
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let channel = signer(&ring, addr).tonic_channel(&endpoint(addr)).unwrap();
    // A client that names another origin (`with_origin`) would have the
    // channel send B's token to its own endpoint: refused before sending.
    let mut client = DemoClient::with_origin(channel, "http://evil.example:443".parse().unwrap());
    let status = client.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert!(
        status.message().contains("only reaches http://127.0.0.1:9"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_key_rotation_during_unary_calls_fails_none() {
    // A publishes its JWKS on loopback; B fetches it, and refetches on an
    // unknown kid at most every 200 ms.
    let ring = KeyRing::new(SigningKey::generate(Algorithm::ES256).unwrap());
    let jwks = svcauth_tests::serve(
        axum::Router::new().route_service("/jwks.json", JwksService::new(ring.clone())),
    )
    .await;
    let keys = KeySource::remote(&format!("http://{jwks}/jwks.json"))
        .unwrap()
        .cooldown(Duration::from_millis(200))
        .build()
        .unwrap();
    let verifier = Verifier::builder(B).trust(A, keys).build().unwrap();
    let addr = grpc_server(VerifyLayer::new(verifier)).await;
    let signer = signer(&ring, addr);
    let client = DemoClient::new(signer.tonic_channel(&endpoint(addr)).unwrap());

    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let kids = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (mut client, ok, failed, kids) =
                (client.clone(), ok.clone(), failed.clone(), kids.clone());
            tokio::spawn(async move {
                while tokio::time::Instant::now() < deadline {
                    match client.who_am_i(WhoAmIRequest {}).await {
                        Ok(reply) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            kids.lock().unwrap().insert(reply.into_inner().kid);
                        }
                        Err(status) => {
                            eprintln!("failed: {status:?}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    // Two rotations at once (the harsh kind: no overlap, so B meets each
    // new kid with tokens already signed by it).
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        ring.rotate(
            SigningKey::generate(Algorithm::ES256).unwrap(),
            Duration::from_secs(600),
        )
        .unwrap();
        signer.clear_cache();
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {} calls failed", ok + failed);
    assert!(ok > 100, "only {ok} calls ran");
    assert_eq!(kids.lock().unwrap().len(), 3, "all three keys signed calls");
}

#[tokio::test]
#[cfg_attr(svcauth_peer_missing_python, ignore = "needs PyJWT and grpcio")]
async fn grpcio_with_pyjwt_tokens_gets_ok_and_unauthenticated() {
    const PY: &str = "https://py.internal";
    let Some(python) = python() else { return };
    let minted = run_peer(&python, "pyjwt_peer.py", &["mint-set", "ES256", B, PY]);
    let keys =
        KeySource::fixed(KeySet::from_jwks(minted["jwks"].to_string().as_bytes(), 65536).unwrap());
    let verifier = Verifier::builder(B).trust(PY, keys).build().unwrap();
    let addr = grpc_server(VerifyLayer::new(verifier)).await.to_string();
    let call = |args: Vec<String>| {
        let python = python.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_peer(&python, "grpc_peer.py", &args)
        })
    };
    let token = |name: &str| minted[name].as_str().unwrap().to_owned();

    let ok = call(vec!["whoami".into(), addr.clone(), token("token")])
        .await
        .unwrap();
    assert_eq!(ok, json!({ "code": "OK", "sub": "pyjwt-client" }));

    let missing = call(vec!["whoami".into(), addr.clone()]).await.unwrap();
    assert_eq!(missing["code"], "UNAUTHENTICATED", "{missing}");
    assert_eq!(missing["details"], "a bearer token is required");
    assert_eq!(missing["www_authenticate"], "Bearer");

    for (name, details) in [
        ("expired", "the token has expired"),
        ("wrong_audience", "the token is not for this audience"),
    ] {
        let refused = call(vec!["whoami".into(), addr.clone(), token(name)])
            .await
            .unwrap();
        assert_eq!(refused["code"], "UNAUTHENTICATED", "{name}: {refused}");
        assert_eq!(refused["details"], details, "{name}");
        assert!(
            refused["www_authenticate"]
                .as_str()
                .unwrap()
                .starts_with("Bearer error=\"invalid_token\""),
            "{name}: {refused}"
        );
    }

    // A server stream from grpcio: every reply, one token check.
    let streamed = call(vec![
        "count".into(),
        addr.clone(),
        token("token"),
        "25".into(),
    ])
    .await
    .unwrap();
    assert_eq!(streamed["code"], "OK", "{streamed}");
    assert_eq!(streamed["subs"].as_array().unwrap().len(), 25);
}

/// `POST /call-grpc{query}` on service-a: the status and the JSON reply.
async fn call_grpc(a: &Example, query: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(a.url(&format!("/call-grpc{query}")))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// service-a calling `grpc_url`, and service-b serving gRPC on `grpc_port`
/// with `b_extra` flags.
async fn example_pair(
    grpc_url: &str,
    grpc_port: u16,
    a_extra: &[&str],
    b_extra: &[&str],
) -> (Example, Example) {
    let mut a_args = vec![
        "--issuer".to_owned(),
        A.into(),
        "--call-grpc".into(),
        format!("{B}={grpc_url}"),
    ];
    a_args.extend(a_extra.iter().map(|s| s.to_string()));
    let a = Example::start("service-a", &a_args, |_| true).await;
    let mut b_args = vec![
        "--audience".to_owned(),
        B.into(),
        "--trust".into(),
        format!("{A}={}", a.url("/.well-known/jwks.json")),
        "--grpc-listen".into(),
        format!("127.0.0.1:{grpc_port}"),
    ];
    b_args.extend(b_extra.iter().map(|s| s.to_string()));
    // Not waited for: with --tls-cert its /healthz is HTTPS; the callers
    // below retry until B's gRPC listener answers.
    let b = Example::spawn_on(
        free_port(),
        "service-b",
        &b_args,
        std::process::Stdio::null(),
    );
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_pair_speaks_grpc_over_tls_and_refuses_unlisted_callers() {
    // B serves gRPC over TLS with a certificate from a private CA; A trusts
    // that CA (--ca-file) for its signing channel.
    let (pki, files) = (Pki::new(), PemFiles::new());
    let (ca, cert, key) = files.localhost_server(&pki, "b");
    let port = free_port();
    let (a, _b) = example_pair(
        &format!("https://localhost:{port}"),
        port,
        &["--ca-file", &ca],
        &["--tls-cert", &cert, "--tls-key", &key],
    )
    .await;
    let mut answer = (0, Value::Null);
    for _ in 0..100 {
        answer = call_grpc(&a, "").await;
        if answer.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(answer.1["grpc_status"], 0);
    assert_eq!(answer.1["sub"], A);
    assert_eq!(answer.1["aud"], json!([B]));
    let (status, streamed) = call_grpc(&a, "?rpc=count&count=7").await;
    assert_eq!(status, 200, "{streamed}");
    assert_eq!(streamed["replies"], 7);

    // A plain-text B that admits another issuer only: 7 PERMISSION_DENIED
    // reaches A as a gRPC status with its message and challenge.
    let port = free_port();
    let (a, _b) = example_pair(
        &format!("http://127.0.0.1:{port}"),
        port,
        &[],
        &["--allow-caller", "https://c.internal"],
    )
    .await;
    let mut answer = (0, Value::Null);
    for _ in 0..100 {
        answer = call_grpc(&a, "").await;
        // Until B listens, the channel's own UNAVAILABLE comes back.
        if answer.1["grpc_status"] == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.0, 502, "{}", answer.1);
    assert_eq!(answer.1["grpc_status"], 7, "{}", answer.1);
    assert_eq!(answer.1["grpc_message"], "the caller is not allowed here");
    assert!(
        answer.1["www_authenticate"]
            .as_str()
            .is_some_and(|c| c.contains("insufficient_scope")),
        "{}",
        answer.1
    );
}
