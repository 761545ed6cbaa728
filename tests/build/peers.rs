// Probes for the peers that tests run against, shared by the build scripts
// of `tests/` and `crates/svcauth-redis/` (through `include!`). A missing
// peer sets `svcauth_peer_missing_<name>`, and the tests that need it are
// marked `#[ignore = "needs ..."]` naming the peer, so a plain `cargo test`
// says in its own output which peer tests did not run (`cargo xtask test`
// installs every peer). Under `cargo xtask test`
// (`SVCAUTH_REQUIRE_PEERS`), nothing is ignored: a missing peer fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn runs(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Emits the `cfg`s for the peers missing here; `root` is the workspace.
fn probe_peers(root: &Path) {
    let names = ["redis", "node_oidc", "node_jose", "python", "softhsm"];
    let list = names.map(|n| format!("svcauth_peer_missing_{n}")).join(",");
    println!("cargo::rustc-check-cfg=cfg({list})");
    for var in ["SVCAUTH_REQUIRE_PEERS", "SVCAUTH_PEER_PYTHON", "PATH"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let modules = root.join("tests/peers/node_modules");
    let venv = root.join("target/peers/venv/bin/python");
    // A path that does not exist makes cargo rerun this script every build,
    // which is what a missing peer needs: it is noticed once installed.
    for path in [modules.join("oidc-provider"), modules.join("jose"), venv.clone()] {
        println!("cargo::rerun-if-changed={}", path.display());
    }
    for program in ["redis-server", "softhsm2-util"] {
        match find(program) {
            Some(path) => println!("cargo::rerun-if-changed={}", path.display()),
            None => println!("cargo::rerun-if-changed=/usr/bin/{program}"),
        }
    }
    if std::env::var_os("SVCAUTH_REQUIRE_PEERS").is_some() {
        return;
    }
    let node = runs(Path::new("node"), &["--version"]);
    let python = std::env::var_os("SVCAUTH_PEER_PYTHON").map_or(venv, PathBuf::from);
    let missing = [
        ("redis", !runs(Path::new("redis-server"), &["--version"])),
        ("node_oidc", !node || !modules.join("oidc-provider").is_dir()),
        ("node_jose", !node || !modules.join("jose").is_dir()),
        ("python", !runs(&python, &["-c", "import jwt, grpc"])),
        ("softhsm", !runs(Path::new("softhsm2-util"), &["--version"])),
    ];
    for (name, missing) in missing {
        if missing {
            println!("cargo::rustc-cfg=svcauth_peer_missing_{name}");
        }
    }
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}
