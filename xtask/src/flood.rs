//! `cargo xtask flood [--seconds N] [--report]`: what an attacker with
//! network access costs. Legitimate traffic (wrk, one token, answered from
//! the cache) beside a flood of forged tokens that each cost a full
//! signature check (a known `kid`, valid claims, random signature bytes),
//! at rising rates; the legitimate throughput and p99 at each rate, against
//! the same traffic with no flood measured in the same run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use svcauth_core::{Algorithm, b64};
use svcauth_jwks::SigningKey;
use svcauth_tests::{Example, free_port};

use crate::bench::load::{Run, parse, wrk};
use crate::demo::http::wait_ready;

const ISS: &str = "https://a.internal";
const AUD: &str = "https://b.internal";
/// Flood rates tried, forged tokens per second; `u32::MAX` is as fast as
/// the flood's connections go.
const RATES: [u32; 6] = [0, 500, 1_000, 2_000, 4_000, u32::MAX];
/// The most connections the flood opens.
const MAX_CONNECTIONS: u32 = 16;
/// The legitimate load's kept-alive connections.
const CONNECTIONS: u32 = 16;

/// `cargo xtask flood` options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Seconds of measurement per flood rate.
    #[arg(long, default_value_t = 8)]
    pub(crate) seconds: u32,
    /// Write the results into RELIABILITY.md.
    #[arg(long)]
    pub(crate) report: bool,
}

struct Step {
    rate: u32,
    sent_per_sec: f64,
    refused: u64,
    admitted: u64,
    legit: Run,
}

pub(crate) fn run(root: &std::path::Path, args: Args) -> Result<(), String> {
    crate::peers::install_debian("wrk", "wrk", "the flood run")?;
    let key = SigningKey::generate(Algorithm::ES256).map_err(|e| e.to_string())?;
    let jwks = crate::soak::fleet::spawn_static(json!({ "keys": [key.public_jwk()] }))?;
    let port = free_port();
    let b_args = [
        "--audience".to_owned(),
        AUD.to_owned(),
        "--trust".to_owned(),
        format!("{ISS}=http://127.0.0.1:{jwks}/jwks.json"),
    ];
    let bins = svcauth_tests::release_example_binaries();
    let _b = Example::spawn_from(bins, port, "service-b", &b_args, Stdio::null());
    wait_ready(port, "service-b", |r| r.json()["ready"] == true)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = json!({ "iss": ISS, "sub": ISS, "aud": AUD, "iat": now, "exp": now + 590 });
    let token = key
        .sign_jws(claims.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let signing_input = token.rsplit_once('.').map_or("", |(i, _)| i).to_owned();
    let url = format!("http://127.0.0.1:{port}/whoami");
    let header = format!("authorization: Bearer {token}");
    wrk(&url, CONNECTIONS, &[&header], 1)?; // warm-up: the token is cached from here on

    let mut steps = Vec::new();
    for rate in RATES {
        let flood = Flood::start(port, rate, &signing_input);
        let legit = parse(&wrk(&url, CONNECTIONS, &[&header], args.seconds)?)?;
        let (sent, refused, admitted, secs) = flood.stop();
        eprintln!(
            "flood {}: {:.0} forged/s; legitimate {:.0} req/s, p99 {:.2} ms",
            label(rate),
            sent as f64 / secs,
            legit.rps,
            legit.p99_ms
        );
        steps.push(Step {
            rate,
            sent_per_sec: sent as f64 / secs,
            refused,
            admitted,
            legit,
        });
    }
    let md = markdown(&steps, args.seconds);
    print!("{md}");
    if args.report {
        crate::reliability::write_section(root, "## Floods", &md)?;
    }
    match steps.iter().map(|s| s.admitted).sum::<u64>() {
        0 => Ok(()),
        n => Err(format!("flood: {n} forged tokens admitted")),
    }
}

fn label(rate: u32) -> String {
    match rate {
        0 => "none".into(),
        u32::MAX => "unlimited".into(),
        r => format!("{r}/s"),
    }
}

/// Threads sending forged tokens at a rate, each over one kept-alive
/// connection.
struct Flood {
    stop: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; 3]>,
    threads: Vec<std::thread::JoinHandle<()>>,
    start: Instant,
}

