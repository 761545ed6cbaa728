//! What the Redis test binaries share: a peer's key, a verifier on a
//! replica's stores, tokens (bound or not) and the bound request.
#![allow(dead_code)]

use std::sync::Arc;

use http::{HeaderMap, Method, Uri};
use serde_json::json;
use svcauth_core::{Algorithm, Clock, RequestBinding, SystemClock};
use svcauth_jwks::{KeySet, KeySource, SigningKey};
use svcauth_redis::RedisStores;
use svcauth_verify::{ErrorKind, RequestTarget, Verifier};

pub(crate) const AUD: &str = "https://b.internal";
pub(crate) const ISS: &str = "https://a.internal";

pub(crate) struct Peer {
    pub(crate) key: SigningKey,
    pub(crate) keys: KeySource,
}

pub(crate) fn peer() -> Peer {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    let keys = KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 65536).unwrap());
    Peer { key, keys }
}

pub(crate) fn verifier(peer: &Peer, stores: &RedisStores) -> Verifier {
    Verifier::builder(AUD)
        .trust(ISS, peer.keys.clone())
        .replay_store(Arc::new(stores.replay()))
        .revocation_store(Arc::new(stores.revocation()))
        .build()
        .unwrap()
}

pub(crate) fn token(peer: &Peer, jti: &str, binding: Option<&RequestBinding>) -> String {
    let now = SystemClock.now_secs();
    let mut claims =
        json!({ "iss": ISS, "sub": ISS, "aud": AUD, "iat": now, "exp": now + 300, "jti": jti });
    if let Some(b) = binding {
        claims["htm"] = b.htm.clone().into();
        claims["htu"] = b.htu.clone().into();
        claims["body_sha256"] = b.body_sha256.clone().into();
    }
    peer.key.sign_jws(claims.to_string().as_bytes()).unwrap()
}

pub(crate) fn bound(peer: &Peer, jti: &str) -> String {
    let binding =
        RequestBinding::for_parts(&Method::POST, "http", "b.internal", "/echo", b"pay").unwrap();
    token(peer, jti, Some(&binding))
}

pub(crate) async fn verify_bound(verifier: &Verifier, token: &str) -> Result<(), ErrorKind> {
    let uri: Uri = "/echo".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("host", "b.internal".parse().unwrap());
    let target = RequestTarget {
        method: &Method::POST,
        uri: &uri,
        headers: &headers,
    };
    verifier
        .verify_request(token, target, b"pay", false)
        .await
        .map(|_| ())
        .map_err(|e| e.kind())
}

/// A key prefix of its own for each test.
pub(crate) fn prefix() -> String {
    format!("t{}:", SystemClock.now().as_nanos())
}
