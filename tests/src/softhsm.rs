//! [`SoftHsm`]: a SoftHSM2 token directory of its own, made for one test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::skip_or_fail;

/// The user PIN of every token [`SoftHsm::init_token`] makes.
pub const USER_PIN: &str = "4321-test-pin";
const SO_PIN: &str = "87654321";

/// Where Debian and others put the SoftHSM2 module.
const MODULE_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// A SoftHSM2 configuration and token directory under the temp dir, removed
/// on drop. A process reads `SOFTHSM2_CONF` once, when it first loads the
/// module: run the code that uses it in a child process (an example binary,
/// or [`crate::run_test_in_child`]) with [`SoftHsm::env`].
pub struct SoftHsm {
    dir: PathBuf,
    conf: PathBuf,
}

impl SoftHsm {
    /// The installed SoftHSM2 module, if any.
    pub fn module() -> Option<PathBuf> {
        MODULE_PATHS.iter().map(PathBuf::from).find(|p| p.exists())
    }

    /// A fresh, empty SoftHSM2 set-up, or `None` (after saying why) when
    /// SoftHSM2 is not installed and peers are not required.
    pub fn new() -> Option<SoftHsm> {
        if Self::module().is_none()
            || Command::new("softhsm2-util")
                .arg("--version")
                .output()
                .is_err()
        {
            return skip_or_fail("SoftHSM2 (package softhsm2; cargo xtask test installs it)");
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "svcauth-softhsm-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("the temp dir is writable");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("the conf is writable");
        Some(SoftHsm { dir, conf })
    }

    /// The module path (present: [`SoftHsm::new`] checked).
    pub fn module_path(&self) -> PathBuf {
        Self::module().expect("SoftHSM2 is installed")
    }

    /// `SOFTHSM2_CONF` for a child process.
    pub fn env(&self) -> (&'static str, String) {
        ("SOFTHSM2_CONF", self.conf.display().to_string())
    }

    /// Initialises a token labelled `label` with [`USER_PIN`].
    pub fn init_token(&self, label: &str) {
        self.util(&[
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            SO_PIN,
            "--pin",
            USER_PIN,
        ]);
    }

    /// Deletes the token labelled `label` from disk, as pulling a card
    /// would: processes that use it see it gone.
    pub fn delete_token(&self, label: &str) {
        self.util(&["--delete-token", "--token", label]);
    }

    /// A file holding [`USER_PIN`] (or `pin`), for `--pkcs11-pin-file`.
    pub fn pin_file(&self, pin: &str) -> PathBuf {
        let path = self.dir.join(format!("pin-{}", pin.len()));
        std::fs::write(&path, format!("{pin}\n")).expect("the pin file is writable");
        path
    }

    /// The token directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn util(&self, args: &[&str]) {
        let output = Command::new("softhsm2-util")
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .expect("softhsm2-util runs");
        assert!(
            output.status.success(),
            "softhsm2-util {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for SoftHsm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
