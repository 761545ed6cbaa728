//! Static key sources: PEM public keys, a JWKS file, an environment variable.
#![allow(clippy::unwrap_used)]

use svcauth_core::Algorithm;
use svcauth_jwks::{KeyLookup, KeySource, SigningKey};

fn verifies(source: &KeySource, key: &SigningKey, kid: Option<&str>) -> bool {
    let signature = key.sign(b"input").unwrap();
    match source.lookup(kid) {
        KeyLookup::Found(found) => found.verify(key.algorithm(), b"input", &signature).is_ok(),
        _ => false,
    }
}

#[test]
fn pem_public_keys_of_every_family_verify_with_thumbprint_kids() {
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::PS256,
    ] {
        let key = SigningKey::generate(alg).unwrap();
        // aws-lc-rs writes the SubjectPublicKeyInfo; svcauth parses it back.
        let pem = key.public_key_pem().unwrap();
        let source = KeySource::from_public_pems([(pem.as_str(), None, Some(alg))]).unwrap();
        assert!(verifies(&source, &key, Some(key.kid())), "{alg}");
        assert!(source.stats().loaded);
    }
}

#[test]
fn pem_keys_with_explicit_kids_and_an_rsa_default_of_rs256() {
    let a = SigningKey::generate(Algorithm::RS256).unwrap();
    let b = SigningKey::generate(Algorithm::ES256).unwrap();
    let (pa, pb) = (a.public_key_pem().unwrap(), b.public_key_pem().unwrap());
    let source = KeySource::from_public_pems([
        (pa.as_str(), Some("a-v1"), None),
        (pb.as_str(), Some("b-v1"), None),
    ])
    .unwrap();
    assert!(verifies(&source, &a, Some("a-v1")));
    assert!(verifies(&source, &b, Some("b-v1")));
    assert!(
        !verifies(&source, &b, Some("a-v1")),
        "b's signature under a's kid"
    );
    assert!(!verifies(&source, &a, None), "two keys: a kid is needed");
    let private = svcauth_jwks::generate_pkcs8_pem(Algorithm::EdDSA).unwrap();
    assert!(KeySource::from_public_pems([(private.as_str(), None, None)]).is_err());
}

#[test]
fn jwks_file_is_read_with_bad_keys_skipped() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let doc = serde_json::json!({ "keys": [key.public_jwk(), {"kty":"oct","kid":"x","k":"AAAA"}] });
    let path = std::env::temp_dir().join(format!("svcauth-jwks-{}.json", std::process::id()));
    std::fs::write(&path, doc.to_string()).unwrap();
    let source = KeySource::from_jwks_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(verifies(&source, &key, Some(key.kid())));
    assert_eq!(source.stats().skipped.len(), 1);
    assert!(KeySource::from_jwks_file("/nonexistent/jwks.json").is_err());
}

/// Environment variables are process-wide, so this runs in a child process
/// of this test binary with the variables set.
#[test]
fn environment_variable_holds_a_jwks_or_a_pem() {
    const CHILD: &str = "SVCAUTH_TEST_ENV_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let jwks = KeySource::from_env("SVCAUTH_TEST_JWKS").unwrap();
        let pem = KeySource::from_env("SVCAUTH_TEST_PEM").unwrap();
        assert_eq!(jwks.keys().len(), 1);
        assert_eq!(
            pem.keys().kids(),
            jwks.keys().kids(),
            "a PEM key's kid is its thumbprint"
        );
        assert!(KeySource::from_env("SVCAUTH_TEST_UNSET").is_err());
        return;
    }
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "environment_variable_holds_a_jwks_or_a_pem",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env(
            "SVCAUTH_TEST_JWKS",
            serde_json::json!({ "keys": [key.public_jwk()] }).to_string(),
        )
        .env("SVCAUTH_TEST_PEM", key.public_key_pem().unwrap())
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stdout)
    );
}
