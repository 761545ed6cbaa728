//! [`RedisServer`]: redis-server on a free loopback port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{free_port, skip_or_fail};

/// A redis-server child process with an append-only file, killed on drop.
pub struct RedisServer {
    child: Child,
    /// The port it listens on (kept across restarts).
    pub port: u16,
    dir: PathBuf,
    fsync: &'static str,
}

impl RedisServer {
    /// Starts redis-server, or returns `None` (after saying why) when it is
    /// not installed and peers are not required.
    pub fn start() -> Option<RedisServer> {
        Self::start_with_fsync("always")
    }

    /// [`start`](Self::start) with `appendfsync` set to `policy`
    /// (`always`, `everysec`): the tests use `always`, so that nothing is
    /// lost to a kill; a long run under load uses `everysec`, as
    /// production does, since `always` stalls writes whenever the kernel
    /// flushes.
    pub fn start_with_fsync(policy: &'static str) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            return skip_or_fail("redis-server (cargo xtask test installs it)");
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("svcauth-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the temp dir is writable");
        let child = Self::spawn(port, &dir, policy);
        Some(RedisServer {
            child,
            port,
            dir,
            fsync: policy,
        })
    }

    fn spawn(port: u16, dir: &std::path::Path, fsync: &str) -> Child {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                fsync,
                "--dir",
                &dir.to_string_lossy(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        // A server still starting is the test's to find out.
        let _ = crate::redis_ha::wait_for_port(port);
        child
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (connections fail until [`restart`](Self::restart)).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        // Only the process is replaced: the data directory (and its
        // append-only file) stays, as it would on a real restart.
        self.child = Self::spawn(self.port, &self.dir, self.fsync);
    }

    /// Its process id (it changes on restart).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) to the server.
    pub fn signal(&self, signal: &str) {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("redis-server runs");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
