//! `cargo xtask keygen`: a new signing key.

use std::io::Write;

use svcauth_core::Algorithm;
use svcauth_jwks::{SigningKey, generate_pkcs8_pem};

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
}

pub(crate) fn run(Args { alg, out, force }: Args) -> Result<(), String> {
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
