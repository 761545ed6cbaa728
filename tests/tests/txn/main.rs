//! Transaction Tokens through the real layers: a three-service chain behind
//! the gateway binary (`chain.rs`), named hostile cases against the
//! verifying and signing layers (`attacks.rs`), the Txn-Token Request
//! endpoint (`endpoint.rs`), PyJWT both ways (`interop.rs`), and
//! service-b's command line (`examples.rs`).
#![allow(clippy::unwrap_used)]

mod attacks;
mod chain;
mod endpoint;
mod examples;
mod interop;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use svcauth_core::{Algorithm, SharedClock, system_clock};
use svcauth_gateway::txn::{TransactionTokenService, TxnGrant};
use svcauth_jwks::{JwksService, KeyRing, KeySet, KeySource, SigningKey};
use svcauth_verify::{Caller, Transaction, Verifier, VerifyLayer};
use tower::ServiceExt;

pub(crate) const DOMAIN: &str = "example.org";
pub(crate) const TTS_ISS: &str = "https://tts.example.org";
pub(crate) const A_ISS: &str = "https://a.internal";
pub(crate) const B_AUD: &str = "https://b.internal";

/// A Transaction Token Service, its JWKS served on loopback.
pub(crate) struct Tts {
    pub(crate) service: TransactionTokenService,
    pub(crate) jwks_url: String,
}

impl Tts {
    pub(crate) async fn start() -> Tts {
        Self::start_with(DOMAIN, system_clock()).await
    }

    pub(crate) async fn start_with(domain: &str, clock: SharedClock) -> Tts {
        let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
        let service = TransactionTokenService::builder(domain, TTS_ISS, ring.clone())
            .clock(clock)
            .build()
            .unwrap();
        let app = Router::new().route_service("/jwks.json", JwksService::new(ring));
        let jwks_url = format!("http://{}/jwks.json", svcauth_tests::serve(app).await);
        Tts { service, jwks_url }
    }

    pub(crate) fn keys(&self) -> KeySource {
        KeySource::remote(&self.jwks_url).unwrap().build().unwrap()
    }

    /// A Txn-Token for alice, tenant blue, buying.
    pub(crate) async fn mint(&self) -> String {
        self.service.mint(alice()).await.unwrap()
    }
}

pub(crate) fn alice() -> TxnGrant {
    let mut grant = TxnGrant::new(
        "alice",
        "orders.read orders.write",
        "https://gateway.example.org",
    );
    grant.tctx.insert("tenant".into(), json!("blue"));
    grant.tctx.insert("roles".into(), json!(["buyer"]));
    grant.rctx.insert("req_ip".into(), json!("203.0.113.7"));
    grant
}

/// Service A's key and a signer-free way to mint its service tokens.
pub(crate) struct CallerA {
    pub(crate) key: Arc<SigningKey>,
}

impl CallerA {
    pub(crate) fn new() -> Self {
        CallerA {
            key: Arc::new(SigningKey::generate(Algorithm::ES256).unwrap()),
        }
    }

    pub(crate) fn keys(&self) -> KeySource {
        let jwks = json!({ "keys": [self.key.public_jwk()] }).to_string();
        KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 1 << 16).unwrap())
    }

    pub(crate) fn token(&self) -> String {
        self.key
            .sign_jws(&svcauth_tests::service_claims(A_ISS, B_AUD))
            .unwrap()
    }
}

/// Service B: a service token from A and, on `/txn`, a Txn-Token
/// required; it answers with the caller and the transaction.
pub(crate) fn service_b(a: &CallerA, tts: &Tts) -> (Verifier, Router) {
    let verifier = Verifier::builder(B_AUD)
        .trust(A_ISS, a.keys())
        .trust_txn_tokens(DOMAIN, TTS_ISS, tts.keys())
        .build()
        .unwrap();
    let seen = |caller: Caller, txn: Option<Transaction>| async move {
        axum::Json(json!({
            "caller": caller.sub(),
            "txn": txn.as_ref().map(|t| serde_json::from_slice::<Value>(t.raw_json()).unwrap()),
        }))
    };
    let app = Router::new()
        .route("/txn", get(seen))
        .layer(VerifyLayer::new(verifier.clone()).require_txn_token())
        .merge(
            Router::new()
                .route("/open", get(seen))
                .layer(VerifyLayer::new(verifier.clone())),
        );
    (verifier, app)
}

/// Sends `GET path` with the headers to `app`: status and JSON body.
pub(crate) async fn send(
    app: &Router,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}
