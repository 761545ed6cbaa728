//! Other implementations: the drafts' own example request (made by the
//! drafts' authors' Go code), and PyJWT both ways.

#![allow(clippy::unwrap_used)]

use std::sync::Mutex;

use svcauth_tests::{python, run_peer};

use super::*;

/// draft-ietf-wimse-wpt-02's example request (includes/wpt-request.txt),
/// with its identity server key from draft-ietf-wimse-workload-creds-03.
const DRAFT_WIT: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Ikp1bmUgNSIsInR5cCI6IndpdCtqd3QifQ.eyJjbmYiOnsiandrIjp7ImFsZyI6IkVkRFNBIiwiY3J2IjoiRWQyNTUxOSIsImt0eSI6Ik9LUCIsIngiOiIxQ1hYdmZsTl9MVlZzSXNZWHNVdkIwM0ptbEdXZUNIcVFWdW91Q0Y5MmJnIn19LCJleHAiOjE3NDU1MTI1MTAsImlhdCI6MTc0NTUwODkxMCwianRpIjoieC1fMUNUTDJjY2EzQ1NFNGN3Yl9sIiwic3ViIjoid2ltc2U6Ly9leGFtcGxlLmNvbS9zcGVjaWZpYy13b3JrbG9hZCJ9.6KraSQUxWdl9dxFQ3Fj6dPY0Vi88OkwFwZpAIOhLeq6AbXAnLLQgOp8U9UDGcBuYF3KiNv6oKQD1ZWAzrMZOJw";
const DRAFT_WPT: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6IndwdCtqd3QifQ.eyJhdGgiOiJDTDR3amZwUm1OZi1iZFlJYllMblY5ZDVyTUFSR3dLWUUxMHdVd3pDMGpJIiwiYXVkIjoiaHR0cHM6Ly93b3JrbG9hZC5leGFtcGxlLmNvbS9wYXRoIiwiZXhwIjoxNzQ1NTEwMDE2LCJqdGkiOiJfX2J3YzRFU0MzYWNjMkxUQzEtX3giLCJ3dGgiOiJBYVlVZkMzNEQxZGkyRnhRTHBpSUpKN1NnOFZaNm84T0Nkd1NmOUlUb0xnIn0.PI7d9AcYhLoEgPgbJvcM132lkBKnM1NXU-5hZUzVTIyj2dRJaTLFs6e5NYv5gg6AqcV7NvkYCwfgMgWasWQzCA";
const DRAFT_ACCESS_TOKEN: &str = "16_mAd0GiwaZokU26_0902100";
const DRAFT_DOMAIN_KEY: &str = r#"{"keys":[{"kty":"EC","kid":"June 5","crv":"P-256","x":"kXqnA2Op7hgd4zRMbw0iFcc_hDxUxhojxOFVGjE2gks","y":"n__VndPMR021-59UAs0b9qDTFT-EZtT6xSNs_xFskLo"}]}"#;

