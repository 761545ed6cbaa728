//! The example binaries' TLS flags, on the real binaries: `--tls-cert` and
//! `--tls-key` serve HTTPS; `--ca-file` trusts a private CA for outbound
//! calls; `--client-cert` with its key presents a client certificate to a
//! server that demands one. Certificates come from a CA made here.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use svcauth_core::Algorithm;
use svcauth_jwks::SigningKey;
use svcauth_tests::{Example, PemFiles, Pki, free_port, mtls_server, service_claims};

const A: &str = "https://a.internal";
const B: &str = "https://b.internal";

/// Waits until `https://localhost:<port>/healthz` answers through `client`.
async fn wait_https(client: &reqwest::Client, port: u16) -> Value {
    for _ in 0..300 {
        if let Ok(r) = client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            && let Ok(health) = r.json::<Value>().await
        {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no HTTPS on port {port}");
}

fn trusting(ca: &Path) -> reqwest::Client {
    let roots = reqwest::Certificate::from_pem_bundle(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only(roots)
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_b_serves_https_and_service_a_trusts_the_private_ca() {
    let (pki, files) = (Pki::new(), PemFiles::new());
    let (ca, cert, key) = files.localhost_server(&pki, "b");

    let b_port = free_port();
    let call = format!("{B}=https://localhost:{b_port}");
    let a = Example::start(
        "service-a",
        &["--issuer", A, "--call", &call, "--ca-file", &ca],
        |_| true,
    )
    .await;
    let a_default_roots =
        Example::start("service-a", &["--issuer", A, "--call", &call], |_| true).await;
    let trust = format!("{A}={}", a.url("/.well-known/jwks.json"));
    let _b = Example::spawn_on(
        b_port,
        "service-b",
        &[
            "--audience",
            B,
            "--trust",
            &trust,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        Stdio::null(),
    );
    let health = wait_https(&trusting(Path::new(&ca)), b_port).await;
    assert!(health.get("ready").is_some(), "{health}");
    // Plain http to the TLS port gets no answer.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{b_port}/healthz"))
            .await
            .is_err()
    );

    let whoami = |a: &Example| {
        let url = a.url(&format!("/call?aud={B}&path=/whoami&method=GET"));
        async move {
            let r = reqwest::Client::new().post(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = whoami(&a).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(A), "{body}");
    // Without --ca-file the private CA is not trusted: nothing reaches B.
    let (status, body) = whoami(&a_default_roots).await;
    assert_ne!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_b_presents_a_client_certificate_to_an_mtls_jwks() {
    let (pki, files) = (Pki::new(), PemFiles::new());
    let ca = files.write("ca.pem", &pki.ca.pem());
    let (cert, key) = pki.issue("service-b.internal");
    let (cert, key) = (
        files.write("c.pem", &cert.pem()),
        files.write("c-key.pem", &key.serialize_pem()),
    );
    let signing = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwks = json!({ "keys": [signing.public_jwk()] }).to_string();
    let port = mtls_server(
        &pki,
        Router::new().route("/jwks.json", get(move || std::future::ready(jwks.clone()))),
    )
    .await;
    let trust = format!("{A}=https://localhost:{port}/jwks.json");
    let token = signing.sign_jws(&service_claims(A, B)).unwrap();
    let whoami = |b: &Example| {
        let url = b.url("/whoami");
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let mtls = [
        "--audience",
        B,
        "--trust",
        &trust,
        "--ca-file",
        &ca,
        "--client-cert",
        &cert,
        "--client-key",
        &key,
    ];
    let b = Example::start("service-b", &mtls, |h| h["ready"] == true).await;
    assert_eq!(whoami(&b).await, 200);

    // The CA alone: the JWKS server refuses the handshake; keys never load: 503.
    let ca_only = ["--audience", B, "--trust", &trust, "--ca-file", &ca];
    let b = Example::start("service-b", &ca_only, |h| h["ready"] == false).await;
    assert_eq!(whoami(&b).await, 503);
}
