//! The soak's load: a few threads, each sending a steady mix of legitimate
//! calls (A to B through the balancer, request-bound calls, calls through
//! the gateway, the driver's own tokens straight to a replica) and hostile
//! ones (each bound token replayed to both replicas, forged signatures,
//! tokens revoked a moment before). Every outcome is counted; every
//! legitimate call that fails is kept with its time, for the windows.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use svcauth_core::b64;
use svcauth_jwks::SigningKey;

use super::fleet::{A_ISS, B_AUD, DRIVER_ISS};
use crate::demo::http::http;
use crate::demo::{EDGE_CLIENT, EDGE_SECRET};

/// The kinds of legitimate call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// `POST /call` on A: A's cached token to B through the balancer.
    AToB,
    /// A request-bound call through A (minted per request, single use).
    Bound,
    /// An opaque token through the gateway, swapped for a JWT to B.
    Edge,
    /// The driver's own token, straight to one replica.
    Direct,
}

pub(super) const CLASSES: [Class; 4] = [Class::AToB, Class::Bound, Class::Edge, Class::Direct];

impl Class {
    pub(super) fn name(self) -> &'static str {
        match self {
            Class::AToB => "A to B (cached token)",
            Class::Bound => "A to B, request-bound",
            Class::Edge => "edge, through the gateway",
            Class::Direct => "driver's token, to a replica",
        }
    }
}

/// A legitimate call that failed.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub(super) at_ms: u64,
    pub(super) class: Class,
    /// The status, 0 when no answer came.
    pub(super) status: u16,
    /// For a call through the gateway: when its opaque token was issued.
    /// A provider that restarts forgets the tokens it issued before; the
    /// gateway's cache hides that until the token's entry ends.
    pub(super) token_since_ms: Option<u64>,
}

/// What the load saw, shared by its threads.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) stop: AtomicBool,
    pub(super) calls: [AtomicU64; 4],
    pub(super) succeeded: [AtomicU64; 4],
    pub(super) failures: Mutex<Vec<Failure>>,
    pub(super) replays: AtomicU64,
    pub(super) replays_admitted: AtomicU64,
    pub(super) forged: AtomicU64,
    pub(super) forged_admitted: AtomicU64,
    pub(super) revoked: AtomicU64,
    pub(super) revoked_admitted: AtomicU64,
    /// While set (A's JWKS is failing on purpose), forged tokens claim A's
    /// issuer under unknown kids, so that B tries that JWKS. At other
    /// times they never do: an unknown-kid flood holds B's refetch in its
    /// cooldown, which would delay B's pickup of A's next key (RELIABILITY.md).
    pub(super) probe_jwks: AtomicBool,
}

