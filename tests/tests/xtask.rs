//! `cargo xtask`, run as a process: every task answers `--help`, a wrong
//! flag gets the usage, and `keygen` writes a key that loads, with its kid.

use std::process::Command;

use svcauth_core::Algorithm;
use svcauth_jwks::SigningKey;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--package", "xtask", "--"])
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo runs")
}

fn keygen(args: &[&str]) -> std::process::Output {
    let mut all = vec!["keygen"];
    all.extend(args);
    xtask(&all)
}

#[test]
fn every_task_answers_help_and_a_wrong_flag_gets_the_usage() {
    let top = xtask(&["--help"]);
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(top.status.success(), "{text}");
    for task in ["test", "keygen", "demo", "tidy", "bench", "fuzz"] {
        assert!(text.contains(task), "{task} is listed: {text}");
        let help = xtask(&[task, "--help"]);
        let out = String::from_utf8_lossy(&help.stdout);
        assert!(help.status.success(), "{task} --help: {out}");
        assert!(out.contains("Usage: cargo xtask"), "{task} --help: {out}");
    }
    assert!(String::from_utf8_lossy(&xtask(&["bench", "--help"]).stdout).contains("--quick"));
    assert!(String::from_utf8_lossy(&xtask(&["keygen", "--help"]).stdout).contains("--alg"));
    assert!(String::from_utf8_lossy(&xtask(&["fuzz", "--help"]).stdout).contains("--report"));

    for wrong in [
        &["bench", "--quik"][..],
        &["keygen", "--alg"],
        // --seeds writes corpora and runs nothing; --runs only counts for --report.
        &["fuzz", "--seeds", "--report"],
        &["fuzz", "--runs", "5"],
        &["tset"],
        &[],
    ] {
        let out = xtask(wrong);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{wrong:?}: {stderr}");
        // No task at all: the help, on stderr; anything else: an error.
        assert!(
            stderr.starts_with("error:") || wrong.is_empty(),
            "{wrong:?}: {stderr}"
        );
        assert!(
            stderr.contains("Usage: cargo xtask") || stderr.contains("try '--help'"),
            "{wrong:?}: {stderr}"
        );
    }
    // --force without --out would silently do nothing: refused.
    assert_eq!(keygen(&["--force"]).status.code(), Some(2));
}

#[test]
fn keygen_writes_a_loadable_private_key_and_prints_its_kid() {
    let dir = std::env::temp_dir().join(format!("svcauth-keygen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for alg in ["EdDSA", "ES256", "RS256"] {
        let path = dir.join(format!("{alg}.pem"));
        let _ = std::fs::remove_file(&path);
        let out = keygen(&["--alg", alg, "--out", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");

        let alg: Algorithm = alg.parse().unwrap();
        let key = SigningKey::from_pem_file(&path, Some(alg)).unwrap();
        assert!(stderr.contains(&format!("kid: {}", key.kid())), "{stderr}");
        assert!(stderr.contains(&format!("\"alg\": \"{alg}\"")), "{stderr}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "private keys are not world-readable");
        }
        // A second run does not overwrite the key without --force.
        let again = keygen(&["--alg", alg.as_str(), "--out", path.to_str().unwrap()]);
        assert!(!again.status.success());
        assert_eq!(
            SigningKey::from_pem_file(&path, Some(alg)).unwrap().kid(),
            key.kid()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keygen_refuses_symmetric_and_unknown_algorithms() {
    for alg in ["HS256", "none", "ES512"] {
        let out = keygen(&["--alg", alg]);
        assert!(!out.status.success(), "{alg} must be refused");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not an accepted"));
    }
}
