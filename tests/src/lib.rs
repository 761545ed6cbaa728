//! Support for the end-to-end tests in `tests/tests/`: they run the project's
//! binaries and real peers as processes. This package is not published.
//!
//! * [`skip_or_fail`]: a peer that is missing skips its test under a plain
//!   `cargo test` (saying so), and fails it under `cargo xtask test`, which
//!   sets `SVCAUTH_REQUIRE_PEERS`.
//! * [`OidcProvider`]: panva's `oidc-provider` (tests/peers/oidc_provider.mjs)
//!   on a free loopback port, stopped when dropped.
//! * [`Example`]: one of the example binaries on a loopback port, killed on
//!   drop; [`example_binaries`] builds them once per process.
//! * [`RedisServer`]: redis-server on a free loopback port, killed on drop;
//!   [`RedisCluster`] (three masters, with replicas if asked) and
//!   [`RedisSentinel`] (a primary, a replica and a sentinel).
//! * [`run_test_in_child`]: one test of the running test binary, in a child
//!   process with its own environment variables.
//! * [`SoftHsm`]: a SoftHSM2 token directory of a test's own.
//! * [`serve`] and [`JsonServer`]: an axum app, or one JSON document (a
//!   JWKS, a discovery document), on a free loopback port.
//! * [`Pki`] and [`mtls_server`]: a private CA made in the test, and a TLS
//!   server that demands a client certificate from it.
//! * [`MockAuthorizationServer`]: a token endpoint that exchanges `good-*`
//!   reference tokens (RFC 8693), for gateway tests that need no node.

use std::path::PathBuf;
use std::process::Command;

mod examples;
mod oidc;
mod redis;
mod redis_ha;
mod servers;
mod softhsm;
mod tls;

pub use examples::{Example, example_binaries, release_example_binaries};
pub use oidc::{OidcProvider, private_key_jwt_client, secret_client};
pub use redis::RedisServer;
pub use redis_ha::{RedisCluster, RedisSentinel, SENTINEL_SERVICE};
pub use servers::{JsonServer, MockAuthorizationServer, serve};
pub use softhsm::{SoftHsm, USER_PIN};
pub use tls::{PemFiles, Pki, mtls_server};

/// Seconds since the Unix epoch, by the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// The claims of a service token from `iss` (also its `sub`) for `aud`,
/// issued now and valid for five minutes, as JSON bytes to sign
/// (`SigningKey::sign_jws`).
pub fn service_claims(iss: &str, aud: &str) -> Vec<u8> {
    let now = unix_now();
    serde_json::json!({ "iss": iss, "sub": iss, "aud": aud, "iat": now, "exp": now + 300 })
        .to_string()
        .into_bytes()
}

/// The token-exchange grant type (RFC 8693).
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `tests/peers`, where the node and Python peers live.
pub fn peers_dir() -> PathBuf {
    root().join("tests").join("peers")
}

/// Runs the test `name` of the current test binary in a child process with
/// `set` added to and `remove` taken from its environment, and returns
/// whether it passed, with its output. Environment variables are
/// process-wide (and `std::env::set_var` is unsafe in Rust 2024), so a test
/// of behaviour under, say, `HTTP_PROXY` runs its check this way; the child
/// tells itself apart by a variable in `set`.
pub fn run_test_in_child(name: &str, set: &[(&str, &str)], remove: &[&str]) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().expect("a test binary"));
    command.args([name, "--exact", "--nocapture", "--include-ignored"]);
    for var in remove {
        command.env_remove(var);
    }
    command.envs(set.iter().copied());
    let output = command.output().expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let passed = output.status.success() && stdout.contains("1 passed");
    (
        passed,
        format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr)),
    )
}

/// [`run_test_in_child`] with every proxy variable (`HTTP_PROXY`,
/// `ALL_PROXY`, either case) pointing at `proxy` and `NO_PROXY` unset, plus
/// `extra`: for tests that a client ignores proxies from the environment.
pub fn run_test_under_proxy(name: &str, proxy: &str, extra: &[(&str, &str)]) -> (bool, String) {
    let mut set = vec![
        ("HTTP_PROXY", proxy),
        ("http_proxy", proxy),
        ("ALL_PROXY", proxy),
        ("all_proxy", proxy),
    ];
    set.extend_from_slice(extra);
    run_test_in_child(name, &set, &["NO_PROXY", "no_proxy"])
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a loopback port is free")
        .port()
}

/// Reports a missing peer: `None` (the test returns early, skipped) under a
/// plain `cargo test`, a panic under `cargo xtask test`.
pub fn skip_or_fail<T>(why: &str) -> Option<T> {
    assert!(
        std::env::var_os("SVCAUTH_REQUIRE_PEERS").is_none(),
        "peer missing: {why}"
    );
    eprintln!("SKIPPED peer test: {why} (cargo xtask test prepares it)");
    None
}

/// `node`, when it runs and `tests/peers/node_modules/<package>` is installed.
pub fn node_with(package: &str) -> Option<PathBuf> {
    if peers_dir().join("node_modules").join(package).is_dir()
        && Command::new("node").arg("--version").output().is_ok()
    {
        Some(PathBuf::from("node"))
    } else {
        skip_or_fail(&format!("node with tests/peers/node_modules/{package}"))
    }
}

/// The Python of the peer environment (PyJWT, grpcio):
/// `SVCAUTH_PEER_PYTHON`, else the venv `cargo xtask test` makes.
pub fn python() -> Option<PathBuf> {
    let python = std::env::var_os("SVCAUTH_PEER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/peers/venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import jwt, grpc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(python)
    } else {
        skip_or_fail("a Python with PyJWT and grpcio")
    }
}

/// Runs `program script args...` in `tests/peers`; its stdout as JSON.
pub fn run_peer(program: &std::path::Path, script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(program)
        .arg(script)
        .args(args)
        .current_dir(peers_dir())
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a peer prints JSON")
}
