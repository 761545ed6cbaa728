//! OpenID discovery documents. Properties: a `jwks_uri` is only ever
//! taken from a document naming exactly the configured issuer, and is
//! https on the discovery document's own origin (or http to loopback).
#![no_main]

use libfuzzer_sys::fuzz_target;
use svcauth_fuzz::ISSUER;

fuzz_target!(|data: &[u8]| {
    let discovery =
        url::Url::parse("https://a.internal/.well-known/openid-configuration").expect("static");
    let Ok(jwks_uri) = svcauth_jwks::fuzzing::discovery(data, ISSUER, &discovery, false) else {
        return;
    };
    let doc: serde_json::Value = serde_json::from_slice(data).expect("only JSON is read");
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(jwks_uri.scheme(), "https");
    assert_eq!(jwks_uri.origin(), discovery.origin());
});
