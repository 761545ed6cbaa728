//! Target 9: calls with a warm token cache cost the same whether the key
//! signs in memory or after 20 ms, as an HSM or a KMS does (see
//! `benches/examples/slow_signer.rs`).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

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
