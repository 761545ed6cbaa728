//! Transaction Tokens. A first line that is not empty is a `Txn-Token`
//! header value, through the Txn-Token verifier and the service-token
//! verifier; the rest, after the first newline, is a Txn-Token Request form
//! (`application/x-www-form-urlencoded`) from the trusted workload, through
//! the Transaction Token Service.
//! Properties: an accepted Txn-Token passed the strict JWS reader, is of
//! type `txntoken+jwt`, for the trust domain, from the TTS, unexpired, with
//! every required claim; it is never accepted as a service token; a token
//! the service issues verifies, keeps the replaced token's `txn` and `sub`,
//! and carries only scopes the request was allowed.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use svcauth_core::jws;
use svcauth_fuzz::{
    ISSUER, NOW, TRUST_DOMAIN, TTS, TXN_SCOPES, block_on, txn_service, txn_verifier,
};
use svcauth_gateway::txn::Requester;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (header, form) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(value) = HeaderValue::from_str(header) {
        if let Ok(txn) = block_on(txn_verifier().verify_txn_token(&value)) {
            assert!(
                jws::parse(header, 8 * 1024).is_ok(),
                "accepted what the strict reader refuses"
            );
            let claims = txn.claims();
            assert!(claims.aud.contains(TRUST_DOMAIN));
            assert_eq!(claims.iss.as_deref(), Some(TTS));
            assert!(claims.exp + 30 >= NOW && claims.check().is_ok());
            assert_eq!(
                txn.token().header_value(),
                &value,
                "passed on byte for byte"
            );
            assert!(
                block_on(txn_verifier().verify(header)).is_err(),
                "a Txn-Token passed as a service token"
            );
        }
    }
    if form.is_empty() {
        return;
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    let requester = Requester::authenticated(ISSUER);
    let Ok(response) = block_on(txn_service().exchange(&requester, &pairs)) else {
        return;
    };
    let issued = HeaderValue::from_str(&response.access_token).expect("a token is a header value");
    let txn = block_on(txn_verifier().verify_txn_token(&issued)).expect("an issued token verifies");
    let subject = pairs
        .iter()
        .find(|(n, _)| n == "subject_token")
        .map(|(_, v)| v.as_str());
    let replaced = subject
        .and_then(|s| HeaderValue::from_str(s).ok())
        .and_then(|v| block_on(txn_verifier().verify_txn_token(&v)).ok());
    match replaced {
        Some(old)
            if pairs
                .iter()
                .any(|(n, v)| n == "subject_token_type" && v.ends_with(":txn_token")) =>
        {
            assert_eq!((txn.txn(), txn.sub()), (old.txn(), old.sub()));
            assert!(
                txn.scopes().all(|s| old.scopes().any(|o| o == s)),
                "a replacement widened scope"
            );
            assert!(txn.expires_at() <= old.expires_at());
        }
        _ => assert!(
            txn.scopes().all(|s| TXN_SCOPES.contains(&s)),
            "scope beyond the requester's"
        ),
    }
});
