//! Your own HTTP client, for key fetches and for the STS: servers on
//! loopback with a certificate from a private CA made here, which also
//! demand a client certificate (mTLS). The verifier fetches through an
//! injected client that trusts the CA and presents the certificate; without
//! either, the fetch fails with a clear error and a token is answered 503
//! (keys unavailable), never 401. The STS client likewise, and an injected
//! client that follows a redirect gets its answer refused.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::routing::{get, post};
use serde_json::json;
use svcauth_core::Algorithm;
use svcauth_jwks::{KeyLookup, KeySource, SigningKey, http_client_builder};
use svcauth_sign::{
    ClientAuth, ClientCredentials, SignError, StsClient, TokenRequest, TokenSource,
};
use svcauth_tests::{Pki, mtls_server, service_claims};
use svcauth_verify::{ErrorKind, Verifier};

const ISS: &str = "https://a.internal";
const AUD: &str = "https://b.internal";

fn source(url: &str, client: reqwest::Client) -> KeySource {
    KeySource::remote(url)
        .unwrap()
        .http_client(client)
        .background_refresh(false)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_and_a_client_certificate_through_an_injected_client() {
    let pki = Pki::new();
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let body = json!({ "keys": [key.public_jwk()] }).to_string();
    let app = Router::new().route("/jwks.json", get(move || std::future::ready(body.clone())));
    let port = mtls_server(&pki, app).await;
    let url = format!("https://localhost:{port}/jwks.json");
    let (ca, identity) = pki.client_side("service-b.internal");

    // Both: the keys arrive.
    let both = http_client_builder()
        .tls_certs_only([ca.clone()])
        .identity(identity.clone())
        .build()
        .unwrap();
    let trusted = source(&url, both);
    trusted.refresh().await.unwrap();
    assert!(matches!(
        trusted.lookup(Some(key.kid())),
        KeyLookup::Found(_)
    ));

    // The CA but no client certificate, or a certificate but not the CA.
    let no_identity = http_client_builder().tls_certs_only([ca]).build().unwrap();
    let no_ca = http_client_builder().identity(identity).build().unwrap();
    let token = key.sign_jws(&service_claims(ISS, AUD)).unwrap();
    for (what, client) in [
        ("no client certificate", no_identity),
        ("no private CA", no_ca),
    ] {
        let keys = source(&url, client);
        let error = keys.refresh().await.unwrap_err();
        assert!(error.to_string().contains(&url), "{what}: {error}");
        let verifier = Verifier::builder(AUD).trust(ISS, keys).build().unwrap();
        assert_eq!(
            verifier.verify(&token).await.unwrap_err().kind(),
            ErrorKind::KeysUnavailable,
            "{what}: 503, not 401"
        );
    }

    // A proxy belongs on the client given.
    let refused = KeySource::remote(&url)
        .unwrap()
        .http_client(http_client_builder().build().unwrap())
        .proxy("http://127.0.0.1:9")
        .unwrap()
        .build();
    assert!(refused.is_err());
}

fn token_endpoint() -> Router {
    Router::new().route(
        "/token",
        post(|| async {
            axum::Json(
                json!({ "access_token": "opaque-1", "token_type": "Bearer", "expires_in": 300 }),
            )
        }),
    )
}

async fn ask(sts: StsClient) -> Result<svcauth_sign::Token, SignError> {
    let request = TokenRequest {
        audience: AUD,
        binding: None,
        on_behalf_of: None,
    };
    ClientCredentials::new(sts).token(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sts_client_through_an_injected_client() {
    let pki = Pki::new();
    let port = mtls_server(&pki, token_endpoint()).await;
    let endpoint = format!("https://localhost:{port}/token");
    let (ca, identity) = pki.client_side("svc-a");
    let sts = |client| {
        StsClient::new(
            &endpoint,
            "svc-a",
            ClientAuth::client_secret_basic("s3cret"),
        )
        .unwrap()
        .http_client(client)
    };
    let mtls = StsClient::http_client_builder()
        .tls_certs_only([ca.clone()])
        .identity(identity)
        .build()
        .unwrap();
    assert!(ask(sts(mtls)).await.is_ok());
    let no_identity = StsClient::http_client_builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    assert!(matches!(
        ask(sts(no_identity)).await,
        Err(SignError::Transport(_))
    ));

    // A client that follows redirects: the answer from elsewhere is refused.
    let elsewhere = svcauth_tests::serve(token_endpoint()).await;
    let redirecting = svcauth_tests::serve(Router::new().route(
        "/token",
        post(move || async move {
            (
                http::StatusCode::TEMPORARY_REDIRECT,
                [(http::header::LOCATION, format!("http://{elsewhere}/token"))],
            )
        }),
    ))
    .await;
    let follows = reqwest::Client::builder().no_proxy().build().unwrap();
    let sts = StsClient::new(
        &format!("http://{redirecting}/token"),
        "svc-a",
        ClientAuth::client_secret_basic("s3cret"),
    )
    .unwrap()
    .http_client(follows);
    let error = ask(sts).await.unwrap_err();
    assert!(error.to_string().contains("after a redirect"), "{error}");
}
