//! The remote key source against a real JWKS server on loopback.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use svcauth_core::{Algorithm, ManualClock, b64};
use svcauth_jwks::{FetchError, KeyLookup, KeySource, RemoteBuilder, SigningKey, SkipReason};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Status500,
    Garbage,
    Huge,
    Hang,
    Slow,
    RedirectElsewhere,
}

struct ServerState {
    mode: Mode,
    keys: Vec<serde_json::Value>,
    cache_control: Option<String>,
    etag: Option<String>,
    issuer: String,
    jwks_uri: Option<String>,
}

#[derive(Clone)]
struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
    jwks_hits: Arc<AtomicUsize>,
}

impl Server {
    async fn start(keys: &[&SigningKey]) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server {
            addr,
            state: Arc::new(Mutex::new(ServerState {
                mode: Mode::Ok,
                keys: keys
                    .iter()
                    .map(|k| serde_json::to_value(k.public_jwk()).unwrap())
                    .collect(),
                cache_control: Some("public, max-age=300".into()),
                etag: None,
                issuer: format!("http://{addr}"),
                jwks_uri: None,
            })),
            jwks_hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/jwks.json", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }

    fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    fn set(&self, f: impl FnOnce(&mut ServerState)) {
        f(&mut self.state.lock().unwrap());
    }

    fn publish(&self, keys: &[&SigningKey]) {
        self.set(|s| {
            s.keys = keys
                .iter()
                .map(|k| serde_json::to_value(k.public_jwk()).unwrap())
                .collect()
        });
    }

    fn source(&self, clock: &ManualClock) -> RemoteBuilder {
        KeySource::remote(&self.url())
            .unwrap()
            .clock(Arc::new(clock.clone()))
            .background_refresh(false)
            .fetch_timeout(Duration::from_millis(500))
    }
}

async fn jwks(State(server): State<Server>, headers: HeaderMap) -> Response {
    server.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let (mode, body, cache_control, etag) = {
        let s = server.state.lock().unwrap();
        let body = serde_json::json!({ "keys": s.keys }).to_string();
        (s.mode, body, s.cache_control.clone(), s.etag.clone())
    };
    match mode {
        Mode::Status500 => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Garbage => return (StatusCode::OK, "<html>not json</html>").into_response(),
        Mode::Huge => return (StatusCode::OK, vec![b' '; 10 * 1024 * 1024]).into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::OK.into_response();
        }
        Mode::Slow => tokio::time::sleep(Duration::from_millis(300)).await,
        Mode::RedirectElsewhere => {
            let target = format!("http://127.0.0.2:{}/jwks.json", server.addr.port());
            return (StatusCode::FOUND, [(header::LOCATION, target)]).into_response();
        }
        Mode::Ok => {}
    }
    if let (Some(etag), Some(inm)) = (&etag, headers.get(header::IF_NONE_MATCH))
        && inm.as_bytes() == etag.as_bytes()
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut response = (StatusCode::OK, body).into_response();
    if let Some(cc) = cache_control {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_str(&cc).unwrap());
    }
    if let Some(etag) = etag {
        response
            .headers_mut()
            .insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
    }
    response
}

async fn discovery(State(server): State<Server>) -> Response {
    let (issuer, jwks_uri) = {
        let s = server.state.lock().unwrap();
        (s.issuer.clone(), s.jwks_uri.clone())
    };
    let jwks_uri = jwks_uri.unwrap_or_else(|| server.url());
    axum::Json(serde_json::json!({ "issuer": issuer, "jwks_uri": jwks_uri })).into_response()
}

fn ed() -> SigningKey {
    SigningKey::generate(Algorithm::EdDSA).unwrap()
}

fn found(lookup: KeyLookup) -> bool {
    matches!(lookup, KeyLookup::Found(_))
}