async fn draft_request(verifier: &Verifier, access_token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::post("/path")
        .header("host", "workload.example.com")
        .header("content-type", "application/json")
        .header("workload-identity-token", DRAFT_WIT)
        .header("workload-proof-token", DRAFT_WPT);
    if let Some(token) = access_token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let app = Router::new()
        .route(
            "/path",
            axum::routing::post(|caller: Caller| async move {
                axum::Json(json!({ "workload": caller.workload().map(|w| w.to_string()) }))
            }),
        )
        .layer(VerifyLayer::new(verifier.clone()));
    let response = app
        .oneshot(
            request
                .body(Body::from(r#"{"do stuff":"please"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_drafts_example_request_is_accepted_at_its_time_and_only_as_written() {
    let clock = Arc::new(ManualClock::at_secs(1_745_509_990));
    let keys = KeySource::fixed(KeySet::from_jwks(DRAFT_DOMAIN_KEY.as_bytes(), 65536).unwrap());
    let verifier = Verifier::builder("https://workload.example.com")
        .trust_workloads("example.com", keys)
        .clock(clock.clone())
        .build()
        .unwrap();
    let (status, body) = draft_request(&verifier, Some(DRAFT_ACCESS_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["workload"],
        json!("wimse://example.com/specific-workload")
    );
    // The same proof again: replayed.
    let (status, body) = draft_request(&verifier, Some(DRAFT_ACCESS_TOKEN)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("proof_replayed"))
    );

    // A fresh verifier: without the access token the proof's ath has
    // nothing to match; another token does not match it; later, expired.
    let fresh = || {
        let keys = KeySource::fixed(KeySet::from_jwks(DRAFT_DOMAIN_KEY.as_bytes(), 65536).unwrap());
        Verifier::builder("https://workload.example.com")
            .trust_workloads("example.com", keys)
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    for (token, reason) in [
        (None, "proof_mismatch"),
        (Some("another-token"), "proof_mismatch"),
    ] {
        let (status, body) = draft_request(&fresh(), token).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(reason))
        );
    }
    clock.set_secs(1_745_510_016 + 31);
    let (_, body) = draft_request(&fresh(), Some(DRAFT_ACCESS_TOKEN)).await;
    assert_eq!(body["error"], json!("proof_expired"));
    // Trusting another trust domain: untrusted, whatever the key.
    let keys = KeySource::fixed(KeySet::from_jwks(DRAFT_DOMAIN_KEY.as_bytes(), 65536).unwrap());
    let elsewhere = Verifier::builder("https://workload.example.com")
        .trust_workloads("example.net", keys)
        .clock(Arc::new(ManualClock::at_secs(1_745_509_990)))
        .build()
        .unwrap();
    let (_, body) = draft_request(&elsewhere, Some(DRAFT_ACCESS_TOKEN)).await;
    assert_eq!(body["error"], json!("wit_untrusted"));
}

#[cfg_attr(svcauth_peer_missing_python, ignore = "needs PyJWT")]
#[tokio::test]
async fn pyjwt_mints_pairs_svcauth_accepts_and_verifies_svcauths() {
    let Some(python) = python() else {
        return;
    };
    // PyJWT -> svcauth, both workload key types.
    for alg in ["ES256", "EdDSA"] {
        let peer = run_peer(
            &python,
            "wimse_peer.py",
            &["mint", alg, &format!("{B}/whoami"), "at-1"],
        );
        let keys = KeySource::fixed(
            KeySet::from_jwks(peer["jwks"].to_string().as_bytes(), 65536).unwrap(),
        );
        let verifier = Verifier::builder(B)
            .trust_workloads("py.example", keys)
            .build()
            .unwrap();
        let w = world();
        let mut headers = pair(peer["wit"].as_str().unwrap(), peer["wpt"].as_str().unwrap());
        headers.push(("authorization", "Bearer at-1".into()));
        let (status, body) = send(&w, VerifyLayer::new(verifier.clone()), &headers).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {body}");
        assert_eq!(body["workload"], peer["workload"]);
        // Its proof without the access token it binds: refused.
        headers.pop();
        let (status, _) = send(&w, VerifyLayer::new(verifier), &headers).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    // svcauth -> PyJWT: what ProofLayer sends, with the token SignLayer would add.
    // Real time here: PyJWT checks iat and exp against its own clock.
    let ring = KeyRing::new(SigningKey::generate(Algorithm::ES256).unwrap());
    let issuer = WitIssuer::new("example.org", ring.clone()).unwrap();
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let wit = issuer
        .issue(&WORKLOAD.parse().unwrap(), &key.public_jwk())
        .await
        .unwrap();
    let identity = WorkloadIdentity::new(key, &wit).unwrap();
    let seen = Arc::new(Mutex::new(http::HeaderMap::new()));
    let record = seen.clone();
    let client = tower::ServiceBuilder::new()
        .layer(ProofLayer::new(identity).origin(B).unwrap())
        .service(tower::service_fn(move |request: Request<Body>| {
            *record.lock().unwrap() = request.headers().clone();
            std::future::ready(Ok::<_, std::convert::Infallible>(()))
        }));
    let request = Request::get(format!("{B}/whoami?page=2"))
        .header("authorization", "Bearer at-2")
        .body(Body::empty())
        .unwrap();
    client.oneshot(request).await.unwrap();
    let headers = seen.lock().unwrap().clone();
    let jwks = json!({ "keys": [ring.signer().public_jwk()] }).to_string();
    let text = |name: &str| headers[name].to_str().unwrap().to_owned();
    let (wit, wpt) = (
        text("workload-identity-token"),
        text("workload-proof-token"),
    );
    let verified = run_peer(
        &python,
        "wimse_peer.py",
        &[
            "verify",
            &jwks,
            "example.org",
            &format!("{B}/whoami"),
            &wit,
            &wpt,
            "at-2",
        ],
    );
    assert_eq!(verified["wit"]["sub"], json!(WORKLOAD));
    assert_eq!(verified["wpt"]["aud"], json!(format!("{B}/whoami")));
}
