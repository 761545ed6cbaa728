//! SPIFFE: JWT-SVIDs (bearer) and WIT-SVIDs (with a proof) from trust
//! bundles served on loopback, through the real layer; named hostile
//! cases; PyJWT as the other stack.

use svcauth_jwks::SvidKind;
use svcauth_tests::{JsonServer, python, run_peer};

use super::*;

const SVID_SUB: &str = "spiffe://example.org/ns/prod/sa/reports";

struct Spiffe {
    jwt_key: SigningKey,
    rsa_key: SigningKey,
    ed_key: SigningKey,
    wit_key: SigningKey,
    x509_key: SigningKey,
    bundle: JsonServer,
    verifier: Verifier,
}

fn entry(key: &SigningKey, key_use: &str) -> Value {
    let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
    jwk["use"] = key_use.into();
    jwk
}

async fn spiffe() -> Spiffe {
    let jwt_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let rsa_key = SigningKey::generate(Algorithm::PS256).unwrap();
    let ed_key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let wit_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let x509_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let bundle = JsonServer::start(json!({
        "spiffe_sequence": 1,
        "keys": [entry(&jwt_key, "jwt-svid"), entry(&rsa_key, "jwt-svid"), entry(&ed_key, "jwt-svid"),
                 entry(&wit_key, "wit-svid"), entry(&x509_key, "x509-svid")],
    }))
    .await;
    let source = |kind| {
        KeySource::spiffe_bundle(&bundle.url(), kind)
            .unwrap()
            .cooldown(Duration::ZERO)
            .build()
            .unwrap()
    };
    let verifier = Verifier::builder(B)
        .trust(A_ISS, KeySource::fixed(KeySet::empty()))
        .trust_jwt_svids("example.org", source(SvidKind::Jwt))
        .trust_workloads("example.org", source(SvidKind::Wit))
        .clock(Arc::new(ManualClock::at_secs(NOW)))
        .build()
        .unwrap();
    Spiffe {
        jwt_key,
        rsa_key,
        ed_key,
        wit_key,
        x509_key,
        bundle,
        verifier,
    }
}

fn svid_header(key: &SigningKey) -> Value {
    json!({ "alg": key.algorithm().as_str(), "kid": key.kid(), "typ": "JWT" })
}

fn svid_claims() -> Value {
    json!({ "sub": SVID_SUB, "aud": [B], "iat": NOW, "exp": NOW + 300 })
}

