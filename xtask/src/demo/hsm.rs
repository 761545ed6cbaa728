//! The demo's HSM step: a third service-a whose key was made inside a
//! SoftHSM2 token by `cargo xtask keygen --pkcs11-module ...`, and never
//! left it. Skipped, saying so, where SoftHSM2 is not installed.

use std::path::Path;
use std::process::{Command, Stdio};

use svcauth_tests::{Example, SoftHsm, example_binaries, free_port};

use super::http::wait_ready;

/// The issuer of the service-a that signs inside the token.
pub(crate) const A3_ISS: &str = "https://a3.internal";
const TOKEN: &str = "svcauth-demo";
const LABEL: &str = "service-a3";

/// service-a signing inside SoftHSM2, and what made its key.
pub(crate) struct HsmServiceA {
    pub(crate) example: Example,
    pub(crate) port: u16,
    pub(crate) kid: String,
    /// The keygen command, as a line to copy.
    pub(crate) keygen: String,
    _hsm: SoftHsm,
}

/// `None` when SoftHSM2 is missing (the step is skipped, and says so).
pub(crate) fn start(logs: &Path, b_url: &str, b_aud: &str) -> Result<Option<HsmServiceA>, String> {
    let Some(module) = SoftHsm::module() else {
        return Ok(None);
    };
    if Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .is_err()
    {
        return Ok(None);
    }
    // The kit's SoftHsm outside a test: `new` only skips under a plain run.
    let hsm = SoftHsm::new().ok_or("SoftHSM2 could not be set up")?;
    hsm.init_token(TOKEN);
    let pin_file = hsm.dir().join("pin");
    std::fs::write(&pin_file, format!("{}\n", svcauth_tests::USER_PIN))
        .map_err(|e| e.to_string())?;
    let (conf_var, conf) = hsm.env();
    let module = module.to_str().ok_or("a UTF-8 module path")?.to_owned();
    let pin_path = pin_file.to_str().ok_or("a UTF-8 temp dir")?.to_owned();
    let keygen_args = [
        "keygen",
        "--alg",
        "ES256",
        "--pkcs11-module",
        &module,
        "--pkcs11-token",
        TOKEN,
        "--pkcs11-key-label",
        LABEL,
        "--pkcs11-pin-file",
        &pin_path,
    ];
    let made = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(keygen_args)
        .env(conf_var, &conf)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&made.stderr);
    let kid = said
        .lines()
        .find_map(|l| l.strip_prefix("kid: "))
        .ok_or_else(|| format!("keygen in the token failed: {said}"))?
        .to_owned();
    let port = free_port();
    let args = [
        "--issuer",
        A3_ISS,
        "--call",
        &format!("{b_aud}={b_url}"),
        "--pkcs11-module",
        &module,
        "--pkcs11-token",
        TOKEN,
        "--pkcs11-key-label",
        LABEL,
    ];
    let log = std::fs::File::create(logs.join("service-a3.log")).map_err(|e| e.to_string())?;
    // The PIN from the environment, as a deployment's secret store sets it.
    let env = [
        (conf_var, conf.as_str()),
        ("SERVICE_A_PKCS11_PIN", svcauth_tests::USER_PIN),
    ];
    let example = Example::spawn_with_env(
        example_binaries(),
        port,
        "service-a",
        &args,
        log.into(),
        &env,
    );
    wait_ready(port, "service-a (PKCS#11)", |r| r.status == 200)?;
    Ok(Some(HsmServiceA {
        example,
        port,
        kid,
        keygen: format!(
            "$ SOFTHSM2_CONF={conf} cargo xtask {}",
            keygen_args.join(" ")
        ),
        _hsm: hsm,
    }))
}
