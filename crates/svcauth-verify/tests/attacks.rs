//! The attack suite: hostile tokens and requests through the real
//! `VerifyLayer` in an axum `Router`, with issuers' keys fetched from real
//! JWKS servers on loopback. Every case asserts the status, the
//! `WWW-Authenticate` challenge and the reason, and after every case a valid
//! request must still succeed.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{any, get};
use common::*;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use svcauth_core::{Algorithm, Clock, ManualClock, RequestBinding, SystemClock, b64};
use svcauth_jwks::{KeySource, SigningKey, generate_pkcs8_pem};
use svcauth_verify::{
    Caller, ErrorKind, MemoryRevocationStore, Verifier, VerifyError, VerifyLayer,
};

struct World {
    now: u64,
    keys: Vec<SigningKey>,
    attacker: SigningKey,
    ps_as_rs: SigningKey,
    b_key: SigningKey,
    a_server: JsonServer,
    listener: JsonServer,
    app: Router,
}

impl World {
    fn ed(&self) -> &SigningKey {
        &self.keys[0]
    }

    fn valid(&self) -> String {
        sign(&header_for(self.ed()), &claims_at(self.now), self.ed())
    }
}

fn app(verifier: Verifier) -> Router {
    let bound_only = Router::new()
        .route("/bound", any(|body: Bytes| async move { body }))
        .route_layer(VerifyLayer::new(verifier.clone()).require_binding());
    Router::new()
        .route(
            "/whoami",
            get(|caller: Caller| async move { caller.sub().to_owned() }),
        )
        .route("/echo", any(|body: Bytes| async move { body }))
        .layer(VerifyLayer::new(verifier))
        .merge(bound_only)
}

