//! WIT + WPT over gRPC: `WorkloadIdentity::tonic_channel` (tonic sends
//! path-only URIs; the layer pins the channel's origin so each proof names
//! the full target), tonic's server behind `VerifyLayer`, alone and with a
//! bearer token the proof binds.

use std::net::SocketAddr;

use demo_grpc::demo_client::DemoClient;
use demo_grpc::demo_server::DemoServer;
use demo_grpc::{Demo, WhoAmIRequest};
use svcauth_sign::{SignLayer, Signer};
use tonic::Code;
use tonic::transport::Endpoint;

use super::*;

/// A trust domain on the system clock: its key, and a WIT of WORKLOAD
/// for a fresh workload key.
struct Domain {
    domain_key: Arc<SigningKey>,
    key_pem: String,
    wit: String,
}

fn domain() -> Domain {
    let domain_pem = generate_pkcs8_pem(Algorithm::ES256).unwrap();
    let domain_key = Arc::new(SigningKey::from_pkcs8_pem(&domain_pem, None).unwrap());
    let ring = KeyRing::new(SigningKey::from_pkcs8_pem(&domain_pem, None).unwrap());
    let issuer = WitIssuer::new("example.org", ring.clone()).unwrap();
    let key_pem = generate_pkcs8_pem(Algorithm::EdDSA).unwrap().to_string();
    let key = SigningKey::from_pkcs8_pem(&key_pem, None).unwrap();
    let wit = ready(issuer.issue(&WORKLOAD.parse().unwrap(), &key.public_jwk())).unwrap();
    Domain {
        domain_key,
        key_pem,
        wit,
    }
}

/// B over gRPC on loopback: WITs of example.org only (`require_proof`),
/// proofs naming `http://<addr>`; bearer tokens of A besides.
async fn b(d: &Domain, a_jwks: &[u8]) -> SocketAddr {
    let fixed = |jwks: &[u8]| KeySource::fixed(KeySet::from_jwks(jwks, 65536).unwrap());
    let domain = json!({ "keys": [d.domain_key.public_jwk()] }).to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let verifier = Verifier::builder(B)
        .trust(A_ISS, fixed(a_jwks))
        .trust_workloads("example.org", fixed(domain.as_bytes()))
        .proof_target(format!("http://{addr}").parse().unwrap())
        .build()
        .unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(VerifyLayer::new(verifier).require_proof())
            .add_service(DemoServer::new(Demo))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

fn identity(d: &Domain) -> WorkloadIdentity {
    WorkloadIdentity::new(
        SigningKey::from_pkcs8_pem(&d.key_pem, None).unwrap(),
        &d.wit,
    )
    .unwrap()
}

#[tokio::test]
async fn a_proving_channel_calls_with_a_fresh_proof_each_time_and_only_its_origin() {
    let w = domain();
    let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let addr = b(&w, ring.state().jwks()).await;
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let proof_target = format!("http://{addr}");

    let channel = identity(&w).tonic_channel(&endpoint).unwrap();
    let mut client = DemoClient::new(channel.clone());
    for _ in 0..3 {
        let reply = client
            .who_am_i(WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.sub, WORKLOAD, "a new proof each call, none replayed");
        assert_eq!(reply.iss, "spiffe://example.org");
    }

    // A client that names another origin is refused before anything is sent.
    let elsewhere: http::Uri = "https://evil.example".parse().unwrap();
    let mut misdirected = DemoClient::with_origin(channel, elsewhere);
    let status = misdirected.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert!(status.message().contains("evil.example"), "{status:?}");

    // A bearer token alone: proof required (16). The WIT without its
    // proof: refused too.
    let mut plain = DemoClient::new(endpoint.connect_lazy());
    let status = plain.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut copied = tonic::Request::new(WhoAmIRequest {});
    copied
        .metadata_mut()
        .insert("workload-identity-token", w.wit.parse().unwrap());
    let status = plain.who_am_i(copied).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // With a bearer token as well: the sign layer outside, pinned to the
    // same origin, and the proof binds its token (`ath`).
    let signer = Signer::self_signed(A_ISS, ring)
        .unwrap()
        .audience(&proof_target, B)
        .build()
        .unwrap();
    let both = tower::ServiceBuilder::new()
        .layer(SignLayer::new(signer).origin(&proof_target).unwrap())
        .layer(
            ProofLayer::new(identity(&w))
                .pin_origin(&proof_target)
                .unwrap(),
        )
        .service(endpoint.connect_lazy());
    let reply = DemoClient::new(both)
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.sub, WORKLOAD);
}
