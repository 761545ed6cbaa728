//! Introspection answers at the gateway: plain JSON (RFC 7662) and signed
//! (RFC 9701). The first byte chooses: even, JSON read as such; odd, a JWT
//! verified against the issuer's keys. Properties: only an `active: true`
//! answer is used, and a signed one only when it verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svcauth_fuzz::{ISSUER, NOW, block_on, key_source};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let signed = choice % 2 == 1;
    let (content_type, jwt) = if signed {
        (
            "application/token-introspection+jwt",
            Some((ISSUER.to_owned(), key_source())),
        )
    } else {
        ("application/json", None)
    };
    let answer = block_on(svcauth_gateway::fuzzing::introspection(
        content_type,
        body,
        jwt,
        "gateway",
        None,
        NOW,
    ));
    let Ok(claims) = answer else { return };
    assert_eq!(claims.get("active"), Some(&serde_json::Value::Bool(true)));
    if signed {
        let token = std::str::from_utf8(body).expect("a JWT is text").trim();
        svcauth_core::jws::parse(token, 1 << 20).expect("only a strict JWS is verified");
    }
});
