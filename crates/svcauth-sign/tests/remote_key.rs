//! A signing key outside the process (an HSM, a KMS) takes milliseconds per
//! signature, or hangs. While a valid token is cached, no request waits
//! for one: these tests hold the key's signatures behind a gate and show
//! every request path completing at its first poll.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use svcauth_core::{Algorithm, ManualClock};
use svcauth_jwks::{Jwk, JwsSigner, KeyRing, SignatureFuture, SigningKey};
use svcauth_sign::{SelfSigned, Signer};
use tokio::sync::watch;

const AUD: &str = "https://b.internal";

/// A key whose signatures wait until the gate is open, as a remote key's
/// wait for the network.
struct GatedKey {
    key: SigningKey,
    gate: watch::Receiver<bool>,
    signatures: Arc<AtomicUsize>,
}

impl JwsSigner for GatedKey {
    fn kid(&self) -> &str {
        self.key.kid()
    }
    fn alg(&self) -> Algorithm {
        self.key.algorithm()
    }
    fn public_jwk(&self) -> Jwk {
        self.key.public_jwk()
    }
    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a> {
        Box::pin(async move {
            self.gate.clone().wait_for(|open| *open).await.unwrap();
            self.signatures.fetch_add(1, Ordering::SeqCst);
            self.key.sign(signing_input)
        })
    }
}

fn gated(gate: &watch::Sender<bool>) -> (GatedKey, Arc<AtomicUsize>) {
    let signatures = Arc::new(AtomicUsize::new(0));
    let key = GatedKey {
        key: SigningKey::generate(Algorithm::ES256).unwrap(),
        gate: gate.subscribe(),
        signatures: signatures.clone(),
    };
    (key, signatures)
}

/// Polls `future` once: `Some(output)` when it completed without waiting.
fn first_poll<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn kid_of(token: &str) -> String {
    let header = svcauth_core::b64::decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<serde_json::Value>(&header).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits (yielding to the background refresh) until the cached token's
/// kid is `kid`.
async fn until_signed_by(signer: &Signer, kid: &str) {
    for _ in 0..1000 {
        if kid_of(signer.token(AUD).await.unwrap().as_str()) == kid {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("never signed by {kid}");
}

#[tokio::test]
async fn a_warm_cache_never_waits_for_a_remote_signature() {
    let (gate, _) = watch::channel(true);
    let (key, signatures) = gated(&gate);
    let first_kid = key.kid().to_owned();
    let ring = KeyRing::new(key);
    let clock = ManualClock::at_secs(1_800_000_000);
    let source = SelfSigned::new("https://a.internal", ring.clone())
        .unwrap()
        .clock(Arc::new(clock.clone()));
    let signer = Signer::builder(source)
        .audience(AUD, AUD)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let first = signer.token(AUD).await.unwrap();
    assert_eq!(signatures.load(Ordering::SeqCst), 1);

    // The key stops answering; the token passes its refresh point (80 %).
    gate.send_replace(false);
    clock.advance(Duration::from_secs(250));
    let served = first_poll(signer.token(AUD)).expect("a cached token waits for no signature");
    assert_eq!(served.unwrap().as_str(), first.as_str());
    assert!(signer.cached_authorization(AUD).is_some());
    tokio::task::yield_now().await;
    assert_eq!(
        signatures.load(Ordering::SeqCst),
        1,
        "the refresh waits at the gate"
    );

    // The key answers again: the background refresh lands.
    gate.send_replace(true);
    for _ in 0..1000 {
        if signatures.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let renewed = first_poll(signer.token(AUD)).unwrap().unwrap();
    assert_ne!(renewed.as_str(), first.as_str());
    assert_eq!(kid_of(renewed.as_str()), first_kid);

    // A rotation to another slow key: renew_cache keeps serving the old
    // token while the new key's signature is awaited in the background...
    let (next, next_signatures) = gated(&gate);
    let next_kid = next.kid().to_owned();
    gate.send_replace(false);
    ring.rotate(next, Duration::from_secs(600)).unwrap();
    signer.renew_cache();
    let during = first_poll(signer.token(AUD)).expect("renew_cache puts no signature on the path");
    assert_eq!(during.unwrap().as_str(), renewed.as_str());
    gate.send_replace(true);
    until_signed_by(&signer, &next_kid).await;
    assert_eq!(next_signatures.load(Ordering::SeqCst), 1);

    // ... where clear_cache would make the next request wait for it.
    gate.send_replace(false);
    signer.clear_cache();
    assert!(
        first_poll(signer.token(AUD)).is_none(),
        "a cleared cache mints on the request path"
    );
}
