//! BENCHMARKS.md: the targets first, then the figures they are read from.

use std::fmt::Write as _;

use serde_json::Value;

use super::load::Load;
use super::{BASELINES, Figure, Groups, machine, time};

/// One target of the benchmarks issue, as read from this run.
pub(super) struct Target {
    pub(super) what: String,
    pub(super) measured: String,
    /// `None`: reported, no threshold.
    pub(super) met: Option<bool>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn get<'a>(groups: &'a Groups, group: &str, function: &str) -> Option<&'a Figure> {
    groups.get(group)?.get(function)
}

fn targets(groups: &Groups, load: &Load, [memory, slow, revoked]: &[Value; 3]) -> Vec<Target> {
    let m = |g: &str, f: &str| get(groups, g, f).map(|f| f.median);
    let mut out = Vec::new();
    for alg in ["EdDSA", "ES256", "RS256"] {
        let g = format!("layer/{alg}");
        if let (Some(hit), Some(bare), Some(noop)) = (
            m(&g, "verify_layer_cache_hit"),
            m(&g, "bare_router"),
            m(&g, "noop_layer"),
        ) {
            out.push(Target {
                what: format!(
                    "1. {alg}: verifying layer on a cache hit, per route (`Router::layer`) ÷ bare router (at most 1.5x)"
                ),
                measured: format!(
                    "{:.2}x (+{}: +{} any tower layer in a Router, +{} svcauth's own)",
                    hit / bare,
                    time(hit - bare),
                    time(noop - bare),
                    time(hit - noop)
                ),
                met: Some(hit / bare <= 1.5),
            });
        }
        if let (Some(around), Some(bare)) =
            (m(&g, "verify_layer_around_router"), m(&g, "bare_router"))
        {
            out.push(Target {
                what: format!("1. {alg}: the same layer wrapped around the whole Router ÷ bare router (at most 1.5x)"),
                measured: format!("{:.2}x", around / bare),
                met: Some(around / bare <= 1.5),
            });
        }
        if let (Some(hit), Some(peer)) = (
            m(&g, "verify_layer_cache_hit"),
            m(&g, "jwt_authorizer_layer"),
        ) {
            out.push(Target {
                what: format!(
                    "1. {alg}: jwt-authorizer's layer ÷ svcauth's on the same token (30x to 80x)"
                ),
                measured: format!("{:.0}x", peer / hit),
                met: Some(peer / hit >= 30.0),
            });
        }
    }
    for alg in ["EdDSA", "ES256", "RS256"] {
        let v = format!("verify/{alg}");
        if let (Some(ours), Some(decode), Some(peer)) = (
            m(&v, "svcauth_uncached"),
            m(&v, "jsonwebtoken_decode"),
            m(&v, "jwt_authorizer_check_auth"),
        ) {
            out.push(Target {
                what: format!("2. {alg}: first sight ÷ jsonwebtoken decode (at most 1.05x), and ÷ jwt-authorizer check_auth (at most 1x)"),
                measured: format!("{:.2}x; {:.2}x", ours / decode, ours / peer),
                met: Some(ours / decode <= 1.05 && ours <= peer),
            });
        }
        let g = format!("layer/{alg}");
        if let (Some(ours), Some(peer)) = (
            m(&g, "verify_layer_first_sight"),
            m(&g, "jwt_authorizer_layer"),
        ) {
            out.push(Target {
                what: format!(
                    "2. {alg}: first sight through the layer ÷ jwt-authorizer's layer (at most 1x)"
                ),
                measured: format!("{:.2}x", ours / peer),
                met: Some(ours <= peer),
            });
        }
    }
    if let (Some(hit), Some(bare)) = (
        m("sign_layer", "sign_layer_cache_hit"),
        m("sign_layer", "bare_client"),
    ) {
        out.push(Target {
            what: "3. signing layer on a token-cache hit, over the bare client service (at most +0.2 µs)".into(),
            measured: format!("+{}", time(hit - bare)),
            met: Some(hit - bare <= 200.0),
        });
    }
    for (group, functions) in groups.iter().filter(|(g, _)| g.starts_with("bound/")) {
        if let (Some(ours), Some(base)) = (
            functions.get("sign_layer_bound"),
            functions.get("raw_signature_plus_body_sha256"),
        ) {
            out.push(Target {
                what: format!("4. {group}: a bound request through the layer ÷ pre-parsed signature + body SHA-256 + bare call (at most 1.2x)"),
                measured: format!("{:.2}x", ours.median / base.median),
                met: Some(ours.median / base.median <= 1.2),
            });
        }
    }
    for alg in ["EdDSA", "ES256"] {
        let g = format!("wimse/{alg}");
        if let (Some(ours), Some(floor)) = (
            m(&g, "wit_wpt_layer_wit_cache_hit"),
            m(&g, "raw_proof_signature_plus_bare_router"),
        ) {
            out.push(Target {
                what: format!("8. {g}: WIT (cache hit) + fresh WPT through the layer ÷ one pre-parsed proof signature check + bare router (at most 1.15x)"),
                measured: format!("{:.2}x (+{})", ours / floor, time(ours - floor)),
                met: Some(ours / floor <= 1.15),
            });
        }
    }
    for path in [
        "verify_cache_hit",
        "sign_cache_hit",
        "baseline_shared_nothing",
    ] {
        if let (Some(one), Some(two)) = (
            m("concurrency", &format!("{path}/1_threads")),
            m("concurrency", &format!("{path}/2_threads")),
        ) {
            let scaling = 2.0 * one / two;
            let ceiling = path.starts_with("baseline");
            out.push(Target {
                what: format!(
                    "5. {path}: 2 threads ÷ 1 thread throughput (at least 1.8x{})",
                    if ceiling {
                        "; the machine's own ceiling, no target"
                    } else {
                        ""
                    }
                ),
                measured: format!("{scaling:.2}x"),
                met: (!ceiling).then_some(scaling >= 1.8),
            });
        }
    }
    let rps = |mode: &str| {
        let mut v: Vec<f64> = load
            .runs
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, runs)| runs.iter().map(|r| r.rps).collect())
            .unwrap_or_default();
        median(&mut v)
    };
    let off = rps("off");
    out.push(Target {
        what:
            "6. service-a -> service-b over HTTP, cached tokens ÷ no authentication (at least 0.9x)"
                .into(),
        measured: format!(
            "{:.2}x ({:.0} vs {:.0} requests/s)",
            rps("svcauth") / off,
            rps("svcauth"),
            off
        ),
        met: Some(rps("svcauth") / off >= 0.9),
    });
    let ops: Vec<f64> = load
        .runs
        .iter()
        .filter(|(m, _)| *m == "svcauth-revocation")
        .flat_map(|(_, runs)| {
            runs.iter()
                .filter_map(|r| Some(r.redis_ops? as f64 / r.requests))
        })
        .collect();
    out.push(Target {
        what: "10. the HTTP pair, cached tokens with replay and revocation on Redis ÷ the same without Redis (at least 0.9x), and Redis operations per request".into(),
        measured: format!(
            "{:.2}x ({:.0} vs {:.0} requests/s); {:.4} Redis operations per request",
            rps("svcauth-revocation") / rps("svcauth"),
            rps("svcauth-revocation"),
            rps("svcauth"),
            ops.iter().copied().fold(0.0, f64::max)
        ),
        met: Some(rps("svcauth-revocation") / rps("svcauth") >= 0.9 && ops.iter().all(|o| *o == 0.0)),
    });
    out.push(Target {
        what: "6. a fresh ES256 token per request: svcauth (bound, binding and replay checked) beside jwt-authorizer".into(),
        measured: format!(
            "{:.0} vs {:.0} requests/s ({:.2}x); with cached tokens jwt-authorizer does {:.0} ({:.2}x svcauth)",
            rps("svcauth-fresh"),
            rps("jwt-authorizer-fresh"),
            rps("svcauth-fresh") / rps("jwt-authorizer-fresh"),
            rps("jwt-authorizer"),
            rps("jwt-authorizer") / rps("svcauth"),
        ),
        met: None,
    });
    let n = |k: &str| memory[k].as_u64().unwrap_or(0);
    out.push(Target {
        what: format!(
            "7. {} distinct tokens: verification cache ≤ {} entries, token cache ≤ {} audiences; peak RSS",
            n("tokens"),
            n("verify_cache_bound"),
            n("sign_cache_bound")
        ),
        measured: format!(
            "at most {} and {}; peak RSS {:.1} MiB",
            n("verify_cache_max"),
            n("sign_cache_max"),
            n("peak_rss_kib") as f64 / 1024.0
        ),
        met: Some(
            n("verify_cache_max") <= n("verify_cache_bound") + n("threads")
                && n("sign_cache_max") <= n("sign_cache_bound") + n("threads"),
        ),
    });
    out.push(super::slow_signer::target(slow));
    out.extend(super::revocation::targets(groups, revoked));
    out.extend(super::txn::targets(groups));
    out
}