/// A discovering key source that fetches only when told (`refresh`).
fn discover_once(issuer: &str) -> KeySource {
    KeySource::discover(issuer)
        .unwrap()
        .background_refresh(false)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_unknown_kids_cause_one_fetch_and_a_second_wave_none() {
    let key = ed();
    let server = Server::start(&[&key]).await;
    let clock = ManualClock::starting_now();
    let source = server.source(&clock).build().unwrap();
    source.refresh().await.unwrap();
    assert_eq!(server.hits(), 1);
    clock.advance(Duration::from_secs(31)); // past the cooldown of the first fetch

    for wave in 0..2 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let source = source.clone();
            tasks.spawn(async move { source.resolve(Some(&format!("unknown-{wave}-{i}"))).await });
        }
        while let Some(lookup) = tasks.join_next().await {
            assert!(matches!(lookup.unwrap(), KeyLookup::UnknownKid));
        }
        assert_eq!(
            server.hits(),
            2,
            "wave {wave}: one fetch in all, none inside the cooldown"
        );
    }
    assert!(found(source.resolve(Some(key.kid())).await));
    assert_eq!(source.stats().fetches, 2);
}

#[tokio::test]
async fn new_kid_is_found_within_one_cooldown_and_a_removed_kid_stops_resolving() {
    let (old, new) = (ed(), ed());
    let server = Server::start(&[&old]).await;
    let clock = ManualClock::starting_now();
    let source = server.source(&clock).build().unwrap();
    assert!(found(source.resolve(Some(old.kid())).await));
    let generation = source.generation();

    server.publish(&[&old, &new]);
    // Inside the cooldown of the first fetch: not fetched yet.
    assert!(matches!(
        source.resolve(Some(new.kid())).await,
        KeyLookup::UnknownKid
    ));
    assert_eq!(server.hits(), 1);
    clock.advance(Duration::from_secs(30));
    assert!(
        found(source.resolve(Some(new.kid())).await),
        "picked up after one cooldown"
    );
    assert_eq!(server.hits(), 2);
    assert_ne!(source.generation(), generation);

    server.publish(&[&new]);
    source.refresh().await.unwrap();
    assert!(
        matches!(source.lookup(Some(old.kid())), KeyLookup::UnknownKid),
        "replaced, not merged"
    );
    assert!(found(source.lookup(Some(new.kid()))));
}

#[tokio::test]
async fn outages_keep_the_last_good_set_until_max_staleness_then_fail_closed() {
    let key = ed();
    let server = Server::start(&[&key]).await;
    let clock = ManualClock::starting_now();
    let source = server
        .source(&clock)
        .max_staleness(Duration::from_secs(3600))
        .build()
        .unwrap();
    source.refresh().await.unwrap();

    for (mode, expect) in [
        (Mode::Status500, "HTTP 500"),
        (Mode::Garbage, "not a JSON object"),
        (Mode::Huge, "exceeds 65536 bytes"),
        (Mode::Hang, "failed"),
        (Mode::RedirectElsewhere, "HTTP 302"),
    ] {
        server.set(|s| s.mode = mode);
        let error = source.refresh().await.unwrap_err();
        assert!(error.to_string().contains(expect), "{error}");
        assert!(
            found(source.lookup(Some(key.kid()))),
            "last good set still used"
        );
        let stats = source.stats();
        assert!(stats.last_error.as_deref().unwrap().contains(expect));
        assert!(!stats.expired);
    }
    let failures = source.stats().failures;
    assert_eq!(failures, 5);

    clock.advance(Duration::from_secs(3601));
    assert!(matches!(source.lookup(Some(key.kid())), KeyLookup::Expired));
    assert!(matches!(
        source.resolve(Some(key.kid())).await,
        KeyLookup::Expired
    ));
    assert!(source.stats().expired);

    // The issuer comes back: the next fetch restores service.
    server.set(|s| s.mode = Mode::Ok);
    source.refresh().await.unwrap();
    assert!(found(source.lookup(Some(key.kid()))));
    assert_eq!(source.stats().last_error, None);
}

