//! WIMSE (WIT + WPT) through the real layers: a client with `ProofLayer`
//! in front of an axum router behind `VerifyLayer` (`flows.rs`), named
//! hostile cases with hand-made tokens (`attacks.rs`), the drafts' own
//! example and another stack, PyJWT (`interop.rs`); over gRPC
//! (`grpc.rs`); SPIFFE bundles, JWT-SVIDs and WIT-SVIDs (`svid.rs`).
#![allow(clippy::unwrap_used)]

mod attacks;
mod examples;
mod flows;
mod grpc;
mod interop;
mod svid;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderName, Request, StatusCode};
use serde_json::{Value, json};
use svcauth_core::wimse::token_hash;
use svcauth_core::{Algorithm, ManualClock, b64, jws};
use svcauth_jwks::{KeyRing, KeySet, KeySource, SigningKey, generate_pkcs8_pem};
use svcauth_sign::wimse::{ProofLayer, WitIssuer, WorkloadIdentity};
use svcauth_verify::{Caller, Verifier, VerifyLayer};
use tower::ServiceExt;

pub(crate) const B: &str = "https://b.internal";
pub(crate) const A_ISS: &str = "https://a.internal";
pub(crate) const WORKLOAD: &str = "spiffe://example.org/ns/prod/a";
pub(crate) const NOW: u64 = 1_800_000_000;

pub(crate) struct World {
    domain_key: Arc<SigningKey>,
    issuer: WitIssuer,
    key: SigningKey,
    key_pem: String,
    wit: String,
    bearer_key: SigningKey,
    clock: Arc<ManualClock>,
    verifier: Verifier,
}

/// The output of a future that is ready when first polled: a WIT issued
/// with a key in this process is, and the fixtures that make one are not
/// async.
pub(crate) fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("an in-memory key signs without waiting"),
    }
}

pub(crate) fn world() -> World {
    let clock = Arc::new(ManualClock::at_secs(NOW));
    let domain_pem = generate_pkcs8_pem(Algorithm::ES256).unwrap();
    let domain_key = Arc::new(SigningKey::from_pkcs8_pem(&domain_pem, None).unwrap());
    let ring = KeyRing::new(SigningKey::from_pkcs8_pem(&domain_pem, None).unwrap());
    let issuer = WitIssuer::new("example.org", ring.clone())
        .unwrap()
        .clock(clock.clone());
    let key_pem = generate_pkcs8_pem(Algorithm::EdDSA).unwrap().to_string();
    let key = SigningKey::from_pkcs8_pem(&key_pem, None).unwrap();
    let wit = ready(issuer.issue(&WORKLOAD.parse().unwrap(), &key.public_jwk())).unwrap();
    let bearer_key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let fixed = |k: &SigningKey| {
        KeySource::fixed(
            KeySet::from_jwks(
                json!({ "keys": [k.public_jwk()] }).to_string().as_bytes(),
                65536,
            )
            .unwrap(),
        )
    };
    let verifier = Verifier::builder(B)
        .trust(A_ISS, fixed(&bearer_key))
        .trust_workloads("example.org", fixed(&domain_key))
        .proof_header(HeaderName::from_static("x-user-token"))
        .clock(clock.clone())
        .build()
        .unwrap();
    World {
        domain_key,
        issuer,
        key,
        key_pem,
        wit,
        bearer_key,
        clock,
        verifier,
    }
}

pub(crate) fn app(layer: VerifyLayer) -> Router {
    Router::new()
        .route(
            "/whoami",
            get(|caller: Caller| async move {
                axum::Json(json!({ "sub": caller.sub(), "iss": caller.iss(), "proof": caller.proof().as_str(),
                    "workload": caller.workload().map(|w| w.to_string()) }))
            }),
        )
        .layer(layer)
}

/// A compact JWS with exactly this header and these claims.
pub(crate) fn mint(key: &SigningKey, header: Value, claims: Value) -> String {
    jws::encode(
        &b64::encode(header.to_string()),
        claims.to_string().as_bytes(),
        |i| key.sign(i),
    )
    .unwrap()
}

pub(crate) fn wit_claims(key: &SigningKey) -> Value {
    json!({ "sub": WORKLOAD, "iat": NOW, "exp": NOW + 3600, "jti": "w1",
        "cnf": { "jwk": key.public_jwk() } })
}

pub(crate) fn wit_header(w: &World) -> Value {
    json!({ "alg": "ES256", "kid": w.domain_key.kid(), "typ": "wit+jwt" })
}

pub(crate) fn wpt_claims(wit: &str, jti: &str) -> Value {
    json!({ "aud": format!("{B}/whoami"), "iat": NOW, "exp": NOW + 60, "jti": jti, "wth": token_hash(wit) })
}

pub(crate) fn wpt_header() -> Value {
    json!({ "alg": "EdDSA", "typ": "wpt+jwt" })
}

/// Sends `/whoami` with these headers; status and JSON body.
pub(crate) async fn send(
    w: &World,
    layer: VerifyLayer,
    headers: &[(&str, String)],
) -> (StatusCode, Value) {
    let mut request = Request::get(format!("{B}/whoami"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = app(layer.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let _ = w;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

pub(crate) fn pair(wit: &str, wpt: &str) -> Vec<(&'static str, String)> {
    vec![
        ("workload-identity-token", wit.to_owned()),
        ("workload-proof-token", wpt.to_owned()),
    ]
}
