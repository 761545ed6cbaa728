//! Signing keys inside a PKCS#11 token, for real: SoftHSM2, with a token
//! directory made for each test. Tokens signed in the token verify through
//! the real `VerifyLayer` and with PyJWT; the private key cannot be read
//! out; rotation between file and token keys under traffic fails no call;
//! a token that goes away mid-traffic leaves cached tokens flowing; every
//! way start-up can go wrong is its own error.
//!
//! A process reads `SOFTHSM2_CONF` once, when it loads the module, so each
//! test sets up SoftHSM2 and runs its body again in a child process
//! ([`softhsm`]). `cargo xtask test` installs SoftHSM2 when it is missing.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use serde_json::json;
use svcauth_core::Algorithm;
use svcauth_jwks::pkcs11::{Pkcs11Config, Pkcs11Signer};
use svcauth_jwks::{JwsSigner, KeyRing, KeySet, KeySource};
use svcauth_sign::{SelfSigned, TokenRequest};
use svcauth_tests::{SoftHsm, USER_PIN, run_test_in_child};
use svcauth_verify::{Caller, Verifier, VerifyLayer};
use tower::ServiceExt;

mod errors;
mod examples;
mod extractable;
mod interop;
mod traffic;

pub(crate) const TOKEN: &str = "svcauth-test";
pub(crate) const ISS: &str = "https://a.internal";
pub(crate) const AUD: &str = "https://b.internal";
/// The variable a parent sets for the child it runs a test in: the
/// SoftHSM2 directory (its pin file is there).
const CHILD: &str = "SVCAUTH_SOFTHSM_DIR";
/// The user PIN, also in the environment of the child (`pin_from_env`).
pub(crate) const PIN_VAR: &str = "SVCAUTH_TEST_HSM_PIN";

/// The SoftHSM2 set-up, as the child process sees it.
pub(crate) struct Hsm {
    pub(crate) module: PathBuf,
    pub(crate) dir: PathBuf,
}

impl Hsm {
    /// The key labelled `label` of `token`, PIN from the pin file.
    pub(crate) fn config(&self, token: &str, label: &str) -> Pkcs11Config {
        Pkcs11Config::new(&self.module, token)
            .pin_from_file(self.pin_file())
            .unwrap()
            .key_label(label)
    }

    pub(crate) fn pin_file(&self) -> PathBuf {
        self.dir.join("pin")
    }

    /// A key pair for `alg`, made inside `TOKEN`.
    pub(crate) fn generate(&self, label: &str, alg: Algorithm) -> Pkcs11Signer {
        Pkcs11Signer::generate_blocking(&self.config(TOKEN, label), alg).unwrap()
    }
}

/// In the test process: sets up SoftHSM2 with `tokens` initialised, runs the
/// test `name` again in a child process that uses it, asserts that it
/// passed, and returns `None`. In that child: the set-up. Without SoftHSM2,
/// `None` (under `cargo xtask test`, a failure).
pub(crate) fn softhsm(name: &str, tokens: &[&str]) -> Option<Hsm> {
    if let Some(dir) = std::env::var_os(CHILD) {
        return Some(Hsm {
            module: SoftHsm::module().unwrap(),
            dir: dir.into(),
        });
    }
    let hsm = SoftHsm::new()?;
    for token in tokens {
        hsm.init_token(token);
    }
    std::fs::write(hsm.dir().join("pin"), format!("{USER_PIN}\n")).unwrap();
    let (conf, conf_path) = hsm.env();
    let dir = hsm.dir().display().to_string();
    let (passed, output) = run_test_in_child(
        name,
        &[(conf, &conf_path), (CHILD, &dir), (PIN_VAR, USER_PIN)],
        &[],
    );
    assert!(passed, "{name} in its SoftHSM2 child:\n{output}");
    None
}

/// A router answering `/whoami` with the caller's `kid` and `sub`, behind a
/// `VerifyLayer` that trusts `ISS` with `keys`.
pub(crate) fn service_b(keys: KeySource) -> Router {
    let verifier = Verifier::builder(AUD).trust(ISS, keys).build().unwrap();
    Router::new()
        .route(
            "/whoami",
            get(|caller: Caller| async move {
                axum::Json(json!({ "kid": caller.kid(), "sub": caller.sub() }))
            }),
        )
        .layer(VerifyLayer::new(verifier))
}

/// `token` presented to `app`: its status and body.
pub(crate) async fn present(app: &Router, token: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::get("/whoami")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

pub(crate) async fn mint(ring: &KeyRing) -> String {
    SelfSigned::new(ISS, ring.clone())
        .unwrap()
        .mint(TokenRequest {
            audience: AUD,
            binding: None,
            on_behalf_of: None,
        })
        .await
        .unwrap()
        .as_str()
        .to_owned()
}

#[cfg_attr(svcauth_peer_missing_softhsm, ignore = "needs SoftHSM2")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_signs_inside_the_token_and_verifies_through_the_layer() {
    let Some(hsm) = softhsm(
        "every_algorithm_signs_inside_the_token_and_verifies_through_the_layer",
        &[TOKEN],
    ) else {
        return;
    };
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::RS256,
        Algorithm::PS256,
    ] {
        let label = format!("key-{alg}");
        let signer = hsm.generate(&label, alg);
        assert_eq!((signer.alg(), signer.backend()), (alg, "pkcs11"));
        let kid = signer.kid().to_owned();
        let ring = KeyRing::new(signer);
        let keys = KeySource::fixed(KeySet::from_jwks(ring.state().jwks(), 65536).unwrap());
        let app = service_b(keys);
        let token = mint(&ring).await;
        let (status, body) = present(&app, &token).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {body}");
        assert_eq!(body["kid"], kid.as_str(), "{alg}");

        // The same key opened again, as a restarted service would: the
        // same kid, and its tokens verify with the keys published before.
        let mut config = hsm.config(TOKEN, &label);
        if alg == Algorithm::PS256 {
            config = config.algorithm(Algorithm::PS256);
        }
        let reopened = Pkcs11Signer::open(config).await.unwrap();
        assert_eq!((reopened.kid(), reopened.alg()), (kid.as_str(), alg));
        let token = mint(&KeyRing::new(reopened)).await;
        assert_eq!(
            present(&app, &token).await.0,
            StatusCode::OK,
            "{alg} reopened"
        );

        // A token whose signature was made by another key is refused.
        let forged = format!(
            "{}.{}",
            &token[..token.rfind('.').unwrap()],
            &mint(&ring).await[token.rfind('.').unwrap() + 1..]
        );
        assert_eq!(
            present(&app, &forged).await.0,
            StatusCode::UNAUTHORIZED,
            "{alg} forged"
        );
    }
}
