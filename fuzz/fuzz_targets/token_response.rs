//! Token endpoint answers (RFC 6749 §5.1) from an STS. Properties: the
//! token taken is the `access_token` sent, it never expires before it was
//! received, and no answer naming another token type is taken.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svcauth_fuzz::NOW;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = svcauth_sign::fuzzing::token_response(data, NOW) else {
        return;
    };
    let doc: serde_json::Value = serde_json::from_slice(data).expect("only JSON is read");
    assert_eq!(doc["access_token"].as_str(), Some(token.as_str()));
    assert!(token.expires_at() >= NOW);
    if let Some(kind) = doc.get("token_type").and_then(|t| t.as_str()) {
        assert!(
            kind.eq_ignore_ascii_case("bearer") || kind == "N_A",
            "took token_type {kind}"
        );
    }
});
