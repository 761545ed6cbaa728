//! What the fuzz targets share: fixed keys (test keys, committed, so a
//! crash found with a signed input reproduces), a verifier at a fixed
//! time, a runtime for the async parsers, and the seed corpora.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use svcauth_core::{Algorithm, ManualClock, b64, jws};
use svcauth_jwks::{KeySet, KeySource, SigningKey, SvidKind};
use svcauth_verify::Verifier;

/// The time every target runs at (seconds since the epoch).
pub const NOW: u64 = 1_800_000_000;
/// The issuer the verifier trusts.
pub const ISSUER: &str = "https://a.internal";
/// The verifier's audience.
pub const AUDIENCE: &str = "https://b.internal";

const PEMS: [(&str, Algorithm); 3] = [
    (include_str!("../keys/ed25519.pem"), Algorithm::EdDSA),
    (include_str!("../keys/es256.pem"), Algorithm::ES256),
    (include_str!("../keys/rs256.pem"), Algorithm::RS256),
];

/// The issuer's keys: EdDSA, ES256, RS256.
pub fn keys() -> &'static [SigningKey] {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        PEMS.iter()
            .map(|(pem, alg)| SigningKey::from_pkcs8_pem(pem, Some(*alg)).expect("fuzz key"))
            .collect()
    })
}

/// The issuer's JWKS document.
pub fn jwks() -> Value {
    json!({ "keys": keys().iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
}

/// The issuer's keys as a fixed key source.
pub fn key_source() -> KeySource {
    KeySource::fixed(KeySet::from_jwks(jwks().to_string().as_bytes(), 1 << 20).expect("fuzz JWKS"))
}

/// The SPIFFE bundle of [`TRUST_DOMAIN`]: its JWT-SVID key is the ES256
/// one; the EdDSA key is listed for X.509-SVIDs only.
pub fn svid_bundle() -> Value {
    let entry = |key: &SigningKey, key_use: &str| {
        let mut jwk = serde_json::to_value(key.public_jwk()).expect("a JWK");
        jwk["use"] = key_use.into();
        jwk
    };
    json!({ "keys": [entry(&keys()[1], "jwt-svid"), entry(&keys()[0], "x509-svid")],
        "spiffe_sequence": 1, "spiffe_refresh_hint": 300 })
}

/// A verifier for [`AUDIENCE`] trusting [`ISSUER`] and the JWT-SVIDs of
/// [`TRUST_DOMAIN`], standing at [`NOW`].
pub fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let bundle = svid_bundle().to_string();
        let svids = KeySet::from_spiffe_bundle(bundle.as_bytes(), 1 << 20, SvidKind::Jwt)
            .expect("fuzz bundle");
        Verifier::builder(AUDIENCE)
            .trust(ISSUER, key_source())
            .trust_jwt_svids(TRUST_DOMAIN, KeySource::fixed(svids))
            .clock(Arc::new(ManualClock::at_secs(NOW)))
            .build()
            .expect("fuzz verifier")
    })
}

/// The trust domain the WIMSE verifier trusts (its identity server signs
/// with the ES256 key).
pub const TRUST_DOMAIN: &str = "example.org";
/// The workload whose WIT the seeds carry.
pub const WORKLOAD: &str = "spiffe://example.org/ns/prod/a";

/// A verifier for [`AUDIENCE`] trusting workloads of [`TRUST_DOMAIN`], at
/// [`NOW`], without replay protection (an input must give the same answer
/// every time it runs).
pub fn workload_verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let domain = json!({ "keys": [keys()[1].public_jwk()] }).to_string();
        Verifier::builder(AUDIENCE)
            .trust_workloads(
                TRUST_DOMAIN,
                KeySource::fixed(KeySet::from_jwks(domain.as_bytes(), 1 << 20).expect("fuzz JWKS")),
            )
            .proof_header(http::HeaderName::from_static("x-user-token"))
            .danger_disable_replay_protection()
            .clock(Arc::new(ManualClock::at_secs(NOW)))
            .build()
            .expect("fuzz workload verifier")
    })
}

