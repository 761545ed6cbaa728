//! The public command line: service-b verifies a Txn-Token with
//! `--txn-trust TTS_ISSUER=JWKS_URL --trust-domain NAME`, shows it in
//! `/whoami` under "txn_token", and with `--require-txn-token` refuses
//! requests without one; the flags that need each other say so.

use std::process::{Command, Stdio};

use svcauth_tests::{Example, JsonServer, example_binaries};

use super::*;

async fn whoami(b: &Example, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(b.url("/whoami"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_b_shows_and_requires_the_txn_token() {
    let tts = Tts::start().await;
    let a = CallerA::new();
    let jwks_a = JsonServer::start(json!({ "keys": [a.key.public_jwk()] })).await;
    let trust = format!("{A_ISS}={}", jwks_a.url());
    let txn_trust = format!("{TTS_ISS}={}", tts.jwks_url);
    let args = |require: bool| {
        let mut args = vec![
            "--audience",
            B_AUD,
            "--trust",
            &trust,
            "--txn-trust",
            &txn_trust,
            "--trust-domain",
            DOMAIN,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        if require {
            args.push("--require-txn-token".into());
        }
        args
    };
    let b = Example::start("service-b", &args(false), |_| true).await;
    let strict = Example::start("service-b", &args(true), |_| true).await;
    let bearer = format!("Bearer {}", a.token());
    let txn = tts.mint().await;

    let (status, body) = whoami(&b, &[("authorization", &bearer), ("txn-token", &txn)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], A_ISS);
    assert_eq!(body["txn_token"]["sub"], "alice");
    assert_eq!(body["txn_token"]["tctx"]["tenant"], "blue");
    assert_eq!(body["txn_token"]["aud"], DOMAIN);
    let (status, body) = whoami(&b, &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert!(body.get("txn_token").is_none(), "{body}");
    let (status, body) = whoami(
        &b,
        &[
            ("authorization", &bearer),
            ("txn-token", &txn[..txn.len() - 2]),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("txn_token_invalid"))
    );

    let (status, body) = whoami(&strict, &[("authorization", &bearer)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("txn_token_required"))
    );
    let (status, body) = whoami(&strict, &[("authorization", &bearer), ("txn-token", &txn)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["txn_token"]["txn"], b_txn_id(&txn));
}

fn b_txn_id(token: &str) -> Value {
    let (_, payload) = svcauth_core::jws::peek(token).unwrap();
    serde_json::from_slice::<Value>(&payload).unwrap()["txn"].clone()
}

#[test]
fn flags_that_need_each_other_say_so() {
    let bin = example_binaries();
    for (binary, args) in [
        (
            "service-b",
            vec!["--audience", B_AUD, "--txn-trust", "x=http://127.0.0.1:1/j"],
        ),
        (
            "service-b",
            vec!["--audience", B_AUD, "--trust-domain", DOMAIN],
        ),
        (
            "gateway",
            vec![
                "--upstream",
                "http://127.0.0.1:1",
                "--token-endpoint",
                "http://127.0.0.1:2/t",
                "--client-id",
                "g",
                "--client-secret-file",
                "/dev/null",
                "--audience",
                "a",
                "--txn-token-service",
            ],
        ),
    ] {
        let out = Command::new(bin.join(binary))
            .args(&args)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{binary} {args:?}: {stderr}");
        assert!(
            stderr.contains("--trust-domain") || stderr.contains("--txn-trust"),
            "{stderr}"
        );
    }
}
