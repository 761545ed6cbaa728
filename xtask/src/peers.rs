//! The real peers the test suite runs against, installed when missing.

use std::process::Command;

/// Whether `program` is on the PATH (some, like wrk, have no `--version`
/// that exits 0).
fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Installs `redis-server` and SoftHSM2 (the PKCS#11 token the HSM tests
/// sign in) from the system packages if they are missing (as root, as on
/// CI; otherwise it says what to run).
pub(crate) fn install() -> Result<(), String> {
    install_debian("redis-server", "redis-server", "the peer tests")?;
    install_debian("softhsm2-util", "softhsm2", "the PKCS#11 tests")
}

/// Installs Debian's `package` if `program` is missing: as root, as on CI;
/// otherwise the error says what to run.
pub(crate) fn install_debian(program: &str, package: &str, for_what: &str) -> Result<(), String> {
    if have(program) {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        return Err(format!(
            "{for_what} need {program}: run `sudo apt-get install {package}`"
        ));
    }
    eprintln!("==> installing {package} (Debian package) for {for_what}");
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "--no-install-recommends", package][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("running apt-get {args:?}: {e}"))?;
        if !status.success() {
            return Err(format!("apt-get {args:?} failed ({status})"));
        }
    }
    if have(program) {
        Ok(())
    } else {
        Err(format!(
            "{program} still missing after installing {package}"
        ))
    }
}

/// Where the Python peer environment lives.
pub(crate) fn venv(root: &std::path::Path) -> std::path::PathBuf {
    root.join("target").join("peers").join("venv")
}

/// Creates the Python venv with PyJWT and grpcio and runs `npm ci` for node's jose,
/// when they are missing or out of date. Returns the venv's python.
pub(crate) fn install_jose_stacks(root: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let run =
        |program: &std::path::Path, args: &[&str], dir: &std::path::Path| -> Result<(), String> {
            let status = Command::new(program)
                .args(args)
                .current_dir(dir)
                .status()
                .map_err(|e| format!("running {} {args:?}: {e}", program.display()))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("{} {args:?} failed ({status})", program.display()))
            }
        };
    let peers = root.join("tests").join("peers");
    let venv = venv(root);
    let python = venv.join("bin").join("python");
    let requirements =
        std::fs::read_to_string(peers.join("requirements.txt")).map_err(|e| e.to_string())?;
    let stamp = venv.join("installed-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(requirements.as_str()) {
        eprintln!(
            "==> creating the Python peer environment (PyJWT, grpcio) in {}",
            venv.display()
        );
        run(
            std::path::Path::new("python3"),
            &["-m", "venv", &venv.to_string_lossy()],
            root,
        )?;
        run(
            &python,
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                "requirements.txt",
            ],
            &peers,
        )?;
        std::fs::write(&stamp, &requirements).map_err(|e| e.to_string())?;
    }
    install_node_peers(root)?;
    Ok(python)
}

/// `npm ci` in tests/peers (node's jose, panva's oidc-provider), when
/// node_modules is missing or older than the lock file.
pub(crate) fn install_node_peers(root: &std::path::Path) -> Result<(), String> {
    let peers = root.join("tests").join("peers");
    let lock =
        std::fs::read_to_string(peers.join("package-lock.json")).map_err(|e| e.to_string())?;
    let node_stamp = peers.join("node_modules").join(".svcauth-lock");
    if std::fs::read_to_string(&node_stamp).ok().as_deref() != Some(lock.as_str()) {
        eprintln!("==> npm ci in tests/peers (node's jose, panva's oidc-provider)");
        let status = Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund"])
            .current_dir(&peers)
            .status()
            .map_err(|e| format!("running npm ci: {e}"))?;
        if !status.success() {
            return Err(format!("npm ci in tests/peers failed ({status})"));
        }
        std::fs::write(&node_stamp, &lock).map_err(|e| e.to_string())?;
    }
    Ok(())
}
