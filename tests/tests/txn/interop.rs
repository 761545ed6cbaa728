//! Another stack, both ways: PyJWT verifies a Txn-Token our Transaction
//! Token Service minted (from its published JWKS, `typ` and the draft's
//! required claims checked), and our layer accepts one PyJWT minted as
//! another stack's TTS would.

use svcauth_tests::{JsonServer, python, run_peer};

use super::*;

#[cfg_attr(svcauth_peer_missing_python, ignore = "needs PyJWT (cargo xtask test)")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_our_txn_tokens_and_we_verify_its() {
    let Some(python) = python() else {
        return;
    };
    let tts = Tts::start().await;
    let token = tts.mint().await;
    let (py, url) = (python.clone(), tts.jwks_url.clone());
    let verified = tokio::task::spawn_blocking(move || {
        run_peer(&py, "pyjwt_peer.py", &["verify-txn", &url, DOMAIN, &token])
    })
    .await
    .unwrap();
    assert_eq!(verified["header"]["typ"], "txntoken+jwt");
    assert_eq!(verified["claims"]["sub"], "alice");
    assert_eq!(verified["claims"]["aud"], DOMAIN);
    assert_eq!(verified["claims"]["tctx"]["tenant"], "blue");

    for alg in ["ES256", "EdDSA", "RS256"] {
        let py = python.clone();
        let minted = tokio::task::spawn_blocking(move || {
            run_peer(
                &py,
                "pyjwt_peer.py",
                &["mint-txn", alg, DOMAIN, "https://pyjwt-tts.example"],
            )
        })
        .await
        .unwrap();
        let jwks = JsonServer::start(minted["jwks"].clone()).await;
        let a = CallerA::new();
        let verifier = Verifier::builder(B_AUD)
            .trust(A_ISS, a.keys())
            .trust_txn_tokens(
                DOMAIN,
                "https://pyjwt-tts.example",
                KeySource::remote(&jwks.url()).unwrap().build().unwrap(),
            )
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/txn",
                get(|txn: Transaction| async move { axum::Json(txn.tctx().cloned()) }),
            )
            .layer(VerifyLayer::new(verifier).require_txn_token());
        let token = minted["token"].as_str().unwrap();
        let bearer = format!("Bearer {}", a.token());
        let (status, body) = send(
            &app,
            "/txn",
            &[("authorization", &bearer), ("txn-token", token)],
        )
        .await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert_eq!(body["ticker"], "MSFT", "{alg}");
    }
}
