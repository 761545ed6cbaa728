//! `cargo xtask keygen`: a new signing key, as a PEM file or inside a
//! PKCS#11 token.

use std::io::Write;
use std::path::PathBuf;

use svcauth_core::Algorithm;
use svcauth_jwks::pkcs11::{Pkcs11Config, Pkcs11Signer};
use svcauth_jwks::{JwsSigner, SigningKey, generate_pkcs8_pem};

/// `cargo xtask keygen`'s flags.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The key's algorithm: EdDSA, ES256, ES384, RS256, RS384, RS512, PS256,
    /// PS384 or PS512.
    #[arg(long, default_value = "EdDSA")]
    alg: Algorithm,
    /// Write the private key to this file (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<String>,
    /// Replace FILE if it exists (a new 0600 file renamed over it).
    #[arg(long, requires = "out")]
    force: bool,
    /// Make the key pair inside a PKCS#11 token instead, with this module
    /// (e.g. /usr/lib/softhsm/libsofthsm2.so): sensitive, never
    /// extractable. Prints its kid and public JWK only.
    #[arg(
        long = "pkcs11-module",
        value_name = "PATH",
        requires_all = ["pkcs11_token", "pkcs11_key_label"],
        conflicts_with = "out"
    )]
    pkcs11_module: Option<PathBuf>,
    /// The label of the token to make the key in.
    #[arg(long = "pkcs11-token", value_name = "LABEL")]
    pkcs11_token: Option<String>,
    /// The label of the new key pair.
    #[arg(long = "pkcs11-key-label", value_name = "LABEL")]
    pkcs11_key_label: Option<String>,
    /// A file whose first line is the user PIN; without it, the PIN is read
    /// from SVCAUTH_PKCS11_PIN.
    #[arg(long = "pkcs11-pin-file", value_name = "FILE")]
    pkcs11_pin_file: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> Result<(), String> {
    if let Some(module) = &args.pkcs11_module {
        return in_token(module, &args);
    }
    let Args {
        alg, out, force, ..
    } = args;
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

/// `--pkcs11-module`: the key pair made inside the token.
fn in_token(module: &std::path::Path, args: &Args) -> Result<(), String> {
    let (Some(token), Some(label)) = (&args.pkcs11_token, &args.pkcs11_key_label) else {
        return Err("--pkcs11-module needs --pkcs11-token and --pkcs11-key-label".into());
    };
    let config = Pkcs11Config::new(module, token);
    let config = match &args.pkcs11_pin_file {
        Some(file) => config.pin_from_file(file),
        None => config.pin_from_env("SVCAUTH_PKCS11_PIN"),
    }
    .map_err(|e| e.to_string())?
    .key_label(label);
    let key = Pkcs11Signer::generate_blocking(&config, args.alg).map_err(|e| e.to_string())?;
    let jwk = serde_json::to_string_pretty(&key.public_jwk()).map_err(|e| e.to_string())?;
    eprintln!(
        "made a {} key pair labelled {label:?} inside token {token:?}; the private key cannot leave it",
        args.alg
    );
    eprintln!("kid: {}\npublic JWK:\n{jwk}", key.kid());
    Ok(())
}

/// Writes a private key readable by its owner only. Without `force` an
/// existing file (or symlink) is an error. With `force` the key goes to a
/// new 0600 file beside the target, renamed over it: the old file's mode is
/// not inherited, and a symlink at `path` is replaced, never followed.
fn write_private(path: &str, bytes: &[u8], force: bool) -> Result<(), String> {
    let target = std::path::Path::new(path);
    let fresh = if force {
        let name = target
            .file_name()
            .ok_or_else(|| format!("{path}: not a file name"))?
            .to_string_lossy();
        target.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
    } else {
        target.to_path_buf()
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&fresh).map_err(|e| match force {
        true => format!("{}: {e}", fresh.display()),
        false => format!("{path}: {e} (use --force to overwrite)"),
    })?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| match force {
            true => std::fs::rename(&fresh, target),
            false => Ok(()),
        });
    if let Err(e) = written {
        if force {
            let _ = std::fs::remove_file(&fresh);
        }
        return Err(format!("{path}: {e}"));
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn force_replaces_a_loose_file_and_a_symlink_with_a_0600_file() {
        let dir = std::env::temp_dir().join(format!("svcauth-keygen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        std::fs::write(&key, "old").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(write_private(key.to_str().unwrap(), b"new", false).is_err());
        write_private(key.to_str().unwrap(), b"new", true).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "not the old file's 0644");
        assert_eq!(std::fs::read(&key).unwrap(), b"new");

        let victim = dir.join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let link = dir.join("link.pem");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(write_private(link.to_str().unwrap(), b"key", false).is_err());
        write_private(link.to_str().unwrap(), b"key", true).unwrap();
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"untouched",
            "never followed"
        );
        assert!(
            !std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
