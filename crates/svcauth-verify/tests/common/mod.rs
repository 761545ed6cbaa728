//! Shared fixtures: keys, real JWKS servers on loopback, token minting.
#![allow(dead_code, unused_imports, unreachable_pub, clippy::unwrap_used)]

use serde_json::{Value, json};
use svcauth_core::{Algorithm, b64};
use svcauth_jwks::SigningKey;

pub const AUD: &str = "https://b.internal";
pub const ISS_A: &str = "https://a.internal";
pub const ISS_B: &str = "https://other.internal";

pub use svcauth_tests::JsonServer;

/// Sends `request` through a clone of `app`.
pub async fn send(
    app: &axum::Router,
    request: http::Request<axum::body::Body>,
) -> http::Response<axum::body::Body> {
    use tower::ServiceExt;
    app.clone().oneshot(request).await.unwrap()
}

/// Why the layer refused `response` (it puts the error in the response's extensions).
pub fn refusal(response: &http::Response<axum::body::Body>) -> svcauth_verify::ErrorKind {
    response
        .extensions()
        .get::<svcauth_verify::VerifyError>()
        .unwrap()
        .kind()
}

pub fn new_key(algorithm: Algorithm) -> SigningKey {
    SigningKey::generate(algorithm).unwrap()
}

pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
}

/// A compact JWS from a header and claims as given, signed by `key`.
pub fn sign(header: &Value, claims: &Value, key: &SigningKey) -> String {
    sign_raw(
        &b64::encode(header.to_string()),
        &b64::encode(claims.to_string()),
        key,
    )
}

/// A compact JWS from already-encoded segments.
pub fn sign_raw(header: &str, payload: &str, key: &SigningKey) -> String {
    let input = format!("{header}.{payload}");
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(signature))
}

pub fn header_for(key: &SigningKey) -> Value {
    json!({ "alg": key.algorithm().as_str(), "typ": "JWT", "kid": key.kid() })
}

pub fn claims_at(now: u64) -> Value {
    json!({ "iss": ISS_A, "sub": ISS_A, "aud": AUD, "iat": now, "exp": now + 300, "jti": format!("j{}", rand_u64()) })
}

pub fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

pub fn keys_per_algorithm() -> Vec<SigningKey> {
    Algorithm::ALL.into_iter().map(new_key).collect()
}
