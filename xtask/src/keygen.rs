//! `cargo xtask keygen`: a new signing key.

use std::io::Write;

use svcauth_core::Algorithm;
use svcauth_jwks::{SigningKey, generate_pkcs8_pem};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut alg = Algorithm::EdDSA;
    let mut out = None;
    let mut force = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--alg" => {
                let name = args.next().ok_or("--alg needs a value")?;
                alg = name.parse().map_err(|e| format!("{e}"))?;
            }
            "--out" => out = Some(args.next().ok_or("--out needs a file")?.clone()),
            "--force" => force = true,
            other => return Err(format!("keygen: unknown argument {other:?}")),
        }
    }

    let pem = generate_pkcs8_pem(alg).map_err(|e| e.to_string())?;
    let key = SigningKey::from_pkcs8_pem(&pem, Some(alg)).map_err(|e| e.to_string())?;
    match &out {
        Some(path) => write_private(path, pem.as_bytes(), force)?,
        None => std::io::stdout()
            .write_all(pem.as_bytes())
            .map_err(|e| e.to_string())?,
    }
    let jwk = serde_json::to_string_pretty(&key.public_jwk()).map_err(|e| e.to_string())?;
    if let Some(path) = &out {
        eprintln!("wrote {alg} private key to {path} (mode 0600)");
    }
    eprintln!("kid: {}\npublic JWK:\n{jwk}", key.kid());
    Ok(())
}

fn write_private(path: &str, bytes: &[u8], force: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("{path}: {e} (use --force to overwrite)"))?;
    file.write_all(bytes).map_err(|e| format!("{path}: {e}"))
}
