//! A WIMSE request (WIT, WPT and an `Authorization` value, one per line;
//! a fourth line is an `x-user-token` header the proof may bind) through
//! the workload verifier, and the workload identifier parser.
//! Properties: what is accepted passed the strict JWS reader twice, names
//! a workload of the trusted trust domain (its `sub`, re-parsed to the same
//! identifier), and was proved for this very target; an identifier that
//! parses displays as the bytes it came from.
#![no_main]

use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use svcauth_core::jws;
use svcauth_core::wimse::WorkloadId;
use svcauth_fuzz::{AUDIENCE, TRUST_DOMAIN, block_on, workload_verifier};
use svcauth_verify::{Proof, RequestTarget};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = text.parse::<WorkloadId>() {
        assert_eq!(id.to_string(), text);
        assert_eq!(
            format!("{}://{}{}", id.scheme(), id.trust_domain(), id.path()),
            text
        );
    }
    let mut lines = text.split('\n');
    let (Some(wit), Some(wpt)) = (lines.next(), lines.next()) else {
        return;
    };
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(name, value);
        }
    };
    put("workload-identity-token", wit);
    put("workload-proof-token", wpt);
    if let Some(authorization) = lines.next().filter(|l| !l.is_empty()) {
        put("authorization", authorization);
    }
    if let Some(user) = lines.next().filter(|l| !l.is_empty()) {
        put("x-user-token", user);
    }
    let uri = Uri::from_static("/whoami");
    let target = RequestTarget {
        method: &Method::GET,
        uri: &uri,
        headers: &headers,
    };
    if let Ok(claims) = block_on(workload_verifier().verify_workload(target)) {
        assert!(
            jws::parse(wit.trim(), 8 * 1024).is_ok(),
            "accepted a WIT the strict reader refuses"
        );
        assert!(
            jws::parse(wpt.trim(), 8 * 1024).is_ok(),
            "accepted a WPT the strict reader refuses"
        );
        assert_eq!(claims.proof(), Proof::WorkloadProofToken);
        let workload = claims.workload().expect("a workload");
        assert_eq!(workload.trust_domain(), TRUST_DOMAIN);
        assert_eq!(claims.sub().parse::<WorkloadId>().as_ref(), Ok(workload));
        let proof = jws::peek(wpt.trim()).expect("an accepted proof reads");
        let aud: serde_json::Value = serde_json::from_slice(&proof.1).expect("JSON claims");
        let expected = format!("{AUDIENCE}/whoami");
        assert!(
            aud["aud"] == expected
                || aud["aud"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == &expected))
        );
    }
});
