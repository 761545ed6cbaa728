//! Target 6 of the benchmarks: a service pair over HTTP on loopback, for a
//! load generator (`cargo xtask bench` drives it with wrk).
//!
//! `loadpair --mode MODE` starts service B, then service A, on free loopback
//! ports, and prints one line, `{"url": "http://127.0.0.1:PORT/call"}`. Each
//! `GET /call` on A makes A call `GET /whoami` on B over a pooled keep-alive
//! reqwest client and answers B's status and body, so every request crosses
//! both services, as with `examples/service-a` and `examples/service-b`. It
//! serves until its standard input closes.
//!
//! Modes, all with ES256 keys:
//! * `off`: no token sent, none checked (the baseline);
//! * `svcauth`: A's signer attaches its cached token, B's `VerifyLayer`
//!   checks it (a verification-cache hit after the first request);
//! * `svcauth-fresh`: A mints a fresh token bound to each request
//!   (method, URL, body hash), B verifies each in full, binding and replay
//!   check included;
//! * `jwt-authorizer`: A's cached token, checked by jwt-authorizer 0.15 on
//!   axum 0.7 (it verifies the signature on every request);
//! * `jwt-authorizer-fresh`: A's fresh bound tokens, checked by
//!   jwt-authorizer (which ignores the binding claims).
//!
//! A and B share one 2-worker tokio runtime: on a 2-core machine the load
//! generator, A and B compete for the same cores in every mode alike.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use jwt_authorizer::{IntoLayer, JwtAuthorizer, JwtClaims, RegisteredClaims};
use serde_json::json;
use svcauth_core::Algorithm;
use svcauth_jwks::{KeyRing, KeySet, KeySource, SigningKey};
use svcauth_sign::Signer;
use svcauth_verify::{Caller, MemoryReplayStore, Verifier, VerifyLayer};
use tokio::net::TcpListener;

const ISS: &str = "https://service-a.internal";
const AUD: &str = "https://service-b.internal";
/// Token ids the replay store can hold: more than one run spends.
const REPLAY_CAPACITY: usize = 2_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Svcauth,
    /// Cached tokens, with replay and revocation on Redis (`--redis URL`):
    /// the revocation mirror's cost under load.
    SvcauthRevocation,
    SvcauthFresh,
    JwtAuthorizer,
    JwtAuthorizerFresh,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "off" => Mode::Off,
            "svcauth" => Mode::Svcauth,
            "svcauth-revocation" => Mode::SvcauthRevocation,
            "svcauth-fresh" => Mode::SvcauthFresh,
            "jwt-authorizer" => Mode::JwtAuthorizer,
            "jwt-authorizer-fresh" => Mode::JwtAuthorizerFresh,
            _ => return None,
        })
    }

    fn fresh(self) -> bool {
        matches!(self, Mode::SvcauthFresh | Mode::JwtAuthorizerFresh)
    }
}

#[derive(Clone)]
struct A {
    client: reqwest::Client,
    whoami: String,
    signer: Option<Signer>,
}

async fn call(State(a): State<Arc<A>>) -> (StatusCode, String) {
    let request = a.client.get(&a.whoami);
    let request = match &a.signer {
        Some(signer) => match signer.sign(request).await {
            Ok(request) => request,
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        None => request,
    };
    match request.send().await {
        Ok(response) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            (status, response.text().await.unwrap_or_default())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

async fn serve_b(mode: Mode, key: &SigningKey, redis: Option<&str>) -> SocketAddr {
    let (listener, addr) = listener().await;
    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    match mode {
        Mode::Off => {
            let app = Router::new().route("/whoami", get(|| async { "anonymous" }));
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        Mode::Svcauth | Mode::SvcauthRevocation | Mode::SvcauthFresh => {
            let keys = KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 65536).unwrap());
            // The default in-memory replay store holds 100,000 live token
            // ids: at this pair's ~20,000 bound requests a second it is full
            // within seconds and B answers 503 (docs/OPERATIONS.md, "Tuning
            // the caches"). A run needs room for every id it spends.
            let replay = MemoryReplayStore::new(REPLAY_CAPACITY, svcauth_core::system_clock());
            let mut verifier = Verifier::builder(AUD)
                .trust(ISS, keys)
                .public_base_url(format!("http://{addr}").parse().unwrap())
                .replay_store(Arc::new(replay));
            if mode == Mode::SvcauthRevocation {
                let url = redis.expect("--redis URL for svcauth-revocation");
                let stores =
                    svcauth_redis::RedisStores::connect(svcauth_redis::RedisConfig::new(url))
                        .await
                        .unwrap();
                verifier = verifier
                    .replay_store(Arc::new(stores.replay()))
                    .revocation_store(Arc::new(stores.revocation()));
            }
            let verifier = verifier.build().unwrap();
            let app = Router::new()
                .route(
                    "/whoami",
                    get(|caller: Caller| async move { caller.0.sub().to_owned() }),
                )
                .layer(VerifyLayer::new(verifier));
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        Mode::JwtAuthorizer | Mode::JwtAuthorizerFresh => {
            let authorizer = JwtAuthorizer::<RegisteredClaims>::from_jwks_text(&jwks)
                .validation(jwt_authorizer::Validation::new().aud(&[AUD]).iss(&[ISS]))
                .build()
                .await
                .unwrap();
            let app = axum07::Router::new()
                .route(
                    "/whoami",
                    axum07::routing::get(
                        |JwtClaims(claims): JwtClaims<RegisteredClaims>| async move {
                            claims.sub.unwrap_or_default()
                        },
                    ),
                )
                .layer([authorizer].into_layer());
            tokio::spawn(async move { axum07::serve(listener, app).await });
        }
    }
    addr
}

async fn serve_a(mode: Mode, key: SigningKey, b: SocketAddr) -> SocketAddr {
    let origin = format!("http://{b}");
    let signer = (mode != Mode::Off).then(|| {
        let builder = Signer::self_signed(ISS, KeyRing::new(key)).unwrap();
        let builder = if mode.fresh() {
            builder.bound_audience(&origin, AUD)
        } else {
            builder.audience(&origin, AUD)
        };
        builder.build().unwrap()
    });
    let a = Arc::new(A {
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        whoami: format!("{origin}/whoami"),
        signer,
    });
    let (listener, addr) = listener().await;
    let app = Router::new().route("/call", get(call)).with_state(a);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args
        .iter()
        .position(|a| a == "--mode")
        .and_then(|i| args.get(i + 1))
        .and_then(|m| Mode::parse(m))
        .expect("--mode off|svcauth|svcauth-revocation|svcauth-fresh|jwt-authorizer|jwt-authorizer-fresh");
    let redis = args
        .iter()
        .position(|a| a == "--redis")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pem = svcauth_jwks::generate_pkcs8_pem(Algorithm::ES256).unwrap();
        let public = SigningKey::from_pkcs8_pem(&pem, Some(Algorithm::ES256)).unwrap();
        let private = SigningKey::from_pkcs8_pem(&pem, Some(Algorithm::ES256)).unwrap();
        let b = serve_b(mode, &public, redis.as_deref()).await;
        let a = serve_a(mode, private, b).await;
        // One request through the pair before announcing it: a refusal
        // here is a broken setup, not a figure.
        let url = format!("http://{a}/call");
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "the pair answered {status}: {body}");
        println!("{}", json!({ "url": url, "caller": body }));
    });
    // Serve until the driver closes our standard input.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    rt.shutdown_background();
}
