//! The soak's verdict: every legitimate failure inside the window of a
//! fault that may cause it, nothing hostile admitted, every process alive,
//! memory and descriptors flat; as a summary, and as RELIABILITY.md's
//! section.

use std::sync::atomic::Ordering;

use super::fleet::Fleet;
use super::load::{CLASSES, Class, Failure, Tally, Targets};
use super::{GRACE_MS, GROWTH, Sample, Window};
use crate::demo::http::http;

/// Whether every process still answers: A, both replicas and the gateway
/// on `/healthz`, the provider on its discovery document, Redis on PING.
pub(super) fn alive(fleet: &Fleet, targets: &Targets) -> Vec<(String, bool)> {
    let ok =
        |port: u16, path: &str| http("GET", port, path, &[], "").is_ok_and(|r| r.status == 200);
    let redis = std::net::TcpStream::connect(("127.0.0.1", targets.redis)).is_ok_and(|mut s| {
        use std::io::{Read, Write};
        let mut reply = [0u8; 7];
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        s.write_all(b"PING\r\n").is_ok()
            && s.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    });
    vec![
        ("service-a".into(), ok(targets.a, "/healthz")),
        ("service-b1".into(), ok(targets.b[0], "/healthz")),
        ("service-b2".into(), ok(targets.b[1], "/healthz")),
        ("gateway".into(), ok(targets.gateway, "/healthz")),
        (
            "oidc-provider".into(),
            ok(fleet.op.port, "/.well-known/openid-configuration"),
        ),
        ("redis-server".into(), redis),
    ]
}

struct ClassRow {
    class: Class,
    calls: u64,
    succeeded: u64,
    excused: u64,
    unexcused: u64,
}

impl ClassRow {
    fn cells(&self) -> (&'static str, [u64; 4]) {
        let counts = [self.calls, self.succeeded, self.excused, self.unexcused];
        (self.class.name(), counts)
    }
}

struct WindowRow {
    window: Window,
    failures: u64,
    /// Of those: edge tokens the fault made the provider forget, refused
    /// when the gateway's cache entry for them ended.
    forgotten: u64,
    /// From the fault's end to the last failure it caused (forgotten
    /// tokens aside: their moment is the cache's, not the fault's).
    recovered_ms: Option<u64>,
}

struct Growth {
    name: String,
    samples: usize,
    /// How long the process was sampled.
    lived_ms: u64,
    rss_kb: (u64, u64),
    fds: (u64, u64),
    /// Held to the bound: one of svcauth's processes that ran the whole soak.
    judged: bool,
    ok: bool,
}

