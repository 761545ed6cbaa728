//! The example binaries speak WIMSE: wit-issuer issues service-a's WIT
//! against its service token, service-a calls service-b with WIT + proof,
//! a copied WIT without the key is refused, and `--require-proof` refuses
//! bearer tokens. The command-line contract other tools test against.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use svcauth_tests::{Example, free_port};

use super::*;

const A_ID: &str = "spiffe://example.org/service-a";

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

struct Fleet {
    a: Example,
    b: Example,
    _issuer: Example,
    issuer_port: u16,
}

async fn fleet(b_extra: &[&str]) -> Fleet {
    let (a_port, b_port, i_port) = (free_port(), free_port(), free_port());
    let a_jwks = format!("http://127.0.0.1:{a_port}/.well-known/jwks.json");
    let mut a_args = s(&["--issuer", A_ISS, "--danger-expose-tokens", "--call"]);
    a_args.push(format!("{B}=http://127.0.0.1:{b_port}"));
    a_args.extend(["--wit-issuer".into(), format!("http://127.0.0.1:{i_port}")]);
    let a = Example::spawn_on(a_port, "service-a", &a_args, Stdio::null());
    let mut i_args = s(&["--trust-domain", "example.org", "--audience"]);
    i_args.push(format!("http://127.0.0.1:{i_port}"));
    i_args.extend(["--trust".into(), format!("{A_ISS}={a_jwks}")]);
    i_args.extend(["--workload".into(), format!("{A_ISS}={A_ID}")]);
    let issuer = Example::spawn_on(i_port, "wit-issuer", &i_args, Stdio::null());
    let mut b_args = s(&["--audience", B, "--trust"]);
    b_args.push(format!("{A_ISS}={a_jwks}"));
    b_args.extend([
        "--wit-trust".into(),
        format!("example.org=http://127.0.0.1:{i_port}/.well-known/jwks.json"),
    ]);
    b_args.extend(s(b_extra));
    let b = Example::spawn_on(b_port, "service-b", &b_args, Stdio::null())
        .ready(|h| h["ready"] == true)
        .await;
    // A holds a WIT once the issuer has fetched A's keys and answered.
    let a = a.ready(|h| h["wit"]["workload"] == A_ID).await;
    let issuer = issuer.ready(|h| h["ready"] == true).await;
    Fleet {
        a,
        b,
        _issuer: issuer,
        issuer_port: i_port,
    }
}

async fn call_whoami(a: &Example) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = reqwest::Client::new()
        .post(a.url(&format!("/call?aud={B}&path=/whoami")))
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, r.json().await.unwrap_or(Value::Null), headers)
}

async fn to_b(b: &Example, headers: &[(&str, String)]) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(b.url("/whoami"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_a_calls_service_b_with_a_wit_from_wit_issuer_and_a_copy_is_useless() {
    let f = fleet(&[]).await;
    let (status, body, headers) = call_whoami(&f.a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["proof"].as_str(),
            body["workload"].as_str(),
            body["sub"].as_str()
        ),
        (Some("wpt"), Some(A_ID), Some(A_ID))
    );
    assert_eq!(body["iss"], json!("spiffe://example.org"));

    // Whoever copies the WIT (a log, a proxy) has no key to prove with.
    let wit = headers["x-svcauth-sent-wit"].to_str().unwrap().to_owned();
    let (status, body) = to_b(&f.b, &[("workload-identity-token", wit.clone())]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("proof_invalid")),
        "{body}"
    );
    let thief = SigningKey::generate(Algorithm::ES256).unwrap();
    let port = f.b.port();
    let forged = mint(
        &thief,
        json!({ "alg": "ES256", "typ": "wpt+jwt" }),
        json!({ "aud": format!("http://127.0.0.1:{port}/whoami"), "exp": svcauth_tests::unix_now() + 60,
            "jti": "thief-1", "wth": token_hash(&wit) }),
    );
    let (status, body) = to_b(&f.b, &pair(&wit, &forged)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("proof_invalid")),
        "{body}"
    );
    // The WIT as a bearer token: refused too.
    let (status, _) = to_b(&f.b, &[("authorization", format!("Bearer {wit}"))]).await;
    assert_eq!(status, 401);
    // The issuer's JWKS is what B trusts; it is served publicly.
    let jwks: Value = reqwest::get(format!(
        "http://127.0.0.1:{}/.well-known/jwks.json",
        f.issuer_port
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    // Asking for a WIT without a service token: 401.
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/wit", f.issuer_port))
        .body(json!({ "jwk": thief.public_jwk() }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_proof_refuses_bearer_tokens_and_admits_proofs() {
    let f = fleet(&["--require-proof"]).await;
    let (status, body, headers) = call_whoami(&f.a).await;
    assert_eq!(
        (status, body["proof"].as_str()),
        (200, Some("wpt")),
        "{body}"
    );
    // The bearer token A sent beside its proof, alone: refused.
    let bearer = headers["x-svcauth-sent-authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, body) = to_b(&f.b, &[("authorization", bearer)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token")),
        "{body}"
    );
    assert!(body["error_description"].as_str().unwrap().contains("WIT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_b_accepts_jwt_svids_from_a_watched_spiffe_bundle_file() {
    let dir = std::env::temp_dir().join(format!("svcauth-b-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bundle.json");
    let entry = |key: &SigningKey| {
        let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
        jwk["use"] = "jwt-svid".into();
        jwk
    };
    let write = |keys: Value, sequence: u64| {
        let staged = dir.join("bundle.tmp");
        let bundle = json!({ "keys": keys, "spiffe_sequence": sequence });
        std::fs::write(&staged, bundle.to_string()).unwrap();
        std::fs::rename(&staged, &path).unwrap();
    };
    let first = SigningKey::generate(Algorithm::ES256).unwrap();
    write(json!([entry(&first)]), 1);
    let b_port = free_port();
    let mut args = s(&["--audience", B, "--spiffe-bundle"]);
    args.push(format!("example.org={}", path.display()));
    let b = Example::spawn_on(b_port, "service-b", &args, Stdio::null())
        .ready(|h| h["ready"] == true)
        .await;
    let svid = |key: &SigningKey| {
        let now = svcauth_tests::unix_now();
        mint(
            key,
            json!({ "alg": "ES256", "kid": key.kid(), "typ": "JWT" }),
            json!({ "sub": "spiffe://example.org/ns/prod/sa/reports", "aud": B, "iat": now, "exp": now + 300 }),
        )
    };
    let bearer = |token: String| vec![("authorization", format!("Bearer {token}"))];
    let (status, body) = to_b(&b, &bearer(svid(&first))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["iss"], json!("spiffe://example.org"));
    assert_eq!(
        body["sub"],
        json!("spiffe://example.org/ns/prod/sa/reports")
    );
    assert_eq!(body["proof"], json!("bearer"));

    // The agent rotates the bundle file: the new key is taken, the old
    // one withdrawn, with no restart.
    let second = SigningKey::generate(Algorithm::ES256).unwrap();
    write(json!([entry(&second)]), 2);
    let mut waited = 0;
    while to_b(&b, &bearer(svid(&second))).await.0 != 200 {
        assert!(
            waited < 100,
            "the rewritten bundle was not picked up in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += 1;
    }
    assert_eq!(to_b(&b, &bearer(svid(&first))).await.0, 401);
    std::fs::remove_dir_all(&dir).unwrap();
}
