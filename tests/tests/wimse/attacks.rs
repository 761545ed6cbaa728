//! Named hostile cases: each refused for its own reason, and nothing harmed.

#![allow(clippy::unwrap_used)]

use super::*;

/// A named case: the headers sent, the reason expected.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);

#[tokio::test]
async fn hostile_workload_credentials_are_refused_each_for_its_reason() {
    let w = world();
    let layer = VerifyLayer::new(w.verifier.clone());
    let wit = w.wit.clone();
    let good = |jti: &str| mint(&w.key, wpt_header(), wpt_claims(&wit, jti));
    let other_key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let es_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let with = |jti: &str, edit: &dyn Fn(&mut Value)| {
        let mut claims = wpt_claims(&wit, jti);
        edit(&mut claims);
        mint(&w.key, wpt_header(), claims)
    };
    let wit_with = |edit: &dyn Fn(&mut Value, &mut Value)| {
        let (mut header, mut claims) = (wit_header(&w), wit_claims(&w.key));
        edit(&mut header, &mut claims);
        mint(&w.domain_key, header, claims)
    };
    let other_domain = SigningKey::generate(Algorithm::ES256).unwrap();
    let bearer = |token: &str| ("authorization", format!("Bearer {token}"));

    // A replayed proof: first use admitted, second refused.
    let replayed = good("replayed");
    assert_eq!(
        send(&w, layer.clone(), &pair(&wit, &replayed)).await.0,
        StatusCode::OK
    );

    let cases: Vec<Case<'_>> = vec![
        (
            "wpt signed by another key",
            pair(&wit, &mint(&other_key, wpt_header(), wpt_claims(&wit, "1"))),
            "proof_invalid",
        ),
        (
            "wpt alg differs from cnf.jwk.alg",
            pair(
                &wit,
                &mint(
                    &es_key,
                    json!({"alg":"ES256","typ":"wpt+jwt"}),
                    wpt_claims(&wit, "2"),
                ),
            ),
            "proof_invalid",
        ),
        (
            "wpt alg written in another case",
            pair(
                &wit,
                &mint(
                    &w.key,
                    json!({"alg":"eddsa","typ":"wpt+jwt"}),
                    wpt_claims(&wit, "3"),
                ),
            ),
            "proof_invalid",
        ),
        (
            "wpt typ JWT",
            pair(
                &wit,
                &mint(
                    &w.key,
                    json!({"alg":"EdDSA","typ":"JWT"}),
                    wpt_claims(&wit, "4"),
                ),
            ),
            "proof_invalid",
        ),
        (
            "wpt without typ",
            pair(
                &wit,
                &mint(&w.key, json!({"alg":"EdDSA"}), wpt_claims(&wit, "5")),
            ),
            "proof_invalid",
        ),
        (
            "wpt alg none",
            pair(
                &wit,
                &format!(
                    "{}.{}.",
                    b64::encode(r#"{"alg":"none","typ":"wpt+jwt"}"#),
                    b64::encode(wpt_claims(&wit, "6").to_string())
                ),
            ),
            "proof_invalid",
        ),
        (
            "wpt payload tampered",
            pair(&wit, &good("7").replacen(".ey", ".eX", 1)),
            "proof_invalid",
        ),
        (
            "wpt without jti",
            pair(
                &wit,
                &with("8", &|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
            "proof_invalid",
        ),
        (
            "wpt repeating a member",
            pair(&wit, &{
                let claims = format!(
                    r#"{{"aud":"{B}/whoami","exp":{},"jti":"9","jti":"9b","wth":"{}"}}"#,
                    NOW + 60,
                    token_hash(&wit)
                );
                jws::encode(
                    &b64::encode(wpt_header().to_string()),
                    claims.as_bytes(),
                    |i| w.key.sign(i),
                )
                .unwrap()
            }),
            "proof_invalid",
        ),
        (
            "wrong wth: the proof of another WIT",
            pair(
                &wit,
                &with("10", &|c| c["wth"] = json!(token_hash("another.wit.token"))),
            ),
            "proof_mismatch",
        ),
        (
            "aud naming another authority",
            pair(
                &wit,
                &with("11", &|c| c["aud"] = json!("https://c.internal/whoami")),
            ),
            "proof_mismatch",
        ),
        (
            "aud naming another path",
            pair(
                &wit,
                &with("12", &|c| c["aud"] = json!(format!("{B}/admin"))),
            ),
            "proof_mismatch",
        ),
        (
            "aud with the query",
            pair(
                &wit,
                &with("13", &|c| c["aud"] = json!(format!("{B}/whoami?x=1"))),
            ),
            "proof_mismatch",
        ),
        (
            "aud from a spoofed Host header",
            {
                let mut h = pair(
                    &wit,
                    &with("14", &|c| c["aud"] = json!("https://evil.example/whoami")),
                );
                h.push(("host", "evil.example".into()));
                h
            },
            "proof_mismatch",
        ),
        (
            "missing ath with an access token sent",
            {
                let mut h = pair(&wit, &good("15"));
                h.push(bearer("opaque-access-token"));
                h
            },
            "proof_mismatch",
        ),
        (
            "ath of another access token",
            {
                let mut h = pair(
                    &wit,
                    &with("16", &|c| c["ath"] = json!(token_hash("other"))),
                );
                h.push(bearer("opaque-access-token"));
                h
            },
            "proof_mismatch",
        ),
        (
            "ath with no access token sent",
            pair(
                &wit,
                &with("17", &|c| {
                    c["ath"] = json!(token_hash("opaque-access-token"))
                }),
            ),
            "proof_mismatch",
        ),
        (
            "tth with no Txn-Token, or another",
            {
                let mut h = pair(
                    &wit,
                    &with("18", &|c| c["tth"] = json!(token_hash("txn-a"))),
                );
                h.push(("txn-token", "txn-b".into()));
                h
            },
            "proof_mismatch",
        ),
        (
            "Txn-Token not covered by tth",
            {
                let mut h = pair(&wit, &good("19"));
                h.push(("txn-token", "txn-a".into()));
                h
            },
            "proof_mismatch",
        ),
        (
            "unknown oth entry",
            pair(
                &wit,
                &with("20", &|c| {
                    c["oth"] = json!({ "x-unknown": token_hash("v") })
                }),
            ),
            "proof_invalid",
        ),
        (
            "configured other header not covered by oth",
            {
                let mut h = pair(&wit, &good("21"));
                h.push(("x-user-token", "u".into()));
                h
            },
            "proof_mismatch",
        ),
        (
            "oth hash of another value",
            {
                let mut h = pair(
                    &wit,
                    &with("22", &|c| {
                        c["oth"] = json!({ "x-user-token": token_hash("v1") })
                    }),
                );
                h.push(("x-user-token", "v2".into()));
                h
            },
            "proof_mismatch",
        ),
        ("replayed jti", pair(&wit, &replayed), "proof_replayed"),
        (
            "expired wpt",
            pair(
                &wit,
                &with("23", &|c| {
                    c["iat"] = json!(NOW - 600);
                    c["exp"] = json!(NOW - 120);
                }),
            ),
            "proof_expired",
        ),
        (
            "wpt exp unreasonably far ahead",
            pair(&wit, &with("24", &|c| c["exp"] = json!(NOW + 86_400))),
            "proof_expired",
        ),
        (
            "two Workload-Proof-Token headers",
            {
                let mut h = pair(&wit, &good("25"));
                h.push(("workload-proof-token", good("26")));
                h
            },
            "proof_invalid",
        ),
        (
            "two Workload-Identity-Token headers",
            {
                let mut h = pair(&wit, &good("27"));
                h.push(("workload-identity-token", wit.clone()));
                h
            },
            "wit_invalid",
        ),
        (
            "WIT without a proof",
            vec![("workload-identity-token", wit.clone())],
            "proof_invalid",
        ),
        (
            "proof without a WIT",
            vec![("workload-proof-token", good("28"))],
            "wit_invalid",
        ),
        (
            "WIT sub outside the trusted trust domain",
            {
                let other = wit_with(&|_, c| c["sub"] = json!("spiffe://other.org/ns/prod/a"));
                pair(
                    &other,
                    &mint(&w.key, wpt_header(), wpt_claims(&other, "29")),
                )
            },
            "wit_untrusted",
        ),
        (
            "WIT signed by another trust domain's key",
            {
                let forged = mint(
                    &other_domain,
                    json!({"alg":"ES256","kid":w.domain_key.kid(),"typ":"wit+jwt"}),
                    wit_claims(&w.key),
                );
                pair(
                    &forged,
                    &mint(&w.key, wpt_header(), wpt_claims(&forged, "30")),
                )
            },
            "wit_invalid",
        ),
        (
            "WIT typ JWT",
            {
                let t = wit_with(&|h, _| h["typ"] = json!("JWT"));
                pair(&t, &mint(&w.key, wpt_header(), wpt_claims(&t, "31")))
            },
            "wit_invalid",
        ),
        (
            "WIT expired",
            {
                let t = wit_with(&|_, c| {
                    c["iat"] = json!(NOW - 7200);
                    c["exp"] = json!(NOW - 3600);
                });
                pair(&t, &mint(&w.key, wpt_header(), wpt_claims(&t, "32")))
            },
            "wit_expired",
        ),
        (
            "WIT living a week",
            {
                let t = wit_with(&|_, c| c["exp"] = json!(NOW + 7 * 86_400));
                pair(&t, &mint(&w.key, wpt_header(), wpt_claims(&t, "33")))
            },
            "wit_expired",
        ),
        (
            "WIT cnf.jwk without alg",
            {
                let t = wit_with(&|_, c| {
                    c["cnf"]["jwk"].as_object_mut().unwrap().remove("alg");
                });
                pair(&t, &mint(&w.key, wpt_header(), wpt_claims(&t, "34")))
            },
            "wit_invalid",
        ),
        (
            "WIT cnf.jwk with private key material",
            {
                let t = wit_with(&|_, c| c["cnf"]["jwk"]["d"] = json!("AAAA"));
                pair(&t, &mint(&w.key, wpt_header(), wpt_claims(&t, "35")))
            },
            "wit_invalid",
        ),
        (
            "WIT cnf.jwk symmetric",
            {
                let t = wit_with(&|_, c| {
                    c["cnf"]["jwk"] = json!({"kty":"oct","k":"c2VjcmV0c2VjcmV0","alg":"HS256"})
                });
                pair(&t, &mint(&w.key, wpt_header(), wpt_claims(&t, "36")))
            },
            "wit_invalid",
        ),
        (
            "WIT sub not a workload identifier",
            {
                let t = wit_with(&|_, c| c["sub"] = json!("https://example.org/a"));
                pair(&t, &mint(&w.key, wpt_header(), wpt_claims(&t, "37")))
            },
            "wit_invalid",
        ),
        (
            "WIT sub with a dot segment",
            {
                let t = wit_with(&|_, c| c["sub"] = json!("spiffe://example.org/ns/../admin"));
                pair(&t, &mint(&w.key, wpt_header(), wpt_claims(&t, "38")))
            },
            "wit_invalid",
        ),
    ];
    assert!(cases.len() >= 25);
    for (name, headers, reason) in cases {
        let (status, body) = send(&w, layer.clone(), &headers).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(reason)),
            "{name}: {body}"
        );
    }
    // Refused requests harmed nothing: the good pair still works.
    assert_eq!(
        send(&w, layer.clone(), &pair(&wit, &good("after"))).await.0,
        StatusCode::OK
    );
    let _ = (&w.issuer, &w.clock);
}

#[tokio::test]
async fn a_wit_is_not_a_bearer_token() {
    let w = world();
    let layer = VerifyLayer::new(w.verifier.clone());
    // A WIT copied into Authorization: refused as a bearer token (typ), 401.
    let (status, body) = send(
        &w,
        layer.clone(),
        &[("authorization", format!("Bearer {}", w.wit))],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token")),
        "{body}"
    );
    // A WIT verified once (cached) still does not pass as a bearer token.
    let wpt = mint(&w.key, wpt_header(), wpt_claims(&w.wit, "c1"));
    assert_eq!(
        send(&w, layer.clone(), &pair(&w.wit, &wpt)).await.0,
        StatusCode::OK
    );
    let (status, _) = send(&w, layer, &[("authorization", format!("Bearer {}", w.wit))]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let _ = Duration::ZERO;
}
