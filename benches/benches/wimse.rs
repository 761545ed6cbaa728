//! WIMSE inbound: a request with a WIT (a cache hit, after the first) and a
//! fresh WPT through the verifying layer, beside its floor: one signature
//! check of the proof with a pre-parsed key plus the same bare router call.
//! Every request gets a new proof (made outside the timing), as in use.
#![allow(missing_docs, clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Uri};
use serde_json::json;
use std::sync::Arc;
use svcauth_core::Algorithm;
use svcauth_jwks::{KeyRing, KeySet, KeySource, SigningKey, VerifyingKey};
use svcauth_sign::wimse::{WitIssuer, WorkloadIdentity};

use svcauth_verify::{MemoryReplayStore, Verifier, VerifyLayer};
use tower::ServiceExt;

const B: &str = "https://b.internal";

fn wimse(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let ring = KeyRing::new(SigningKey::generate(Algorithm::ES256).unwrap());
        let issuer = WitIssuer::new("example.org", ring.clone()).unwrap();
        let key = SigningKey::generate(alg).unwrap();
        let public = VerifyingKey::from_jwk(
            serde_json::to_value(key.public_jwk())
                .unwrap()
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let wit = rt
            .block_on(issuer.issue(
                &"spiffe://example.org/a".parse().unwrap(),
                &key.public_jwk(),
            ))
            .unwrap();
        let identity = WorkloadIdentity::new(key, &wit).unwrap();
        let jwks = json!({ "keys": [ring.signer().public_jwk()] }).to_string();
        // Large enough for every proof of the run: a full store would
        // answer 503 and time the refusal instead.
        let replay = Arc::new(MemoryReplayStore::new(
            20_000_000,
            svcauth_core::system_clock(),
        ));
        let verifier = Verifier::builder(B)
            .replay_store(replay)
            .trust_workloads(
                "example.org",
                KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 65536).unwrap()),
            )
            .build()
            .unwrap();
        let bare: Router = Router::new().route("/", get(|| async { "ok" }));
        let layered = bare.clone().layer(VerifyLayer::new(verifier));
        let uri: Uri = format!("{B}/").parse().unwrap();
        let fresh = || {
            let (_, proof) = identity.proof(&uri, &http::HeaderMap::new(), &[]).unwrap();
            Request::get("/")
                .header("workload-identity-token", &wit)
                .header("workload-proof-token", proof)
                .body(Body::empty())
                .unwrap()
        };
        // The WIT's verification is cached from here on.
        let first = rt.block_on(layered.clone().oneshot(fresh())).unwrap();
        assert_eq!(first.status(), 200);

        let mut group = c.benchmark_group(format!("wimse/{alg}"));
        group.bench_function("raw_proof_signature_plus_bare_router", |b| {
            b.iter_batched(
                fresh,
                |request| {
                    let proof = request.headers()["workload-proof-token"].to_str().unwrap();
                    let (input, signature) = proof.rsplit_once('.').unwrap();
                    let signature = svcauth_core::b64::decode(signature).unwrap();
                    public.verify(alg, input.as_bytes(), &signature).unwrap();
                    rt.block_on(bare.clone().oneshot(request)).unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function("wit_wpt_layer_wit_cache_hit", |b| {
            b.iter_batched(
                fresh,
                |request| {
                    let response = rt.block_on(layered.clone().oneshot(request)).unwrap();
                    assert_eq!(response.status(), 200);
                    response
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, wimse);
criterion_main!(benches);
