//! `cargo xtask bench [--quick]`: runs the criterion benchmarks and writes
//! BENCHMARKS.md, every figure a ratio to a baseline measured in the same run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// One benchmark's result: median and its 95% confidence interval, in ns.
struct Figure {
    median: f64,
    low: f64,
    high: f64,
}

/// The baseline of each group, by function name.
const BASELINES: [&str; 5] = [
    "jsonwebtoken_decode",
    "bare_router",
    "bare_client",
    "raw_signature_preparsed",
    "baseline_shared_nothing/1_threads",
];

fn read(root: &Path) -> Result<BTreeMap<String, BTreeMap<String, Figure>>, String> {
    let mut groups: BTreeMap<String, BTreeMap<String, Figure>> = BTreeMap::new();
    let mut stack = vec![root.join("target/criterion")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir()
                && path
                    .file_name()
                    .is_some_and(|n| n != "report" && n != "base" && n != "change")
            {
                stack.push(path);
            } else if path.ends_with("new/benchmark.json") {
                let meta: Value = serde_json::from_str(
                    &std::fs::read_to_string(&path).map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
                let estimates = path.with_file_name("estimates.json");
                let est: Value = serde_json::from_str(
                    &std::fs::read_to_string(&estimates).map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
                let median = &est["median"];
                let group = meta["group_id"].as_str().unwrap_or("").to_owned();
                let function = meta["function_id"].as_str().unwrap_or("").to_owned();
                let figure = Figure {
                    median: median["point_estimate"].as_f64().unwrap_or(f64::NAN),
                    low: median["confidence_interval"]["lower_bound"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                    high: median["confidence_interval"]["upper_bound"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                };
                groups.entry(group).or_default().insert(function, figure);
            }
        }
    }
    Ok(groups)
}

fn time(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {rustc}, aws-lc-rs backend")
}

pub(crate) fn run(root: &Path, quick: bool) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(root.join("target/criterion"));
    let criterion_args: &[&str] = if quick {
        &[
            "--warm-up-time",
            "0.5",
            "--measurement-time",
            "1",
            "--sample-size",
            "10",
        ]
    } else {
        &["--warm-up-time", "2", "--measurement-time", "5"]
    };
    let mut args = vec!["bench", "--package", "svcauth-benches", "--benches", "--"];
    args.extend_from_slice(criterion_args);
    crate::cargo(&args)?;

    let groups = read(root)?;
    let mut out = String::new();
    let command = if quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    let _ = writeln!(out, "# svcauth benchmarks\n");
    let _ = writeln!(
        out,
        "Written by `{command}` on {}. Each group holds its own baseline, measured in the same run, and every ratio is to it; absolute times vary between machines, ratios much less.\n",
        machine()
    );
    let _ = writeln!(
        out,
        "Medians with their 95% confidence interval (criterion). {}\n",
        if quick {
            "Quick mode: few samples, wider intervals; a smoke check, not a reference."
        } else {
            ""
        }
    );

    let mut targets: Vec<(String, String, bool)> = Vec::new();
    for (group, functions) in &groups {
        let baseline = BASELINES
            .iter()
            .find_map(|b| functions.get(*b).map(|f| (*b, f)));
        let _ = writeln!(
            out,
            "## {group}\n\n| benchmark | median | 95% interval | ratio to baseline |\n|---|---|---|---|"
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

        let get = |n: &str| functions.get(n).map(|f| f.median);
        if let (Some(ours), Some(base)) = (get("verify_layer_cache_hit"), get("bare_router")) {
            targets.push((
                "1. verifying layer on a cache hit, against a bare router (at most 1.5x)".into(),
                format!("{:.2}x ({group})", ours / base),
                ours / base <= 1.5,
            ));
        }
        if let (Some(ours), Some(base)) = (get("svcauth_uncached"), get("jsonwebtoken_decode")) {
            targets.push((format!("2. first sight of a token, against jsonwebtoken decode (at most 1.05x), {group}"), format!("{:.2}x", ours / base), ours / base <= 1.05));
        }
        if let (Some(ours), Some(base)) = (get("sign_layer_cache_hit"), get("bare_client")) {
            targets.push(("3. signing layer on a token-cache hit, over a bare client service (at most +0.2 µs)".into(), format!("+{}", time(ours - base)), ours - base <= 200.0));
        }
        if let (Some(ours), Some(base)) = (get("svcauth_mint"), get("raw_signature_preparsed")) {
            targets.push((format!("4. a mint against the raw signature with a pre-parsed key (at most 1.2x; body hash not included), {group}"), format!("{:.2}x", ours / base), ours / base <= 1.2));
        }
        for path in [
            "verify_cache_hit",
            "sign_cache_hit",
            "baseline_shared_nothing",
        ] {
            if let (Some(one), Some(two)) = (
                get(&format!("{path}/1_threads")),
                get(&format!("{path}/2_threads")),
            ) {
                let scaling = 2.0 * one / two;
                let is_baseline = path.starts_with("baseline");
                targets.push((
                    format!(
                        "5. {path} on 2 threads against 1 (at least 1.8x{})",
                        if is_baseline {
                            "; the machine's ceiling"
                        } else {
                            ""
                        }
                    ),
                    format!("{scaling:.2}x"),
                    is_baseline || scaling >= 1.8,
                ));
            }
        }
    }
    targets.sort_by(|a, b| a.0.cmp(&b.0));
    let _ = writeln!(
        out,
        "## Targets\n\nThe targets of the benchmarks issue, each read from this run.\n\n| target | measured | met |\n|---|---|---|"
    );
    for (what, measured, met) in &targets {
        let _ = writeln!(
            out,
            "| {what} | {measured} | {} |",
            if *met { "yes" } else { "**no**" }
        );
    }
    let _ = writeln!(
        out,
        "| 6. service-a -> service-b over HTTP on loopback, against the pair without authentication; jwt-authorizer with a fresh ES256 token per request | not measured yet | |"
    );
    let _ = writeln!(
        out,
        "| 7. cache bounds and peak RSS under 1,000,000 distinct tokens | not measured yet | |"
    );
    let _ = writeln!(
        out,
        "| jwt-authorizer in the same groups as jsonwebtoken | not measured yet | |"
    );
    std::fs::write(root.join("BENCHMARKS.md"), out).map_err(|e| e.to_string())?;
    eprintln!("wrote BENCHMARKS.md ({} groups)", groups.len());
    Ok(())
}
