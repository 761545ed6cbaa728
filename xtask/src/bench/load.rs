//! Target 6: the service pair over HTTP on loopback, driven by wrk.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// The pair's modes (see `benches/examples/loadpair.rs`), the baseline first.
pub(crate) const MODES: [&str; 6] = [
    "off",
    "svcauth",
    "svcauth-revocation",
    "jwt-authorizer",
    "svcauth-fresh",
    "jwt-authorizer-fresh",
];

/// wrk's connections and threads: one wrk thread leaves the other core to
/// the pair.
const CONNECTIONS: u32 = 32;

/// One measured wrk run.
pub(crate) struct Run {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Requests wrk completed.
    pub(crate) requests: f64,
    /// Commands Redis served on the request path meanwhile (the
    /// `svcauth-revocation` mode), its mirrors' feed reads left out.
    pub(crate) redis_ops: Option<u64>,
}

/// Every run of every mode, and how they were made.
pub(crate) struct Load {
    pub(crate) runs: Vec<(&'static str, Vec<Run>)>,
    pub(crate) command: String,
}

/// `Ok(ms)` from wrk's `295.00us`, `1.20ms`, `2.00s`.
fn millis(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = value.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => return None,
    })
}

pub(crate) fn parse(output: &str) -> Result<Run, String> {
    if let Some(line) = output.lines().find(|l| l.contains("Non-2xx or 3xx")) {
        return Err(format!("the pair refused requests: {}", line.trim()));
    }
    let field = |prefix: &str| {
        output
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output:\n{output}"))?;
    let p50_ms = field("50%").and_then(millis).unwrap_or(f64::NAN);
    let p99_ms = field("99%").and_then(millis).unwrap_or(f64::NAN);
    let requests = output
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .and_then(|(n, _)| n.parse().ok())
        })
        .unwrap_or(f64::NAN);
    Ok(Run {
        rps,
        p50_ms,
        p99_ms,
        requests,
        redis_ops: None,
    })
}

/// One `wrk -t1` run against `url` over `connections` kept-alive
/// connections, with `headers` on every request; its text output.
pub(crate) fn wrk(
    url: &str,
    connections: u32,
    headers: &[&str],
    seconds: u32,
) -> Result<String, String> {
    let mut command = Command::new("wrk");
    command
        .arg("-t1")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency");
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command
        .arg(url)
        .output()
        .map_err(|e| format!("running wrk: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "wrk failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Commands Redis on `port` has served, but the revocation mirrors' own
/// reads (`INFO commandstats`, through redis-cli).
fn redis_request_ops(port: u16) -> u64 {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "commandstats"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    output
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls: u64 = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            (!["xread", "xrevrange", "zrange", "info", "ping"].contains(&name)).then_some(calls)
        })
        .sum()
}

/// Starts the pair in `mode`, warms it up, measures it, stops it.
fn measure(binary: &Path, mode: &str, seconds: u32, redis: u16) -> Result<Run, String> {
    let url = format!("redis://127.0.0.1:{redis}/");
    let mut pair = Command::new(binary)
        .args(["--mode", mode, "--redis", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    let stdout = pair.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let result = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v["url"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("loadpair --mode {mode} did not start: {line:?}"))
        .and_then(|url| {
            wrk(&url, CONNECTIONS, &[], 1)?;
            let before = redis_request_ops(redis);
            let mut run = parse(&wrk(&url, CONNECTIONS, &[], seconds)?)?;
            if mode == "svcauth-revocation" {
                run.redis_ops = Some(redis_request_ops(redis) - before);
            }
            Ok(run)
        });
    // Closing its standard input stops the pair.
    drop(pair.stdin.take());
    let _ = pair.wait();
    result
}

/// Every mode `repeats` times, interleaved so that drift on the machine
/// falls on all modes alike.
pub(crate) fn run(root: &Path, quick: bool) -> Result<Load, String> {
    crate::peers::install_debian("wrk", "wrk", "the HTTP load run")?;
    let binary = root.join("target/release/examples/loadpair");
    let (repeats, seconds) = if quick { (1, 3) } else { (3, 10) };
    let mut runs: Vec<(&'static str, Vec<Run>)> = MODES.iter().map(|m| (*m, Vec::new())).collect();
    let redis = svcauth_tests::RedisServer::start_with_fsync("everysec")
        .ok_or("redis-server is needed for the svcauth-revocation mode")?;
    for repeat in 1..=repeats {
        for (mode, results) in &mut runs {
            eprintln!("==> load run {repeat}/{repeats}: {mode} ({seconds} s)");
            let run = measure(&binary, mode, seconds, redis.port)?;
            eprintln!(
                "    {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms",
                run.rps, run.p50_ms, run.p99_ms
            );
            results.push(run);
        }
    }
    Ok(Load {
        runs,
        command: format!(
            "wrk -t1 -c{CONNECTIONS} -d{seconds}s --latency (after a 1 s warm-up), {repeats} run(s) per mode, interleaved"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 3s test @ http://127.0.0.1:1/call\n  Latency Distribution\n     50%  295.00us\n     75%  400.00us\n     99%    1.20ms\n  141000 requests in 3.00s\nRequests/sec:  47339.51\nTransfer/sec:      5.00MB\n";
        let run = parse(out).unwrap();
        assert_eq!(run.rps, 47339.51);
        assert_eq!(run.p50_ms, 0.295);
        assert_eq!(run.p99_ms, 1.2);
        assert_eq!(run.requests, 141000.0);
        assert!(parse(&format!("{out}  Non-2xx or 3xx responses: 5\n")).is_err());
        assert!(parse("nothing").is_err());
    }
}
