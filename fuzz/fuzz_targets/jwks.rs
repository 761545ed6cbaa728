//! JWKS documents (`KeySet::from_jwks`), as fetched from an issuer.
//! Properties: a document is refused or read, never a panic; the keys read
//! publish (`to_jwks`) and read back as the same keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svcauth_jwks::KeySet;

fuzz_target!(|data: &[u8]| {
    let Ok(set) = KeySet::from_jwks(data, 64 * 1024) else {
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
