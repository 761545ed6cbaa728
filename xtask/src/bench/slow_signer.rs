//! Target 9: calls with a warm token cache cost the same whether the key
//! signs in memory or after 20 ms, as an HSM or a KMS does (see
//! `benches/examples/slow_signer.rs`).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::report::Target;

/// Runs the alternating rounds; their JSON report.
pub(crate) fn run(root: &Path, quick: bool) -> Result<Value, String> {
    let (rounds, secs) = if quick { ("2", "1") } else { ("6", "3") };
    let binary = root.join("target/release/examples/slow_signer");
    eprintln!("==> slow signer run: {rounds} rounds of {secs} s per key");
    let output = Command::new(&binary)
        .args(["--rounds", rounds, "--secs", secs])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", binary.display()))?;
    if !output.status.success() {
        return Err(format!("the slow signer run failed ({})", output.status));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the slow signer run printed no report: {e}"))
}

/// Target 9, read from the run's report.
pub(super) fn target(slow: &Value) -> Target {
    let us = |mode: &str, k: &str| slow[mode][k].as_f64().unwrap_or(f64::NAN);
    let ratio = us("remote_20ms", "p99_us") / us("memory", "p99_us");
    Target {
        what: format!(
            "9. calls over HTTP with a warm token cache, key signing after {} ms (an HSM, a KMS) ÷ key in memory: p99 (at most 1.1x)",
            slow["delay_ms"]
        ),
        measured: format!(
            "{ratio:.2}x (p99 {:.0} vs {:.0} µs, p50 {:.0} vs {:.0} µs; median of {} alternating rounds of {} s, {} clients; {} slow signatures renewed tokens meanwhile, `benches/examples/slow_signer.rs`)",
            us("remote_20ms", "p99_us"),
            us("memory", "p99_us"),
            us("remote_20ms", "p50_us"),
            us("memory", "p50_us"),
            slow["rounds"],
            slow["secs"],
            slow["clients"],
            slow["remote_signatures"]
        ),
        met: Some(ratio <= 1.1),
    }
}