impl Flood {
    fn start(port: u16, rate: u32, signing_input: &str) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
        // One connection per 250 forged tokens a second: each waits its
        // turn behind the legitimate traffic.
        let threads = match rate {
            0 => 0,
            u32::MAX => MAX_CONNECTIONS,
            r => r.div_ceil(250).min(MAX_CONNECTIONS),
        };
        let start = Instant::now();
        let threads = (0..threads)
            .map(|i| {
                let (stop, counts) = (stop.clone(), counts.clone());
                let input = signing_input.to_owned();
                std::thread::spawn(move || {
                    let per_thread = match rate {
                        u32::MAX => None,
                        r => Some(f64::from(r) / f64::from(threads)),
                    };
                    flood(port, per_thread, &input, u64::from(i), &stop, &counts)
                })
            })
            .collect();
        Flood {
            stop,
            counts,
            threads,
            start,
        }
    }

    /// Sent, refused (401), admitted (200), and for how many seconds.
    fn stop(self) -> (u64, u64, u64, f64) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            let _ = t.join();
        }
        let secs = self.start.elapsed().as_secs_f64();
        let c = |i: usize| self.counts[i].load(Ordering::Relaxed);
        (c(0), c(1), c(2), secs)
    }
}

fn flood(
    port: u16,
    rate: Option<f64>,
    input: &str,
    seed: u64,
    stop: &AtomicBool,
    counts: &[AtomicU64; 3],
) {
    let mut x = 0x2545_F491_4F6C_DD1D ^ (seed + 1);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut conn: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::Acquire) {
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let signature: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let request = format!(
            "GET /whoami HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {input}.{}\r\n\r\n",
            b64::encode(signature)
        );
        if conn.is_none() {
            conn = TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(BufReader::new);
        }
        let status = conn.as_mut().and_then(|c| roundtrip(c, &request));
        sent += 1;
        counts[0].fetch_add(1, Ordering::Relaxed);
        match status {
            Some(401) => {
                counts[1].fetch_add(1, Ordering::Relaxed);
            }
            Some(200) => {
                counts[2].fetch_add(1, Ordering::Relaxed);
            }
            _ => conn = None,
        }
    }
}

/// One request on a kept-alive connection; the status, reading the body
/// by its `content-length`.
fn roundtrip(conn: &mut BufReader<TcpStream>, request: &str) -> Option<u16> {
    conn.get_mut().write_all(request.as_bytes()).ok()?;
    let mut status = None;
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let text = line.trim_end();
        if text.is_empty() {
            break;
        }
        if status.is_none() {
            status = text.split(' ').nth(1)?.parse().ok();
        } else if let Some((name, value)) = text.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).ok()?;
    status
}

fn markdown(steps: &[Step], seconds: u32) -> String {
    let base = steps.first().map_or(f64::NAN, |s| s.legit.rps);
    let base_p99 = steps.first().map_or(f64::NAN, |s| s.legit.p99_ms);
    let mut md = format!(
        "Written by `cargo xtask flood --seconds {seconds} --report` ({}).\n{}.\n\n\
         One service-b (the example, on its default 2-worker runtime) trusting one\n\
         issuer (ES256). Legitimate traffic: wrk, 16 connections, one token, so\n\
         every request after the first is a cache hit. Beside it, a flood of\n\
         forged tokens: the issuer's `kid` and valid claims, random signature\n\
         bytes, a new one each time (never a cache hit: each costs a parse and a\n\
         full ES256 check before its 401), sent over kept-alive connections at the\n\
         rate shown (unlimited: 16 connections as fast as they are answered).\n\
         Everything shares the machine's two cores; the first row is the\n\
         baseline, measured in the same run. {seconds} s per row.\n\n\
         | flood | forged sent/s | refused | admitted | legitimate req/s | vs no flood | legitimate p99 | vs no flood |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        crate::reliability::today(),
        crate::reliability::machine(),
    );
    for s in steps {
        md.push_str(&format!(
            "| {} | {:.0} | {} | {} | {:.0} | {:.2}x | {:.2} ms | {:.2}x |\n",
            label(s.rate),
            s.sent_per_sec,
            s.refused,
            s.admitted,
            s.legit.rps,
            s.legit.rps / base,
            s.legit.p99_ms,
            s.legit.p99_ms / base_p99,
        ));
    }
    md.push_str(
        "\nWhat bounds it: CPU. A forged token costs one signature check, the\n\
         price of any token seen for the first time, and a refused token is\n\
         never cached, so an attacker who knows a `kid` buys one check per\n\
         request; legitimate tokens keep their cache hits and lose only the\n\
         share of CPU the flood takes. svcauth adds no budget of full checks:\n\
         one that shed invalid signatures first would have to tell them from a\n\
         legitimate first sight (a new token after every rotation or refresh)\n\
         before paying for the check, which it cannot. Rate limits belong in\n\
         front (per client, at the gateway or the proxy), where the client is\n\
         known.\n",
    );
    md
}
