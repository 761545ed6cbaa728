//! The verifier, end to end, with the issuer's real keys at a fixed time.
//! Properties: it never accepts what the strict JWS reader refuses; what it
//! accepts names the trusted issuer (or, for a JWT-SVID, a workload of the
//! trusted trust domain) and this audience, and is then answered from the
//! cache with the same claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svcauth_core::jws;
use svcauth_fuzz::{AUDIENCE, ISSUER, TRUST_DOMAIN, block_on, verifier};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let verifier = verifier();
    let strict = jws::parse(token, 8 * 1024);
    match block_on(verifier.verify(token)) {
        Ok(claims) => {
            assert!(strict.is_ok(), "accepted a token the strict reader refuses");
            let domain = format!("spiffe://{TRUST_DOMAIN}");
            if claims.iss() == domain {
                assert!(
                    claims.sub().starts_with(&format!("{domain}/")),
                    "a JWT-SVID of the domain"
                );
            } else {
                assert_eq!(claims.iss(), ISSUER);
            }
            assert!(claims.aud().iter().any(|a| a == AUDIENCE));
            let cached = verifier.cached(token).expect("an accepted token is cached");
            assert_eq!(cached.raw_json(), claims.raw_json());
        }
        Err(_) => assert!(
            verifier.cached(token).is_none(),
            "a refused token is never cached"
        ),
    }
});
