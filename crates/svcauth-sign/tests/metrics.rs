//! The signer's work reaches the application's `metrics` recorder: mints by
//! audience and source with their latency, and cache hits. Its own test
//! binary, because the recorder is process-wide.
#![allow(clippy::unwrap_used)]

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use svcauth_core::Algorithm;
use svcauth_jwks::{KeyRing, SigningKey};
use svcauth_sign::Signer;

#[tokio::test]
async fn mints_and_cache_hits_reach_the_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).unwrap();
    let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let signer = Signer::self_signed("https://a.internal", ring)
        .unwrap()
        .build()
        .unwrap();
    for _ in 0..5 {
        signer.token("https://b.internal").await.unwrap();
    }
    signer.token("https://c.internal").await.unwrap();
    let mut minted = std::collections::BTreeMap::new();
    let (mut hits, mut timed) = (0, 0);
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key().clone();
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        match (key.name(), value) {
            ("svcauth_tokens_minted_total", DebugValue::Counter(n)) => {
                minted.insert(labels.join(","), n);
            }
            ("svcauth_token_cache_hits_total", DebugValue::Counter(n)) => hits = n,
            ("svcauth_mint_duration_seconds", DebugValue::Histogram(v)) => {
                assert_eq!(labels, ["source=self_signed"]);
                timed = v.len();
            }
            _ => {}
        }
    }
    assert_eq!(
        minted["audience=https://b.internal,source=self_signed"], 1,
        "{minted:?}"
    );
    assert_eq!(
        minted["audience=https://c.internal,source=self_signed"], 1,
        "{minted:?}"
    );
    assert_eq!(hits, 4);
    assert_eq!(timed, 2);
    assert_eq!(signer.metrics().mints, 2);
}