/// A WIT for [`WORKLOAD`] confirming the EdDSA key, and a WPT by that key
/// for `GET https://b.internal/whoami` with `Authorization: Bearer at-1`:
/// the input of the `wimse` target, one line each.
pub fn valid_wimse_request() -> String {
    let (domain, workload) = (&keys()[1], &keys()[0]);
    let wit = token(
        domain,
        &json!({ "alg": "ES256", "typ": "wit+jwt", "kid": domain.kid() }),
        &json!({ "iss": "https://issuer.example.org", "sub": WORKLOAD, "iat": NOW - 60, "exp": NOW + 3540,
            "jti": "wit-1", "cnf": { "jwk": workload.public_jwk() } }),
    );
    let wpt = token(
        workload,
        &json!({ "alg": "EdDSA", "typ": "wpt+jwt" }),
        &json!({ "aud": format!("{AUDIENCE}/whoami"), "iat": NOW, "exp": NOW + 60, "jti": "wpt-1",
            "wth": svcauth_core::wimse::token_hash(&wit), "ath": svcauth_core::wimse::token_hash("at-1") }),
    );
    format!("{wit}\n{wpt}\nBearer at-1\n")
}

/// Runs `future` to completion on a runtime without I/O or timers (the
/// parsers under test never wait on either).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("fuzz runtime")
        })
        .block_on(future)
}

/// A compact JWS of `header` and `claims` signed by `key`.
pub fn token(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let header = b64::encode(header.to_string());
    jws::encode(&header, claims.to_string().as_bytes(), |input| {
        key.sign(input)
    })
    .expect("fuzz sign")
}

/// Service tokens the verifier accepts, one per key, bound and unbound.
pub fn valid_tokens() -> Vec<String> {
    let mut out = Vec::new();
    for key in keys() {
        let header = json!({ "alg": key.algorithm().as_str(), "typ": "JWT", "kid": key.kid() });
        let claims = json!({ "iss": ISSUER, "sub": ISSUER, "aud": AUDIENCE, "iat": NOW - 10,
            "exp": NOW + 290, "jti": format!("seed-{}", key.kid()) });
        out.push(token(key, &header, &claims));
        let bound = json!({ "iss": ISSUER, "sub": ISSUER, "aud": [AUDIENCE, "https://c.internal"],
            "iat": NOW, "exp": NOW + 60, "jti": "bound-1", "htm": "POST",
            "htu": "https://b.internal/echo", "body_sha256": svcauth_core::body_sha256(b"hello"),
            "act": { "sub": "https://gateway.internal" }, "scope": "read write" });
        out.push(token(key, &header, &bound));
    }
    // A JWT-SVID of the trust domain, without `iss`.
    let svid = &keys()[1];
    out.push(token(
        svid,
        &json!({ "alg": "ES256", "typ": "JWT", "kid": svid.kid() }),
        &json!({ "sub": WORKLOAD, "aud": [AUDIENCE], "iat": NOW - 10, "exp": NOW + 290 }),
    ));
    out
}

/// The Transaction Token Service the `txn` target trusts (it signs with the
/// EdDSA key).
pub const TTS: &str = "https://tts.example.org";
/// The scopes the requesting workload ([`ISSUER`]) may start with.
pub const TXN_SCOPES: [&str; 2] = ["orders.read", "reports.run"];

/// A verifier of Txn-Tokens of [`TRUST_DOMAIN`] signed by [`TTS`], also
/// trusting [`ISSUER`]'s service tokens, at [`NOW`].
pub fn txn_verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let tts = json!({ "keys": [keys()[0].public_jwk()] }).to_string();
        let tts = KeySet::from_jwks(tts.as_bytes(), 1 << 20).expect("fuzz JWKS");
        Verifier::builder(AUDIENCE)
            .trust(ISSUER, key_source())
            .trust_txn_tokens(TRUST_DOMAIN, TTS, KeySource::fixed(tts))
            .clock(Arc::new(ManualClock::at_secs(NOW)))
            .build()
            .expect("fuzz txn verifier")
    })
}

/// The Transaction Token Service itself at [`NOW`], signing with the
/// EdDSA key; [`ISSUER`] may request, with [`TXN_SCOPES`].
pub fn txn_service() -> &'static svcauth_gateway::txn::TransactionTokenService {
    static SERVICE: OnceLock<svcauth_gateway::txn::TransactionTokenService> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let clock = Arc::new(ManualClock::at_secs(NOW));
        let key = SigningKey::from_pkcs8_pem(PEMS[0].0, Some(PEMS[0].1)).expect("fuzz key");
        let workloads = Verifier::builder(TTS)
            .trust(ISSUER, key_source())
            .clock(clock.clone())
            .build()
            .expect("fuzz workload verifier");
        svcauth_gateway::txn::TransactionTokenService::builder(
            TRUST_DOMAIN,
            TTS,
            svcauth_jwks::KeyRing::new(key),
        )
        .clock(clock)
        .authenticate_workloads(workloads)
        .allow_requester(ISSUER, TXN_SCOPES)
        .build()
        .expect("fuzz TTS")
    })
}

