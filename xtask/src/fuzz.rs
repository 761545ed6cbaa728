//! `cargo xtask fuzz`: the cargo-fuzz targets of `fuzz/`, one per parser of
//! untrusted input. Runs them for a while, writes their seed corpora, or
//! runs each for a number of executions and writes the figures into
//! RELIABILITY.md. `cargo xtask test` runs each for a few seconds over its
//! committed corpus, so a regression input that crashes fails CI.
//!
//! cargo-fuzz builds with `-s none`: no sanitizer, so no nightly toolchain.
//! The workspace forbids `unsafe`, so the memory errors AddressSanitizer
//! would catch cannot come from our code; what fuzzing finds here is
//! panics, overflow (`-Cdebug-assertions` is on) and broken properties.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Seconds each target runs in `cargo xtask test`.
pub(crate) const SMOKE_SECS: u64 = 3;

/// `cargo xtask fuzz` options.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Only these targets (default: every target in fuzz/Cargo.toml). With
    /// --report, their rows of RELIABILITY.md are rewritten and the others kept.
    targets: Vec<String>,
    /// Seconds each target runs.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Write the seed corpora (`fuzz/corpus/TARGET/seed-*`) and stop.
    #[arg(long, conflicts_with_all = ["report", "targets"])]
    seeds: bool,
    /// Run every target for --runs executions and write RELIABILITY.md.
    #[arg(long)]
    report: bool,
    /// Executions per target for --report.
    #[arg(long, default_value_t = 10_000_000, requires = "report")]
    runs: u64,
}

/// What one run of a target printed at its end.
#[derive(Debug, Default, Clone)]
struct Outcome {
    target: String,
    executions: u64,
    edges: u64,
    features: u64,
    corpus: u64,
    seconds: u64,
    crashed: bool,
}

pub(crate) fn run(root: &Path, args: Args) -> Result<(), String> {
    ensure_cargo_fuzz()?;
    let fuzz = root.join("fuzz");
    if args.seeds {
        return cargo_in(&fuzz, &["run", "--quiet", "--example", "make_seeds"]);
    }
    let all = targets(&fuzz)?;
    if let Some(t) = args.targets.iter().find(|t| !all.contains(t)) {
        return Err(format!("no fuzz target {t:?}; targets: {}", all.join(", ")));
    }
    let chosen = if args.targets.is_empty() {
        all.clone()
    } else {
        args.targets.clone()
    };
    build(&fuzz)?;
    let limit = if args.report {
        format!("-runs={}", args.runs)
    } else {
        format!("-max_total_time={}", args.secs)
    };
    let outcomes = run_all(&fuzz, &chosen, &limit)?;
    for o in &outcomes {
        eprintln!(
            "{:<16} {:>12} runs  cov {:>5}  ft {:>6}  {:>5} s  {}",
            o.target,
            o.executions,
            o.edges,
            o.features,
            o.seconds,
            if o.crashed { "CRASHED" } else { "ok" }
        );
    }
    if args.report {
        write_report(root, &all, &outcomes, args.runs)?;
    }
    match outcomes.iter().find(|o| o.crashed) {
        Some(o) => Err(format!(
            "fuzz target {} crashed: the input is in fuzz/artifacts/{}/",
            o.target, o.target
        )),
        None => Ok(()),
    }
}

/// Every target for [`SMOKE_SECS`] over its committed corpus (seeds and
/// regression inputs): part of `cargo xtask test`.
pub(crate) fn smoke(root: &Path) -> Result<(), String> {
    ensure_cargo_fuzz()?;
    let fuzz = root.join("fuzz");
    let targets = targets(&fuzz)?;
    build(&fuzz)?;
    let outcomes = run_all(&fuzz, &targets, &format!("-max_total_time={SMOKE_SECS}"))?;
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.crashed)
        .map(|o| o.target.as_str())
        .collect();
    if crashed.is_empty() {
        eprintln!("fuzz smoke: {} targets, no crash", outcomes.len());
        Ok(())
    } else {
        Err(format!(
            "fuzz targets crashed: {} (inputs in fuzz/artifacts/)",
            crashed.join(", ")
        ))
    }
}