fn groups_section(out: &mut String, groups: &Groups) {
    let _ = writeln!(out, "## Criterion groups\n");
    for (group, functions) in groups {
        let baseline = BASELINES
            .iter()
            .find_map(|b| functions.get(*b).map(|f| (*b, f)));
        let _ = writeln!(
            out,
            "### {group}\n\n| benchmark | median | 95% interval | ratio to baseline |\n|---|---|---|---|"
        );
        for (name, f) in functions {
            let ratio = match baseline {
                // Threads run side by side: time ratios mean nothing here,
                // the scaling is in the targets table.
                _ if group == "concurrency" => String::new(),
                Some((b, _)) if b == name.as_str() => "baseline".into(),
                Some((_, base)) if f.median / base.median < 0.1 => {
                    format!(
                        "{:.4}x ({:.0}x less)",
                        f.median / base.median,
                        base.median / f.median
                    )
                }
                Some((_, base)) => format!("{:.2}x", f.median / base.median),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} – {} | {ratio} |",
                time(f.median),
                time(f.low),
                time(f.high)
            );
        }
        let _ = writeln!(out);
    }
}

fn load_section(out: &mut String, load: &Load) {
    let _ = writeln!(
        out,
        "## HTTP load: service-a -> service-b on loopback (target 6)\n\n\
         `benches/examples/loadpair.rs`: A answers `GET /call` by calling `GET /whoami` on B through a pooled reqwest client; both on one 2-worker tokio runtime, wrk on the same 2 cores. Load: {}.\n\n\
         | mode | requests/s (median) | min – max | ratio to `off` | p50 latency | p99 latency |\n|---|---|---|---|---|---|",
        load.command
    );
    let mut off = f64::NAN;
    for (mode, runs) in &load.runs {
        let mut rps: Vec<f64> = runs.iter().map(|r| r.rps).collect();
        let mut p50: Vec<f64> = runs.iter().map(|r| r.p50_ms).collect();
        let mut p99: Vec<f64> = runs.iter().map(|r| r.p99_ms).collect();
        let med = median(&mut rps);
        if *mode == "off" {
            off = med;
        }
        let _ = writeln!(
            out,
            "| {mode} | {med:.0} | {:.0} – {:.0} | {:.2}x | {:.2} ms | {:.2} ms |",
            rps.first().copied().unwrap_or(f64::NAN),
            rps.last().copied().unwrap_or(f64::NAN),
            med / off,
            median(&mut p50),
            median(&mut p99)
        );
    }
    let _ = writeln!(
        out,
        "\nModes: `off` sends and checks no token; `svcauth` attaches A's cached token and B's VerifyLayer answers from its verification cache; `jwt-authorizer` is the same cached token checked by jwt-authorizer 0.15 (a signature check per request); `*-fresh` mint a fresh ES256 token bound to each request, which svcauth verifies in full (binding and replay check included) and jwt-authorizer verifies without the binding.\n"
    );
}