pub(super) struct Outcome {
    classes: Vec<ClassRow>,
    windows: Vec<WindowRow>,
    unexcused: Vec<Failure>,
    hostile: [(&'static str, u64, u64); 3],
    alive: Vec<(String, bool)>,
    growth: Vec<Growth>,
    growth_checked: bool,
    elapsed_ms: u64,
    rotations: u64,
    minutes: u64,
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

impl Outcome {
    pub(super) fn new(
        tally: &Tally,
        windows: &[Window],
        samples: &[Sample],
        alive: Vec<(String, bool)>,
        elapsed_ms: u64,
        rotations: u64,
        minutes: u64,
    ) -> Outcome {
        let failures = tally.failures.lock().map(|f| f.clone()).unwrap_or_default();
        let excused_by = |f: &Failure| {
            windows.iter().position(|w| {
                f.at_ms >= w.start_ms
                    && f.at_ms <= w.end_ms + GRACE_MS
                    && w.excuses.contains(&f.class)
            })
        };
        // The latest fault that made the provider forget this token.
        let forgot = |f: &Failure| {
            let since = f.token_since_ms.filter(|_| f.status == 401)?;
            windows
                .iter()
                .rposition(|w| w.forgets_tokens && w.start_ms >= since && w.start_ms <= f.at_ms)
        };
        let mut rows: Vec<WindowRow> = windows
            .iter()
            .map(|w| WindowRow {
                window: w.clone(),
                failures: 0,
                forgotten: 0,
                recovered_ms: None,
            })
            .collect();
        let mut unexcused = Vec::new();
        for f in &failures {
            match excused_by(f) {
                Some(i) => {
                    let row = &mut rows[i];
                    row.failures += 1;
                    let after = f.at_ms.saturating_sub(row.window.end_ms);
                    row.recovered_ms = Some(row.recovered_ms.unwrap_or(0).max(after));
                }
                None => match forgot(f) {
                    Some(i) => {
                        rows[i].failures += 1;
                        rows[i].forgotten += 1;
                    }
                    None => unexcused.push(f.clone()),
                },
            }
        }
        let classes = CLASSES
            .iter()
            .enumerate()
            .map(|(i, class)| {
                let mine = failures.iter().filter(|f| f.class == *class);
                let unexcused_here = unexcused.iter().filter(|f| f.class == *class).count() as u64;
                ClassRow {
                    class: *class,
                    calls: tally.calls[i].load(Ordering::Relaxed),
                    succeeded: tally.succeeded[i].load(Ordering::Relaxed),
                    excused: mine.count() as u64 - unexcused_here,
                    unexcused: unexcused_here,
                }
            })
            .collect();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let hostile = [
            (
                "bound tokens replayed to both replicas",
                load(&tally.replays),
                load(&tally.replays_admitted),
            ),
            (
                "forged signatures (known and unknown kids)",
                load(&tally.forged),
                load(&tally.forged_admitted),
            ),
            (
                "tokens revoked before they were sent",
                load(&tally.revoked),
                load(&tally.revoked_admitted),
            ),
        ];
        Outcome {
            classes,
            windows: rows,
            unexcused,
            hostile,
            alive,
            growth: growth(samples, elapsed_ms),
            growth_checked: minutes >= 5,
            elapsed_ms,
            rotations,
            minutes,
        }
    }

    /// `Err` with every broken invariant.
    pub(super) fn verdict(&self) -> Result<(), String> {
        let mut broken = Vec::new();
        if !self.unexcused.is_empty() {
            let first: Vec<_> = self
                .unexcused
                .iter()
                .take(10)
                .map(|f| {
                    format!(
                        "{} answered {} at {:.1} s",
                        f.class.name(),
                        f.status,
                        f.at_ms as f64 / 1000.0
                    )
                })
                .collect();
            broken.push(format!(
                "{} legitimate call(s) failed outside any fault window that allows it ({})",
                self.unexcused.len(),
                first.join("; ")
            ));
        }
        for (what, _, admitted) in &self.hostile {
            if *admitted > 0 {
                broken.push(format!("{admitted} {what} admitted"));
            }
        }
        for (name, ok) in &self.alive {
            if !ok {
                broken.push(format!("{name} no longer answers"));
            }
        }
        if self.growth_checked {
            for g in self.growth.iter().filter(|g| g.judged && !g.ok) {
                broken.push(format!(
                    "{} grew: RSS {} -> {} kB, fds {} -> {}",
                    g.name, g.rss_kb.0, g.rss_kb.1, g.fds.0, g.fds.1
                ));
            }
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(format!("soak: {}", broken.join("; ")))
        }
    }

    pub(super) fn summary(&self) -> String {
        let calls: u64 = self.classes.iter().map(|c| c.calls).sum();
        let mut out = format!(
            "\nsoak: {:.0} s, {calls} legitimate calls, {} rotations, {} fault windows\n",
            self.elapsed_ms as f64 / 1000.0,
            self.rotations,
            self.windows.len()
        );
        for c in &self.classes {
            let (name, [calls, ok, excused, unexcused]) = c.cells();
            out.push_str(&format!(
                "  {name:<32} {calls:>7} calls {ok:>7} ok {excused:>5} failed in fault windows {unexcused:>3} outside\n"
            ));
        }
        for (what, tried, admitted) in &self.hostile {
            out.push_str(&format!("  {what}: {tried} sent, {admitted} admitted\n"));
        }
        out
    }

    pub(super) fn markdown(&self) -> String {
        let machine = crate::reliability::machine();
        let mut md = format!(
            "Written by `cargo xtask soak --minutes {} --report` ({}).\n{machine}.\n\n\
             service-a calls two service-b replicas (behind a TCP balancer that\n\
             retries a refused connect on the other) on one Redis (replay and\n\
             revocation, fail-closed), beside the OpenID Provider and the gateway;\n\
             {} load threads send a steady mix: A's calls with its cached token,\n\
             request-bound calls (each token then replayed to both replicas),\n\
             opaque tokens through the gateway, the load driver's own tokens straight\n\
             to a replica, forged signatures, and tokens revoked in Redis (as\n\
             svcauth-redis writes a revocation) and sent once the replicas'\n\
             revocation mirrors must hold it (their staleness bound, 1 s). Every {} s A rotates its key (published first,\n\
             signing after the overlap). A failure counts against a fault only\n\
             within the fault and {} s after it, and only for the calls the fault\n\
             may fail (docs/OPERATIONS.md); any other failure breaks the run.\n\n\
             Ran {:.0} s, {} rotations.\n\n\
             | calls | sent | succeeded | failed in a fault's window | failed outside |\n\
             |---|---:|---:|---:|---:|\n",
            self.minutes,
            crate::reliability::today(),
            super::WORKERS,
            if self.minutes == 1 { 15 } else { 30 },
            GRACE_MS / 1000,
            self.elapsed_ms as f64 / 1000.0,
            self.rotations,
        );
        for c in &self.classes {
            let (name, [calls, ok, excused, unexcused]) = c.cells();
            md.push_str(&format!(
                "| {name} | {calls} | {ok} | {excused} | {unexcused} |\n"
            ));
        }
        md.push_str("\n| fault | may fail | failures | of which forgotten tokens | last failure after the fault ended |\n|---|---|---:|---:|---:|\n");
        for w in &self.windows {
            let may: Vec<_> = w.window.excuses.iter().map(|c| c.name()).collect();
            md.push_str(&format!(
                "| {} (at {:.1} s) | {} | {} | {} | {} |\n",
                w.window.name,
                w.window.start_ms as f64 / 1000.0,
                if may.is_empty() {
                    "nothing".to_owned()
                } else {
                    may.join(", ")
                },
                w.failures,
                w.forgotten,
                w.recovered_ms
                    .map_or("-".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0)),
            ));
        }
        md.push_str("\n| hostile | sent | admitted |\n|---|---:|---:|\n");
        for (what, tried, admitted) in &self.hostile {
            md.push_str(&format!("| {what} | {tried} | {admitted} |\n"));
        }
        md.push_str(&format!(
            "\nMemory and descriptors per process, one row per process started (the\n\
             median of the middle fifth of its samples against the median of the\n\
             last fifth: the first two fifths are warm-up, while service-b's verification\n\
             cache fills to its 10,000 entries; {}):\n\n\
             | process | sampled for | samples | RSS kB | open fds | flat |\n|---|---:|---:|---:|---:|---|\n",
            if self.growth_checked {
                "checked for svcauth's processes that ran the whole soak: at most +10 %, \
                 or +2 descriptors. The replica restarted every cycle never leaves its \
                 warm-up, and Redis and node are not ours: reported"
            } else {
                "reported only: a run under 5 minutes is too short to tell"
            }
        ));
        for g in &self.growth {
            md.push_str(&format!(
                "| {} | {:.0} s | {} | {} -> {} | {} -> {} | {} |\n",
                g.name,
                g.lived_ms as f64 / 1000.0,
                g.samples,
                g.rss_kb.0,
                g.rss_kb.1,
                g.fds.0,
                g.fds.1,
                match (g.judged && self.growth_checked, g.ok) {
                    (false, _) => "reported",
                    (true, true) => "yes",
                    (true, false) => "**no**",
                }
            ));
        }
        let alive: Vec<_> = self
            .alive
            .iter()
            .map(|(n, ok)| format!("{n} {}", if *ok { "answers" } else { "DOWN" }))
            .collect();
        md.push_str(&format!("\nAt the end: {}.\n", alive.join(", ")));
        md.push_str(PROMISES);
        md.push_str(&format!(
            "\nVerdict: {}.\n",
            match self.verdict() {
                Ok(()) => "every invariant held".to_owned(),
                Err(e) => e,
            }
        ));
        md
    }
}

/// Each promise of docs/OPERATIONS.md about failures, and what holds it.
const PROMISES: &str = "\n\
| promise (docs/OPERATIONS.md) | held by |\n\
|---|---|\n\
| an issuer's JWKS that fails, hangs or answers garbage: the last good keys stay in use | the soak's three JWKS windows (nothing may fail); `remote_cache.rs::outages_keep_the_last_good_set_until_max_staleness_then_fail_closed` |\n\
| past the maximum staleness (24 h): that issuer's tokens get 503, not 401 | `remote_cache.rs::outages_keep_the_last_good_set_until_max_staleness_then_fail_closed` |\n\
| Redis down: replay-protected requests get 503, and revocation-checked ones once the mirror is past its staleness bound, never an unchecked request | the soak's Redis window; `tests/tests/redis.rs::an_outage_fails_closed_and_loses_nothing`, `tests/tests/redis_ha.rs::a_mirror_cut_off_past_the_bound_fails_closed_or_open_and_resyncs_what_it_missed` |\n\
| a bound token is accepted once across replicas | the soak's replays (0 admitted); `redis.rs::two_replicas_accept_a_bound_token_once_in_total` |\n\
| a revoked token is refused by every replica within the staleness bound | the soak's revoked tokens (0 admitted); `redis.rs::a_revoked_jti_or_key_is_refused_by_every_replica`, `redis_ha.rs::a_cached_token_is_refused_on_the_first_request_after_its_revocation_arrives` |\n\
| a Redis primary lost to a Sentinel failover: replay-protected requests fail closed, none admitted twice, traffic back by itself | `redis_ha.rs::a_sentinel_failover_fails_closed_admits_nothing_twice_and_recovers_by_itself` |\n\
| a key published before it signs rotates with no failed call | the soak's rotations (nothing may fail); `tests/tests/cli.rs::service_a_rotation_overlap_publishes_first_and_signs_later` |\n\
| the authorization server down: the gateway answers 503 and forwards nothing | the soak's provider window (edge calls only); `tests/tests/gateway.rs::provider_down_answers_503_with_retry_after_and_forwards_nothing` |\n\
| a revoked reference token works at the gateway at most until its cache entry ends | `gateway.rs::a_token_revoked_at_the_provider_stops_working_when_its_entry_ends` |\n\
\n\
A forgotten token: the client's opaque token was issued before the\n\
provider restarted, and the restarted provider no longer knows it. The\n\
gateway keeps honouring it from its cache until the entry ends (at most\n\
`--max-ttl-secs`, and never past the internal token's `exp`), then answers\n\
401 once and the client fetches a new token: counted against the restart,\n\
at whatever time the entry ended.\n\
\n\
The soak rotates A's key faster (every 30 s, a 5 s overlap) than B refreshes\n\
A's JWKS, so B meets each new kid unannounced and fetches it then (cooldown\n\
1 s). An attacker's flood of unknown kids keeps that refetch in its\n\
cooldown and would delay the new key by up to the cooldown: the soak's\n\
forged unknown-kid tokens are therefore sent only inside the JWKS windows.\n\
The documented rotation (an overlap of at least the JWKS `max-age`) is\n\
not exposed to it: verifiers hold the key before it signs.\n";

/// Growth of each process (by name and pid) that was sampled long enough:
/// the median of the middle fifth of its samples against the median of the
/// last fifth. Warm-up is the first two fifths: service-b's verification cache
/// fills to its bound (10,000 entries) in about four and a half minutes at
/// the soak's rate of new tokens, and RSS rises with it until then.
fn growth(samples: &[Sample], elapsed_ms: u64) -> Vec<Growth> {
    let mut keys: Vec<(String, u32)> = samples.iter().map(|s| (s.name.clone(), s.pid)).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|(name, pid)| {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.name == name && s.pid == pid)
                .collect();
            let n = mine.len();
            if n < 10 {
                return None;
            }
            let lived_ms = mine[n - 1].at_ms - mine[0].at_ms;
            let part = |from: usize, to: usize, f: fn(&Sample) -> u64| {
                median(
                    mine[n * from / 5..n * to / 5]
                        .iter()
                        .map(|s| f(s))
                        .collect(),
                )
            };
            let rss_kb = (part(2, 3, |s| s.rss_kb), part(4, 5, |s| s.rss_kb));
            let fds = (part(2, 3, |s| s.fds), part(4, 5, |s| s.fds));
            // Held to it: svcauth's own processes that ran throughout. A
            // replica restarted every cycle never leaves its warm-up; Redis
            // and node are reported, not judged.
            let ours = name.starts_with("service-") || name == "gateway";
            let judged = ours && lived_ms * 10 >= elapsed_ms * 9;
            let ok = !judged
                || (rss_kb.1 as f64 <= rss_kb.0 as f64 * GROWTH
                    && (fds.1 as f64 <= fds.0 as f64 * GROWTH || fds.1 <= fds.0 + 2));
            Some(Growth {
                name,
                samples: n,
                lived_ms,
                rss_kb,
                fds,
                judged,
                ok,
            })
        })
        .collect()
}
