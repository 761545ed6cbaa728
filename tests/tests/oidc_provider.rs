//! svcauth against a real OpenID Provider: panva's oidc-provider 9.x, run
//! by tests/peers/oidc_provider.mjs on loopback (`cargo xtask test` installs
//! it with `npm ci`; a plain `cargo test` without it says what it skipped).
//!
//! * The verifying layer, given only the issuer URL (OIDC discovery),
//!   accepts the provider's RFC 9068 access tokens for RS256, ES256 and
//!   EdDSA, and refuses them for another audience without fetching keys.
//! * The provider's key rotation (a new key added and signing, then the old
//!   one removed) is followed with no failed request beyond the rules.
//! * The signing side's `ClientCredentials` (private_key_jwt and
//!   client_secret_basic) and `TokenExchange` obtain, cache and refresh real
//!   tokens, and calls go through sign -> verify end to end.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use svcauth_core::{Algorithm, ManualClock};
use svcauth_jwks::{KeySource, SigningKey};
use svcauth_sign::{
    ClientAuth, ClientCredentials, OnBehalfOf, SignError, SignLayer, Signer, StsClient,
    TokenExchange,
};
use svcauth_tests::{OidcProvider, TOKEN_EXCHANGE, private_key_jwt_client, secret_client};
use svcauth_verify::{Caller, Verifier, VerifyLayer};
use tower::{ServiceBuilder, ServiceExt};

const B: &str = "https://service-b.internal";
const OTHER: &str = "https://other.internal";
const SHORT: &str = "https://short-lived.internal";
const SECRET: &str = "a-client-secret-of-at-least-32-bytes!";

fn resources() -> Value {
    json!({
        B: { "alg": "ES256", "ttl": 300, "scope": "orders:read orders:write" },
        OTHER: { "alg": "ES256", "ttl": 300 },
        SHORT: { "alg": "EdDSA", "ttl": 6 },
    })
}

/// service-b in process: `/whoami` behind the verifying layer.
async fn service_b(verifier: Verifier) -> String {
    async fn whoami(caller: Caller) -> axum::Json<Value> {
        axum::Json(json!({
            "iss": caller.iss(),
            "sub": caller.sub(),
            "aud": caller.aud(),
            "kid": caller.kid(),
            "alg": caller.algorithm().map(|a| a.as_str()),
            "claims": serde_json::from_slice::<Value>(caller.raw_json()).unwrap(),
        }))
    }
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(VerifyLayer::new(verifier));
    format!("http://{}", svcauth_tests::serve(app).await)
}

async fn whoami(url: &str, token: &str) -> (u16, Value, String) {
    let response = reqwest::Client::new()
        .get(format!("{url}/whoami"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&svcauth_core::b64::decode(header).unwrap()).unwrap()
}

/// A verifier for service-b that knows nothing but the issuer URL.
fn discovery_verifier(op: &OidcProvider, source: KeySource) -> Verifier {
    Verifier::builder(B)
        .trust(&op.issuer, source)
        .build()
        .unwrap()
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_alone_accepts_provider_tokens_for_each_algorithm_and_no_other_audience() {
    let Some(keys) = OidcProvider::keygen() else {
        return;
    };
    let cases = [
        ("rs256-client", Algorithm::RS256),
        ("es256-client", Algorithm::ES256),
        ("eddsa-client", Algorithm::EdDSA),
    ];
    let op = OidcProvider::start(json!({
        "keys": keys,
        "clients": cases.iter().map(|(id, _)| secret_client(id, SECRET, &["client_credentials"])).collect::<Vec<_>>(),
        "resources": resources(),
        "client_algs": cases.iter().map(|(id, alg)| (id.to_string(), json!(alg.as_str()))).collect::<serde_json::Map<_, _>>(),
    }))
    .unwrap();
    let source = KeySource::discover(&op.issuer).unwrap().build().unwrap();
    let b = service_b(discovery_verifier(&op, source.clone())).await;

    for (client, alg) in cases {
        let token = op.client_credentials(client, SECRET, Some(B)).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let header = header_of(&token);
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["typ"], "at+jwt");
        for _ in 0..3 {
            let (status, body, _) = whoami(&b, &token).await;
            assert_eq!(status, 200, "{alg}: {body}");
            assert_eq!(body["sub"], client);
            assert_eq!(body["iss"], op.issuer.as_str());
            assert_eq!(body["aud"], B);
            assert_eq!(body["alg"], alg.as_str());
            assert_eq!(body["claims"]["client_id"], client);
        }

        // The same provider, the same keys, another audience: refused, and
        // (aud is checked before the key) without any fetch.
        let fetches = source.stats().fetches;
        let elsewhere = op.client_credentials(client, SECRET, Some(OTHER)).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, _, challenge) = whoami(&b, &elsewhere).await;
        assert_eq!(status, 401, "{alg}: a token for {OTHER}");
        assert!(challenge.contains("invalid_token"), "{challenge}");
        assert_eq!(source.stats().fetches, fetches);
    }
    // One discovery + JWKS fetch served all three algorithms.
    assert_eq!(source.stats().fetches, 1);
}