/// cargo-fuzz, installed from crates.io when missing.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let have = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    eprintln!("==> installing cargo-fuzz (crates.io) for the fuzz targets");
    let status = Command::new(&cargo)
        .args(["install", "--locked", "--quiet", "cargo-fuzz"])
        .status()
        .map_err(|e| format!("running cargo install cargo-fuzz: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo install cargo-fuzz failed ({status})"))
    }
}

/// The fuzz targets: the `[[bin]]`s of fuzz/Cargo.toml.
fn targets(fuzz: &Path) -> Result<Vec<String>, String> {
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
            names.push(name.trim_matches('"').to_owned());
        }
    }
    if names.is_empty() {
        return Err("fuzz/Cargo.toml names no [[bin]] target".into());
    }
    Ok(names)
}

fn build(fuzz: &Path) -> Result<(), String> {
    cargo_in(fuzz, &["fuzz", "build", "-s", "none"])
}

/// `cargo args` in `dir`, announced.
fn cargo_in(dir: &Path, args: &[&str]) -> Result<(), String> {
    eprintln!("\n==> (cd {}; cargo {})", dir.display(), args.join(" "));
    crate::cargo_in(dir, args)
}

/// Runs `targets` with libFuzzer's `limit`, as many at once as there are
/// cores.
fn run_all(fuzz: &Path, targets: &[String], limit: &str) -> Result<Vec<Outcome>, String> {
    let width = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut outcomes = Vec::new();
    for chunk in targets.chunks(width) {
        let results: Vec<Result<Outcome, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|t| scope.spawn(move || run_one(fuzz, t, limit)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a fuzz runner panicked".into()))
                })
                .collect()
        });
        for result in results {
            outcomes.push(result?);
        }
    }
    Ok(outcomes)
}

