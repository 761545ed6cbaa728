//! Target 10: revocation checked at cache-hit cost: Redis operations per
//! verified request, and how long a revocation takes to reach another
//! replica (see `benches/examples/revocation.rs`).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::report::Target;
use super::{Groups, time};

/// Runs the measurement against a redis-server of its own; its JSON report.
pub(crate) fn run(root: &Path, quick: bool) -> Result<Value, String> {
    let (requests, revocations) = if quick {
        ("10000", "100")
    } else {
        ("100000", "1000")
    };
    let binary = root.join("target/release/examples/revocation");
    eprintln!("==> revocation run: {requests} verified requests, {revocations} revocations");
    let output = Command::new(&binary)
        .args(["--requests", requests, "--revocations", revocations])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", binary.display()))?;
    if !output.status.success() {
        return Err(format!("the revocation run failed ({})", output.status));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the revocation run printed no report: {e}"))
}

/// Target 10, read from the criterion groups and the run's report.
pub(super) fn targets(groups: &Groups, revoked: &Value) -> Vec<Target> {
    let mut out = Vec::new();
    let hit = |f: &str| {
        groups
            .get("revocation/EdDSA")
            .and_then(|g| g.get(f))
            .map(|f| f.median)
    };
    if let (Some(plain), Some(memory), Some(mirror)) = (
        hit("cache_hit_without_revocation"),
        hit("cache_hit_memory_revocation"),
        hit("cache_hit_redis_mirror"),
    ) {
        out.push(Target {
            what: "10. a cache hit with revocation checked ÷ one without (at most 1.1x)".into(),
            measured: format!(
                "{:.2}x with the Redis store's mirror, {:.2}x in memory ({} vs {})",
                mirror / plain,
                memory / plain,
                time(mirror),
                time(plain)
            ),
            met: Some(mirror / plain <= 1.1),
        });
    }
    let r = |k: &str| revoked[k].as_f64().unwrap_or(f64::NAN);
    out.push(Target {
        what: "10. Redis operations per verified request, revocation and replay on Redis (0; before the mirror, 1)".into(),
        measured: format!(
            "{} over {} verified requests ({} cached, {} seen once) on two replicas; each replica's mirror reads the feed {:.1} times a second whatever the load",
            r("redis_ops_request_path"),
            r("verified"),
            r("cached"),
            r("seen_once"),
            r("mirror_reads_per_second_per_replica")
        ),
        met: Some(r("redis_ops_request_path") == 0.0),
    });
    out.push(Target {
        what: format!(
            "10. a revocation written on one replica, enforced by another: delay over {} revocations (within the {} ms staleness bound)",
            revoked["revocations"], revoked["staleness_bound_ms"]
        ),
        measured: format!(
            "median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            r("propagation_median_us") / 1000.0,
            r("propagation_p99_us") / 1000.0,
            r("propagation_max_us") / 1000.0
        ),
        met: Some(r("propagation_max_us") / 1000.0 <= r("staleness_bound_ms")),
    });
    out
}
