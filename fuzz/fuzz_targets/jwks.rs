//! JWKS documents (`KeySet::from_jwks`), as fetched from an issuer, and
//! SPIFFE bundles (`KeySet::from_spiffe_bundle`). Properties: a document is
//! refused or read, never a panic; the keys read publish (`to_jwks`) and
//! read back as the same keys; a bundle is refused whenever the document
//! is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svcauth_jwks::{KeySet, SvidKind};

fuzz_target!(|data: &[u8]| {
    let bundles = [SvidKind::Jwt, SvidKind::Wit]
        .map(|kind| KeySet::from_spiffe_bundle(data, 64 * 1024, kind));
    let Ok(set) = KeySet::from_jwks(data, 64 * 1024) else {
        assert!(
            bundles.iter().all(Result::is_err),
            "a bundle read from a refused document"
        );
        return;
    };
    let published = set.to_jwks().to_string();
    let again = KeySet::from_jwks(published.as_bytes(), 1 << 20).expect("our own JWKS reads");
    assert!(set.same_keys(&again), "keys change on a round trip");
    assert_eq!(set.len(), again.len());
    assert!(
        again.skipped().is_empty(),
        "we publish no key we would skip"
    );
});
