//! The key layer end to end, on loopback: a service publishes its JWKS, a
//! verifier's remote cache loads it, the service rotates its key, and the
//! verifier follows with exactly one more fetch.
//!
//! Run it with `cargo run -p svcauth-jwks --example jwks_rotation`
//! (`cargo xtask demo` shows the whole service pair).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use svcauth_core::Algorithm;
use svcauth_jwks::{JwksService, KeyLookup, KeyRing, KeySource, SigningKey};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("\ndemo: every step behaved as described");
            ExitCode::SUCCESS
        }
        Err(step) => {
            eprintln!("\ndemo FAILED: {step}");
            ExitCode::FAILURE
        }
    }
}

fn check(ok: bool, step: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(step.to_owned()) }
}

async fn run() -> Result<(), String> {
    // Service A: a key ring, published at /.well-known/jwks.json.
    let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).map_err(|e| e.to_string())?);
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route_service("/.well-known/jwks.json", JwksService::new(ring.clone()))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            counter.fetch_add(1, Ordering::SeqCst);
            next.run(req)
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/.well-known/jwks.json");
    println!("service A publishes its keys at {url}");
    println!("  signing kid: {}", ring.signer().kid());

    // Service B: a remote cache of A's keys (cooldown shortened for the demo).
    let source = KeySource::remote(&url)
        .and_then(|b| b.cooldown(Duration::ZERO).build())
        .map_err(|e| e.to_string())?;

    let message = b"header.claims";
    let signature = ring
        .signer()
        .sign(message)
        .await
        .map_err(|e| e.to_string())?;
    let kid = ring.signer().kid().to_owned();
    let KeyLookup::Found(key) = source.resolve(Some(&kid)).await else {
        return Err("B could not find A's key".into());
    };
    let verified = key.verify(Algorithm::EdDSA, message, &signature).is_ok();
    println!(
        "B resolves kid {kid}: signature valid = {verified} (JWKS fetches: {})",
        hits.load(Ordering::SeqCst)
    );
    check(verified, "a signature by A's current key verifies")?;

    let forged = SigningKey::generate(Algorithm::EdDSA).map_err(|e| e.to_string())?;
    let forged_sig = forged.sign(message).map_err(|e| e.to_string())?;
    let refused = key.verify(Algorithm::EdDSA, message, &forged_sig).is_err();
    println!("B checks a signature by a stranger's key under A's kid: refused = {refused}");
    check(refused, "a forged signature is refused")?;

    let before = hits.load(Ordering::SeqCst);
    ring.rotate(
        SigningKey::generate(Algorithm::EdDSA).map_err(|e| e.to_string())?,
        Duration::from_secs(600),
    )
    .map_err(|e| e.to_string())?;
    let new_kid = ring.signer().kid().to_owned();
    println!(
        "A rotates: new signing kid {new_kid}; old kid still published: {:?}",
        ring.state().published_kids()
    );
    let signature = ring
        .signer()
        .sign(message)
        .await
        .map_err(|e| e.to_string())?;
    let found = match source.resolve(Some(&new_kid)).await {
        KeyLookup::Found(key) => key.verify(Algorithm::EdDSA, message, &signature).is_ok(),
        _ => false,
    };
    let fetched = hits.load(Ordering::SeqCst) - before;
    println!(
        "B resolves the new kid: signature valid = {found}, JWKS fetched again {fetched} time(s)"
    );
    check(
        found && fetched == 1,
        "after rotation B finds the new key with exactly one fetch",
    )?;
    check(
        matches!(source.lookup(Some(&kid)), KeyLookup::Found(_)),
        "the retired key still resolves during the overlap",
    )?;
    println!("B still resolves the retired kid during the overlap: true");
    println!("B's key source: {:?}", source.stats());
    Ok(())
}
