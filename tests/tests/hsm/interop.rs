//! PyJWT verifies tokens signed inside the token, through the JWKS the ring
//! publishes: the signatures are standard JOSE, whatever made them.

use svcauth_jwks::JwksService;
use svcauth_tests::{python, run_peer};

use super::*;

#[cfg_attr(
    any(svcauth_peer_missing_softhsm, svcauth_peer_missing_python),
    ignore = "needs SoftHSM2 + PyJWT"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_tokens_signed_inside_the_token() {
    let Some(python) = python() else {
        return;
    };
    let Some(hsm) = softhsm(
        "interop::pyjwt_verifies_tokens_signed_inside_the_token",
        &[TOKEN],
    ) else {
        return;
    };
    for alg in [
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::RS256,
        Algorithm::PS256,
    ] {
        let ring = KeyRing::new(hsm.generate(&format!("peer-{alg}"), alg));
        let app =
            Router::new().route_service("/.well-known/jwks.json", JwksService::new(ring.clone()));
        let jwks = format!(
            "http://{}/.well-known/jwks.json",
            svcauth_tests::serve(app).await
        );
        let token = mint(&ring).await;
        let python = python.clone();
        let verified = tokio::task::spawn_blocking(move || {
            run_peer(
                &python,
                "pyjwt_peer.py",
                &["verify", &jwks, AUD, ISS, &token],
            )
        })
        .await
        .unwrap();
        assert_eq!(verified["iss"], ISS, "{alg}");
        assert_eq!(verified["aud"], AUD, "{alg}");
    }
}
