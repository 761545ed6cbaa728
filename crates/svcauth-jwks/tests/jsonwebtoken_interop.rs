//! svcauth's keys against an independent implementation: jsonwebtoken (on the
//! same aws-lc-rs backend). Signatures made by either verify with the other,
//! for every algorithm, through JWKs and PEMs exchanged as users would.
#![allow(clippy::unwrap_used)]

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode, jwk};
use svcauth_core::{Algorithm, b64};
use svcauth_jwks::{KeySet, SigningKey, generate_pkcs8_pem};

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    alg.as_str().parse().unwrap()
}

fn claims() -> serde_json::Value {
    serde_json::json!({ "sub": "svc-a", "aud": "svc-b", "exp": 4_000_000_000u64 })
}

#[test]
fn svcauth_signatures_verify_with_jsonwebtoken_via_the_published_jwk() {
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg).unwrap();
        let header = serde_json::json!({ "alg": alg.as_str(), "typ": "JWT", "kid": key.kid() });
        let input = format!(
            "{}.{}",
            b64::encode(header.to_string()),
            b64::encode(claims().to_string())
        );
        let token = format!(
            "{input}.{}",
            b64::encode(key.sign(input.as_bytes()).unwrap())
        );

        let jwk: jwk::Jwk =
            serde_json::from_value(serde_json::to_value(key.public_jwk()).unwrap()).unwrap();
        let mut validation = Validation::new(jwt_alg(alg));
        validation.set_audience(&["svc-b"]);
        let decoded =
            decode::<serde_json::Value>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation);
        assert!(decoded.is_ok(), "{alg}: {decoded:?}");
        // jsonwebtoken computes the same RFC 7638 thumbprint.
        assert_eq!(
            jwk.thumbprint(jwk::ThumbprintHash::SHA256).unwrap(),
            key.kid(),
            "{alg}"
        );
    }
}

#[test]
fn jsonwebtoken_signatures_verify_with_svcauth_keys() {
    for alg in Algorithm::ALL {
        let pem = generate_pkcs8_pem(alg).unwrap();
        let encoding = match alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .unwrap();
        let token = encode(&Header::new(jwt_alg(alg)), &claims(), &encoding).unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();

        let public = SigningKey::from_pkcs8_pem(&pem, Some(alg))
            .unwrap()
            .public_jwk();
        let set = KeySet::from_jwks(
            serde_json::json!({ "keys": [public] })
                .to_string()
                .as_bytes(),
            65536,
        )
        .unwrap();
        let key = set.get(None).unwrap();
        assert_eq!(
            key.verify(alg, input.as_bytes(), &b64::decode(signature).unwrap()),
            Ok(()),
            "{alg}"
        );
    }
}