/// `/whoami` with `token` as a bearer token: the status, the handler's
/// JSON, and the reason of a refusal (as `ErrorKind::as_str`).
async fn bearer_with(
    verifier: &Verifier,
    token: &str,
) -> (StatusCode, Value, Option<&'static str>) {
    let request = Request::get(format!("{B}/whoami"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app(VerifyLayer::new(verifier.clone()))
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let reason = response
        .extensions()
        .get::<svcauth_verify::VerifyError>()
        .map(|e| e.kind().as_str());
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        reason,
    )
}

async fn bearer(s: &Spiffe, token: &str) -> (StatusCode, Value, Option<&'static str>) {
    bearer_with(&s.verifier, token).await
}

fn with(mut value: Value, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    edit(value.as_object_mut().unwrap());
    value
}

#[tokio::test]
async fn a_jwt_svid_from_the_bundle_is_accepted_as_its_trust_domain() {
    let s = spiffe().await;
    for (key, typ) in [
        (&s.jwt_key, Some("JWT")),
        (&s.rsa_key, Some("JOSE")),
        (&s.jwt_key, None),
    ] {
        let header = with(svid_header(key), |h| {
            match typ {
                Some(t) => h.insert("typ".into(), t.into()),
                None => h.remove("typ"),
            };
        });
        let (status, body, _) = bearer(&s, &mint(key, header, svid_claims())).await;
        assert_eq!(status, StatusCode::OK, "{typ:?}: {body}");
        assert_eq!(body["sub"], json!(SVID_SUB));
        assert_eq!(body["iss"], json!("spiffe://example.org"));
        assert_eq!(body["proof"], json!("bearer"));
    }
    // An `iss` in the SVID does not choose anything: the trust domain
    // vouched for it, and that is what the handler sees.
    let claims = with(svid_claims(), |c| {
        c.insert("iss".into(), "https://spire.example".into());
    });
    let (status, body, _) = bearer(&s, &mint(&s.jwt_key, svid_header(&s.jwt_key), claims)).await;
    assert_eq!(
        (status, body["iss"].clone()),
        (StatusCode::OK, json!("spiffe://example.org"))
    );
}

#[tokio::test]
async fn hostile_jwt_svids_are_refused_with_their_reason() {
    let s = spiffe().await;
    type Edit<'a> = Box<dyn Fn(&mut Value, &mut Value) + 'a>;
    let cases: Vec<(&str, Option<&SigningKey>, Edit<'_>, &str)> = vec![
        (
            "EdDSA is not a JWT-SVID algorithm",
            Some(&s.ed_key),
            Box::new(|_, _| {}),
            "unsupported_algorithm",
        ),
        (
            "typ at+jwt",
            None,
            Box::new(|h, _| h["typ"] = "at+jwt".into()),
            "unaccepted_type",
        ),
        (
            "typ wit+jwt: a WIT as a bearer token",
            None,
            Box::new(|h, _| h["typ"] = "wit+jwt".into()),
            "unaccepted_type",
        ),
        (
            "typ in lower case",
            None,
            Box::new(|h, _| h["typ"] = "jwt".into()),
            "unaccepted_type",
        ),
        (
            "a jku header",
            None,
            Box::new(|h, _| h["jku"] = "https://evil.example/jwks".into()),
            "unsupported_header",
        ),
        (
            "a private header member",
            None,
            Box::new(|h, _| h["x-trace"] = "1".into()),
            "unsupported_header",
        ),
        (
            "an embedded jwk",
            None,
            Box::new(|h, _| h["jwk"] = json!({"kty": "EC"})),
            "unsupported_header",
        ),
        (
            "signed by the WIT-SVID key",
            Some(&s.wit_key),
            Box::new(|_, _| {}),
            "unknown_key",
        ),
        (
            "signed by the X509-SVID key",
            Some(&s.x509_key),
            Box::new(|_, _| {}),
            "unknown_key",
        ),
        (
            "sub in another trust domain",
            None,
            Box::new(|_, c| c["sub"] = "spiffe://evil.example/ns/prod/sa/reports".into()),
            "untrusted_issuer",
        ),
        (
            "sub is the trust domain itself",
            None,
            Box::new(|_, c| c["sub"] = "spiffe://example.org".into()),
            "invalid_claims",
        ),
        (
            "sub with upper case trust domain",
            None,
            Box::new(|_, c| c["sub"] = "spiffe://Example.org/a".into()),
            "untrusted_issuer",
        ),
        (
            "sub with a wimse scheme",
            None,
            Box::new(|_, c| c["sub"] = "wimse://example.org/a".into()),
            "untrusted_issuer",
        ),
        (
            "sub with a dot segment",
            None,
            Box::new(|_, c| c["sub"] = "spiffe://example.org/a/../b".into()),
            "untrusted_issuer",
        ),
        (
            "aud for another service",
            None,
            Box::new(|_, c| c["aud"] = json!(["https://c.internal"])),
            "wrong_audience",
        ),
        (
            "no aud",
            None,
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
            "invalid_claims",
        ),
        (
            "no exp",
            None,
            Box::new(|_, c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "invalid_claims",
        ),
        (
            "expired",
            None,
            Box::new(|_, c| c["exp"] = (NOW - 120).into()),
            "expired",
        ),
        (
            "longer than the lifetime cap",
            None,
            Box::new(|_, c| c["exp"] = (NOW + 86_400).into()),
            "lifetime_too_long",
        ),
        (
            "iss names a trusted issuer: checked with that issuer's keys",
            None,
            Box::new(|_, c| c["iss"] = A_ISS.into()),
            "unknown_key",
        ),
        (
            "alg none",
            None,
            Box::new(|h, _| h["alg"] = "none".into()),
            "unsupported_algorithm",
        ),
        (
            "HS256 with the bundle key as secret",
            None,
            Box::new(|h, _| h["alg"] = "HS256".into()),
            "unsupported_algorithm",
        ),
    ];
    for (name, key, edit, reason) in cases {
        let key = key.unwrap_or(&s.jwt_key);
        let (mut header, mut claims) = (svid_header(key), svid_claims());
        edit(&mut header, &mut claims);
        let token = mint(key, header, claims);
        let (status, _, got) = bearer(&s, &token).await;
        assert_eq!(
            (status, got),
            (StatusCode::UNAUTHORIZED, Some(reason)),
            "{name}"
        );
    }
    // A JWT-SVID offered as a WIT: refused there too (typ, no cnf).
    let svid = mint(&s.jwt_key, svid_header(&s.jwt_key), svid_claims());
    let w = world();
    let (status, body) = send(
        &w,
        VerifyLayer::new(s.verifier.clone()),
        &pair(&svid, "x.y.z"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("wit_invalid"))
    );
}

#[tokio::test]
async fn a_key_withdrawn_from_the_bundle_stops_verifying_cached_or_not() {
    let s = spiffe().await;
    let token = mint(&s.jwt_key, svid_header(&s.jwt_key), svid_claims());
    assert_eq!(bearer(&s, &token).await.0, StatusCode::OK);
    assert_eq!(bearer(&s, &token).await.0, StatusCode::OK, "a cache hit");
    assert!(s.verifier.metrics().cache_hits >= 1);
    // The trust domain rotates: a new key in a new bundle, the old one
    // withdrawn. A token of the new key makes the source fetch it.
    let next = SigningKey::generate(Algorithm::ES384).unwrap();
    s.bundle
        .set(json!({ "spiffe_sequence": 2, "keys": [entry(&next, "jwt-svid")] }));
    let fresh = mint(&next, svid_header(&next), svid_claims());
    assert_eq!(bearer(&s, &fresh).await.0, StatusCode::OK);
    // The old token's cache entry belonged to the old set: refused now.
    let (status, _, reason) = bearer(&s, &token).await;
    assert_eq!(
        (status, reason),
        (StatusCode::UNAUTHORIZED, Some("unknown_key"))
    );
    // A replayed older bundle brings nothing back.
    s.bundle
        .set(json!({ "spiffe_sequence": 1, "keys": [entry(&s.jwt_key, "jwt-svid")] }));
    let (status, _, reason) = bearer(&s, &token).await;
    assert_eq!(
        (status, reason),
        (StatusCode::UNAUTHORIZED, Some("unknown_key"))
    );
}

#[tokio::test]
async fn a_wit_svid_is_checked_against_the_bundles_wit_keys_only() {
    let s = spiffe().await;
    let w = world();
    let wit = |key: &SigningKey| {
        mint(
            key,
            json!({ "alg": "ES256", "kid": key.kid(), "typ": "wit+jwt" }),
            wit_claims(&w.key),
        )
    };
    let good = wit(&s.wit_key);
    let proof = mint(&w.key, wpt_header(), wpt_claims(&good, "p1"));
    let (status, body) = send(
        &w,
        VerifyLayer::new(s.verifier.clone()),
        &pair(&good, &proof),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["workload"].clone(), body["proof"].clone()),
        (json!(WORKLOAD), json!("wpt"))
    );
    // Signed with the trust domain's JWT-SVID key: not a WIT key.
    let bad = wit(&s.jwt_key);
    let proof = mint(&w.key, wpt_header(), wpt_claims(&bad, "p2"));
    let (status, body) = send(
        &w,
        VerifyLayer::new(s.verifier.clone()),
        &pair(&bad, &proof),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("wit_invalid"))
    );
}

