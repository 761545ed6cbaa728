//! Token keys under traffic: rotations between a file key and token keys
//! fail no call, and a token that goes away leaves the cached tokens
//! flowing until they near expiry, with transient errors after.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use svcauth_jwks::{JwksService, SigningKey};
use svcauth_sign::{SelfSigned, SignError, Signer};

use super::*;

/// B on loopback, trusting A's published JWKS (refetched at once on an
/// unknown kid); the URL of its `/whoami`.
async fn serve_b(ring: &KeyRing) -> String {
    let jwks =
        Router::new().route_service("/.well-known/jwks.json", JwksService::new(ring.clone()));
    let jwks = format!(
        "http://{}/.well-known/jwks.json",
        svcauth_tests::serve(jwks).await
    );
    let keys = KeySource::remote(&jwks)
        .unwrap()
        .cooldown(Duration::ZERO)
        .background_refresh(false)
        .build()
        .unwrap();
    let b = svcauth_tests::serve(service_b(keys)).await;
    format!("http://{b}/whoami")
}

/// What the load saw: calls that passed (with the kids B reported), and
/// failures with their reasons.
#[derive(Default)]
struct Seen {
    ok: usize,
    kids: BTreeSet<String>,
    failed: Vec<String>,
}

/// `workers` tasks calling `url` through `signer` until `stop`.
fn load(signer: &Signer, url: &str, workers: usize, stop: &Arc<AtomicBool>) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    for _ in 0..workers {
        let (signer, url, stop, seen) =
            (signer.clone(), url.to_owned(), stop.clone(), seen.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let outcome = match signer.sign(client.get(&url)).await {
                    Ok(request) => match request.send().await {
                        Ok(r) if r.status().is_success() => {
                            Ok(r.json::<serde_json::Value>().await.unwrap()["kid"]
                                .as_str()
                                .unwrap()
                                .to_owned())
                        }
                        Ok(r) => Err(format!("B answered {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(format!("signing: {e}")),
                };
                {
                    let mut seen = seen.lock().unwrap();
                    match outcome {
                        Ok(kid) => {
                            seen.ok += 1;
                            seen.kids.insert(kid);
                        }
                        Err(e) => seen.failed.push(e),
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    seen
}

#[cfg_attr(svcauth_peer_missing_softhsm, ignore = "needs SoftHSM2")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_between_file_and_token_keys_under_traffic_fails_no_call() {
    let Some(hsm) = softhsm(
        "traffic::rotation_between_file_and_token_keys_under_traffic_fails_no_call",
        &[TOKEN],
    ) else {
        return;
    };
    let file_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let file_kid = file_key.kid().to_owned();
    let ring = KeyRing::new(file_key);
    let url = serve_b(&ring).await;
    let signer = Signer::self_signed(ISS, ring.clone())
        .unwrap()
        .audience(url.trim_end_matches("/whoami"), AUD)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = load(&signer, &url, 4, &stop);
    let settle = || tokio::time::sleep(Duration::from_millis(400));
    settle().await;

    // File key → token key, the careful way: published first, then signing.
    let first = hsm.generate("first", Algorithm::ES256);
    let first_kid = first.kid().to_owned();
    ring.add_next(first).unwrap();
    settle().await;
    ring.promote_next(Duration::from_secs(600)).unwrap();
    signer.clear_cache();
    settle().await;

    // Token key → another token key (EdDSA), at once: B meets an unknown
    // kid and refetches.
    let second = hsm.generate("second", Algorithm::EdDSA);
    let second_kid = second.kid().to_owned();
    ring.rotate(second, Duration::from_secs(600)).unwrap();
    signer.clear_cache();
    settle().await;
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let seen = seen.lock().unwrap();
    assert!(seen.failed.is_empty(), "failed calls: {:?}", seen.failed);
    assert!(seen.ok > 100, "only {} calls", seen.ok);
    let expected: BTreeSet<String> = [file_kid, first_kid, second_kid].into();
    assert_eq!(seen.kids, expected, "B saw each key sign");
}

#[cfg_attr(svcauth_peer_missing_softhsm, ignore = "needs SoftHSM2")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_gone_mid_traffic_leaves_cached_tokens_flowing_until_near_expiry() {
    let Some(hsm) = softhsm(
        "traffic::a_token_gone_mid_traffic_leaves_cached_tokens_flowing_until_near_expiry",
        &[TOKEN],
    ) else {
        return;
    };
    let key = hsm.generate("key", Algorithm::ES256);
    let kid = key.kid().to_owned();
    let ring = KeyRing::new(key);
    let url = serve_b(&ring).await;
    // Tokens live 12 s, issued 5 s in the past: 7 s left when minted,
    // refreshed from 30 % of that, handed out until 25 % before expiry.
    let source = SelfSigned::new(ISS, ring.clone())
        .unwrap()
        .lifetime(Duration::from_secs(12))
        .unwrap();
    let signer = Signer::builder(source)
        .audience(url.trim_end_matches("/whoami"), AUD)
        .refresh_at(0.3)
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let call = async || -> Result<String, SignError> {
        let response = signer.sign(client.get(&url)).await?.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        Ok(response.json::<serde_json::Value>().await.unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned())
    };
    assert_eq!(call().await.unwrap(), kid, "warm");
    let warmed = Instant::now();

    // The token goes away (as a card pulled out: its objects are gone).
    let (conf_var, conf) = ("SOFTHSM2_CONF", std::env::var("SOFTHSM2_CONF").unwrap());
    let deleted = std::process::Command::new("softhsm2-util")
        .args(["--delete-token", "--token", TOKEN])
        .env(conf_var, conf)
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{deleted:?}");

    // Calls keep going with the cached token while its refreshes fail...
    let mut flowing = 0;
    let failure = loop {
        match call().await {
            Ok(seen) => {
                assert_eq!(seen, kid);
                flowing += 1;
            }
            Err(e) => break e,
        }
        assert!(
            warmed.elapsed() < Duration::from_secs(20),
            "the cached token never stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // ... until it nears expiry, and then the error says to try again.
    let lasted = warmed.elapsed();
    assert!(flowing > 20, "{flowing} calls after the token went");
    assert!(
        lasted > Duration::from_secs(4),
        "the cached token stopped after {lasted:?}"
    );
    assert!(failure.is_transient(), "{failure}");
    assert!(
        matches!(failure, SignError::KeyUnavailable(_)),
        "{failure:?}"
    );
    assert!(signer.metrics().refresh_failures >= 1);
}
