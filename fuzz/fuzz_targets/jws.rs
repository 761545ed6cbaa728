//! The compact JWS reader every token goes through (`svcauth_core::jws`).
//! Property: what parses re-encodes to exactly the bytes sent (only
//! canonical base64url is read, so no two spellings of a token exist), and
//! its header and payload are single JSON objects.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svcauth_core::{b64, jws};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(compact) = jws::parse(text, 16 * 1024) else {
        return;
    };
    let segments: Vec<&str> = text.split('.').collect();
    assert_eq!(segments.len(), 3);
    assert_eq!(
        compact.signing_input,
        format!("{}.{}", segments[0], segments[1])
    );
    assert_eq!(
        b64::encode(&compact.payload),
        segments[1],
        "payload re-encodes"
    );
    assert_eq!(
        b64::encode(&compact.signature),
        segments[2],
        "signature re-encodes"
    );
    let header = b64::decode(segments[0]).expect("header decoded once already");
    assert_eq!(b64::encode(&header), segments[0], "header re-encodes");
    jws::check_json_object(&compact.payload).expect("payload was checked");
    // peek never disagrees about the header's alg.
    let (peeked, payload) = jws::peek(text).expect("a parsed token peeks");
    assert_eq!(
        peeked.get("alg").and_then(|a| a.as_str()),
        Some(compact.header.alg.as_str())
    );
    assert_eq!(payload, compact.payload);
});
