//! `cargo xtask bench [--quick]`: runs the criterion benchmarks, the HTTP
//! load run (wrk), the memory run, the slow-signer run and the revocation run, and writes BENCHMARKS.md, every figure
//! a ratio to a baseline measured in the same run.

pub(crate) mod load;
mod memory;
mod report;
mod revocation;
mod slow_signer;
mod txn;

use std::collections::BTreeMap;
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
const BASELINES: [&str; 8] = [
    "cache_hit_without_revocation",
    "service_token_only",
    "jsonwebtoken_decode",
    "bare_router",
    "bare_client",
    "raw_signature_preparsed",
    "raw_signature_plus_body_sha256",
    "baseline_shared_nothing/1_threads",
];

type Groups = BTreeMap<String, BTreeMap<String, Figure>>;

fn read(root: &Path) -> Result<Groups, String> {
    let mut groups: Groups = BTreeMap::new();
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

/// The criterion timing of a full run and of a quick one.
const FULL: [&str; 4] = ["--warm-up-time", "2", "--measurement-time", "5"];
const QUICK: [&str; 6] = [
    "--warm-up-time",
    "0.3",
    "--measurement-time",
    "0.7",
    "--sample-size",
    "10",
];
/// What a full run measures twice more: the ratios closest to their targets
/// and most exposed to this VM's run-to-run noise.
const REPEAT_FILTER: &str =
    "^(layer/[^/]+/(bare_router|noop_layer|verify_layer_cache_hit)$|sign_layer/|concurrency/|txn/)";

fn criterion(timing: &[&str], filter: Option<&str>) -> Result<(), String> {
    let mut args = vec!["bench", "--package", "svcauth-benches", "--benches", "--"];
    args.extend_from_slice(timing);
    args.extend(filter);
    crate::cargo(&args)
}

pub(crate) fn run(root: &Path, quick: bool) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(root.join("target/criterion"));
    // The bench profile, as `cargo bench` builds: one set of artifacts.
    crate::cargo(&[
        "build",
        "--profile",
        "bench",
        "--package",
        "svcauth-benches",
        "--examples",
    ])?;
    criterion(if quick { &QUICK } else { &FULL }, None)?;
    let groups = read(root)?;
    let mut repeats = vec![key_ratios(&groups)];
    if !quick {
        for _ in 0..2 {
            criterion(
                &["--warm-up-time", "1", "--measurement-time", "3"],
                Some(REPEAT_FILTER),
            )?;
            repeats.push(key_ratios(&read(root)?));
        }
    }
    let load = load::run(root, quick)?;
    let memory = memory::run(root, quick)?;
    let slow = slow_signer::run(root, quick)?;
    let revoked = revocation::run(root, quick)?;
    let out = report::write(&groups, &repeats, &load, &[memory, slow, revoked], quick);
    std::fs::write(root.join("BENCHMARKS.md"), out).map_err(|e| e.to_string())?;
    eprintln!("wrote BENCHMARKS.md ({} criterion groups)", groups.len());
    Ok(())
}

/// The ratios a full run measures three times, by name, in a fixed order.
fn key_ratios(groups: &Groups) -> Vec<(String, Option<f64>)> {
    let get = |g: &str, f: &str| groups.get(g).and_then(|g| g.get(f)).map(|f| f.median);
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    let mut out = Vec::new();
    for alg in ["EdDSA", "ES256", "RS256"] {
        let g = format!("layer/{alg}");
        out.push((
            format!("1. layer/{alg}: cache hit ÷ bare router"),
            ratio(get(&g, "verify_layer_cache_hit"), get(&g, "bare_router")),
        ));
        out.push((
            format!("1. layer/{alg}: around the Router ÷ bare router"),
            ratio(
                get(&g, "verify_layer_around_router"),
                get(&g, "bare_router"),
            ),
        ));
    }
    out.push((
        "11. txn/EdDSA: service and Txn-Token ÷ service token only".into(),
        ratio(
            get("txn/EdDSA", "service_and_txn_token"),
            get("txn/EdDSA", "service_token_only"),
        ),
    ));
    out.push((
        "3. sign layer on a hit, ns over the bare client".into(),
        get("sign_layer", "sign_layer_cache_hit")
            .zip(get("sign_layer", "bare_client"))
            .map(|(a, b)| a - b),
    ));
    for path in [
        "verify_cache_hit",
        "sign_cache_hit",
        "baseline_shared_nothing",
    ] {
        out.push((
            format!("5. {path}: 2 threads ÷ 1 thread throughput"),
            get("concurrency", &format!("{path}/1_threads"))
                .zip(get("concurrency", &format!("{path}/2_threads")))
                .map(|(one, two)| 2.0 * one / two),
        ));
    }
    out
}
