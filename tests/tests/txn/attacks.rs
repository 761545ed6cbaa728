//! Named hostile Txn-Tokens through the real `VerifyLayer`, and the signing
//! layer asked to carry one outside the trust domain. Each is refused with
//! a reason that says why, and the service keeps serving.

use std::sync::Arc;

use http::HeaderValue;
use svcauth_core::txn::TxnToken;
use svcauth_core::{ManualClock, b64, jws};
use svcauth_sign::{SignError, Signer};

use super::*;

/// Signs `claims` as a Txn-Token with the service's own key.
async fn signed_by_tts(tts: &Tts, claims: Value) -> String {
    let signer = tts.service.key_ring().signer();
    svcauth_jwks::sign_jws(&*signer, "txntoken+jwt", claims.to_string().as_bytes())
        .await
        .unwrap()
}

/// The claims of a valid token of `tts`, to alter.
fn claims_of(token: &str) -> Value {
    let (_, payload) = jws::peek(token).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// `token` with its payload replaced by `claims` (the signature kept).
fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64::encode(claims.to_string()),
        parts[2]
    )
}

#[tokio::test]
async fn hostile_txn_tokens_are_refused_with_their_reason() {
    let tts = Tts::start().await;
    let a = CallerA::new();
    let (verifier, app) = service_b(&a, &tts);
    let service_token = format!("Bearer {}", a.token());
    let good = tts.mint().await;

    let (status, body) = send(
        &app,
        "/txn",
        &[("authorization", &service_token), ("txn-token", &good)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["caller"], A_ISS);
    assert_eq!(body["txn"]["sub"], "alice");

    let other_domain = Tts::start_with("other.example", system_clock()).await;
    let other_domain_token = other_domain.mint().await;
    // The same key as ours, minting for another trust domain.
    let ours_for_elsewhere =
        TransactionTokenService::builder("other.example", TTS_ISS, tts.service.key_ring().clone())
            .build()
            .unwrap()
            .mint(alice())
            .await
            .unwrap();
    let past = Arc::new(ManualClock::at_secs(svcauth_tests::unix_now() - 3600));
    let expired = TransactionTokenService::builder(DOMAIN, TTS_ISS, tts.service.key_ring().clone())
        .clock(past)
        .build()
        .unwrap()
        .mint(alice())
        .await
        .unwrap();
    // A service's key signing a token that says it comes from the TTS.
    let mut forged_claims = claims_of(&good);
    let forged = jws::encode(
        &b64::encode(
            json!({"alg": "ES256", "typ": "txntoken+jwt", "kid": a.key.kid()}).to_string(),
        ),
        forged_claims.to_string().as_bytes(),
        |input| a.key.sign(input),
    )
    .unwrap();
    forged_claims["scope"] = json!("orders.read orders.write admin");
    let widened = with_payload(&good, &forged_claims);
    let mut moved = claims_of(&good);
    moved["tctx"]["tenant"] = json!("red");
    let modified_tctx = with_payload(&good, &moved);
    let mut long = claims_of(&good);
    long["exp"] = json!(long["iat"].as_u64().unwrap() + 3600);
    let too_long = signed_by_tts(&tts, long).await;
    let mut no_wl = claims_of(&good);
    no_wl.as_object_mut().unwrap().remove("req_wl");
    let without_req_wl = signed_by_tts(&tts, no_wl).await;
    let mut stranger = claims_of(&good);
    stranger["iss"] = json!("https://tts.elsewhere");
    let unknown_tts = signed_by_tts(&tts, stranger).await;
    let as_jwt = {
        let signer = tts.service.key_ring().signer();
        svcauth_jwks::sign_jws(&*signer, "JWT", claims_of(&good).to_string().as_bytes())
            .await
            .unwrap()
    };
    let none = format!(
        "{}.{}.",
        b64::encode(r#"{"alg":"none","typ":"txntoken+jwt"}"#),
        b64::encode(claims_of(&good).to_string())
    );
    let huge = format!("{good}{}", "A".repeat(10_000));

    type Case<'a> = (&'a str, Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("no Txn-Token", vec![], 403, "txn_token_required"),
        (
            "from another trust domain",
            vec![("txn-token", other_domain_token)],
            403,
            "txn_token_wrong_domain",
        ),
        (
            "our key, another trust domain",
            vec![("txn-token", ours_for_elsewhere)],
            403,
            "txn_token_wrong_domain",
        ),
        (
            "expired",
            vec![("txn-token", expired)],
            403,
            "txn_token_expired",
        ),
        (
            "signed by a service key",
            vec![("txn-token", forged)],
            403,
            "txn_token_untrusted",
        ),
        (
            "widened scope",
            vec![("txn-token", widened)],
            403,
            "txn_token_invalid",
        ),
        (
            "modified tctx",
            vec![("txn-token", modified_tctx)],
            403,
            "txn_token_invalid",
        ),
        (
            "two Txn-Token headers",
            vec![("txn-token", good.clone()), ("txn-token", good.clone())],
            403,
            "txn_token_invalid",
        ),
        (
            "two tokens in one header",
            vec![("txn-token", format!("{good}, {good}"))],
            403,
            "txn_token_invalid",
        ),
        (
            "lives an hour",
            vec![("txn-token", too_long)],
            403,
            "txn_token_expired",
        ),
        (
            "no req_wl",
            vec![("txn-token", without_req_wl)],
            403,
            "txn_token_invalid",
        ),
        (
            "an unknown TTS",
            vec![("txn-token", unknown_tts)],
            403,
            "txn_token_untrusted",
        ),
        (
            "typ JWT",
            vec![("txn-token", as_jwt)],
            403,
            "txn_token_invalid",
        ),
        (
            "alg none",
            vec![("txn-token", none)],
            403,
            "txn_token_invalid",
        ),
        (
            "a service token as Txn-Token",
            vec![("txn-token", a.token())],
            403,
            "txn_token_invalid",
        ),
        ("10 KB", vec![("txn-token", huge)], 403, "txn_token_invalid"),
    ];
    for (name, extra, status, error) in cases {
        let mut headers = vec![("authorization", service_token.clone())];
        headers.extend(extra.into_iter());
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (got, body) = send(&app, "/txn", &headers).await;
        assert_eq!(
            (got.as_u16(), body["error"].as_str()),
            (status, Some(error)),
            "{name}: {body}"
        );
    }

    // A Txn-Token is not a credential: not in Authorization.
    let (status, body) = send(
        &app,
        "/open",
        &[("authorization", &format!("Bearer {good}"))],
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    assert_eq!(
        verifier
            .metrics()
            .rejected
            .get("txn_token_as_credential")
            .copied(),
        Some(1),
        "{:?}",
        verifier.metrics().rejected
    );
    // Nor does one stand in for a missing service token.
    let (status, _) = send(&app, "/txn", &[("txn-token", &good)]).await;
    assert_eq!(status, 401);
    // On a route that does not require one, a bad one is still refused.
    let (status, body) = send(
        &app,
        "/open",
        &[("authorization", &service_token), ("txn-token", "x.y.z")],
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (403, Some("txn_token_invalid"))
    );

    // Still serving, from the cache now.
    for _ in 0..2 {
        let (status, body) = send(
            &app,
            "/txn",
            &[("authorization", &service_token), ("txn-token", &good)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["txn"]["tctx"]["tenant"], "blue");
    }
}

#[tokio::test]
async fn a_txn_token_never_leaves_the_trust_domain_through_the_signing_layer() {
    let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let signer = Signer::self_signed(A_ISS, ring)
        .unwrap()
        .audience("http://127.0.0.1:1", B_AUD)
        .audience("http://127.0.0.1:3", "https://partner.example")
        .propagate_txn_tokens(DOMAIN, ["http://127.0.0.1:1", "http://127.0.0.1:2"])
        .build()
        .unwrap();
    let client = tower::ServiceBuilder::new()
        .layer(svcauth_sign::SignLayer::new(signer.clone()))
        .service(tower::service_fn(|req: Request<Body>| async move {
            Ok::<_, std::convert::Infallible>(req.headers().get("txn-token").cloned())
        }));
    let raw = "eyJ0eXAiOiJ0eG50b2tlbitqd3QifQ.e30.c2ln";
    let token = TxnToken::new(HeaderValue::from_static(raw), DOMAIN);
    let get = |url: &str| Request::get(url).body(Body::empty()).unwrap();

    // Inside, byte for byte, from the handler's scope; and to an origin of
    // the domain that gets no service token.
    let inside = token
        .clone()
        .scope(client.clone().oneshot(get("http://127.0.0.1:1/orders")))
        .await
        .unwrap();
    assert_eq!(inside.unwrap().as_bytes(), raw.as_bytes());
    let no_audience = token
        .clone()
        .scope(client.clone().oneshot(get("http://127.0.0.1:2/x")))
        .await
        .unwrap();
    assert_eq!(no_audience.unwrap().as_bytes(), raw.as_bytes());
    // Outside: a partner with a service token of its own, and anyone else.
    for outside in [
        "http://127.0.0.1:3/x",
        "http://127.0.0.1:4/x",
        "https://evil.example/",
    ] {
        let sent = token
            .clone()
            .scope(client.clone().oneshot(get(outside)))
            .await
            .unwrap();
        assert!(sent.is_none(), "{outside}");
    }
    // Set by hand for an outside origin: refused, not sent.
    let mut by_hand = get("http://127.0.0.1:3/x");
    by_hand
        .headers_mut()
        .insert("txn-token", HeaderValue::from_static(raw));
    let error = client.clone().oneshot(by_hand).await.unwrap_err();
    assert!(
        matches!(
            error.downcast_ref::<SignError>(),
            Some(SignError::TxnTokenOutsideTrustDomain(_))
        ),
        "{error}"
    );
    // A token of another trust domain is not passed on, even inside.
    let foreign = TxnToken::new(HeaderValue::from_static(raw), "other.example");
    let sent = foreign
        .scope(client.clone().oneshot(get("http://127.0.0.1:1/orders")))
        .await
        .unwrap();
    assert!(sent.is_none());
    // Outside any scope, nothing.
    assert!(
        client
            .oneshot(get("http://127.0.0.1:1/orders"))
            .await
            .unwrap()
            .is_none()
    );
    // A propagation origin outside https (not loopback) is refused at build.
    let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let plain = Signer::self_signed(A_ISS, ring)
        .unwrap()
        .propagate_txn_tokens(DOMAIN, ["http://b.internal"])
        .build();
    assert!(plain.is_err());
}
