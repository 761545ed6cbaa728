//! Project chores: `cargo xtask test`, `cargo xtask keygen`, `cargo xtask demo`,
//! `cargo xtask bench`, `cargo xtask fuzz`, `cargo xtask soak`.
//!
//! One binary, one module per task; cargo is run through `$CARGO` from the
//! workspace root.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

mod bench;
mod demo;
mod flood;
mod fuzz;
mod keygen;
mod peers;
mod reliability;
mod soak;
mod tidy;

/// svcauth's project chores. Every task answers `--help`.
#[derive(clap::Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(clap::Subcommand)]
enum Task {
    /// Formatting check, tidy, clippy -D warnings, docs without warnings, all
    /// tests and doc tests, a few seconds of every fuzz target and a
    /// one-minute soak, as CI runs them (installs redis-server, PyJWT,
    /// grpcio, the node peers and cargo-fuzz when missing).
    Test,
    /// Writes a new PKCS#8 private key PEM and prints its public JWK and kid.
    Keygen(keygen::Args),
    /// Starts service-a, service-b, an OpenID Provider (node) and the
    /// gateway on loopback, and shows them at work, step by step.
    Demo,
    /// Source files under 500 lines (or a reason), no unused dependencies,
    /// workspace lints everywhere; part of `test`.
    Tidy,
    /// Runs the fuzz targets of fuzz/ (each parser of untrusted input), writes
    /// their seed corpora, or with --report writes RELIABILITY.md.
    Fuzz(fuzz::Args),
    /// The fleet (service-a, two service-b replicas on Redis, the OpenID
    /// Provider, the gateway) under steady load while faults are injected;
    /// checks that no legitimate call fails outside the windows the docs
    /// allow and nothing hostile is admitted; --report writes RELIABILITY.md.
    Soak(soak::Args),
    /// Legitimate cached traffic beside a flood of forged tokens at rising
    /// rates: its throughput and p99 at each; --report writes RELIABILITY.md.
    Flood(flood::Args),
    /// Runs the benchmarks and writes BENCHMARKS.md.
    Bench {
        /// A smoke check: short measurements, under 3 minutes once built.
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> ExitCode {
    // Unknown tasks or flags: clap prints the error and the usage, exit 2.
    let cli = <Cli as clap::Parser>::parse();
    let result = match cli.task {
        Task::Test => test(),
        Task::Keygen(args) => keygen::run(args),
        Task::Demo => demo::run(&root()),
        Task::Tidy => tidy::run(&root()),
        Task::Bench { quick } => bench::run(&root(), quick),
        Task::Fuzz(args) => fuzz::run(&root(), args),
        Task::Soak(args) => soak::run(&root(), args),
        Task::Flood(args) => flood::run(&root(), args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

pub(crate) fn cargo(args: &[&str]) -> Result<(), String> {
    eprintln!("\n==> cargo {}", args.join(" "));
    cargo_in(&root(), args)
}

/// Runs `cargo args` in `dir`; an error names the command.
pub(crate) fn cargo_in(dir: &std::path::Path, args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("could not run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

/// The whole suite, as CI runs it. Ends with one summary line,
/// `N passed, M failed`, over every test binary and doc test.
fn test() -> Result<(), String> {
    peers::install()?;
    let python = peers::install_jose_stacks(&root())?;
    // Peer tests must run here: with SVCAUTH_REQUIRE_PEERS a skip is a failure.
    let env = [
        ("SVCAUTH_REQUIRE_PEERS", "1".to_owned()),
        ("SVCAUTH_PEER_PYTHON", python.to_string_lossy().into_owned()),
    ];
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"])?;
    eprintln!("\n==> cargo xtask tidy");
    tidy::run(&root())?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // Both builds of the docs (default features, all features) without a
    // warning: a broken link is a failure, not a note.
    for features in [None, Some("--all-features")] {
        let mut args = vec!["doc", "--no-deps", "--workspace", "--quiet"];
        args.extend(features);
        eprintln!("\n==> RUSTDOCFLAGS='-D warnings' cargo {}", args.join(" "));
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .args(&args)
            .env("RUSTDOCFLAGS", "-D warnings")
            .current_dir(root())
            .status()
            .map_err(|e| format!("could not run cargo doc: {e}"))?;
        if !status.success() {
            return Err(format!("`cargo {}` has warnings", args.join(" ")));
        }
    }
    let mut totals = Totals::default();
    let result = cargo_test(&["test", "--workspace", "--all-targets"], &env, &mut totals)
        .and_then(|()| cargo_test(&["test", "--workspace", "--doc"], &env, &mut totals))
        .and_then(|()| {
            eprintln!(
                "\n==> every fuzz target for {} s over its corpus",
                fuzz::SMOKE_SECS
            );
            fuzz::smoke(&root())
        })
        .and_then(|()| {
            eprintln!("\n==> cargo xtask soak --minutes 1 (the smoke)");
            soak::run(
                &root(),
                soak::Args {
                    minutes: 1,
                    report: false,
                },
            )
        });
    println!(
        "\nxtask test: {} passed, {} failed",
        totals.passed, totals.failed
    );
    result
}

#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
}

/// Runs a `cargo test` command, echoing its output and adding up its
/// `test result:` lines.
fn cargo_test(args: &[&str], env: &[(&str, String)], totals: &mut Totals) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("\n==> cargo {}", args.join(" "));
    let mut child = Command::new(&cargo)
        .args(args)
        .current_dir(root())
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run {cargo}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        println!("{line}");
        if let Some(rest) = line.trim().strip_prefix("test result: ") {
            // "ok. 11 passed; 0 failed; 0 ignored; ..."
            let count = |word: &str| -> u64 {
                rest.split(';')
                    .filter_map(|part| part.trim().strip_suffix(word))
                    .filter_map(|n| n.rsplit(' ').next()?.parse::<u64>().ok())
                    .sum()
            };
            totals.passed += count(" passed");
            totals.failed += count(" failed");
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}
