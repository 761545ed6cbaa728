//! svcauth against other JOSE stacks, for real: Python's PyJWT and node's
//! jose verify svcauth's tokens through its published JWKS, and svcauth's
//! verifying layer accepts theirs, for RS256, PS256, ES256 and EdDSA. A
//! standard-library Python script reproduces docs/PROTOCOL.md's binding
//! example. `cargo xtask test` prepares the peers (a venv with PyJWT, npm ci)
//! and requires these tests; without the peers a plain `cargo test` says
//! what it skipped.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Method, Request, StatusCode, Uri};
use svcauth_core::{Algorithm, RequestBinding};
use svcauth_jwks::{JwksService, KeyRing, KeySet, KeySource, SigningKey};
use svcauth_sign::{SelfSigned, TokenRequest};
use svcauth_tests::{node_with, python, root, run_peer};
use svcauth_verify::{Caller, Verifier, VerifyLayer};
use tower::ServiceExt;

const ALGS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];
const AUD: &str = "https://b.internal";

/// node, with jose installed in tests/peers.
fn node() -> Option<PathBuf> {
    node_with("jose")
}

async fn serve(ring: &KeyRing) -> String {
    let app = Router::new().route_service("/.well-known/jwks.json", JwksService::new(ring.clone()));
    format!(
        "http://{}/.well-known/jwks.json",
        svcauth_tests::serve(app).await
    )
}

#[cfg_attr(
    any(svcauth_peer_missing_python, svcauth_peer_missing_node_jose),
    ignore = "needs PyJWT + node jose"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svcauth_tokens_verify_with_pyjwt_and_jose_through_the_published_jwks() {
    let (Some(python), Some(node)) = (python(), node()) else {
        return;
    };
    for alg in ALGS {
        let iss = format!("https://svcauth-{}.internal", alg.as_str().to_lowercase());
        let ring = KeyRing::new(SigningKey::generate(alg).unwrap());
        let jwks = serve(&ring).await;
        let source = SelfSigned::new(&iss, ring.clone()).unwrap();
        let token = source
            .mint(TokenRequest {
                audience: AUD,
                binding: None,
                on_behalf_of: None,
            })
            .await
            .unwrap();
        let (jwks2, iss2, token2) = (jwks.clone(), iss.clone(), token.as_str().to_owned());
        let python = python.clone();
        let by_pyjwt = tokio::task::spawn_blocking(move || {
            run_peer(
                &python,
                "pyjwt_peer.py",
                &["verify", &jwks2, AUD, &iss2, &token2],
            )
        })
        .await
        .unwrap();
        assert_eq!(by_pyjwt["sub"], iss.as_str(), "PyJWT, {alg}");
        assert_eq!(by_pyjwt["aud"], AUD);
        let (jwks2, iss2, token2, node) = (
            jwks.clone(),
            iss.clone(),
            token.as_str().to_owned(),
            node.clone(),
        );
        let by_jose = tokio::task::spawn_blocking(move || {
            run_peer(
                &node,
                "jose_peer.mjs",
                &["verify", &jwks2, AUD, &iss2, &token2],
            )
        })
        .await
        .unwrap();
        assert_eq!(by_jose["payload"]["sub"], iss.as_str(), "jose, {alg}");
        assert_eq!(by_jose["protectedHeader"]["kid"], ring.signer().kid());
    }
}

#[cfg_attr(
    any(svcauth_peer_missing_python, svcauth_peer_missing_node_jose),
    ignore = "needs PyJWT + node jose"
)]
#[tokio::test]
async fn pyjwt_and_jose_tokens_verify_with_the_svcauth_layer() {
    let (Some(python), Some(node)) = (python(), node()) else {
        return;
    };
    for alg in ALGS {
        for (peer, program, script) in [
            ("pyjwt", &python, "pyjwt_peer.py"),
            ("jose", &node, "jose_peer.mjs"),
        ] {
            let iss = format!("https://{peer}.internal");
            let minted = run_peer(program, script, &["mint", alg.as_str(), AUD, &iss]);
            let keys = KeySet::from_jwks(minted["jwks"].to_string().as_bytes(), 65536).unwrap();
            assert!(
                keys.skipped().is_empty(),
                "{peer} {alg}: {:?}",
                keys.skipped()
            );
            let verifier = Verifier::builder(AUD)
                .trust(&iss, KeySource::fixed(keys))
                .build()
                .unwrap();
            let app =
                Router::new()
                    .route(
                        "/whoami",
                        get(|c: Caller| async move {
                            format!("{} {}", c.sub(), c.algorithm().unwrap())
                        }),
                    )
                    .layer(VerifyLayer::new(verifier));
            let token = minted["token"].as_str().unwrap();
            let request = Request::get("/whoami")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{peer} {alg}");
            let body = http_body_util_collect(response.into_body()).await;
            assert_eq!(body, format!("{peer}-client {alg}"));
        }
    }
}

async fn http_body_util_collect(body: Body) -> String {
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[cfg_attr(svcauth_peer_missing_python, ignore = "needs PyJWT")]
#[test]
fn protocol_binding_example_is_reproduced_byte_for_byte_by_python() {
    let Some(python) = python() else { return };
    let by_python = run_peer(&python, "binding_example.py", &[]);
    let uri: Uri = "https://Service-B.internal:443/v1/orders?dry_run=1"
        .parse()
        .unwrap();
    let ours =
        RequestBinding::for_request(&Method::POST, &uri, br#"{"sku":"A-1","qty":2}"#).unwrap();
    assert_eq!(by_python["htm"], ours.htm.as_str());
    assert_eq!(
        by_python["query_sha256"].as_str(),
        ours.query_sha256.as_deref()
    );
    assert_eq!(by_python["htu"], ours.htu.as_str());
    assert_eq!(by_python["body_sha256"], ours.body_sha256.as_str());
    let protocol = std::fs::read_to_string(root().join("docs/PROTOCOL.md")).unwrap();
    assert!(
        protocol.contains(&format!("`htu` = `{}`", ours.htu)),
        "PROTOCOL.md states the htu"
    );
    assert!(
        protocol.contains(&format!("`body_sha256` = `{}`", ours.body_sha256)),
        "PROTOCOL.md states the hash"
    );
}
