//! The `Authorization` header (RFC 6750 §2.1). Lines of the input are
//! header values. Properties: a token is found only in exactly one
//! `Bearer` header, is that header's credentials (spaces trimmed), and the
//! raw-bytes reader of the layer's fast path never finds a different one,
//! nor anything where the checked reader refuses, except bytes that are not
//! ASCII (which no verified token can equal).
#![no_main]

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(AUTHORIZATION, value);
        }
    }
    let found = svcauth_core::bearer_token(&headers);
    let raw = svcauth_core::bearer_token_bytes(&headers);
    match found {
        Ok(Some(token)) => {
            assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1);
            let value = headers[AUTHORIZATION]
                .to_str()
                .expect("a found token is text");
            let (scheme, credentials) = value.split_once(' ').expect("scheme and token");
            assert!(scheme.eq_ignore_ascii_case("bearer"));
            assert_eq!(credentials.trim_matches(' '), token);
            assert!(!token.is_empty());
            if let Some(raw) = raw {
                assert_eq!(raw, token.as_bytes(), "the two readers disagree");
            }
        }
        Ok(None) => assert!(
            raw.is_none(),
            "raw reader found a token where there is none"
        ),
        Err(_) => {
            if let Some(raw) = raw {
                // Only bytes no verified token can equal (they are ASCII),
                // from a single header.
                assert!(!raw.is_ascii(), "{raw:?}");
                assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1);
            }
        }
    }
});
