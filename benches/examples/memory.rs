//! Target 7 of the benchmarks: the caches stay within their bounds under a
//! flood of distinct tokens, and the process's memory stops growing once
//! they are full.
//!
//! `memory [--tokens N] [--threads T]` (default 1,000,000 and 2) feeds N
//! distinct, valid tokens (EdDSA, minted on the fly, never held) through one
//! `Verifier` with its default cache capacity, then asks one `Signer` for
//! tokens to N distinct audiences with its default cache size. It samples
//! each cache's length and the resident set while it runs, prints a report
//! on stderr and one JSON line on stdout, and exits with status 1 if a cache
//! ever held more than its bound (plus one in-flight insert per thread).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use svcauth_benches::arg;
use svcauth_core::Algorithm;
use svcauth_jwks::{KeyRing, KeySet, KeySource, SigningKey};
use svcauth_sign::{DEFAULT_MAX_AUDIENCES, Signer};
use svcauth_verify::{DEFAULT_CACHE_CAPACITY, Verifier};

const AUD: &str = "https://b.internal";
const ISS: &str = "https://a.internal";

/// A field of /proc/self/status, in KiB (VmRSS: now; VmHWM: the peak).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `work(i)` for i in 0..n on `threads` threads, sampling `len()` and
/// the RSS every 1,000 items. Returns (max length seen, RSS samples at each
/// tenth of the run, in KiB).
fn flood(
    n: usize,
    threads: usize,
    work: impl Fn(&tokio::runtime::Runtime, usize) + Sync,
    len: impl Fn() -> usize + Sync,
) -> (usize, Vec<u64>) {
    let next = AtomicUsize::new(0);
    let max = AtomicUsize::new(0);
    let tenths = std::sync::Mutex::new(vec![0u64; 10]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    work(&rt, i);
                    if (i + 1).is_multiple_of(1000) {
                        max.fetch_max(len(), Ordering::Relaxed);
                    }
                    if (i + 1).is_multiple_of((n / 10).max(1)) {
                        let tenth = ((i + 1) / (n / 10).max(1)).clamp(1, 10) - 1;
                        tenths.lock().unwrap()[tenth] = status_kib("VmRSS:");
                    }
                }
            });
        }
    });
    max.fetch_max(len(), Ordering::Relaxed);
    (max.into_inner(), tenths.into_inner().unwrap())
}

fn main() {
    let n = arg("--tokens", 1_000_000);
    let threads = arg("--threads", 2).max(1);
    let rss_start = status_kib("VmRSS:");
    let started = Instant::now();

    let key = Arc::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    let keys = KeySource::fixed(KeySet::from_jwks(jwks.as_bytes(), 65536).unwrap());
    let verifier = Verifier::builder(AUD).trust(ISS, keys).build().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    // 1. The verification cache: every token distinct (its own sub and jti),
    //    valid for ten minutes, so none expires during the run and only the
    //    capacity bound can hold the cache.
    let (verify_max, verify_rss) = flood(
        n,
        threads,
        |rt, i| {
            let claims = json!({ "iss": ISS, "sub": format!("svc-{i}"), "aud": AUD,
                "iat": now, "exp": now + 600, "jti": format!("{i:016x}") });
            let token = key.sign_jws(claims.to_string().as_bytes()).unwrap();
            rt.block_on(verifier.verify(&token)).expect("a valid token");
        },
        || verifier.cache_len(),
    );
    let rss_after_verify = status_kib("VmRSS:");
    let verify_secs = started.elapsed().as_secs_f64();

    // 2. The token cache: one token per audience, N audiences.
    let signer = Signer::self_signed(
        ISS,
        KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap()),
    )
    .unwrap()
    .build()
    .unwrap();
    let (sign_max, sign_rss) = flood(
        n,
        threads,
        |rt, i| {
            rt.block_on(signer.token(&format!("https://svc-{i}.internal")))
                .expect("a token");
        },
        || signer.cached_audiences(),
    );
    let peak = status_kib("VmHWM:");
    let rss_end = status_kib("VmRSS:");
    let total_secs = started.elapsed().as_secs_f64();

    let verify_ok = verify_max <= DEFAULT_CACHE_CAPACITY + threads;
    let sign_ok = sign_max <= DEFAULT_MAX_AUDIENCES + threads;
    eprintln!(
        "{n} distinct tokens on {threads} threads in {total_secs:.1} s (verification part {verify_secs:.1} s)\n\
         verification cache: at most {verify_max} entries (bound {DEFAULT_CACHE_CAPACITY}) {}\n\
         token cache: at most {sign_max} audiences (bound {DEFAULT_MAX_AUDIENCES}) {}\n\
         RSS: {rss_start} KiB at start, {rss_after_verify} KiB after the verification flood, {rss_end} KiB at the end, peak {peak} KiB\n\
         RSS at each tenth of the verification flood (KiB): {verify_rss:?}\n\
         RSS at each tenth of the signing flood (KiB): {sign_rss:?}",
        if verify_ok { "ok" } else { "OVER THE BOUND" },
        if sign_ok { "ok" } else { "OVER THE BOUND" },
    );
    println!(
        "{}",
        json!({
            "tokens": n, "threads": threads, "seconds": total_secs,
            "verify_cache_bound": DEFAULT_CACHE_CAPACITY, "verify_cache_max": verify_max,
            "sign_cache_bound": DEFAULT_MAX_AUDIENCES, "sign_cache_max": sign_max,
            "rss_start_kib": rss_start, "rss_after_verify_kib": rss_after_verify,
            "rss_end_kib": rss_end, "peak_rss_kib": peak,
            "verify_rss_tenths_kib": verify_rss, "sign_rss_tenths_kib": sign_rss,
        })
    );
    if !(verify_ok && sign_ok) {
        std::process::exit(1);
    }
}
