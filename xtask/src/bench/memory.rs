//! Target 7: the caches under a flood of distinct tokens (see
//! `benches/examples/memory.rs`).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Runs the flood; its JSON report, or why it failed (a cache over its
/// bound exits 1).
pub(crate) fn run(root: &Path, quick: bool) -> Result<Value, String> {
    let tokens = if quick { "100000" } else { "1000000" };
    let binary = root.join("target/release/examples/memory");
    eprintln!("==> memory run: {tokens} distinct tokens");
    let output = Command::new(&binary)
        .args(["--tokens", tokens, "--threads", "2"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", binary.display()))?;
    let report: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the memory run printed no report ({}): {e}", output.status))?;
    if !output.status.success() {
        return Err(format!("a cache went past its bound: {report}"));
    }
    Ok(report)
}