/// Where the load sends its calls.
#[derive(Clone)]
pub(super) struct Targets {
    pub(super) a: u16,
    pub(super) gateway: u16,
    pub(super) b: [u16; 2],
    pub(super) op: u16,
    pub(super) redis: u16,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A small xorshift: the mix and the forged bytes need no more.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One load thread, until `tally.stop`.
pub(super) fn worker(id: u64, start: Instant, targets: Targets, key: &SigningKey, tally: &Tally) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut edge_token = String::new();
    let mut edge_since = 0;
    let mut n = 0u64;
    // Revoked tokens wait out the replicas' staleness bound here, while the
    // thread goes on with other calls.
    let mut revoked_tokens = std::collections::VecDeque::new();
    while !tally.stop.load(Ordering::Acquire) {
        n += 1;
        while revoked_tokens
            .front()
            .is_some_and(|(due, _): &(Instant, String)| *due <= Instant::now())
        {
            if let Some((_, token)) = revoked_tokens.pop_front() {
                send_revoked(&targets, tally, &token);
            }
        }
        let at = || start.elapsed().as_millis() as u64;
        match n % 20 {
            0..=7 => {
                let r = http(
                    "POST",
                    targets.a,
                    &format!("/call?aud={B_AUD}&path=/whoami"),
                    &[],
                    "",
                );
                record(tally, Class::AToB, at(), r.map(|r| r.status).unwrap_or(0));
            }
            8..=10 => bound(&targets, tally, at, id, n),
            11..=13 => {
                if edge_token.is_empty() {
                    edge_since = at();
                    edge_token = opaque_token(targets.op).unwrap_or_default();
                }
                let auth = format!("Bearer {edge_token}");
                let r = http(
                    "GET",
                    targets.gateway,
                    "/whoami",
                    &[("authorization", &auth)],
                    "",
                );
                let status = r.map(|r| r.status).unwrap_or(0);
                if status == 401 {
                    // The provider forgot it (a restart): get another.
                    edge_token.clear();
                }
                record_with(tally, Class::Edge, at(), status, Some(edge_since));
            }
            14..=16 => {
                let token = driver_token(key, &format!("d-{id}-{n}"));
                let replica = targets.b[(n % 2) as usize];
                let auth = format!("Bearer {token}");
                let r = http("GET", replica, "/whoami", &[("authorization", &auth)], "");
                record(tally, Class::Direct, at(), r.map(|r| r.status).unwrap_or(0));
            }
            17 | 18 => {
                let unknown_kid = n % 2 == 1 && tally.probe_jwks.load(Ordering::Acquire);
                forged(&targets, key, tally, &mut rng, unknown_kid, n);
            }
            _ => revoked_tokens.extend(revoke(&targets, key, &format!("r-{id}-{n}"))),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn record(tally: &Tally, class: Class, at_ms: u64, status: u16) {
    record_with(tally, class, at_ms, status, None);
}

fn record_with(tally: &Tally, class: Class, at_ms: u64, status: u16, token_since_ms: Option<u64>) {
    let i = CLASSES.iter().position(|c| *c == class).unwrap_or(0);
    tally.calls[i].fetch_add(1, Ordering::Relaxed);
    if status == 200 {
        tally.succeeded[i].fetch_add(1, Ordering::Relaxed);
    } else if let Ok(mut failures) = tally.failures.lock() {
        failures.push(Failure {
            at_ms,
            class,
            status,
            token_since_ms,
        });
    }
}

/// A request-bound call through A; then the very token it carried, sent
/// again to both replicas, must be refused by both.
fn bound(targets: &Targets, tally: &Tally, at: impl Fn() -> u64, id: u64, n: u64) {
    let body = format!("soak {id}-{n}");
    let path = format!("/call?aud={B_AUD}&path=/echo&bind=true");
    let reply = http("POST", targets.a, &path, &[], &body);
    let status = reply.as_ref().map(|r| r.status).unwrap_or(0);
    record(tally, Class::Bound, at(), status);
    // Only a token B accepted once is a replay when sent again.
    let Ok(reply) = reply else { return };
    let Some(sent) = reply
        .header("x-svcauth-sent-authorization")
        .map(str::to_owned)
    else {
        return;
    };
    if status != 200 || reply.body != body {
        return;
    }
    for port in targets.b {
        if let Ok(r) = http("POST", port, "/echo", &[("authorization", &sent)], &body) {
            tally.replays.fetch_add(1, Ordering::Relaxed);
            if r.status == 200 {
                tally.replays_admitted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A token of the driver's issuer, valid for a minute.
fn driver_token(key: &SigningKey, jti: &str) -> String {
    let now = unix_now();
    let claims = json!({ "iss": DRIVER_ISS, "sub": "soak-load", "aud": B_AUD,
        "iat": now, "exp": now + 60, "jti": jti });
    key.sign_jws(claims.to_string().as_bytes())
        .unwrap_or_default()
}

/// A forged token: the driver's with random signature bytes, or one
/// claiming to be A's under a kid nobody has (which sends B to A's JWKS,
/// through whatever fault the proxy is serving).
fn forged(
    targets: &Targets,
    key: &SigningKey,
    tally: &Tally,
    rng: &mut Rng,
    unknown_kid: bool,
    n: u64,
) {
    let token = if !unknown_kid {
        let good = driver_token(key, "forged");
        let input = good
            .rsplit_once('.')
            .map_or("", |(input, _)| input)
            .to_owned();
        format!("{input}.{}", b64::encode(rng.bytes(64)))
    } else {
        let now = unix_now();
        let header =
            json!({ "alg": "ES256", "typ": "JWT", "kid": format!("unknown-{}", rng.next()) });
        let claims =
            json!({ "iss": A_ISS, "sub": A_ISS, "aud": B_AUD, "iat": now, "exp": now + 60 });
        format!(
            "{}.{}.{}",
            b64::encode(header.to_string()),
            b64::encode(claims.to_string()),
            b64::encode(rng.bytes(64))
        )
    };
    let auth = format!("Bearer {token}");
    if let Ok(r) = http(
        "GET",
        targets.b[(n % 2) as usize],
        "/whoami",
        &[("authorization", &auth)],
        "",
    ) {
        tally.forged.fetch_add(1, Ordering::Relaxed);
        if r.status == 200 {
            tally.forged_admitted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A token of the driver's, revoked in Redis (as svcauth-redis writes a
/// revocation: the list and the feed, in one transaction), and when to send
/// it: once every replica must enforce it (the staleness bound).
fn revoke(targets: &Targets, key: &SigningKey, jti: &str) -> Option<(Instant, String)> {
    let token = driver_token(key, jti);
    let member = format!(
        "jti:{}",
        svcauth_core::body_sha256(format!("{DRIVER_ISS}\n{jti}").as_bytes())
    );
    let until = (unix_now() + 120).to_string();
    // Redis down: nothing was revoked, nothing to check.
    redis_revoke(targets.redis, &member, &until).then(|| {
        let due = Instant::now() + super::fleet::REVOCATION_STALENESS + Duration::from_millis(50);
        (due, token)
    })
}

/// A revoked token, sent: no replica may accept it.
fn send_revoked(targets: &Targets, tally: &Tally, token: &str) {
    let auth = format!("Bearer {token}");
    let replica = targets.b[token.len() % 2];
    if let Ok(r) = http("GET", replica, "/whoami", &[("authorization", &auth)], "") {
        tally.revoked.fetch_add(1, Ordering::Relaxed);
        if r.status == 200 {
            tally.revoked_admitted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// svcauth-redis's revocation over RESP: `MULTI`, `ZADD` to the list,
/// `XADD` to the feed, `EXEC`; whether the transaction ran.
fn redis_revoke(port: u16, member: &str, until: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let commands: [&[&str]; 4] = [
        &["MULTI"],
        &["ZADD", "svcauth:{revocations}:list", until, member],
        &[
            "XADD",
            "svcauth:{revocations}:feed",
            "*",
            "m",
            member,
            "u",
            until,
        ],
        &["EXEC"],
    ];
    let mut out = String::new();
    for parts in commands {
        out.push_str(&format!("*{}\r\n", parts.len()));
        for part in parts {
            out.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
    }
    if stream.write_all(out.as_bytes()).is_err() {
        return false;
    }
    // +OK, +QUEUED twice, then EXEC's two answers: `*2`.
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.windows(4).any(|w| w == b"*2\r\n") {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => reply.extend_from_slice(&buf[..n]),
            _ => return false,
        }
        if reply.contains(&b'-') && reply.windows(3).any(|w| w == b"\n-E" || w == b"-ER") {
            return false;
        }
    }
    true
}

/// A fresh opaque token for the outside client, from the provider.
pub(super) fn opaque_token(op_port: u16) -> Option<String> {
    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{EDGE_CLIENT}:{EDGE_SECRET}"));
    let r = http(
        "POST",
        op_port,
        "/token",
        &[
            ("authorization", &format!("Basic {basic}")),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        "grant_type=client_credentials",
    )
    .ok()?;
    r.json()["access_token"].as_str().map(str::to_owned)
}