/// A Txn-Token the `txn` target's verifier accepts.
pub fn valid_txn_token() -> String {
    let key = &keys()[0];
    token(
        key,
        &json!({ "alg": "EdDSA", "typ": "txntoken+jwt", "kid": key.kid() }),
        &json!({ "iss": TTS, "iat": NOW - 5, "exp": NOW + 115, "aud": TRUST_DOMAIN,
            "txn": "97053963-771d-49cc-a4e3-20aad399c312", "sub": "alice", "scope": "orders.read reports.run",
            "req_wl": "https://gateway.example.org", "tctx": { "tenant": "blue" },
            "rctx": { "req_ip": "203.0.113.7" } }),
    )
}

/// The seed corpora: (target, file name, contents).
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push((target, name.to_owned(), bytes));
    };
    for (i, token) in valid_tokens().into_iter().enumerate() {
        add("jws", &format!("token-{i}"), token.clone().into_bytes());
        add("verify", &format!("token-{i}"), token.clone().into_bytes());
        add(
            "authorization",
            &format!("bearer-{i}"),
            format!("Bearer {token}").into_bytes(),
        );
    }
    add("authorization", "lowercase", b"bearer abc.def.ghi".to_vec());
    add(
        "authorization",
        "two-headers",
        b"Bearer a.b.c\nBearer d.e.f".to_vec(),
    );
    add("jwks", "issuer", jwks().to_string().into_bytes());
    add(
        "jwks",
        "spiffe-bundle",
        svid_bundle().to_string().into_bytes(),
    );
    add("jwks", "mixed", br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"},{"kty":"EC","crv":"P-256","kid":"e","x":"AAAA","y":"BBBB"},{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB","use":"enc"}]}"#.to_vec());
    add(
        "discovery",
        "oidc-provider",
        json!({ "issuer": ISSUER, "jwks_uri": "https://a.internal/jwks",
        "token_endpoint": "https://a.internal/token", "response_types_supported": ["code"] })
        .to_string()
        .into_bytes(),
    );
    add(
        "discovery",
        "other-origin",
        json!({ "issuer": ISSUER, "jwks_uri": "https://evil.example/jwks" })
            .to_string()
            .into_bytes(),
    );
    add(
        "token_response",
        "bearer",
        json!({ "access_token": valid_tokens()[0], "token_type": "Bearer", "expires_in": 300 })
            .to_string()
            .into_bytes(),
    );
    add(
        "token_response",
        "exchange",
        json!({ "access_token": valid_tokens()[1], "token_type": "N_A",
        "issued_token_type": "urn:ietf:params:oauth:token-type:jwt" })
        .to_string()
        .into_bytes(),
    );
    add("introspection", "json-active", [&[0u8][..], json!({ "active": true, "sub": "user-1", "client_id": "web",
        "scope": "read", "exp": NOW + 60, "aud": "https://api.internal", "token_type": "access_token" }).to_string().as_bytes()].concat());
    let key = &keys()[1];
    let answer = token(
        key,
        &json!({ "alg": "ES256", "typ": "token-introspection+jwt", "kid": key.kid() }),
        &json!({ "iss": ISSUER, "aud": "gateway", "iat": NOW, "token_introspection": { "active": true,
            "sub": "user-1", "exp": NOW + 60 } }),
    );
    add(
        "introspection",
        "jwt-active",
        [&[1u8][..], answer.as_bytes()].concat(),
    );
    add("txn", "header", valid_txn_token().into_bytes());
    let form = |subject: &str, subject_type: &str, scope: &str| {
        format!(
            "\ngrant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
             &requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Atxn_token\
             &audience={TRUST_DOMAIN}&scope={scope}&subject_token={subject}\
             &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3A{subject_type}\
             &request_details=%7B%22order%22%3A%2242%22%7D"
        )
        .into_bytes()
    };
    add(
        "txn",
        "replacement",
        form(&valid_txn_token(), "txn_token", "orders.read"),
    );
    add(
        "txn",
        "unsigned",
        form("%7B%22sub%22%3A%22u%22%7D", "unsigned_json", "reports.run"),
    );
    add("wimse", "pair", valid_wimse_request().into_bytes());
    add(
        "wimse",
        "no-access-token",
        valid_wimse_request()
            .replace("Bearer at-1", "")
            .into_bytes(),
    );
    add(
        "binding",
        "post",
        b"POST\nhttps://b.internal:443/echo?x=1&y=%20\nhello".to_vec(),
    );
    add(
        "binding",
        "ipv6",
        b"GET\nhttp://[::1]:8080/a/../b/./c\n".to_vec(),
    );
    seeds
}
