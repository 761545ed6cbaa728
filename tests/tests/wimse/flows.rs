//! What works: the client layers, renewal, per-route proof rules.

#![allow(clippy::unwrap_used)]

use super::*;

/// Bearer tokens on routes that require proof: all, or one issuer's.
#[tokio::test]
async fn routes_can_require_proof_for_every_caller_or_one_issuer() {
    let w = world();
    let bearer = mint(
        &w.bearer_key,
        json!({ "alg": "EdDSA", "typ": "JWT", "kid": w.bearer_key.kid() }),
        json!({ "iss": A_ISS, "sub": A_ISS, "aud": B, "iat": NOW, "exp": NOW + 300 }),
    );
    let auth = [("authorization", format!("Bearer {bearer}"))];
    let open = VerifyLayer::new(w.verifier.clone());
    assert_eq!(send(&w, open, &auth).await.0, StatusCode::OK);
    for strict in [
        VerifyLayer::new(w.verifier.clone()).require_proof(),
        VerifyLayer::new(w.verifier.clone()).require_proof_from(A_ISS),
    ] {
        let (status, body) = send(&w, strict.clone(), &auth).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token"))
        );
        assert!(
            body["error_description"].as_str().unwrap().contains("WIT"),
            "{body}"
        );
        let wpt = mint(
            &w.key,
            wpt_header(),
            wpt_claims(&w.wit, &format!("{}", rand_id())),
        );
        let (status, body) = send(&w, strict, &pair(&w.wit, &wpt)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (body["proof"].as_str(), body["sub"].as_str()),
            (Some("wpt"), Some(WORKLOAD))
        );
    }
    // Counted: accepted under the trust domain, refusals by reason.
    let counted = w.verifier.metrics();
    assert!(counted.accepted >= 2, "{counted:?}");
    assert_eq!(counted.rejected.get("proof_required"), Some(&2));
    // Another issuer's migration does not touch this one.
    let other = VerifyLayer::new(w.verifier.clone()).require_proof_from("https://c.internal");
    assert_eq!(send(&w, other, &auth).await.0, StatusCode::OK);
}

fn rand_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The client side: ProofLayer (with SignLayer outside it) reaches the
/// verifier, and refuses origins it was not given.
#[tokio::test]
async fn proof_layer_requests_are_admitted_and_bind_the_bearer_token() {
    let w = world();
    let identity = WorkloadIdentity::new(
        SigningKey::from_pkcs8_pem(&w.key_pem, None).unwrap(),
        &w.wit,
    )
    .unwrap()
    .clock(w.clock.clone())
    .unwrap();
    let server = app(VerifyLayer::new(w.verifier.clone()));
    let client = tower::ServiceBuilder::new()
        .layer(ProofLayer::new(identity.clone()).origin(B).unwrap())
        .service(server.clone());
    for path in ["/whoami", "/whoami?x=1&y=2"] {
        let request = Request::get(format!("{B}{path}"))
            .header("authorization", "Bearer some-access-token")
            .body(Body::empty())
            .unwrap();
        let response = client.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["workload"], json!(WORKLOAD));
        assert_eq!(body["iss"], json!("spiffe://example.org"));
    }
    let elsewhere = Request::get("https://c.internal/whoami")
        .body(Body::empty())
        .unwrap();
    let error = client.clone().oneshot(elsewhere).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("may not be sent to https://c.internal"),
        "{error}"
    );

    // A renewed WIT is used at once by every clone of the identity.
    w.clock.advance(Duration::from_secs(1800));
    let renewed = w
        .issuer
        .issue(&WORKLOAD.parse().unwrap(), &w.key.public_jwk())
        .await
        .unwrap();
    identity.set_wit(&renewed).unwrap();
    assert_eq!(identity.wit().token(), renewed);
    let request = Request::get(format!("{B}/whoami"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        client.clone().oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    // A WIT for another key is refused by the holder itself.
    let stranger = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let theirs = w
        .issuer
        .issue(&WORKLOAD.parse().unwrap(), &stranger.public_jwk())
        .await
        .unwrap();
    assert!(identity.set_wit(&theirs).is_err());
}