fn memory_section(out: &mut String, memory: &Value) {
    let n = |k: &str| memory[k].as_u64().unwrap_or(0);
    let mib = |k: &str| n(k) as f64 / 1024.0;
    let tenths = |k: &str| {
        memory[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| format!("{:.1}", v.as_f64().unwrap_or(0.0) / 1024.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let _ = writeln!(
        out,
        "## Memory under {} distinct tokens (target 7)\n\n\
         `benches/examples/memory.rs`, on {} threads, in {:.0} s: every token valid (EdDSA, ten minutes), minted on the fly and never held, so only the bounds can hold the caches.\n\n\
         | | bound | most seen |\n|---|---|---|\n\
         | verification cache (entries) | {} | {} |\n\
         | token cache (audiences) | {} | {} |\n\n\
         RSS: {:.1} MiB at start, {:.1} MiB after the verification flood, {:.1} MiB at the end; peak {:.1} MiB.\n\n\
         RSS at each tenth of the verification flood (MiB): {}.\n\n\
         RSS at each tenth of the signing flood (MiB): {}.\n",
        n("tokens"),
        n("threads"),
        memory["seconds"].as_f64().unwrap_or(0.0),
        n("verify_cache_bound"),
        n("verify_cache_max"),
        n("sign_cache_bound"),
        n("sign_cache_max"),
        mib("rss_start_kib"),
        mib("rss_after_verify_kib"),
        mib("rss_end_kib"),
        mib("peak_rss_kib"),
        tenths("verify_rss_tenths_kib"),
        tenths("sign_rss_tenths_kib"),
    );
}

fn repeats_section(out: &mut String, repeats: &[Vec<(String, Option<f64>)>]) {
    if repeats.len() < 2 {
        return;
    }
    let _ = writeln!(
        out,
        "## Run to run\n\nThe ratios closest to their targets, from the full run and from {} re-runs of their groups right after it (1 s warm-up, 3 s measurement). This VM's second core is noisy: the last column counts the runs that meet the target.\n",
        repeats.len() - 1
    );
    let _ = write!(out, "| ratio |");
    for i in 1..=repeats.len() {
        let _ = write!(out, " run {i} |");
    }
    let _ = writeln!(
        out,
        " target met |\n|---|{}---|",
        "---|".repeat(repeats.len())
    );
    for (i, (name, _)) in repeats[0].iter().enumerate() {
        // The target of each ratio, by its number; the machine's own
        // ceiling has none.
        let meets = |v: f64| -> Option<bool> {
            match name.split('.').next() {
                Some("1") => Some(v <= 1.5),
                Some("3") => Some(v <= 200.0),
                Some("5") if !name.contains("baseline") => Some(v >= 1.8),
                Some("11") => Some(v <= 1.3),
                _ => None,
            }
        };
        let met = repeats
            .iter()
            .filter_map(|run| run.get(i).and_then(|(_, v)| *v).and_then(meets))
            .collect::<Vec<bool>>();
        let _ = write!(out, "| {name} |");
        for run in repeats {
            match run.get(i).and_then(|(_, v)| *v) {
                Some(v) if name.contains(", ns") => {
                    let _ = write!(out, " +{v:.0} ns |");
                }
                Some(v) => {
                    let _ = write!(out, " {v:.2}x |");
                }
                None => {
                    let _ = write!(out, " |");
                }
            }
        }
        if met.is_empty() {
            let _ = writeln!(out, " no target |");
        } else {
            let n = met.iter().filter(|m| **m).count();
            let _ = writeln!(out, " {n} of {} |", met.len());
        }
    }
    let _ = writeln!(out);
}

pub(super) fn write(
    groups: &Groups,
    repeats: &[Vec<(String, Option<f64>)>],
    load: &Load,
    runs: &[Value; 3],
    quick: bool,
) -> String {
    let mut out = String::new();
    let command = if quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    let _ = writeln!(out, "# svcauth benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `{command}` on {}. Each criterion group holds its own baselines, measured in the same run, and every ratio is to them; absolute times vary between machines, ratios much less. Medians with their 95% confidence interval (criterion).{}\n",
        machine(),
        if quick {
            " **Quick mode**: few samples, short load runs, 100,000 tokens; a smoke check, not a reference."
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "## Targets\n\nThe targets of the benchmarks issue, each read from this run.\n\n| target | measured | met |\n|---|---|---|"
    );
    for t in targets(groups, load, runs) {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "reported",
        };
        let _ = writeln!(out, "| {} | {} | {met} |", t.what, t.measured);
    }
    let _ = writeln!(out);
    let notes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bench/NOTES.md");
    if let Ok(notes) = std::fs::read_to_string(notes) {
        let _ = writeln!(out, "{notes}");
    }
    repeats_section(&mut out, repeats);
    load_section(&mut out, load);
    memory_section(&mut out, &runs[0]);
    groups_section(&mut out, groups);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_to_run_counts_the_runs_that_meet_each_target() {
        let run = |a: f64, b: f64, c: f64| {
            vec![
                (
                    "1. layer/EdDSA: cache hit ÷ bare router".to_owned(),
                    Some(a),
                ),
                (
                    "3. sign layer on a hit, ns over the bare client".to_owned(),
                    Some(b),
                ),
                (
                    "5. baseline_shared_nothing: 2 threads ÷ 1 thread throughput".to_owned(),
                    Some(c),
                ),
            ]
        };
        let mut out = String::new();
        repeats_section(&mut out, &[run(1.51, 120.0, 2.0), run(1.43, 130.0, 1.9)]);
        assert!(out.contains("| 1.51x | 1.43x | 1 of 2 |"), "{out}");
        assert!(out.contains("| +120 ns | +130 ns | 2 of 2 |"), "{out}");
        assert!(out.contains("| 2.00x | 1.90x | no target |"), "{out}");
    }
}