#[test]
fn an_empty_issuer_or_a_bad_trust_domain_is_a_configuration_error() {
    let keys = || KeySource::fixed(KeySet::empty());
    assert!(Verifier::builder(B).trust("", keys()).build().is_err());
    assert!(
        Verifier::builder(B)
            .trust_jwt_svids("Example.org", keys())
            .build()
            .is_err()
    );
    assert!(
        Verifier::builder(B)
            .trust_jwt_svids("example.org", keys())
            .trust_jwt_svids("example.org", keys())
            .build()
            .is_err()
    );
}

#[cfg_attr(svcauth_peer_missing_python, ignore = "needs PyJWT")]
#[tokio::test]
async fn pyjwt_jwt_svids_from_a_pyjwt_bundle_are_accepted() {
    let Some(python) = python() else {
        return;
    };
    for alg in ["RS256", "ES256"] {
        let peer = run_peer(&python, "wimse_peer.py", &["jwt-svid", alg, B]);
        let bundle = JsonServer::start(peer["bundle"].clone()).await;
        let source = KeySource::spiffe_bundle(&bundle.url(), SvidKind::Jwt)
            .unwrap()
            .build()
            .unwrap();
        let verifier = Verifier::builder(B)
            .trust_jwt_svids("py.example", source.clone())
            .build()
            .unwrap();
        let token = peer["svid"].as_str().unwrap();
        let (status, body, reason) = bearer_with(&verifier, token).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {reason:?}");
        assert_eq!(body["sub"], json!("spiffe://py.example/ns/peer/sa/client"));
        // The next bundle lists the same key for X.509-SVIDs only: the
        // token, cached a moment ago, is refused.
        let mut only_x509 = peer["bundle"].clone();
        only_x509["keys"][0]["use"] = "x509-svid".into();
        only_x509["spiffe_sequence"] = 2.into();
        bundle.set(only_x509);
        source.refresh().await.unwrap();
        let (status, _, reason) = bearer_with(&verifier, token).await;
        assert_eq!(
            (status, reason),
            (StatusCode::UNAUTHORIZED, Some("unknown_key")),
            "{alg}"
        );
    }
}