#[tokio::test]
async fn never_loaded_is_reported_apart_from_an_unknown_kid() {
    let server = Server::start(&[&ed()]).await;
    server.set(|s| s.mode = Mode::Status500);
    let clock = ManualClock::starting_now();
    let source = server.source(&clock).build().unwrap();
    assert!(matches!(
        source.resolve(Some("any")).await,
        KeyLookup::NotLoaded
    ));
    assert!(!source.stats().loaded);
    // Retries while nothing is loaded are spaced by backoff, not hammered.
    assert!(matches!(
        source.resolve(Some("any")).await,
        KeyLookup::NotLoaded
    ));
    assert_eq!(server.hits(), 1);
    clock.advance(Duration::from_secs(1));
    server.set(|s| s.mode = Mode::Ok);
    assert!(matches!(
        source.resolve(Some("any")).await,
        KeyLookup::UnknownKid
    ));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_and_clamped() {
    let server = Server::start(&[&ed()]).await;
    let clock = ManualClock::starting_now();
    let source = server.source(&clock).build().unwrap();
    for (cache_control, ttl) in [
        (Some("public, max-age=120"), 120),
        (Some("max-age=5"), 60),
        (Some("max-age=999999"), 86_400),
        (Some("no-store"), 60),
        (None, 300),
    ] {
        server.set(|s| s.cache_control = cache_control.map(str::to_owned));
        source.refresh().await.unwrap();
        assert_eq!(source.stats().ttl_secs, Some(ttl), "{cache_control:?}");
    }
}

#[tokio::test]
async fn etag_revalidation_keeps_the_set() {
    let key = ed();
    let server = Server::start(&[&key]).await;
    server.set(|s| s.etag = Some("\"v1\"".into()));
    let clock = ManualClock::starting_now();
    let source = server.source(&clock).build().unwrap();
    source.refresh().await.unwrap();
    let generation = source.generation();
    clock.advance(Duration::from_secs(400));
    source.refresh().await.unwrap();
    let stats = source.stats();
    assert_eq!((stats.fetches, stats.not_modified), (2, 1));
    assert_eq!(stats.age_secs, Some(0), "a 304 revalidates the set");
    assert_eq!(source.generation(), generation, "a 304 is not a change");
    assert!(found(source.lookup(Some(key.kid()))));
}

#[tokio::test]
async fn discovery_requires_the_exact_issuer() {
    let key = ed();
    let server = Server::start(&[&key]).await;
    let issuer = format!("http://{}", server.addr);
    let clock = ManualClock::starting_now();
    let source = KeySource::discover(&issuer)
        .unwrap()
        .clock(Arc::new(clock.clone()))
        .background_refresh(false)
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    assert!(found(source.lookup(Some(key.kid()))));

    server.set(|s| s.issuer = format!("{issuer}/")); // one character off
    let source = discover_once(&issuer);
    let error = source.refresh().await.unwrap_err();
    assert!(
        matches!(error, FetchError::IssuerMismatch { .. }),
        "{error}"
    );
    assert!(matches!(
        source.lookup(Some(key.kid())),
        KeyLookup::NotLoaded
    ));
    assert_eq!(
        server.hits(),
        1,
        "the JWKS of a mismatching issuer is never fetched"
    );
}

#[tokio::test]
async fn one_bad_key_of_each_kind_leaves_the_good_keys_usable() {
    let (good1, good2) = (ed(), SigningKey::generate(Algorithm::ES256).unwrap());
    let server = Server::start(&[]).await;
    let mut small_n = vec![0xC5u8; 128]; // 1024-bit modulus
    small_n[127] |= 1;
    let mut private = serde_json::to_value(ed().public_jwk()).unwrap();
    private["d"] = "AAAA".into();
    let mut enc = serde_json::to_value(ed().public_jwk()).unwrap();
    enc["use"] = "enc".into();
    let mut dup = serde_json::to_value(ed().public_jwk()).unwrap();
    dup["kid"] = good1.kid().into();
    let keys = vec![
        serde_json::to_value(good1.public_jwk()).unwrap(),
        serde_json::json!({"kty":"RSA","kid":"rsa1024","n": b64::encode(&small_n),"e":"AQAB"}),
        serde_json::json!({"kty":"oct","kid":"hmac","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}),
        private,
        enc,
        dup,
        serde_json::json!({"kty":"EC","crv":"P-521","kid":"p521","x":"AA","y":"AA"}),
        serde_json::to_value(good2.public_jwk()).unwrap(),
    ];
    server.set(|s| s.keys = keys);
    let clock = ManualClock::starting_now();
    let source = server.source(&clock).build().unwrap();
    source.refresh().await.unwrap();

    assert!(found(source.lookup(Some(good1.kid()))));
    assert!(found(source.lookup(Some(good2.kid()))));
    let keys = source.keys();
    assert_eq!(keys.len(), 2);
    let reasons: Vec<_> = keys.skipped().iter().map(|s| s.reason.clone()).collect();
    assert_eq!(
        reasons,
        [
            SkipReason::RsaTooSmall(1024),
            SkipReason::Symmetric,
            SkipReason::PrivateKeyMaterial,
            SkipReason::NotForSignatures,
            SkipReason::DuplicateKid,
            SkipReason::UnknownCurve("P-521".into()),
        ]
    );
    // The duplicate did not replace the first key with that kid.
    let KeyLookup::Found(first) = source.lookup(Some(good1.kid())) else {
        panic!()
    };
    assert_eq!(first.material(), good1.public_key());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_lookup_during_the_refreshers_first_fetch_waits_for_it() {
    let key = ed();
    let server = Server::start(&[&key]).await;
    server.set(|s| s.mode = Mode::Slow);
    // Built inside a runtime, the refresher starts fetching at once.
    let source = KeySource::remote(&server.url()).unwrap().build().unwrap();
    for _ in 0..100 {
        if server.hits() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.hits(), 1, "the refresher's fetch is under way");
    // Not NotLoaded (a 503 at a verifier): the fetch under way is awaited.
    assert!(found(source.resolve(Some(key.kid())).await));
    assert_eq!(server.hits(), 1, "and shared");
}

#[tokio::test]
async fn background_refresh_follows_the_issuer_without_lookups() {
    let (old, new) = (ed(), ed());
    let server = Server::start(&[&old]).await;
    server.set(|s| s.cache_control = Some("max-age=0".into()));
    let source = KeySource::remote(&server.url())
        .unwrap()
        .ttl_bounds(Duration::from_millis(200), Duration::from_secs(60))
        .build()
        .unwrap();
    server.publish(&[&new]);
    // Liveness bound only: the refresher runs every ~200 ms.
    for _ in 0..100 {
        if found(source.lookup(Some(new.kid()))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found(source.lookup(Some(new.kid()))));
    assert!(server.hits() >= 1);
}

#[test]
fn plain_http_to_another_host_is_refused_unless_dangerously_allowed() {
    let err = KeySource::remote("http://issuer.example/jwks.json")
        .unwrap()
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("refusing"));
    assert!(
        KeySource::remote("http://issuer.example/jwks.json")
            .unwrap()
            .background_refresh(false)
            .danger_allow_insecure_http()
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn an_empty_set_withdraws_every_key_and_a_set_of_bad_keys_does_not() {
    let key = ed();
    let server = Server::start(&[&key]).await;
    let clock = ManualClock::starting_now();
    let source = server.source(&clock).build().unwrap();
    assert!(found(source.resolve(Some(key.kid())).await));

    // Keys that are all unusable: a broken or hostile document, so the last
    // good set stays.
    server.set(|s| s.keys = vec![serde_json::json!({"kty": "oct", "kid": "x", "k": "c2VjcmV0"})]);
    assert!(source.refresh().await.is_err());
    assert!(found(source.lookup(Some(key.kid()))), "last good set kept");

    // `{"keys":[]}`: the issuer withdraws every key (a leaked one, say), and
    // that is applied at once, not treated as an outage.
    server.set(|s| s.keys = Vec::new());
    source.refresh().await.unwrap();
    assert!(
        matches!(source.lookup(Some(key.kid())), KeyLookup::UnknownKid),
        "an empty set trusts nothing"
    );
}

#[tokio::test]
async fn discovery_keeps_jwks_uri_on_the_issuers_origin_unless_allowed() {
    let key = ed();
    let server = Server::start(&[&key]).await;
    let issuer = format!("http://{}", server.addr);
    // The same server under another name is another origin: a discovery
    // document (or whoever wrote it) must not send key fetches elsewhere.
    let elsewhere = format!("http://localhost:{}", server.addr.port());
    server.set(|s| s.jwks_uri = Some(format!("{elsewhere}/jwks.json")));
    let source = discover_once(&issuer);
    let error = source.refresh().await.unwrap_err();
    assert!(matches!(error, FetchError::JwksUriOrigin { .. }), "{error}");
    assert_eq!(server.hits(), 0, "nothing fetched from the other origin");

    let source = KeySource::discover(&issuer)
        .unwrap()
        .allow_jwks_uri_origin(&elsewhere)
        .unwrap()
        .background_refresh(false)
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    assert!(found(source.lookup(Some(key.kid()))));
}

/// `HTTP_PROXY` and `ALL_PROXY` must not choose the keys. Environment
/// variables are process-wide (and `set_var` is unsafe in Rust 2024), so the
/// fetch runs in a child process of this test binary, started with them
/// pointing at a "proxy" that serves its own key set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_from_the_environment_are_never_used() {
    if std::env::var_os("SVCAUTH_PROXY_CHILD").is_some() {
        return proxy_child().await;
    }
    let (real, forged) = (ed(), ed());
    let server = Server::start(&[&real]).await;
    let proxy = Server::start(&[&forged]).await;
    let proxy_app = Router::new().fallback({
        let proxy = proxy.clone();
        move || {
            let proxy = proxy.clone();
            async move {
                proxy.jwks_hits.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::json!({ "keys": proxy.state.lock().unwrap().keys });
                (StatusCode::OK, body.to_string())
            }
        }
    });
    let proxy_url = format!("http://{}", svcauth_tests::serve(proxy_app).await);
    let (url, real_kid, forged_kid) =
        (server.url(), real.kid().to_owned(), forged.kid().to_owned());
    let (passed, output) = tokio::task::spawn_blocking(move || {
        let extra = [
            ("SVCAUTH_PROXY_CHILD", "1"),
            ("SVCAUTH_PROXY_JWKS", url.as_str()),
            ("SVCAUTH_PROXY_REAL_KID", real_kid.as_str()),
            ("SVCAUTH_PROXY_FORGED_KID", forged_kid.as_str()),
        ];
        svcauth_tests::run_test_under_proxy(
            "proxies_from_the_environment_are_never_used",
            &proxy_url,
            &extra,
        )
    })
    .await
    .unwrap();
    assert!(passed, "the fetch with proxies set failed:\n{output}");
    assert_eq!(proxy.hits(), 0, "the proxy was never asked");
    assert_eq!(server.hits(), 1, "the keys came straight from the issuer");
}

async fn proxy_child() {
    let url = std::env::var("SVCAUTH_PROXY_JWKS").unwrap();
    let source = KeySource::remote(&url)
        .unwrap()
        .background_refresh(false)
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    let real = std::env::var("SVCAUTH_PROXY_REAL_KID").unwrap();
    let forged = std::env::var("SVCAUTH_PROXY_FORGED_KID").unwrap();
    assert!(found(source.lookup(Some(&real))), "the issuer's key");
    assert!(
        matches!(source.lookup(Some(&forged)), KeyLookup::UnknownKid),
        "not the proxy's"
    );
}
