//! `cargo xtask demo`, run as README.md says, must show every step working.

use std::process::Command;

#[test]
fn the_demo_shows_every_step_working() {
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--package", "xtask", "--", "demo"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for step in [
        "A calls B with a token for exactly B",
        "a token minted for another audience (c.internal) is refused",
        "a forged token",
        "a request-bound call (htm, htu, query_sha256, body_sha256) succeeds",
        "the same bound token with a changed body is refused",
        "A rotates its key: published first, signing 2 s later; the next call succeeds with the new kid, B fetched A's JWKS once",
        "an opaque token at the gateway is exchanged once; B sees sub = the client, act = the gateway",
    ] {
        assert!(
            stdout.contains(&format!("[ok  ] {step}")),
            "step not ok: {step}\n{stdout}"
        );
    }
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
    // Each step shows the command it ran, as a curl line to copy.
    assert!(
        stdout.matches("\n       $ curl -s -X ").count() >= 7,
        "{stdout}"
    );
    // The Transaction Token steps: who asked, an outside Txn-Token dropped,
    // a service token alone refused where one is required.
    for step in [
        "[ok  ] gateway #2 mints a Txn-Token at the edge",
        "[ok  ] a Txn-Token sent from outside",
        "[ok  ] A calls B2 with a valid service token but no Txn-Token",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    // The HSM step runs where SoftHSM2 is installed (always under cargo
    // xtask test), and says that it was skipped elsewhere.
    let softhsm = svcauth_tests::SoftHsm::module().is_some()
        && Command::new("softhsm2-util")
            .arg("--version")
            .output()
            .is_ok();
    if softhsm || std::env::var_os("SVCAUTH_REQUIRE_PEERS").is_some() {
        assert!(
            stdout.contains("[ok  ] A3 signs inside a SoftHSM2 token"),
            "{stdout}"
        );
        assert!(
            stdout.contains("demo: all 13 steps behaved as described"),
            "{stdout}"
        );
    } else {
        assert!(
            stdout.contains("[skip] A3 signing inside a PKCS#11 token"),
            "{stdout}"
        );
        assert!(
            stdout.contains("demo: all 12 steps behaved as described"),
            "{stdout}"
        );
    }
}
