//! The example binaries (`service-a`, `service-b`, `gateway`) as processes:
//! built once, started on loopback, killed when dropped.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{free_port, root};

/// The directory holding `service-a`, `service-b`, `gateway` and
/// `wit-issuer`, built (debug) the first time a process asks.
pub fn example_binaries() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| build_examples(false))
}

/// [`example_binaries`], built with optimisations, for runs that measure.
pub fn release_example_binaries() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| build_examples(true))
}

fn build_examples(release: bool) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .arg("build")
        .args(release.then_some("--release"))
        .args([
            "--quiet",
            "--package",
            "service-a",
            "--package",
            "service-b",
            "--package",
            "gateway",
            "--package",
            "wit-issuer",
        ])
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the example binaries failed");
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join(if release { "release" } else { "debug" })
}

/// One example binary listening on `127.0.0.1:<port>`, killed on drop.
#[derive(Debug)]
pub struct Example {
    child: Child,
    port: u16,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    /// Starts `binary` on a free port and waits until its `/healthz`
    /// answers with something `ready` accepts (the JSON body, or `null`
    /// when the body is not JSON). Output is discarded.
    pub async fn start(
        binary: &str,
        args: &[impl AsRef<OsStr>],
        ready: impl Fn(&Value) -> bool,
    ) -> Example {
        Example::spawn_on(free_port(), binary, args, Stdio::null())
            .ready(ready)
            .await
    }

    /// Starts `binary --listen 127.0.0.1:<port> <args>` and returns at once;
    /// its stdout is discarded, its stderr goes to `stderr`. `RUST_LOG` is
    /// removed, so it logs at its default level whatever the runner's
    /// environment says.
    pub fn spawn_on(port: u16, binary: &str, args: &[impl AsRef<OsStr>], stderr: Stdio) -> Example {
        Self::spawn_from(example_binaries(), port, binary, args, stderr)
    }

    /// [`spawn_on`](Self::spawn_on) with the binary from `dir` (say,
    /// [`release_example_binaries`]).
    pub fn spawn_from(
        dir: &std::path::Path,
        port: u16,
        binary: &str,
        args: &[impl AsRef<OsStr>],
        stderr: Stdio,
    ) -> Example {
        Self::spawn_with_env(dir, port, binary, args, stderr, &[])
    }

    /// [`spawn_from`](Self::spawn_from) with `env` added to the process's
    /// environment (a PIN, `SOFTHSM2_CONF`).
    pub fn spawn_with_env(
        dir: &std::path::Path,
        port: u16,
        binary: &str,
        args: &[impl AsRef<OsStr>],
        stderr: Stdio,
        env: &[(&str, &str)],
    ) -> Example {
        let child = Command::new(dir.join(binary))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Example { child, port }
    }

    /// Waits up to 15 s until `GET /healthz` answers with something `ready`
    /// accepts (the JSON body, or `null` when the body is not JSON).
    pub async fn ready(self, ready: impl Fn(&Value) -> bool) -> Example {
        for _ in 0..300 {
            if let Ok(response) = reqwest::get(self.url("/healthz")).await {
                let body = response.json::<Value>().await.unwrap_or(Value::Null);
                if ready(&body) {
                    return self;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the example on port {} did not become ready", self.port);
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
