//! The real peers the test suite runs against, installed when missing.

use std::process::Command;

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs `redis-server` from the system packages if it is missing.
pub(crate) fn install() -> Result<(), String> {
    if have("redis-server") {
        return Ok(());
    }
    eprintln!("==> installing redis-server (Debian package) for the peer tests");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let sudo: &[&str] = if root.unwrap_or(false) {
        &[]
    } else {
        &["sudo", "-n"]
    };
    for args in [
        &["apt-get", "update", "-qq"][..],
        &[
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "redis-server",
        ][..],
    ] {
        let mut command = Command::new(sudo.first().copied().unwrap_or(args[0]));
        command
            .args(sudo.iter().skip(1))
            .args(if sudo.is_empty() { &args[1..] } else { args });
        let status = command
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("running {args:?}: {e}"))?;
        if !status.success() {
            return Err(format!(
                "{args:?} failed ({status}); install redis-server by hand to run the peer tests"
            ));
        }
    }
    if have("redis-server") {
        Ok(())
    } else {
        Err("redis-server still missing after installing it".into())
    }
}
