//! The signing side end to end: real HTTP on loopback to a service behind
//! the real svcauth-verify layer, with A's keys fetched from A's JWKS.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use svcauth_core::{Algorithm, Clock, ManualClock, SystemClock};
use svcauth_jwks::SigningKey;
use svcauth_sign::{
    BindRequest, ClientAuth, ClientCredentials, OnBehalfOf, SignError, SignLayer, Signer,
    StsClient, TargetAudience, TokenExchange,
};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

type Client = svcauth_sign::Sign<reqwest::Client>;

/// The [`SignError`] inside a layer's error.
fn sign_error(err: &tower::BoxError) -> &SignError {
    err.downcast_ref().expect("a SignError")
}

/// `signer`'s layer around a service that answers with the
/// `Authorization` header it was sent.
fn echo_authorization(
    signer: Signer,
) -> tower::util::BoxCloneService<Request<Full<Bytes>>, String, tower::BoxError> {
    tower::util::BoxCloneService::new(ServiceBuilder::new().layer(SignLayer::new(signer)).service(
        service_fn(|req: Request<Full<Bytes>>| async move {
            Ok::<_, std::convert::Infallible>(
                req.headers()["authorization"].to_str().unwrap().to_owned(),
            )
        }),
    ))
}

fn client(signer: &Signer) -> Client {
    ServiceBuilder::new()
        .layer(SignLayer::new(signer.clone()))
        .service(reqwest::Client::new())
}

async fn call(client: &Client, url: &str) -> (u16, serde_json::Value) {
    let request = reqwest::Client::new().get(url).build().unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn round_trip_through_the_verifying_layer_for_every_algorithm() {
    for alg in Algorithm::ALL {
        let ring = ring(alg);
        let jwks = publish(&ring).await;
        let b = service_b(vec![(ISS_A, remote(&jwks))]).await;
        let (status, body) =
            call(&client(&signer_to(&b, &ring)), &format!("{}/whoami", b.url)).await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert_eq!(body["sub"], ISS_A);
        assert_eq!(body["kid"], ring.signer().kid());
        let claims = &body["claims"];
        assert_eq!(claims["aud"], b.audience.as_str());
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            300
        );
        assert!(
            claims["nbf"].as_u64().unwrap() <= SystemClock.now_secs() - 4,
            "backdated"
        );
        assert_eq!(
            svcauth_core::b64::decode(claims["jti"].as_str().unwrap())
                .unwrap()
                .len(),
            16
        );
    }
}

/// A token source whose mints wait while its gate is closed.
struct Gated {
    inner: svcauth_sign::SelfSigned,
    open: tokio::sync::watch::Receiver<bool>,
}

