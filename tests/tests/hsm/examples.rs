//! service-a signs with a key inside SoftHSM2 (`--pkcs11-module`,
//! `--pkcs11-token`, `--pkcs11-key-label`, the PIN from a file or the
//! environment), service-b accepts its calls, `POST /rotate` makes the next
//! key inside the token, and a wrong PIN stops service-a at start with a
//! message that says so. The command-line contract other tools test against.

use std::process::{Command, Stdio};

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use serde_json::Value;
use svcauth_tests::{Example, example_binaries, free_port};

use super::*;

fn pkcs11_args(hsm: &Hsm, label: &str) -> Vec<String> {
    [
        "--pkcs11-module",
        hsm.module.to_str().unwrap(),
        "--pkcs11-token",
        TOKEN,
        "--pkcs11-key-label",
        label,
    ]
    .map(str::to_owned)
    .to_vec()
}

async fn call(a: &Example) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(a.url(&format!("/call?aud={AUD}&path=/whoami")))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[cfg_attr(svcauth_peer_missing_softhsm, ignore = "needs SoftHSM2")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_a_signs_inside_softhsm_and_rotates_inside_it() {
    let Some(hsm) = softhsm(
        "examples::service_a_signs_inside_softhsm_and_rotates_inside_it",
        &[TOKEN],
    ) else {
        return;
    };
    // Made here and closed: service-a opens it in its own process.
    let kid = hsm.generate("service-a", Algorithm::ES256).kid().to_owned();
    let (a_port, b_port) = (free_port(), free_port());
    let mut a_args = pkcs11_args(&hsm, "service-a");
    a_args.extend([
        "--pkcs11-pin-file".into(),
        hsm.pin_file().display().to_string(),
    ]);
    a_args.extend([
        "--issuer".into(),
        ISS.into(),
        "--call".into(),
        format!("{AUD}=http://127.0.0.1:{b_port}"),
    ]);
    let a = Example::spawn_on(a_port, "service-a", &a_args, Stdio::null());
    let b_args = [
        "--audience".to_owned(),
        AUD.to_owned(),
        "--trust".to_owned(),
        format!("{ISS}=http://127.0.0.1:{a_port}/.well-known/jwks.json"),
        "--unknown-kid-cooldown-secs".to_owned(),
        "0".to_owned(),
    ];
    let _b = Example::spawn_on(b_port, "service-b", &b_args, Stdio::null())
        .ready(|h| h["ready"] == true)
        .await;
    let a = a.ready(|_| true).await;

    let (status, body) = call(&a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kid"], kid.as_str(), "{body}");
    assert_eq!(body["iss"], ISS);

    // The next key is made inside the token, and signs.
    let rotated: Value = reqwest::Client::new()
        .post(a.url("/rotate?now=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_kid = rotated["new_kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, kid);
    let mut answered = Value::Null;
    for _ in 0..100 {
        let (status, body) = call(&a).await;
        if status == 200 && body["kid"] == new_kid.as_str() {
            answered = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(answered["kid"], new_kid.as_str(), "{rotated}");
    // Both private keys are in the token, the new one under a label that
    // extends the first.
    let session = super::extractable::session(&hsm);
    let labels: Vec<String> = session
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()
        .into_iter()
        .flat_map(|key| {
            session
                .get_attributes(key, &[AttributeType::Label])
                .unwrap()
        })
        .filter_map(|a| match a {
            Attribute::Label(label) => Some(String::from_utf8(label).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert!(
        labels.iter().all(|l| l.starts_with("service-a")),
        "{labels:?}"
    );
}

#[cfg_attr(svcauth_peer_missing_softhsm, ignore = "needs SoftHSM2")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_a_stops_at_start_on_a_wrong_pin_or_a_missing_key() {
    let Some(hsm) = softhsm(
        "examples::service_a_stops_at_start_on_a_wrong_pin_or_a_missing_key",
        &[TOKEN],
    ) else {
        return;
    };
    hsm.generate("service-a", Algorithm::EdDSA);
    let start = |label: &str, pin: &str| {
        let mut args = pkcs11_args(&hsm, label);
        args.extend([
            "--issuer".into(),
            ISS.into(),
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()),
        ]);
        let output = Command::new(example_binaries().join("service-a"))
            .args(&args)
            .env("SERVICE_A_PKCS11_PIN", pin)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "service-a started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let wrong_pin = start("service-a", "0000-wrong");
    assert!(wrong_pin.contains("refused the PIN"), "{wrong_pin}");
    let no_key = start("no-such-key", svcauth_tests::USER_PIN);
    assert!(no_key.contains("no-such-key"), "{no_key}");
}
