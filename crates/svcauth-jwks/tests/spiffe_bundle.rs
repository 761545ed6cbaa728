//! SPIFFE trust bundles as a key source: from a bundle endpoint on loopback
//! and from a watched file.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use svcauth_core::Algorithm;
use svcauth_jwks::{FetchError, JwksError, KeyLookup, KeySource, SigningKey, SvidKind};
use svcauth_tests::JsonServer;

fn jwk(key: &SigningKey, key_use: &str) -> Value {
    let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
    jwk["use"] = key_use.into();
    jwk
}

fn bundle(keys: &[Value], sequence: u64) -> Value {
    json!({ "keys": keys, "spiffe_sequence": sequence, "spiffe_refresh_hint": 3600 })
}

fn found(source: &KeySource, key: &SigningKey) -> bool {
    matches!(source.lookup(Some(key.kid())), KeyLookup::Found(_))
}

#[tokio::test]
async fn a_bundle_endpoint_gives_one_kind_of_keys_and_never_goes_back() {
    let jwt = SigningKey::generate(Algorithm::ES256).unwrap();
    let wit = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let x509 = SigningKey::generate(Algorithm::ES256).unwrap();
    let server = JsonServer::start(bundle(
        &[
            jwk(&jwt, "jwt-svid"),
            jwk(&wit, "wit-svid"),
            jwk(&x509, "x509-svid"),
        ],
        5,
    ))
    .await;
    let build = |kind| {
        KeySource::spiffe_bundle(&server.url(), kind)
            .unwrap()
            .cooldown(Duration::ZERO)
            .background_refresh(false)
            .build()
            .unwrap()
    };
    let (jwts, wits) = (build(SvidKind::Jwt), build(SvidKind::Wit));
    jwts.refresh().await.unwrap();
    wits.refresh().await.unwrap();
    assert!(found(&jwts, &jwt) && !found(&jwts, &wit) && !found(&jwts, &x509));
    assert!(found(&wits, &wit) && !found(&wits, &jwt));
    let stats = jwts.stats();
    assert_eq!(
        (stats.spiffe_sequence, stats.ttl_secs),
        (Some(5), Some(3600))
    );

    // An older bundle (a replay, a stale cache) holding a withdrawn key is
    // refused; the set in use stays.
    let withdrawn = SigningKey::generate(Algorithm::ES256).unwrap();
    server.set(bundle(&[jwk(&withdrawn, "jwt-svid")], 4));
    let error = jwts.refresh().await.unwrap_err();
    assert!(
        matches!(
            error,
            FetchError::Jwks {
                error: JwksError::SequenceRegressed {
                    current: 5,
                    received: 4
                },
                ..
            }
        ),
        "{error}"
    );
    assert!(found(&jwts, &jwt) && !found(&jwts, &withdrawn));

    // A newer one is taken; a key it no longer lists stops resolving.
    let next = SigningKey::generate(Algorithm::ES384).unwrap();
    let generation = jwts.generation();
    server.set(bundle(&[jwk(&next, "jwt-svid")], 6));
    jwts.refresh().await.unwrap();
    assert!(found(&jwts, &next) && !found(&jwts, &jwt));
    assert!(jwts.generation() > generation);

    // Same keys under a new sequence: no new generation (the verification
    // cache stays), but the new sequence is what the next bundle must beat.
    let generation = jwts.generation();
    server.set(bundle(&[jwk(&next, "jwt-svid")], 9));
    jwts.refresh().await.unwrap();
    assert_eq!(
        (jwts.generation(), jwts.stats().spiffe_sequence),
        (generation, Some(9))
    );
    server.set(bundle(&[jwk(&next, "jwt-svid")], 8));
    assert!(jwts.refresh().await.is_err());

    // Only x509 keys left: the trust domain no longer signs JWT-SVIDs, and
    // none is accepted (not the last good set kept as after an error).
    server.set(bundle(&[jwk(&x509, "x509-svid")], 10));
    jwts.refresh().await.unwrap();
    assert!(jwts.is_loaded() && jwts.keys().is_empty());
    assert!(matches!(
        jwts.lookup(Some(next.kid())),
        KeyLookup::UnknownKid
    ));
}

#[tokio::test]
async fn a_bundle_endpoint_must_be_https_or_loopback() {
    assert!(
        KeySource::spiffe_bundle("http://bundles.example/td", SvidKind::Jwt)
            .unwrap()
            .build()
            .is_err()
    );
}

#[tokio::test]
async fn a_watched_bundle_file_is_followed_and_kept_when_it_breaks() {
    let dir = std::env::temp_dir().join(format!("svcauth-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bundle.json");
    let first = SigningKey::generate(Algorithm::ES256).unwrap();
    std::fs::write(&path, bundle(&[jwk(&first, "jwt-svid")], 1).to_string()).unwrap();

    let source = KeySource::spiffe_bundle_file(&path, SvidKind::Jwt)
        .default_ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    assert!(found(&source, &first));
    assert!(source.stats().origin.starts_with("file:"));

    // Rewritten the way agents and ConfigMaps do it: a new file renamed
    // over the old one. The background watcher picks it up by itself.
    let second = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let staged = dir.join("bundle.json.tmp");
    std::fs::write(&staged, bundle(&[jwk(&second, "jwt-svid")], 2).to_string()).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    let mut waited = 0;
    while !found(&source, &second) {
        assert!(
            waited < 200,
            "the rewritten bundle was not picked up in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert!(!found(&source, &first));

    // Unchanged bytes are not parsed again: the read counts as not modified.
    let before = source.stats().not_modified;
    source.refresh().await.unwrap();
    assert_eq!(source.stats().not_modified, before + 1);

    // Broken, then gone: the last good bundle stays in use.
    std::fs::write(&path, b"{ not json").unwrap();
    assert!(source.refresh().await.is_err());
    std::fs::remove_file(&path).unwrap();
    let error = source.refresh().await.unwrap_err();
    assert!(matches!(error, FetchError::File { .. }), "{error}");
    assert!(found(&source, &second));

    // A directory or an oversized file is refused without being read whole.
    assert!(
        KeySource::spiffe_bundle_file(&dir, SvidKind::Jwt)
            .build()
            .unwrap()
            .refresh()
            .await
            .is_err()
    );
    std::fs::write(&path, vec![b' '; 100_000]).unwrap();
    let error = source.refresh().await.unwrap_err();
    assert!(matches!(error, FetchError::TooLarge { .. }), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}