async fn world() -> World {
    let now = SystemClock.now_secs();
    let keys = keys_per_algorithm();
    let ps_pem = generate_pkcs8_pem(Algorithm::PS256).unwrap();
    let ps = SigningKey::from_pkcs8_pem(&ps_pem, Some(Algorithm::PS256)).unwrap();
    let ps_as_rs = SigningKey::from_pkcs8_pem(&ps_pem, Some(Algorithm::RS256)).unwrap();
    let mut a_keys: Vec<&SigningKey> = keys.iter().collect();
    a_keys.push(&ps);
    let a_server = JsonServer::start(jwks(&a_keys)).await;

    // Issuer B publishes its own key and, under A's EdDSA kid, a key of its own.
    let b_key = new_key(Algorithm::ES256);
    let impostor = new_key(Algorithm::EdDSA);
    let mut impostor_jwk = impostor.public_jwk();
    impostor_jwk.kid = Some(keys[0].kid().to_owned());
    let b_server = JsonServer::start(json!({ "keys": [b_key.public_jwk(), impostor_jwk] })).await;
    let listener = JsonServer::start(jwks(&[&new_key(Algorithm::EdDSA)])).await;

    let source = |url: String| {
        KeySource::remote(&url)
            .unwrap()
            .background_refresh(false)
            .build()
            .unwrap()
    };
    let verifier = Verifier::builder(AUD)
        .trust(ISS_A, source(a_server.url()))
        .trust(ISS_B, source(b_server.url()))
        .clock(Arc::new(ManualClock::at_secs(now)))
        .build()
        .unwrap();
    World {
        now,
        keys,
        attacker: new_key(Algorithm::EdDSA),
        ps_as_rs,
        b_key,
        a_server,
        listener,
        app: app(verifier),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Challenge {
    /// No `WWW-Authenticate` header.
    None,
    /// Exactly `Bearer` (no token was presented).
    Plain,
    /// `Bearer error="<code>", ...`.
    Error(&'static str),
}

struct Case {
    name: &'static str,
    request: Request<Body>,
    status: StatusCode,
    challenge: Challenge,
    kind: Option<ErrorKind>,
}

fn request(method: &str, uri: &str, token: Option<&str>, body: &'static [u8]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "b.internal");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Body::from(body)).unwrap()
}

fn get_with(token: &str) -> Request<Body> {
    request("GET", "/whoami", Some(token), b"")
}

fn ok(name: &'static str, request: Request<Body>) -> Case {
    Case {
        name,
        request,
        status: StatusCode::OK,
        challenge: Challenge::None,
        kind: None,
    }
}

fn invalid(name: &'static str, request: Request<Body>, kind: ErrorKind) -> Case {
    Case {
        name,
        request,
        status: StatusCode::UNAUTHORIZED,
        challenge: Challenge::Error("invalid_token"),
        kind: Some(kind),
    }
}

fn with_claims(w: &World, f: impl FnOnce(&mut Value)) -> String {
    let mut claims = claims_at(w.now);
    f(&mut claims);
    sign(&header_for(w.ed()), &claims, w.ed())
}

fn with_header(w: &World, f: impl FnOnce(&mut Value)) -> String {
    let mut header = header_for(w.ed());
    f(&mut header);
    sign(&header, &claims_at(w.now), w.ed())
}

fn hmac_token(w: &World, secret: &[u8]) -> String {
    let header =
        b64::encode(json!({ "alg": "HS256", "typ": "JWT", "kid": w.keys[3].kid() }).to_string());
    let payload = b64::encode(claims_at(w.now).to_string());
    let input = format!("{header}.{payload}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64::encode(tag.as_ref()))
}

fn alg_none(w: &World, alg: &str, signature: &str) -> String {
    let header = b64::encode(json!({ "alg": alg, "typ": "JWT" }).to_string());
    format!(
        "{header}.{}.{signature}",
        b64::encode(claims_at(w.now).to_string())
    )
}

fn replace_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64::encode(signature))
}

/// A token bound to `method http://b.internal{path}` and `body`, without
/// `query_sha256` (as other stacks make them).
fn bound_token(w: &World, method: &str, path: &str, body: &[u8]) -> String {
    bound(w, method, path, body, false)
}

/// A bound token that also binds the query (`query_sha256`), as svcauth's
/// signer makes them.
fn bound_token_with_query(w: &World, method: &str, target: &str, body: &[u8]) -> String {
    bound(w, method, target, body, true)
}

fn bound(w: &World, method: &str, target: &str, body: &[u8], with_query: bool) -> String {
    let method: http::Method = method.parse().unwrap();
    let b = RequestBinding::for_parts(&method, "http", "b.internal", target, body).unwrap();
    with_claims(w, |c| {
        c["htm"] = b.htm.into();
        c["htu"] = b.htu.into();
        c["body_sha256"] = b.body_sha256.into();
        if with_query {
            c["query_sha256"] = b.query_sha256.into();
        }
    })
}

fn cases(w: &World) -> Vec<Case> {
    let now = w.now;
    let ed = w.ed();
    let valid = w.valid();
    let (input, _) = valid.rsplit_once('.').unwrap();
    let (header_b64, payload_b64) = input.split_once('.').unwrap();
    let es256 = &w.keys[1];
    let rsa_pem = w.keys[3].public_key_pem().unwrap();
    let rsa_jwk = serde_json::to_string(&w.keys[3].public_jwk()).unwrap();

    let mut cases = Vec::new();
    for key in &w.keys {
        let name: &'static str = Box::leak(format!("valid_{}", key.algorithm()).into_boxed_str());
        cases.push(ok(
            name,
            get_with(&sign(&header_for(key), &claims_at(now), key)),
        ));
    }
    cases.extend([
        ok("valid_array_audience_with_us", get_with(&with_claims(w, |c| c["aud"] = json!(["x", AUD])))),
        ok("valid_exp_just_inside_leeway", get_with(&with_claims(w, |c| { c["iat"] = (now - 330).into(); c["exp"] = (now - 30).into(); }))),
        ok("valid_lifetime_at_cap", get_with(&with_claims(w, |c| c["exp"] = (now + 600).into()))),
        ok("valid_typ_at_jwt", get_with(&with_header(w, |h| h["typ"] = "at+jwt".into()))),
        ok("valid_no_typ", get_with(&with_header(w, |h| { h.as_object_mut().unwrap().remove("typ"); }))),
        ok("valid_bound_request", request("POST", "/echo", Some(&bound_token(w, "POST", "/echo", b"hello")), b"hello")),
        Case { name: "missing_token", request: request("GET", "/whoami", None, b""), status: StatusCode::UNAUTHORIZED, challenge: Challenge::Plain, kind: Some(ErrorKind::MissingToken) },
        Case { name: "basic_auth_is_not_a_token", request: Request::get("/whoami").header("authorization", "Basic dXNlcjpwYXNz").body(Body::empty()).unwrap(), status: StatusCode::UNAUTHORIZED, challenge: Challenge::Plain, kind: Some(ErrorKind::MissingToken) },
        Case { name: "token_in_query_string_is_ignored", request: Request::get(format!("/whoami?access_token={valid}")).body(Body::empty()).unwrap(), status: StatusCode::UNAUTHORIZED, challenge: Challenge::Plain, kind: Some(ErrorKind::MissingToken) },
        Case { name: "two_authorization_headers", request: Request::get("/whoami").header("authorization", format!("Bearer {valid}")).header("authorization", format!("Bearer {valid}")).body(Body::empty()).unwrap(), status: StatusCode::BAD_REQUEST, challenge: Challenge::Error("invalid_request"), kind: Some(ErrorKind::InvalidRequest) },
        invalid("alg_none", get_with(&alg_none(w, "none", "")), ErrorKind::Malformed),
        invalid("alg_none_with_signature", get_with(&alg_none(w, "none", "AAAA")), ErrorKind::UnsupportedAlgorithm),
        invalid("alg_None", get_with(&alg_none(w, "None", "AAAA")), ErrorKind::UnsupportedAlgorithm),
        invalid("alg_NONE", get_with(&alg_none(w, "NONE", "AAAA")), ErrorKind::UnsupportedAlgorithm),
        invalid("alg_nOnE", get_with(&alg_none(w, "nOnE", "AAAA")), ErrorKind::UnsupportedAlgorithm),
        invalid("hs256_signed_with_public_key_pem", get_with(&hmac_token(w, rsa_pem.as_bytes())), ErrorKind::UnsupportedAlgorithm),
        invalid("hs256_signed_with_public_jwk", get_with(&hmac_token(w, rsa_jwk.as_bytes())), ErrorKind::UnsupportedAlgorithm),
        invalid("alg_es256_on_an_eddsa_key", get_with(&sign(&json!({"alg":"ES256","typ":"JWT","kid":ed.kid()}), &claims_at(now), es256)), ErrorKind::KeyAlgorithmMismatch),
        invalid("rs256_on_a_key_pinned_to_ps256", get_with(&sign(&header_for(&w.ps_as_rs), &claims_at(now), &w.ps_as_rs)), ErrorKind::KeyAlgorithmMismatch),
        invalid("embedded_jwk_of_attacker", get_with(&sign(&json!({"alg":"EdDSA","kid":w.attacker.kid(),"jwk":w.attacker.public_jwk()}), &claims_at(now), &w.attacker)), ErrorKind::UnknownKey),
        invalid("embedded_jwk_under_a_known_kid", get_with(&sign(&json!({"alg":"EdDSA","kid":ed.kid(),"jwk":w.attacker.public_jwk()}), &claims_at(now), &w.attacker)), ErrorKind::InvalidSignature),
        invalid("jku_to_attacker_listener", get_with(&sign(&json!({"alg":"EdDSA","kid":ed.kid(),"jku":w.listener.url()}), &claims_at(now), &w.attacker)), ErrorKind::InvalidSignature),
        invalid("x5u_to_attacker_listener", get_with(&sign(&json!({"alg":"EdDSA","kid":ed.kid(),"x5u":w.listener.url()}), &claims_at(now), &w.attacker)), ErrorKind::InvalidSignature),
        invalid("x5c_garbage_chain", get_with(&sign(&json!({"alg":"EdDSA","kid":ed.kid(),"x5c":["MIIB"]}), &claims_at(now), &w.attacker)), ErrorKind::InvalidSignature),
        invalid("kid_path_traversal", get_with(&with_header(w, |h| h["kid"] = "../../../../dev/null".into())), ErrorKind::UnknownKey),
        invalid("kid_sql_injection", get_with(&with_header(w, |h| h["kid"] = "' OR '1'='1' --".into())), ErrorKind::UnknownKey),
        invalid("kid_not_a_string", get_with(&with_header(w, |h| h["kid"] = json!({"$ne": null}))), ErrorKind::Malformed),
        invalid("kid_missing_with_several_keys", get_with(&with_header(w, |h| { h.as_object_mut().unwrap().remove("kid"); })), ErrorKind::UnknownKey),
        invalid("ecdsa_r_s_zero_raw", get_with(&replace_signature(&sign(&header_for(es256), &claims_at(now), es256), &[0; 64])), ErrorKind::InvalidSignature),
        invalid("ecdsa_r_s_zero_der", get_with(&replace_signature(&sign(&header_for(es256), &claims_at(now), es256), &[0x30, 6, 2, 1, 0, 2, 1, 0])), ErrorKind::InvalidSignature),
        invalid("truncated_signature_bytes", get_with(&{ let s = b64::decode(valid.rsplit_once('.').unwrap().1).unwrap(); replace_signature(&valid, &s[..s.len() - 3]) }), ErrorKind::InvalidSignature),
        invalid("truncated_signature_text", get_with(&valid[..valid.len() - 1]), ErrorKind::Malformed),
        invalid("bit_flipped_signature", get_with(&{ let mut s = b64::decode(valid.rsplit_once('.').unwrap().1).unwrap(); s[10] ^= 1; replace_signature(&valid, &s) }), ErrorKind::InvalidSignature),
        invalid("modified_payload", get_with(&format!("{header_b64}.{}.{}", b64::encode(json!({"iss":ISS_A,"sub":"admin","aud":AUD,"iat":now,"exp":now+300}).to_string()), valid.rsplit_once('.').unwrap().1)), ErrorKind::InvalidSignature),
        invalid("modified_header", get_with(&format!("{}.{payload_b64}.{}", b64::encode(json!({"alg":"EdDSA","kid":ed.kid(),"typ":"at+jwt"}).to_string()), valid.rsplit_once('.').unwrap().1)), ErrorKind::InvalidSignature),
        invalid("unknown_crit", get_with(&with_header(w, |h| { h["crit"] = json!(["exp"]); h["exp"] = now.into(); })), ErrorKind::UnsupportedHeader),
        invalid("b64_false", get_with(&with_header(w, |h| { h["crit"] = json!(["b64"]); h["b64"] = false.into(); })), ErrorKind::UnsupportedHeader),
        invalid("b64_false_without_crit", get_with(&with_header(w, |h| h["b64"] = false.into())), ErrorKind::UnsupportedHeader),
        invalid("duplicate_aud_good_first", get_with(&sign_raw(header_b64, &b64::encode(format!(r#"{{"iss":"{ISS_A}","sub":"s","aud":"{AUD}","aud":"evil","iat":{now},"exp":{}}}"#, now + 300)), ed)), ErrorKind::DuplicateMember),
        invalid("duplicate_aud_good_last", get_with(&sign_raw(header_b64, &b64::encode(format!(r#"{{"iss":"{ISS_A}","sub":"s","aud":"evil","aud":"{AUD}","iat":{now},"exp":{}}}"#, now + 300)), ed)), ErrorKind::DuplicateMember),
        invalid("duplicate_header_alg", get_with(&sign_raw(&b64::encode(format!(r#"{{"alg":"EdDSA","alg":"none","kid":"{}"}}"#, ed.kid())), payload_b64, ed)), ErrorKind::DuplicateMember),
        invalid("one_segment", get_with("eyJhbGciOiJFZERTQSJ9"), ErrorKind::Malformed),
        invalid("two_segments", get_with(input), ErrorKind::Malformed),
        invalid("four_segments", get_with(&format!("{valid}.AAAA")), ErrorKind::Malformed),
        invalid("five_segments_jwe_shaped", get_with(&format!("{header_b64}..{payload_b64}.AAAA.AAAA")), ErrorKind::Malformed),
        invalid("empty_segments", get_with(".."), ErrorKind::Malformed),
        invalid("padded_base64", get_with(&sign_raw(&format!("{header_b64}=="), payload_b64, ed)), ErrorKind::Malformed),
        invalid("standard_alphabet_base64", get_with(&standard_alphabet(w)), ErrorKind::Malformed),
        invalid("oversized_token", get_with(&with_claims(w, |c| c["pad"] = "x".repeat(9000).into())), ErrorKind::TokenTooLarge),
        invalid("nested_jwt", get_with(&sign_raw(&b64::encode(json!({"alg":"EdDSA","kid":ed.kid(),"cty":"JWT"}).to_string()), &b64::encode(&valid), ed)), ErrorKind::UnsupportedHeader),
        invalid("payload_is_a_jwt_string", get_with(&sign_raw(header_b64, &b64::encode(format!("\"{valid}\"")), ed)), ErrorKind::Malformed),
        invalid("wrong_audience", get_with(&with_claims(w, |c| c["aud"] = "https://c.internal".into())), ErrorKind::WrongAudience),
        invalid("missing_audience", get_with(&with_claims(w, |c| { c.as_object_mut().unwrap().remove("aud"); })), ErrorKind::InvalidClaims),
        invalid("empty_audience", get_with(&with_claims(w, |c| c["aud"] = "".into())), ErrorKind::WrongAudience),
        invalid("wildcard_audience", get_with(&with_claims(w, |c| c["aud"] = "*".into())), ErrorKind::WrongAudience),
        invalid("array_audience_without_us", get_with(&with_claims(w, |c| c["aud"] = json!(["x", "*", ""]))), ErrorKind::WrongAudience),
        invalid("empty_audience_array", get_with(&with_claims(w, |c| c["aud"] = json!([]))), ErrorKind::WrongAudience),
        invalid("untrusted_issuer", get_with(&with_claims(w, |c| c["iss"] = "https://evil.internal".into())), ErrorKind::UntrustedIssuer),
        invalid("issuer_differs_by_a_slash", get_with(&with_claims(w, |c| c["iss"] = format!("{ISS_A}/").into())), ErrorKind::UntrustedIssuer),
        invalid("cross_issuer_b_claims_with_a_key_under_shared_kid", get_with(&with_claims(w, |c| c["iss"] = ISS_B.into())), ErrorKind::InvalidSignature),
        invalid("cross_issuer_a_claims_signed_by_b_key", get_with(&sign(&json!({"alg":"ES256","kid":w.b_key.kid()}), &claims_at(now), &w.b_key)), ErrorKind::UnknownKey),
        invalid("expired", get_with(&with_claims(w, |c| { c["iat"] = (now - 3600).into(); c["exp"] = (now - 3300).into(); })), ErrorKind::Expired),
        invalid("exp_just_outside_leeway", get_with(&with_claims(w, |c| { c["iat"] = (now - 331).into(); c["exp"] = (now - 31).into(); })), ErrorKind::Expired),
        invalid("nbf_in_the_future", get_with(&with_claims(w, |c| c["nbf"] = (now + 120).into())), ErrorKind::NotYetValid),
        invalid("iat_in_the_future", get_with(&with_claims(w, |c| { c["iat"] = (now + 120).into(); c["exp"] = (now + 400).into(); })), ErrorKind::IssuedInFuture),
        invalid("lifetime_over_cap", get_with(&with_claims(w, |c| c["exp"] = (now + 601).into())), ErrorKind::LifetimeTooLong),
        invalid("lifetime_of_a_day", get_with(&with_claims(w, |c| c["exp"] = (now + 86_400).into())), ErrorKind::LifetimeTooLong),
        invalid("missing_exp", get_with(&with_claims(w, |c| { c.as_object_mut().unwrap().remove("exp"); })), ErrorKind::InvalidClaims),
        invalid("missing_iat", get_with(&with_claims(w, |c| { c.as_object_mut().unwrap().remove("iat"); })), ErrorKind::InvalidClaims),
        invalid("exp_as_string", get_with(&with_claims(w, |c| c["exp"] = (now + 300).to_string().into())), ErrorKind::InvalidClaims),
        invalid("iat_as_bool", get_with(&with_claims(w, |c| c["iat"] = true.into())), ErrorKind::InvalidClaims),
        invalid("aud_as_number", get_with(&with_claims(w, |c| c["aud"] = 7.into())), ErrorKind::InvalidClaims),
        invalid("sub_as_object", get_with(&with_claims(w, |c| c["sub"] = json!({"id": 1}))), ErrorKind::InvalidClaims),
        invalid("claims_not_an_object", get_with(&sign_raw(header_b64, &b64::encode("[1,2,3]"), ed)), ErrorKind::Malformed),
        invalid("typ_not_accepted", get_with(&with_header(w, |h| h["typ"] = "dpop+jwt".into())), ErrorKind::UnacceptedType),
        invalid("half_bound_token", get_with(&with_claims(w, |c| c["htm"] = "GET".into())), ErrorKind::InvalidClaims),
        invalid("binding_method_mismatch", request("PUT", "/echo", Some(&bound_token(w, "POST", "/echo", b"hello")), b"hello"), ErrorKind::BindingMismatch),
        invalid("binding_url_mismatch", request("POST", "/echo", Some(&bound_token(w, "POST", "/admin", b"hello")), b"hello"), ErrorKind::BindingMismatch),
        invalid("binding_host_mismatch", Request::post("/echo").header("host", "evil.internal").header("authorization", format!("Bearer {}", bound_token(w, "POST", "/echo", b"hello"))).body(Body::from("hello")).unwrap(), ErrorKind::BindingMismatch),
        ok("valid_bound_request_with_query", request("POST", "/echo?amount=1", Some(&bound_token_with_query(w, "POST", "/echo?amount=1", b"hello")), b"hello")),
        invalid("binding_query_changed", request("POST", "/echo?amount=1000000&to=attacker", Some(&bound_token_with_query(w, "POST", "/echo?amount=1", b"hello")), b"hello"), ErrorKind::BindingMismatch),
        invalid("binding_query_dropped", request("POST", "/echo", Some(&bound_token_with_query(w, "POST", "/echo?amount=1", b"hello")), b"hello"), ErrorKind::BindingMismatch),
        invalid("binding_query_added_to_a_token_without_query_sha256", request("POST", "/echo?amount=1000000", Some(&bound_token(w, "POST", "/echo", b"hello")), b"hello"), ErrorKind::BindingMismatch),
        invalid("jti_of_300_bytes", get_with(&with_claims(w, |c| c["jti"] = "j".repeat(300).into())), ErrorKind::InvalidClaims),
        invalid("binding_body_mismatch", request("POST", "/echo", Some(&bound_token(w, "POST", "/echo", b"hello")), b"hellp"), ErrorKind::BindingMismatch),
        invalid("unbound_token_on_a_bound_only_route", request("POST", "/bound", Some(&valid), b"x"), ErrorKind::BindingRequired),
        Case { name: "bound_body_over_limit", request: request("POST", "/echo", Some(&bound_token(w, "POST", "/echo", b"")), Box::leak(vec![b'x'; 2 * 1024 * 1024].into_boxed_slice())), status: StatusCode::PAYLOAD_TOO_LARGE, challenge: Challenge::None, kind: Some(ErrorKind::BodyTooLarge) },
    ]);
    cases
}

/// A valid token re-encoded with the standard base64 alphabet (`+`, `/`).
fn standard_alphabet(w: &World) -> String {
    loop {
        let token = w.valid();
        let signature = token.rsplit_once('.').unwrap().1;
        if signature.contains(['-', '_']) {
            let (input, _) = token.rsplit_once('.').unwrap();
            return format!("{input}.{}", signature.replace('-', "+").replace('_', "/"));
        }
    }
}

fn challenge_of(response: &http::Response<Body>) -> Challenge {
    match response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
    {
        None => Challenge::None,
        Some(v) if v == "Bearer" => Challenge::Plain,
        Some(v) => {
            let code = v
                .strip_prefix("Bearer error=\"")
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("unexpected challenge {v}"));
            Challenge::Error(Box::leak(code.to_owned().into_boxed_str()))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_suite() {
    let w = world().await;
    let cases = cases(&w);
    let hostile = cases.iter().filter(|c| c.status != StatusCode::OK).count();
    assert!(hostile >= 40, "only {hostile} hostile cases");

    let mut failures = Vec::new();
    for case in cases {
        let response = send(&w.app, case.request).await;
        let status = response.status();
        let challenge = challenge_of(&response);
        let kind = response.extensions().get::<VerifyError>().map(|e| e.kind());
        let description = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        if (status, challenge, kind) != (case.status, case.challenge, case.kind) {
            failures.push(format!(
                "{}: got {status} {challenge:?} {kind:?}, want {} {:?} {:?}",
                case.name, case.status, case.challenge, case.kind
            ));
        }
        // Descriptions never echo token contents.
        assert!(!description.contains("eyJ"), "{}: {description}", case.name);
        // The service keeps answering after every case.
        let after = send(&w.app, get_with(&w.valid())).await;
        assert_eq!(after.status(), StatusCode::OK, "after {}", case.name);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(w.listener.hits(), 0, "jku/x5u URLs are never fetched");
}

#[tokio::test]
async fn a_bound_token_is_accepted_once() {
    let w = world().await;
    let token = bound_token(&w, "POST", "/echo", b"pay 10");
    let first = send(&w.app, request("POST", "/echo", Some(&token), b"pay 10")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(first.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"pay 10", "the handler gets the body intact");
    let again = send(&w.app, request("POST", "/echo", Some(&token), b"pay 10")).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refusal(&again), ErrorKind::Replayed);
    // A bound token on a bound-only route works too.
    let token = bound_token(&w, "POST", "/bound", b"x");
    let ok = send(&w.app, request("POST", "/bound", Some(&token), b"x")).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_known_kid_with_a_bad_signature_never_causes_a_fetch() {
    let w = world().await;
    let valid = w.valid();
    assert_eq!(
        send(&w.app, get_with(&valid)).await.status(),
        StatusCode::OK
    );
    let fetched = w.a_server.hits();
    for i in 0..50u8 {
        let mut signature = b64::decode(valid.rsplit_once('.').unwrap().1).unwrap();
        signature[i as usize % 64] ^= 1 << (i % 8);
        let forged = replace_signature(&valid, &signature);
        let response = send(&w.app, get_with(&forged)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(w.a_server.hits(), fetched);
}

#[tokio::test]
async fn an_untrusted_issuer_never_causes_a_fetch() {
    let w = world().await;
    for i in 0..20 {
        let token = with_claims(&w, |c| {
            c["iss"] = format!("https://evil-{i}.internal").into()
        });
        let token = token.replace(w.ed().kid(), &format!("kid-{i}"));
        assert_eq!(
            send(&w.app, get_with(&token)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(w.a_server.hits(), 0);
}

#[tokio::test]
async fn revoked_tokens_are_refused_even_when_cached() {
    let now = SystemClock.now_secs();
    let key = new_key(Algorithm::EdDSA);
    let server = JsonServer::start(jwks(&[&key])).await;
    let store = Arc::new(MemoryRevocationStore::new(Arc::new(SystemClock)));
    let verifier = Verifier::builder(AUD)
        .trust(
            ISS_A,
            KeySource::remote(&server.url()).unwrap().build().unwrap(),
        )
        .revocation_store(store.clone())
        .build()
        .unwrap();
    let app = app(verifier.clone());
    let mut claims = claims_at(now);
    claims["jti"] = "to-revoke".into();
    let token = sign(&header_for(&key), &claims, &key);
    assert_eq!(send(&app, get_with(&token)).await.status(), StatusCode::OK);
    assert_eq!(verifier.cache_len(), 1);

    store.revoke_jti("to-revoke", now + 300);
    let response = send(&app, get_with(&token)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refusal(&response), ErrorKind::Revoked);

    // Revoking the key revokes every token it signed.
    let other = sign(&header_for(&key), &claims_at(now), &key);
    assert_eq!(send(&app, get_with(&other)).await.status(), StatusCode::OK);
    store.revoke_key(ISS_A, key.kid());
    assert_eq!(
        send(&app, get_with(&other)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
