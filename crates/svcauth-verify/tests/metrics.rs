//! The verifier's outcomes reach the application's `metrics` recorder with
//! bounded labels: the trusted issuer on acceptance, the reason on
//! rejection, never a caller's `iss`, `sub`, `jti` or token.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use svcauth_core::{Algorithm, Clock, SystemClock};
use svcauth_jwks::{KeySet, KeySource};
use svcauth_verify::{MemoryRevocationStore, Verifier};

/// `name{labels}` → value, for every series the recorder holds.
fn series(recorder: &DebuggingRecorder) -> Vec<(String, DebugValue)> {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

fn count(series: &[(String, DebugValue)], name: &str) -> u64 {
    match series.iter().find(|(n, _)| n == name) {
        Some((_, DebugValue::Counter(n))) => *n,
        other => panic!("{name}: {other:?} in {series:#?}"),
    }
}

fn samples(series: &[(String, DebugValue)], name: &str) -> usize {
    match series.iter().find(|(n, _)| n == name) {
        Some((_, DebugValue::Histogram(values))) => values.len(),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn outcomes_reach_the_recorder_with_bounded_labels() {
    let key = new_key(Algorithm::EdDSA);
    let recorder = DebuggingRecorder::new();
    let revocations = Arc::new(MemoryRevocationStore::new(Arc::new(SystemClock)));
    // Handles are registered when the verifier is built.
    let verifier = metrics::with_local_recorder(&recorder, || {
        Verifier::builder(AUD)
            .trust(
                ISS_A,
                KeySource::fixed(
                    KeySet::from_jwks(jwks(&[&key]).to_string().as_bytes(), 65536).unwrap(),
                ),
            )
            .revocation_store(revocations.clone())
            .build()
            .unwrap()
    });
    let now = SystemClock.now_secs();
    let token = sign(&header_for(&key), &claims_at(now), &key);
    for _ in 0..3 {
        verifier.verify(&token).await.unwrap();
    }
    let mut untrusted = claims_at(now);
    untrusted["iss"] = "https://attacker.example/any-label-you-like".into();
    let stranger = sign(&header_for(&key), &untrusted, &key);
    assert!(verifier.verify(&stranger).await.is_err());
    assert!(verifier.verify("not.a.token").await.is_err());

    let s = series(&recorder);
    let accepted =
        format!("svcauth_verifications_total{{cache=miss,issuer={ISS_A},result=accepted}}");
    let hits = format!("svcauth_verifications_total{{cache=hit,issuer={ISS_A},result=accepted}}");
    assert_eq!(count(&s, &accepted), 1, "{s:#?}");
    assert_eq!(count(&s, &hits), 2);
    assert_eq!(
        count(
            &s,
            "svcauth_verifications_total{reason=untrusted_issuer,result=rejected}"
        ),
        1
    );
    assert_eq!(
        count(
            &s,
            "svcauth_verifications_total{reason=malformed,result=rejected}"
        ),
        1
    );
    // The first check consulted the revocation store; the cache hits did
    // not: the in-memory store keeps its deny-list here, and a hit
    // compares deny-list generations instead.
    assert_eq!(
        count(&s, "svcauth_revocation_checks_total{outcome=pass}"),
        1
    );
    assert_eq!(
        samples(&s, "svcauth_revocation_check_duration_seconds{}"),
        1
    );
    assert!(samples(&s, "svcauth_verification_duration_seconds{cache=miss}") >= 3);
    // No label carries what a caller wrote.
    for (name, _) in &s {
        assert!(!name.contains("attacker"), "{name}");
        assert!(!name.contains(&token[..20]), "{name}");
    }
    // The counters of `metrics()` agree.
    assert_eq!(verifier.metrics().accepted, 3);
}
