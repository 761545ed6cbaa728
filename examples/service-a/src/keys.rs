//! Where service-a's signing keys live: a PEM file, memory, or a PKCS#11
//! token (`--pkcs11-module`), for the first key and for every key
//! `POST /rotate` makes.

use std::path::PathBuf;

use svcauth_core::Algorithm;
use svcauth_jwks::pkcs11::{Pkcs11Config, Pkcs11Signer};
use svcauth_jwks::{Jwk, JwsSigner, SignatureFuture, SigningKey};

/// The signing key: generated, from a PEM file, or inside a PKCS#11 token
/// (an HSM; SoftHSM2 for trying it).
#[derive(clap::Args, Debug)]
pub(crate) struct KeyArgs {
    /// PKCS#8 PEM private key; without it (or --pkcs11-module) a key is
    /// generated at start.
    #[arg(long, env = "SERVICE_A_KEY", value_name = "PEM_FILE")]
    key: Option<PathBuf>,
    /// Signing algorithm [default: EdDSA; with --pkcs11-module, the key's].
    #[arg(
        long,
        env = "SERVICE_A_ALG",
        value_parser = ["EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    )]
    alg: Option<String>,
    /// Sign with a key pair inside a PKCS#11 token: the module (shared
    /// library) to load, e.g. /usr/lib/softhsm/libsofthsm2.so. The private
    /// key never enters this process; `POST /rotate` makes the next key
    /// inside the token too.
    #[arg(
        long = "pkcs11-module",
        env = "SERVICE_A_PKCS11_MODULE",
        value_name = "PATH",
        requires_all = ["pkcs11_token", "pkcs11_key_label"],
        conflicts_with = "key"
    )]
    pkcs11_module: Option<PathBuf>,
    /// The label of the token that holds the key.
    #[arg(
        long = "pkcs11-token",
        env = "SERVICE_A_PKCS11_TOKEN",
        value_name = "LABEL"
    )]
    pkcs11_token: Option<String>,
    /// The label of the key pair (`cargo xtask keygen --pkcs11-module ...`
    /// makes one).
    #[arg(
        long = "pkcs11-key-label",
        env = "SERVICE_A_PKCS11_KEY_LABEL",
        value_name = "LABEL"
    )]
    pkcs11_key_label: Option<String>,
    /// A file whose first line is the user PIN. Without it the PIN is read
    /// from the variable --pkcs11-pin-env names; never from a flag, which
    /// `ps` would show.
    #[arg(
        long = "pkcs11-pin-file",
        env = "SERVICE_A_PKCS11_PIN_FILE",
        value_name = "FILE"
    )]
    pkcs11_pin_file: Option<PathBuf>,
    /// The environment variable that holds the user PIN when there is no
    /// --pkcs11-pin-file.
    #[arg(
        long = "pkcs11-pin-env",
        env = "SERVICE_A_PKCS11_PIN_ENV",
        value_name = "VAR",
        default_value = "SERVICE_A_PKCS11_PIN"
    )]
    pkcs11_pin_env: String,
    /// Sessions kept open with the token: signatures in flight at once.
    #[arg(
        long = "pkcs11-sessions",
        env = "SERVICE_A_PKCS11_SESSIONS",
        value_name = "N",
        default_value_t = 4
    )]
    pkcs11_sessions: usize,
}

/// Makes service-a's keys, where they are configured to live.
pub(crate) enum Keys {
    /// Keys in memory (the first one maybe from a PEM file).
    Memory(Algorithm),
    /// Keys in a PKCS#11 token: the configuration of the first, whose label
    /// new keys extend, and its algorithm.
    Pkcs11 {
        config: Pkcs11Config,
        label: String,
        alg: Algorithm,
    },
}

/// A key of either home, for the ring.
pub(crate) enum AnyKey {
    Memory(SigningKey),
    Pkcs11(Pkcs11Signer),
}