/// One target over a scratch corpus (where libFuzzer writes what it
/// finds) and the committed one (read only), until `limit`.
fn run_one(fuzz: &Path, target: &str, limit: &str) -> Result<Outcome, String> {
    let scratch: PathBuf = fuzz.join("target").join("corpus").join(target);
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let committed = fuzz.join("corpus").join(target);
    std::fs::create_dir_all(&committed).map_err(|e| e.to_string())?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args(["fuzz", "run", "-s", "none", target])
        .arg(&scratch)
        .arg(&committed)
        .args(["--", limit, "-print_final_stats=1"])
        .current_dir(fuzz)
        .output()
        .map_err(|e| format!("could not run cargo fuzz: {e}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    let mut outcome = parse_log(&log);
    outcome.target = target.to_owned();
    outcome.crashed = !output.status.success();
    if outcome.crashed {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!(
            "---- {target} ----\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(outcome)
}

/// The figures of libFuzzer's last status line and final stats.
fn parse_log(log: &str) -> Outcome {
    let mut o = Outcome::default();
    let field = |line: &str, name: &str| -> Option<u64> {
        let rest = &line[line.find(name)? + name.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    for line in log.lines() {
        if line.starts_with('#')
            && (line.contains("DONE")
                || line.contains("pulse")
                || line.contains("NEW")
                || line.contains("REDUCE"))
        {
            o.edges = field(line, "cov: ").unwrap_or(o.edges);
            o.features = field(line, "ft: ").unwrap_or(o.features);
            o.corpus = line
                .split("corp: ")
                .nth(1)
                .and_then(|c| c.split('/').next()?.parse().ok())
                .unwrap_or(o.corpus);
        }
        if let Some(n) = field(line, "stat::number_of_executed_units: ") {
            o.executions = n;
        }
        if let Some(rest) = line.strip_prefix("Done ") {
            let mut words = rest.split_whitespace();
            o.executions = words
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(o.executions);
            o.seconds = words
                .nth(2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(o.seconds);
        }
    }
    o
}

/// What each target reads, for the report.
fn reads(target: &str) -> &'static str {
    match target {
        "jws" => "compact JWS: segments, header, payload (`svcauth_core::jws`)",
        "verify" => "a service token through the whole verifier, real keys",
        "jwks" => "JWKS documents (`KeySet::from_jwks`), round trip",
        "discovery" => "OpenID discovery documents (issuer, `jwks_uri`)",
        "token_response" => "STS token answers (RFC 6749 §5.1)",
        "introspection" => "introspection answers, JSON (RFC 7662) and JWT (RFC 9701)",
        "authorization" => "`Authorization` headers (RFC 6750 §2.1), both readers",
        "binding" => "request binding: `htu` normalisation, body and query hashes",
        "wimse" => "WIMSE WIT + WPT through the workload verifier; workload identifiers",
        "txn" => {
            "Txn-Token headers through the verifier; Txn-Token Requests (RFC 8693 forms) at the TTS"
        }
        _ => "",
    }
}

/// Bugs fuzzing found, each fixed with a regression test and its input
/// kept in `fuzz/corpus/<target>/regression-*`.
const FINDINGS: &[(&str, &str)] = &[
    (
        "binding",
        "`htu(\"http\", \":80\", ..)` gave `http:///..`: an authority with a port and no host is now refused (`BindingError::BadAuthority`)",
    ),
    (
        "token_response",
        "invalid UTF-8 inside a member the parser ignores was accepted (serde skips ignored members unchecked): the whole answer must be UTF-8",
    ),
    (
        "token_response",
        "an `access_token` with bytes over 0x7f went out in the `Authorization` header as it came, and `Token::as_str` gave \"\": tokens must be RFC 6750 b64tokens",
    ),
    (
        "token_response",
        "a JSON array was read as the answer's fields in order, and of two `access_token` members one was kept: one object without repeated members is required",
    ),
    (
        "token_response",
        "an answer whose token had already expired (a JWT's own `exp` in the past) was taken and would be asked for again at once, in a loop; `expires_in` near `u64::MAX` overflowed",
    ),
    (
        "authorization",
        "not a bug: the raw-bytes reader of the fast path returns a non-ASCII header's bytes where the checked reader refuses it; documented (no verified token can equal them)",
    ),
];

/// As RELIABILITY.md has the section now: the date of the last run of all
/// targets (`all targets: DATE`), and the table's row of each target.
fn written(text: &str) -> (Option<String>, Vec<(String, String)>) {
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Fuzzing"))
        .unwrap_or("");
    let full_run = section
        .find("all targets: ")
        .and_then(|at| section.get(at..at + "all targets: YYYY-MM-DD".len()))
        .map(str::to_owned);
    // Written before runs of some targets existed: its one date is a full run's.
    let full_run = full_run.or_else(|| {
        let at = section.find("--report` (")? + "--report` (".len();
        Some(format!("all targets: {}", section.get(at..at + 10)?))
    });
    let rows = section
        .lines()
        .filter_map(|line| {
            let name = line.strip_prefix("| `")?.split('`').next()?;
            Some((name.to_owned(), line.to_owned()))
        })
        .collect();
    (full_run, rows)
}

/// Writes the section: a row for each of `all`, from this run's `outcomes`
/// or, for a target not run now, as it was written before.
fn write_report(
    root: &Path,
    all: &[String],
    outcomes: &[Outcome],
    runs: u64,
) -> Result<(), String> {
    let (date, machine) = (crate::reliability::today(), crate::reliability::machine());
    let text = std::fs::read_to_string(root.join("RELIABILITY.md")).unwrap_or_default();
    let (full_run, before) = written(&text);
    // A run of some targets keeps the others' rows and the date they ran.
    let stamp = if outcomes.len() < all.len() {
        let names: Vec<&str> = outcomes.iter().map(|o| o.target.as_str()).collect();
        format!(
            "{}; {} again on {date}: `cargo xtask fuzz --report {}`",
            full_run.as_deref().unwrap_or("all targets: never"),
            names.join(", "),
            names.join(" ")
        )
    } else {
        format!("all targets: {date}")
    };
    let cargo_fuzz = crate::reliability::capture("cargo", &["fuzz", "--version"]);
    let mut md = format!(
        "Written by `cargo xtask fuzz --report` ({stamp}).\n\
         {machine}; {cargo_fuzz}.\n\n\
         Every parser of untrusted input has a cargo-fuzz target in `fuzz/`\n\
         (libFuzzer through `libfuzzer-sys`). Each checks properties, not only\n\
         \"no panic\" (see the target's doc comment). Built with `cargo fuzz\n\
         build -s none`: no sanitizer, on the stable toolchain, with\n\
         `-Cdebug-assertions` (integer overflow panics). The workspace forbids\n\
         `unsafe`, so AddressSanitizer would look for what cannot happen in our\n\
         code. Each target ran {runs} executions from its committed corpus\n\
         (`fuzz/corpus/<target>`: seeds from `cargo xtask fuzz --seeds`, and\n\
         the inputs of past findings). `cargo xtask test` runs every target\n\
         for {SMOKE_SECS} s over that corpus.\n\n\
         | target | reads | executions | edges | features | corpus | seconds | crashes |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n"
    );
    for target in all {
        let Some(o) = outcomes.iter().find(|o| &o.target == target) else {
            if let Some((_, row)) = before.iter().find(|(name, _)| name == target) {
                md.push_str(row);
                md.push('\n');
            }
            continue;
        };
        md.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
            o.target,
            reads(&o.target),
            o.executions,
            o.edges,
            o.features,
            o.corpus,
            o.seconds,
            u8::from(o.crashed)
        ));
    }
    md.push_str("\nReproduce: `cargo xtask fuzz --report` (all targets), or\n`cargo xtask fuzz TARGET --secs N` for one.\n\n### What fuzzing found\n\n");
    for (target, finding) in FINDINGS {
        md.push_str(&format!("- `{target}`: {finding}.\n"));
    }
    crate::reliability::write_section(root, "## Fuzzing", &md)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_some_targets_finds_the_full_runs_date_and_rows() {
        let old = "# R\n\n## Fuzzing\n\nWritten by `cargo xtask fuzz --report` (2026-12-03).\n\
                   | `jws` | x | 1 |\n| `verify` | y | 2 |\n\n## Floods\n\n| `jws` | no |\n";
        let (date, rows) = written(old);
        assert_eq!(date.as_deref(), Some("all targets: 2026-12-03"));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], ("verify".into(), "| `verify` | y | 2 |".into()));
        let new = "# R\n\n## Fuzzing\n\nWritten by `cargo xtask fuzz --report` (all targets: 2026-12-03; \
                   verify again on 2026-12-04).\n";
        assert_eq!(written(new).0.as_deref(), Some("all targets: 2026-12-03"));
    }

    #[test]
    fn reads_libfuzzers_last_status_and_final_stats() {
        let log = "\
INFO: Seed: 1
#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb
#1802874\tDONE   cov: 714 ft: 1517 corp: 391/53Kb lim: 4096 exec/s: 163897 rss: 66Mb
stat::number_of_executed_units: 1802874
Done 1802874 runs in 11 second(s)
";
        let o = parse_log(log);
        assert_eq!(
            (o.executions, o.edges, o.features, o.corpus, o.seconds),
            (1_802_874, 714, 1517, 391, 11)
        );
    }

    #[test]
    fn the_targets_are_the_bins_of_the_fuzz_manifest() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let targets = targets(&fuzz).unwrap();
        assert!(targets.contains(&"verify".to_owned()), "{targets:?}");
        assert!(!targets.iter().any(|t| t.contains("seeds")), "{targets:?}");
        for target in &targets {
            assert!(!reads(target).is_empty(), "{target} is described");
            assert!(
                fuzz.join("corpus").join(target).is_dir(),
                "{target} has a corpus"
            );
        }
    }
}