impl svcauth_sign::TokenSource for Gated {
    fn token<'a>(
        &'a self,
        request: svcauth_sign::TokenRequest<'a>,
    ) -> svcauth_sign::TokenFuture<'a> {
        Box::pin(async move {
            self.open.clone().wait_for(|open| *open).await.unwrap();
            self.inner.mint(request).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mint_per_audience_and_one_background_refresh_after_the_refresh_point() {
    let clock = ManualClock::starting_now();
    let (gate, open) = tokio::sync::watch::channel(true);
    let inner = svcauth_sign::SelfSigned::new(ISS_A, ring(Algorithm::ES256))
        .unwrap()
        .clock(Arc::new(clock.clone()));
    let mut builder = Signer::builder(Gated { inner, open }).clock(Arc::new(clock.clone()));
    for i in 0..10 {
        builder = builder.audience(&format!("https://svc{i}.internal"), &format!("aud-{i}"));
    }
    let signer = builder.build().unwrap();
    let stub = service_fn(|req: Request<Full<Bytes>>| async move {
        Ok::<_, std::convert::Infallible>(
            req.headers()["authorization"].to_str().unwrap().to_owned(),
        )
    });
    let svc = ServiceBuilder::new()
        .layer(SignLayer::new(signer.clone()))
        .service(stub);
    let burst = |n: usize, audiences: usize| {
        let svc = svc.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..n {
                let svc = svc.clone();
                let url = format!("https://svc{}.internal/x", i % audiences);
                tasks.spawn(async move {
                    svc.oneshot(Request::get(url).body(Full::default()).unwrap())
                        .await
                        .unwrap()
                });
            }
            // A liveness bound, not a speed assertion: a call that waited
            // for a gated mint would never finish.
            tokio::time::timeout(Duration::from_secs(30), tasks.join_all())
                .await
                .expect("a call waited for a mint")
        }
    };

    let tokens = burst(1000, 1).await;
    assert_eq!(
        signer.metrics().mints,
        1,
        "1,000 concurrent calls, one signature"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    burst(1000, 10).await;
    assert_eq!(signer.metrics().mints, 10, "one per audience");
    let before: Vec<String> = burst(10, 10).await;

    // Past the refresh point (80% of the lifetime, less jitter), with mints
    // held back: every call still completes, with the current token.
    gate.send(false).unwrap();
    clock.advance(Duration::from_secs(250));
    let during = burst(1000, 10).await;
    assert!(
        during.iter().all(|t| before.contains(t)),
        "no call waited for a new token"
    );
    gate.send(true).unwrap();
    for _ in 0..500 {
        if signer.metrics().mints == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        signer.metrics().mints,
        20,
        "one background refresh per audience"
    );
    let after = burst(10, 10).await;
    assert!(
        after.iter().all(|t| !before.contains(t)),
        "refreshed tokens are in use"
    );
    assert_eq!(signer.metrics().mints, 20);

    // Within the safety margin of expiry, a token is never handed out.
    clock.advance(Duration::from_secs(280));
    let late = burst(10, 10).await;
    assert!(late.iter().all(|t| !after.contains(t)));
}

#[tokio::test]
async fn tokens_differ_per_audience_and_stay_away_from_unmapped_origins() {
    let ring = ring(Algorithm::EdDSA);
    let signer = Signer::self_signed(ISS_A, ring.clone())
        .unwrap()
        .audience("https://b.internal", "aud-b")
        .audience("https://c.internal:8443", "aud-c")
        .audience("http://127.0.0.1:9", "aud-local")
        .audience("http://plain.internal", "aud-plain")
        .allow_audience_at("https://b.internal", "aud-override")
        .build()
        .unwrap();
    let stub = service_fn(|req: Request<Full<Bytes>>| async move {
        Ok::<_, std::convert::Infallible>(
            req.headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    });
    let svc = ServiceBuilder::new()
        .layer(SignLayer::new(signer.clone()))
        .service(stub);
    let send = |url: &str| {
        let svc = svc.clone();
        let req = Request::get(url).body(Full::default()).unwrap();
        async move { svc.oneshot(req).await.unwrap() }
    };
    let b = send("https://b.internal/x").await.unwrap();
    let c = send("https://C.internal:8443/y").await.unwrap();
    let (cb, cc) = (claims_of(&b[7..]), claims_of(&c[7..]));
    assert_eq!(
        (cb["aud"].as_str(), cc["aud"].as_str()),
        (Some("aud-b"), Some("aud-c"))
    );
    assert_ne!(cb["jti"], cc["jti"]);
    assert_eq!(
        send("https://evil.example/steal").await,
        None,
        "no audience, no token"
    );
    assert_eq!(
        send("https://c.internal/y").await,
        None,
        "port 443 is another origin than 8443"
    );
    assert!(
        send("http://127.0.0.1:9/x").await.is_some(),
        "plain http to loopback is fine"
    );
    assert_eq!(
        send("http://plain.internal/x").await,
        None,
        "plain http elsewhere: no token"
    );

    // The caller's own Authorization header is kept.
    let own = Request::get("https://b.internal/x")
        .header("authorization", "Bearer mine")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        svc.clone().oneshot(own).await.unwrap().as_deref(),
        Some("Bearer mine")
    );
    // A per-request audience wins over the map, where the origin may
    // receive it.
    let named = |url: &str, aud: &str| {
        let mut req = Request::get(url).body(Full::default()).unwrap();
        req.extensions_mut().insert(TargetAudience(aud.into()));
        req
    };
    for (url, aud) in [
        ("https://b.internal/x", "aud-override"),
        ("https://c.internal:8443/x", "aud-c"),
    ] {
        let token = svc.clone().oneshot(named(url, aud)).await.unwrap().unwrap();
        assert_eq!(claims_of(&token[7..])["aud"], aud);
    }
    // Anywhere else, a named audience is refused and nothing is sent: a
    // token for b must not reach c, nor an origin nobody mapped.
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = sent.clone();
    let refusing = ServiceBuilder::new()
        .layer(SignLayer::new(signer.clone()))
        .service(service_fn(move |_: Request<Full<Bytes>>| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async { Ok::<_, std::convert::Infallible>(()) }
        }));
    for (url, aud) in [
        ("https://c.internal:8443/x", "aud-b"),
        ("https://evil.example/x", "aud-b"),
        ("https://b.internal:444/x", "aud-b"),
        ("http://127.0.0.1:9/x", "aud-override"),
    ] {
        let err = refusing.clone().oneshot(named(url, aud)).await.unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<SignError>(),
                Some(SignError::AudienceNotAllowed { .. })
            ),
            "{url} {aud}: {err}"
        );
    }
    assert_eq!(sent.load(std::sync::atomic::Ordering::Relaxed), 0);

    // In refuse mode the same requests are errors.
    let strict = Signer::self_signed(ISS_A, ring)
        .unwrap()
        .refuse_without_audience()
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(SignLayer::new(strict))
        .service(service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(())
        }));
    let err = svc
        .call(
            Request::get("https://evil.example/")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(sign_error(&err), SignError::NoAudience(_)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_mid_traffic_fails_no_call() {
    let ring = ring(Algorithm::EdDSA);
    let jwks = publish(&ring).await;
    let keys = remote(&jwks);
    let b = service_b(vec![(ISS_A, keys.clone())]).await;
    // Bound tokens are minted per request, so every call shows the current kid.
    let signer = Signer::self_signed(ISS_A, ring.clone())
        .unwrap()
        .bound_audience(&b.url, &b.audience)
        .build()
        .unwrap();
    let client = client(&signer);
    let old = ring.signer().kid().to_owned();

    let traffic = {
        let (client, url) = (client.clone(), format!("{}/echo", b.url));
        tokio::spawn(async move {
            for i in 0..300 {
                let request = reqwest::Client::new()
                    .post(&url)
                    .body(format!("call {i}"))
                    .build()
                    .unwrap();
                let response = client.clone().oneshot(request).await.unwrap();
                assert_eq!(response.status(), 200, "call {i} failed");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // The procedure: publish the next key, let verifiers pick it up (their
    // cache's max-age; here a refresh), then promote it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    ring.add_next(SigningKey::generate(Algorithm::EdDSA).unwrap())
        .unwrap();
    keys.refresh().await.unwrap();
    ring.promote_next(Duration::from_secs(600)).unwrap();
    let new = ring.signer().kid().to_owned();
    traffic.await.unwrap();
    let kids: Vec<String> = b
        .seen_authorization
        .lock()
        .unwrap()
        .iter()
        .map(|h| header_of(&h[7..])["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids.len(), 300);
    assert!(
        kids.contains(&old) && kids.contains(&new),
        "traffic spans the rotation"
    );
    let first_new = kids.iter().position(|k| *k == new).unwrap();
    assert!(
        kids[first_new..].iter().all(|k| *k == new),
        "after promotion every token carries the new kid"
    );
    assert!(
        ring.state().published_kids().contains(&old),
        "the old key stays published"
    );
}

#[tokio::test]
async fn bound_requests_verify_as_sent_and_fail_when_changed_in_transit() {
    let ring = ring(Algorithm::ES256);
    let jwks = publish(&ring).await;
    let b = service_b(vec![(ISS_A, remote(&jwks))]).await;
    let signer = Signer::self_signed(ISS_A, ring)
        .unwrap()
        .bound_audience(&b.url, &b.audience)
        .build()
        .unwrap();
    let url = format!("{}/echo?q=1", b.url);

    let send = |tamper: fn(&mut reqwest::Request)| {
        let (signer, url) = (signer.clone(), url.clone());
        async move {
            let client = ServiceBuilder::new()
                .layer(SignLayer::new(signer))
                .map_request(move |mut r: reqwest::Request| {
                    tamper(&mut r);
                    r
                })
                .service(reqwest::Client::new());
            let request = reqwest::Client::new()
                .post(&url)
                .body("amount=10")
                .build()
                .unwrap();
            let response = client.oneshot(request).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(send(|_| {}).await, (200, "amount=10".to_owned()));
    assert_eq!(send(|r| *r.method_mut() = http::Method::PUT).await.0, 401);
    assert_eq!(send(|r| r.url_mut().set_path("/whoami")).await.0, 401);
    assert_eq!(
        send(|r| *r.body_mut() = Some("amount=99999".into()))
            .await
            .0,
        401
    );
    // The query is bound too (query_sha256): changing, dropping or adding
    // to it is refused.
    assert_eq!(send(|r| r.url_mut().set_query(Some("q=2"))).await.0, 401);
    assert_eq!(send(|r| r.url_mut().set_query(None)).await.0, 401);
    assert_eq!(
        send(|r| r.url_mut().set_query(Some("q=1&to=attacker")))
            .await
            .0,
        401
    );

    // A streaming body cannot be hashed: a clear error, not an unbound token.
    let mut svc = ServiceBuilder::new()
        .layer(SignLayer::new(signer.clone()))
        .service(service_fn(|_: Request<Streaming>| async {
            Ok::<_, std::convert::Infallible>(())
        }));
    let err = svc
        .call(
            Request::post(&url)
                .body(Streaming(Some(Bytes::from("x"))))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(sign_error(&err), SignError::UnhashableBody),
        "{err}"
    );
    // Per request: BindRequest(false) sends an ordinary cached token instead.
    let mut req = Request::post(&url).body(Streaming(None)).unwrap();
    req.extensions_mut().insert(BindRequest(false));
    assert!(svc.call(req).await.is_ok());
}

/// A body of unknown length.
struct Streaming(Option<Bytes>);

impl svcauth_core::BodyFromBytes for Streaming {
    fn from_bytes(b: Bytes) -> Self {
        Streaming(Some(b))
    }
}

impl http_body::Body for Streaming {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[tokio::test]
async fn client_credentials_with_private_key_jwt_and_client_secret_basic() {
    let (sts, b, signer) = signer_via_sts(Algorithm::ES256, ClientCredentials::new).await;
    let signed = client(&signer);
    for _ in 0..20 {
        let (status, body) = call(&signed, &format!("{}/whoami", b.url)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["sub"], "svc-a");
        assert_eq!(body["claims"]["aud"], b.audience.as_str());
    }
    assert_eq!(
        sts.hits(),
        1,
        "the credential is used only to fetch, and tokens are cached"
    );
    assert_eq!(sts.form("resource").as_deref(), Some(b.audience.as_str()));
    assert!(
        b.seen_authorization
            .lock()
            .unwrap()
            .iter()
            .all(|h| h.starts_with("Bearer "))
    );

    let sts = Sts::start(None, Some(("svc-a", "s3cr3t:with/odd&chars")), "svc-a").await;
    let b = service_b(vec![(&sts.issuer, sts.keys())]).await;
    let sts_client = StsClient::new(
        &sts.url,
        "svc-a",
        ClientAuth::client_secret_basic("s3cr3t:with/odd&chars"),
    )
    .unwrap();
    let signer = Signer::builder(ClientCredentials::new(sts_client))
        .audience(&b.url, &b.audience)
        .build()
        .unwrap();
    let (status, body) = call(&client(&signer), &format!("{}/whoami", b.url)).await;
    assert_eq!(status, 200, "{body}");
    // A second audience is a second token.
    signer.token("https://other.internal").await.unwrap();
    assert_eq!(sts.hits(), 2);
}

#[tokio::test]
async fn token_endpoint_errors_are_typed_and_retried_only_when_transient() {
    let sts = Sts::start(None, Some(("svc-a", "secret")), "svc-a").await;
    let new_signer = || {
        let sts_client =
            StsClient::new(&sts.url, "svc-a", ClientAuth::client_secret_basic("secret")).unwrap();
        Signer::builder(ClientCredentials::new(sts_client))
            .build()
            .unwrap()
    };

    *sts.mode.lock().unwrap() = StsMode::InvalidClient;
    let err = new_signer().token("aud").await.unwrap_err();
    assert!(
        matches!(&err, SignError::TokenEndpoint { status: 400, error: Some(e) } if e == "invalid_client"),
        "{err}"
    );
    assert_eq!(sts.hits(), 1, "a 400 is not retried");

    *sts.mode.lock().unwrap() = StsMode::Status500;
    let err = new_signer().token("aud").await.unwrap_err();
    assert!(
        matches!(
            err,
            SignError::TokenEndpoint {
                status: 500,
                error: None
            }
        ),
        "{err}"
    );
    assert_eq!(sts.hits(), 4, "a 500 is tried three times");

    *sts.mode.lock().unwrap() = StsMode::Garbage;
    let err = new_signer().token("aud").await.unwrap_err();
    assert!(matches!(err, SignError::TokenResponse(_)), "{err}");

    // Wrong credentials.
    *sts.mode.lock().unwrap() = StsMode::Ok;
    let sts_client =
        StsClient::new(&sts.url, "svc-a", ClientAuth::client_secret_basic("wrong")).unwrap();
    let err = Signer::builder(ClientCredentials::new(sts_client))
        .build()
        .unwrap()
        .token("aud")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SignError::TokenEndpoint { status: 401, error: Some(e) } if e == "invalid_client")
    );
    assert!(new_signer().token("aud").await.is_ok());
}

#[tokio::test]
async fn token_exchange_carries_the_user_with_the_service_as_actor() {
    let (sts, b, signer) = signer_via_sts(Algorithm::EdDSA, TokenExchange::new).await;

    // The user's inbound token (here minted by the STS for service A).
    let user_token = async |user: &str| {
        let source = svcauth_sign::SelfSigned::new(&sts.issuer, sts.ring.clone()).unwrap();
        let obo = OnBehalfOf::Subject(user.to_owned());
        source
            .mint(svcauth_sign::TokenRequest {
                audience: "svc-a",
                binding: None,
                on_behalf_of: Some(&obo),
            })
            .await
            .unwrap()
            .as_str()
            .to_owned()
    };
    let alice = OnBehalfOf::SubjectToken(user_token("alice").await);
    let mw = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(signer.middleware())
        .build();
    for _ in 0..3 {
        let response = mw
            .get(format!("{}/whoami", b.url))
            .with_extension(alice.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = json(response).await;
        assert_eq!(body["sub"], "alice");
        assert_eq!(body["claims"]["act"]["sub"], "svc-a");
    }
    assert_eq!(sts.hits(), 1, "cached per subject token");
    assert_eq!(
        sts.form("grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:token-exchange")
    );
    let bob = OnBehalfOf::SubjectToken(user_token("bob").await);
    let response = mw
        .get(format!("{}/whoami", b.url))
        .with_extension(bob)
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["sub"], "bob");
    assert_eq!(sts.hits(), 2);
    // Without a subject token, token exchange has nothing to exchange.
    let err = signer.token(&b.audience).await.unwrap_err();
    assert!(matches!(err, SignError::Unsupported(_)));
}

#[tokio::test]
async fn self_signed_delegation_names_the_user_and_the_service_as_actor() {
    let ring = ring(Algorithm::EdDSA);
    let jwks = publish(&ring).await;
    let b = service_b(vec![(ISS_A, remote(&jwks))]).await;
    let signer = signer_to(&b, &ring);
    let mw = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(signer.middleware())
        .build();
    let response = mw
        .get(format!("{}/whoami", b.url))
        .with_extension(OnBehalfOf::Subject("user-42".into()))
        .send()
        .await
        .unwrap();
    let body = json(response).await;
    assert_eq!(body["sub"], "user-42");
    assert_eq!(body["claims"]["act"]["sub"], ISS_A);
    // The one-line reqwest form.
    let response = signer
        .sign(reqwest::Client::new().get(format!("{}/whoami", b.url)))
        .await
        .unwrap()
        .send()
        .await
        .unwrap();
    assert_eq!(json(response).await["sub"], ISS_A);
}

#[test]
fn lifetimes_over_an_hour_are_refused() {
    let source = svcauth_sign::SelfSigned::new(ISS_A, ring(Algorithm::EdDSA)).unwrap();
    assert!(source.clone().lifetime(Duration::from_secs(3601)).is_err());
    assert!(source.lifetime(Duration::from_secs(3600)).is_ok());
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn hyper_util_client_through_the_layer() {
    use hyper_util::client::legacy::Client as HyperClient;
    use hyper_util::rt::TokioExecutor;

    let ring = ring(Algorithm::RS256);
    let jwks = publish(&ring).await;
    let b = service_b(vec![(ISS_A, remote(&jwks))]).await;
    let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut client = ServiceBuilder::new()
        .layer(SignLayer::new(signer_to(&b, &ring)))
        .service(hyper);
    for (path, body) in [("/whoami", ""), ("/echo", "hello")] {
        let method = if body.is_empty() { "GET" } else { "POST" };
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", b.url))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = client.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        if path == "/echo" {
            assert_eq!(&bytes[..], b"hello");
        } else {
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["sub"],
                ISS_A
            );
        }
    }
}

#[tokio::test]
async fn a_resolver_that_routes_by_path_is_asked_for_every_path() {
    let ring = svcauth_jwks::KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let signer = Signer::self_signed(ISS_A, ring)
        .unwrap()
        .resolve_with(|d| match d.path.starts_with("/orders") {
            true => Some("aud-orders".into()),
            false => Some("aud-users".into()),
        })
        .build()
        .unwrap();
    let svc = echo_authorization(signer);
    // Same thread, same origin, another path: another audience.
    for (path, aud) in [
        ("/orders/1", "aud-orders"),
        ("/users/1", "aud-users"),
        ("/orders/2", "aud-orders"),
        ("/users/2", "aud-users"),
    ] {
        let request = Request::get(format!("https://api.internal{path}"))
            .body(Full::default())
            .unwrap();
        let token = svc.clone().oneshot(request).await.unwrap();
        assert_eq!(claims_of(&token[7..])["aud"], aud, "{path}");
    }
}

#[tokio::test]
async fn a_bound_token_binds_the_query_exactly() {
    let ring = svcauth_jwks::KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let signer = Signer::self_signed(ISS_A, ring)
        .unwrap()
        .bound_audience("https://pay.internal", "aud-pay")
        .build()
        .unwrap();
    let svc = echo_authorization(signer);
    let request = Request::post("https://pay.internal/pay?amount=1&to=bob")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let claims = claims_of(&svc.clone().oneshot(request).await.unwrap()[7..]);
    assert_eq!(claims["htu"], "https://pay.internal/pay");
    assert_eq!(
        claims["query_sha256"],
        svcauth_core::query_sha256("amount=1&to=bob")
    );
}

/// Client secrets must not go through a proxy named by `HTTP_PROXY` or
/// `ALL_PROXY`. Environment variables are process-wide (and `set_var` is
/// unsafe in Rust 2024), so the token request runs in a child process of
/// this test binary, started with them pointing at a recording "proxy".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sts_client_ignores_proxies_from_the_environment() {
    if let Ok(url) = std::env::var("SVCAUTH_PROXY_STS") {
        return sts_child(&url).await;
    }
    let sts = Sts::start(None, Some(("svc-a", "secret")), "svc-a").await;
    let proxied = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = proxied.clone();
    let proxy = serve(axum::Router::new().fallback(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { (http::StatusCode::BAD_GATEWAY, "proxy") }
    }))
    .await;
    let url = sts.url.clone();
    let (passed, output) = tokio::task::spawn_blocking(move || {
        svcauth_tests::run_test_under_proxy(
            "the_sts_client_ignores_proxies_from_the_environment",
            &proxy,
            &[("SVCAUTH_PROXY_STS", url.as_str())],
        )
    })
    .await
    .unwrap();
    assert!(
        passed,
        "the token request with proxies set failed:\n{output}"
    );
    assert_eq!(proxied.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(sts.hits(), 1, "straight to the STS");
}

/// The child's side: one token request to the STS at `url`.
async fn sts_child(url: &str) {
    let sts = StsClient::new(url, "svc-a", ClientAuth::client_secret_basic("secret")).unwrap();
    svcauth_sign::TokenSource::token(
        &ClientCredentials::new(sts),
        svcauth_sign::TokenRequest {
            audience: "https://b.internal",
            binding: None,
            on_behalf_of: None,
        },
    )
    .await
    .unwrap();
}