impl Keys {
    /// The first key: from the token, from `--key`, or generated; and how
    /// later keys are made.
    pub(crate) async fn first(args: &KeyArgs) -> Result<(Keys, AnyKey), String> {
        let alg = match &args.alg {
            Some(alg) => Some(
                alg.parse::<Algorithm>()
                    .map_err(|e| format!("--alg: {e}"))?,
            ),
            None => None,
        };
        let (key, pkcs11) = (args.key.as_ref(), args);
        let Some(module) = &pkcs11.pkcs11_module else {
            let alg = alg.unwrap_or(Algorithm::EdDSA);
            let first = match key {
                Some(path) => {
                    SigningKey::from_pem_file(path, Some(alg)).map_err(|e| format!("--key: {e}"))?
                }
                None => SigningKey::generate(alg).map_err(|e| e.to_string())?,
            };
            return Ok((Keys::Memory(alg), AnyKey::Memory(first)));
        };
        let (Some(token), Some(label)) = (&pkcs11.pkcs11_token, &pkcs11.pkcs11_key_label) else {
            return Err("--pkcs11-module needs --pkcs11-token and --pkcs11-key-label".into());
        };
        let mut config = Pkcs11Config::new(module, token).sessions(pkcs11.pkcs11_sessions);
        config = match &pkcs11.pkcs11_pin_file {
            Some(file) => config.pin_from_file(file),
            None => config.pin_from_env(&pkcs11.pkcs11_pin_env),
        }
        .map_err(|e| format!("--pkcs11: {e}"))?;
        if let Some(alg) = alg {
            config = config.algorithm(alg);
        }
        let signer = Pkcs11Signer::open(config.clone().key_label(label))
            .await
            .map_err(|e| format!("--pkcs11-key-label {label}: {e}"))?;
        Ok((
            Keys::Pkcs11 {
                config,
                label: label.clone(),
                alg: signer.alg(),
            },
            AnyKey::Pkcs11(signer),
        ))
    }

    /// After a rotation: cached tokens are dropped when minting is instant
    /// (a key in memory), so the next call signs with the new key; with a
    /// key in a token they are renewed in the background instead, so that
    /// no call waits for the token's signature.
    pub(crate) fn sign_with_new_key(&self, signer: &svcauth_sign::Signer) {
        match self {
            Keys::Memory(_) => signer.clear_cache(),
            Keys::Pkcs11 { .. } => signer.renew_cache(),
        }
    }

    /// A new key for a rotation, of the same algorithm and home as the
    /// first: in a token, labelled `<first label>-<unix time>`.
    pub(crate) async fn next(&self) -> Result<AnyKey, String> {
        match self {
            Keys::Memory(alg) => SigningKey::generate(*alg)
                .map(AnyKey::Memory)
                .map_err(|e| e.to_string()),
            Keys::Pkcs11 { config, label, alg } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let config = config.clone().key_label(&format!("{label}-{now}"));
                let alg = *alg;
                tokio::task::spawn_blocking(move || Pkcs11Signer::generate_blocking(&config, alg))
                    .await
                    .map_err(|e| e.to_string())?
                    .map(AnyKey::Pkcs11)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

impl AnyKey {
    fn inner(&self) -> &dyn JwsSigner {
        match self {
            AnyKey::Memory(key) => key,
            AnyKey::Pkcs11(key) => key,
        }
    }
}

impl JwsSigner for AnyKey {
    fn kid(&self) -> &str {
        self.inner().kid()
    }

    fn alg(&self) -> Algorithm {
        self.inner().alg()
    }

    fn public_jwk(&self) -> Jwk {
        self.inner().public_jwk()
    }

    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a> {
        self.inner().sign(signing_input)
    }

    fn local(&self) -> Option<&SigningKey> {
        self.inner().local()
    }

    fn backend(&self) -> &'static str {
        self.inner().backend()
    }
}