/// Sends `token` to `b` in a loop until stopped, counting non-200 answers.
fn keep_calling(
    b: String,
    token: Arc<std::sync::Mutex<String>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64)> {
    tokio::spawn(async move {
        let (mut ok, mut failed) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let current = token.lock().unwrap().clone();
            match whoami(&b, &current).await.0 {
                200 => ok += 1,
                _ => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (ok, failed)
    })
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_key_rotation_is_followed_with_no_failed_request_beyond_the_rules() {
    let (Some(old), Some(new)) = (OidcProvider::keygen(), OidcProvider::keygen()) else {
        return;
    };
    let mut op = OidcProvider::start(json!({
        "keys": old.clone(),
        "clients": [secret_client("svc-a", SECRET, &["client_credentials"])],
        "resources": resources(),
    }))
    .unwrap();
    // The cooldown runs on a manual clock; refreshes at max-age are driven
    // by `refresh()`, exactly what the background refresher calls.
    let clock = Arc::new(ManualClock::starting_now());
    let source = KeySource::discover(&op.issuer)
        .unwrap()
        .clock(clock.clone())
        .background_refresh(false)
        .build()
        .unwrap();
    let b = service_b(discovery_verifier(&op, source.clone())).await;
    let mint = async |op: &OidcProvider| {
        op.client_credentials("svc-a", SECRET, Some(B)).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let t1 = mint(&op).await;
    assert_eq!(whoami(&b, &t1).await.0, 200);
    let current = Arc::new(std::sync::Mutex::new(t1.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = keep_calling(b.clone(), current.clone(), stop.clone());

    // Step 1: the provider restarts with a new key first (it signs) and the
    // old one still published. Tokens signed with the old key keep working
    // all along, the provider being down meanwhile or not.
    let mut both = new.clone();
    both["keys"]
        .as_array_mut()
        .unwrap()
        .extend(old["keys"].as_array().unwrap().iter().cloned());
    op.restart(both);
    let t2 = mint(&op).await;
    assert_ne!(header_of(&t2)["kid"], header_of(&t1)["kid"]);
    // The rule: an unknown kid causes a fetch only once the cooldown (30 s)
    // since the last fetch has passed. The last fetch was just now, so the
    // new kid is refused here: the one failure the rules require.
    let fetches = source.stats().fetches;
    assert_eq!(whoami(&b, &t2).await.0, 401);
    assert_eq!(source.stats().fetches, fetches);
    // Once the cooldown has passed, the first request with the new kid
    // fetches once and is accepted; so are the next ones, without fetching.
    clock.advance(Duration::from_secs(30));
    for _ in 0..5 {
        assert_eq!(whoami(&b, &t2).await.0, 200);
    }
    assert_eq!(source.stats().fetches, fetches + 1);
    assert_eq!(
        whoami(&b, &t1).await.0,
        200,
        "the old key is still published"
    );
    *current.lock().unwrap() = t2.clone();

    // Step 2: the old key is removed. At the next scheduled refresh the
    // verifier drops it (and every cached verification it backed); tokens
    // of the new key never notice.
    op.restart(new.clone());
    source.refresh().await.unwrap();
    assert_eq!(whoami(&b, &t2).await.0, 200);
    let (status, _, challenge) = whoami(&b, &t1).await;
    assert_eq!(status, 401, "a token of a removed key");
    assert!(challenge.contains("invalid_token"));
    let t3 = mint(&op).await;
    assert_eq!(whoami(&b, &t3).await.0, 200);

    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = traffic.await.unwrap();
    assert!(ok > 0);
    assert_eq!(
        failed, 0,
        "the steady traffic saw no failure across two restarts"
    );
}

async fn signed_whoami(signer: &Signer, b: &str) -> (u16, Value) {
    let client = ServiceBuilder::new()
        .layer(SignLayer::new(signer.clone()))
        .service(reqwest::Client::new());
    let request = reqwest::Client::new()
        .get(format!("{b}/whoami"))
        .build()
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_sources_obtain_cache_and_refresh_real_tokens_end_to_end() {
    let Some(keys) = OidcProvider::keygen() else {
        return;
    };
    let client_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let grants = ["client_credentials"];
    let op = OidcProvider::start(json!({
        "keys": keys,
        "clients": [
            private_key_jwt_client("svc-a-jwt", serde_json::to_value(client_key.public_jwk()).unwrap(), &grants),
            secret_client("svc-a-secret", SECRET, &grants),
        ],
        "resources": resources(),
    }))
    .unwrap();
    let source = KeySource::discover(&op.issuer).unwrap().build().unwrap();
    // Two service-bs: the usual audience, and one whose tokens live 6 s so
    // that the refresh can be watched.
    let b = service_b(discovery_verifier(&op, source.clone())).await;
    let short = service_b(
        Verifier::builder(SHORT)
            .trust(&op.issuer, source)
            .build()
            .unwrap(),
    )
    .await;

    let auths = [
        ("svc-a-jwt", ClientAuth::private_key_jwt(client_key)),
        ("svc-a-secret", ClientAuth::client_secret_basic(SECRET)),
    ];
    for (client_id, auth) in auths {
        let sts = StsClient::new(&op.token_endpoint(), client_id, auth)
            .unwrap()
            .scope("orders:read");
        let signer = Signer::builder(ClientCredentials::new(sts))
            .audience(&b, B)
            .audience(&short, SHORT)
            .refresh_at(0.5)
            .build()
            .unwrap();
        let before = op.counts().await["token"].as_u64().unwrap();
        for _ in 0..20 {
            let (status, body) = signed_whoami(&signer, &b).await;
            assert_eq!(status, 200, "{client_id}: {body}");
            assert_eq!(body["sub"], client_id);
            assert_eq!(body["claims"]["client_id"], client_id);
            assert_eq!(body["aud"], B);
            assert_eq!(
                body["claims"]["scope"], "orders:read",
                "the scope asked for"
            );
        }
        assert_eq!(
            op.counts().await["token"].as_u64().unwrap() - before,
            1,
            "{client_id}: 20 calls, one token"
        );

        // Refresh: past half of the 6 s lifetime, the next call still uses
        // the current token and starts one background refresh.
        let (status, first) = signed_whoami(&signer, &short).await;
        assert_eq!(status, 200, "{first}");
        tokio::time::sleep(Duration::from_millis(3200)).await;
        let (status, second) = signed_whoami(&signer, &short).await;
        assert_eq!(status, 200, "{second}");
        assert_eq!(first["claims"]["jti"], second["claims"]["jti"]);
        let mut third = Value::Null;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            third = signed_whoami(&signer, &short).await.1;
            if third["claims"]["jti"] != first["claims"]["jti"] {
                break;
            }
        }
        assert_ne!(
            third["claims"]["jti"], first["claims"]["jti"],
            "{client_id}: refreshed"
        );
        assert_eq!(third["sub"], client_id);
        assert_eq!(
            op.counts().await["token"].as_u64().unwrap() - before,
            3,
            "{client_id}: one token for B, two for the short-lived audience"
        );
    }
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_source_calls_on_behalf_of_the_subject_end_to_end() {
    let Some(keys) = OidcProvider::keygen() else {
        return;
    };
    let client_key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let op = OidcProvider::start(json!({
        "keys": keys,
        "clients": [
            private_key_jwt_client("svc-a", serde_json::to_value(client_key.public_jwk()).unwrap(), &[TOKEN_EXCHANGE]),
            secret_client("svc-a-secret", SECRET, &[TOKEN_EXCHANGE]),
            secret_client("alice-app", SECRET, &["client_credentials"]),
            secret_client("bob-app", SECRET, &["client_credentials"]),
        ],
        "resources": resources(),
    }))
    .unwrap();
    let source = KeySource::discover(&op.issuer).unwrap().build().unwrap();
    let b = service_b(discovery_verifier(&op, source)).await;
    // The subject tokens service-a received: alice's is opaque (no
    // resource), bob's a JWT for another audience.
    let alice = op.client_credentials("alice-app", SECRET, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(alice.split('.').count(), 1, "an opaque token");
    let bob = op.client_credentials("bob-app", SECRET, Some(OTHER)).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    for (client_id, auth) in [
        ("svc-a", ClientAuth::private_key_jwt(client_key)),
        ("svc-a-secret", ClientAuth::client_secret_basic(SECRET)),
    ] {
        let sts = StsClient::new(&op.token_endpoint(), client_id, auth).unwrap();
        let signer = Signer::builder(TokenExchange::new(sts))
            .audience(&b, B)
            .build()
            .unwrap();
        let before = op.counts().await["token_exchange"].as_u64().unwrap();
        for (subject, expected_sub) in [(&alice, "alice-app"), (&bob, "bob-app")] {
            let mut extensions = http::Extensions::new();
            extensions.insert(OnBehalfOf::SubjectToken(subject.clone()));
            for _ in 0..5 {
                let request = signer
                    .sign_with(
                        reqwest::Client::new().get(format!("{b}/whoami")),
                        &extensions,
                    )
                    .await
                    .unwrap();
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 200);
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["sub"], expected_sub, "the subject, not the caller");
                assert_eq!(body["claims"]["act"]["sub"], client_id, "the actor");
                assert_eq!(body["claims"]["client_id"], client_id);
                assert_eq!(body["aud"], B);
            }
        }
        assert_eq!(
            op.counts().await["token_exchange"].as_u64().unwrap() - before,
            2,
            "{client_id}: one exchange per subject, then cached"
        );
    }

    // A revoked subject token cannot be exchanged: the STS's answer comes
    // back typed, and nothing is sent.
    op.revoke("alice-app", SECRET, &alice).await;
    let sts = StsClient::new(
        &op.token_endpoint(),
        "svc-a-secret",
        ClientAuth::client_secret_basic(SECRET),
    )
    .unwrap();
    let signer = Signer::builder(TokenExchange::new(sts))
        .audience(&b, B)
        .build()
        .unwrap();
    let err = signer
        .token_for(B, Some(&OnBehalfOf::SubjectToken(alice)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SignError::TokenEndpoint { status: 400, error: Some(e) } if e == "invalid_grant"),
        "{err:?}"
    );
}

#[cfg_attr(svcauth_peer_missing_node_oidc, ignore = "needs node + oidc-provider")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_by_the_provider_is_an_error_not_a_request() {
    let Some(keys) = OidcProvider::keygen() else {
        return;
    };
    let op = OidcProvider::start(json!({
        "keys": keys,
        "clients": [secret_client("svc-a", SECRET, &["client_credentials"])],
        "resources": resources(),
    }))
    .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/",
        get(move || async move {
            counter.fetch_add(1, Ordering::Relaxed);
        }),
    );
    let url = format!("http://{}", svcauth_tests::serve(app).await);

    // A wrong secret, then an audience the provider does not know.
    for (secret, audience, error) in [
        ("wrong-secret", B, "invalid_client"),
        (SECRET, "https://unknown.internal", "invalid_target"),
    ] {
        let sts = StsClient::new(
            &op.token_endpoint(),
            "svc-a",
            ClientAuth::client_secret_basic(secret),
        )
        .unwrap();
        let signer = Signer::builder(ClientCredentials::new(sts))
            .audience(&url, audience)
            .build()
            .unwrap();
        let client = ServiceBuilder::new()
            .layer(SignLayer::new(signer.clone()))
            .service(reqwest::Client::new());
        let request = reqwest::Client::new().get(&url).build().unwrap();
        assert!(client.oneshot(request).await.is_err());
        let err = signer.token(audience).await.unwrap_err();
        assert!(
            matches!(&err, SignError::TokenEndpoint { error: Some(e), .. } if e == error),
            "{err:?}"
        );
    }
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}
