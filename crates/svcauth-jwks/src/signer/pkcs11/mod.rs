//! Signing keys that never leave a PKCS#11 token (an HSM, a smart card,
//! SoftHSM2): [`Pkcs11Signer`], configured by [`Pkcs11Config`].
//!
//! The private key stays in the token; svcauth holds a handle, asks the
//! token for signatures and publishes the public key it reads from it. Every
//! PKCS#11 call blocks, so each runs on tokio's blocking pool, through one of
//! a bounded set of sessions: the async workers never wait on the token.
//!
//! At start ([`Pkcs11Signer::open`]) the module is loaded, the token found
//! by label or slot, the user logged in with a PIN read from a file or the
//! environment (never a command-line value, which `ps` shows), the key pair
//! found by label or id, and one signature made and verified against the
//! public key: a missing token, a wrong PIN, a missing or extractable key
//! or a key of another type is a typed [`Pkcs11Error`] before any traffic.
//! Later failures (the token removed, a session lost) are
//! [`KeyError::Unavailable`](crate::KeyError::Unavailable): sessions are
//! reopened on the next signature, and svcauth's signer keeps handing out
//! its cached tokens meanwhile.
//!
//! # Example
//!
//! Needs a token to run against; `cargo xtask keygen --pkcs11-module ...`
//! creates the key pair inside it.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use svcauth_jwks::KeyRing;
//! use svcauth_jwks::pkcs11::{Pkcs11Config, Pkcs11Signer};
//!
//! let config = Pkcs11Config::new("/usr/lib/softhsm/libsofthsm2.so", "svcauth")
//!     .pin_from_file("/run/secrets/hsm-pin")?
//!     .key_label("service-a-2026-12");
//! let ring = KeyRing::new(Pkcs11Signer::open(config).await?);
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use svcauth_core::Algorithm;
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::public_key::{Jwk, PublicKeyMaterial};
use crate::signer::{JwsSigner, SignatureFuture};

mod mechanism;
mod token;

/// Which token of the module holds the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSelector {
    /// The token whose label is this (as `softhsm2-util --init-token
    /// --label` or the vendor's tool set it).
    Label(String),
    /// The token in this slot id.
    Slot(u64),
}

/// Which key pair of the token signs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySelector {
    /// The key pair whose `CKA_LABEL` is this.
    Label(String),
    /// The key pair whose `CKA_ID` is these bytes.
    Id(Vec<u8>),
}

/// Where a PKCS#11 key is and how to reach it. `Debug` never shows the PIN.
#[derive(Clone)]
pub struct Pkcs11Config {
    pub(crate) module: PathBuf,
    pub(crate) token: TokenSelector,
    pub(crate) pin: Option<Arc<Zeroizing<String>>>,
    pub(crate) key: Option<KeySelector>,
    pub(crate) alg: Option<Algorithm>,
    pub(crate) sessions: usize,
    pub(crate) allow_extractable: bool,
}

/// Sessions opened by default: concurrent signatures at most.
const DEFAULT_SESSIONS: usize = 4;

impl Pkcs11Config {
    /// The token labelled `token_label` of the PKCS#11 module at `module`
    /// (a shared library: `/usr/lib/softhsm/libsofthsm2.so`, a vendor's).
    pub fn new(module: impl Into<PathBuf>, token_label: &str) -> Self {
        Self::with_token(module, TokenSelector::Label(token_label.to_owned()))
    }

    /// The token selected by `token`, of the module at `module`.
    pub fn with_token(module: impl Into<PathBuf>, token: TokenSelector) -> Self {
        Pkcs11Config {
            module: module.into(),
            token,
            pin: None,
            key: None,
            alg: None,
            sessions: DEFAULT_SESSIONS,
            allow_extractable: false,
        }
    }

    /// The user PIN, read from the first line of `path` (a mounted secret).
    pub fn pin_from_file(mut self, path: impl AsRef<Path>) -> Result<Self, Pkcs11Error> {
        let path = path.as_ref();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Pkcs11Error::Pin(format!("reading the PIN file {}: {e}", path.display()))
        })?);
        self.pin = Some(Arc::new(Zeroizing::new(
            text.lines().next().unwrap_or("").to_owned(),
        )));
        Ok(self)
    }

    /// The user PIN, read from the environment variable `var`.
    pub fn pin_from_env(mut self, var: &str) -> Result<Self, Pkcs11Error> {
        let pin = std::env::var(var)
            .map_err(|_| Pkcs11Error::Pin(format!("the environment variable {var} is not set")))?;
        self.pin = Some(Arc::new(Zeroizing::new(pin)));
        Ok(self)
    }

    /// The key pair labelled `label`.
    pub fn key_label(mut self, label: &str) -> Self {
        self.key = Some(KeySelector::Label(label.to_owned()));
        self
    }

    /// The key pair whose `CKA_ID` is `id`.
    pub fn key_id(mut self, id: &[u8]) -> Self {
        self.key = Some(KeySelector::Id(id.to_vec()));
        self
    }

    /// The algorithm to sign with. Without it: EdDSA for Ed25519 keys,
    /// ES256 and ES384 for P-256 and P-384, RS256 for RSA. With it, it must
    /// fit the key (PS256 with an RSA key, say).
    pub fn algorithm(mut self, alg: Algorithm) -> Self {
        self.alg = Some(alg);
        self
    }

    /// Sessions kept open, hence signatures in flight at once (default 4).
    pub fn sessions(mut self, sessions: usize) -> Self {
        self.sessions = sessions.max(1);
        self
    }

    /// Accepts a private key the token would let out (`CKA_EXTRACTABLE`
    /// true or `CKA_SENSITIVE` false). Refused by default: such a key can be
    /// copied off the token, which is what keeping it there was to prevent.
    pub fn danger_allow_extractable_key(mut self) -> Self {
        self.allow_extractable = true;
        self
    }
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("pin", &self.pin.as_ref().map(|_| "<redacted>"))
            .field("key", &self.key)
            .field("alg", &self.alg)
            .field("sessions", &self.sessions)
            .finish()
    }
}

/// A PKCS#11 key could not be set up: each cause its own variant, so that
/// start-up can say exactly what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The module could not be loaded or initialised.
    #[error("PKCS#11 module {module}: {message}")]
    Module {
        /// The module path.
        module: String,
        /// What failed.
        message: String,
    },
    /// No token with this label or in this slot.
    #[error("no PKCS#11 token {0}")]
    TokenNotFound(String),
    /// No PIN was configured, or it could not be read.
    #[error("PIN: {0}")]
    Pin(String),
    /// The token refused the PIN.
    #[error("the token refused the PIN: {0}")]
    Login(String),
    /// No key was selected, or none matches.
    #[error("key {0}")]
    KeyNotFound(String),
    /// The key is of a type or size svcauth cannot sign with, or does not
    /// fit the configured algorithm.
    #[error("unusable key: {0}")]
    UnsupportedKey(String),
    /// The private key could leave the token.
    #[error(
        "the private key is extractable or not sensitive; keys are kept in the token by default (danger_allow_extractable_key)"
    )]
    Extractable,
    /// The token's signature did not verify with its public key.
    #[error("self-check failed: {0}")]
    SelfCheck(String),
    /// Another PKCS#11 call failed.
    #[error("PKCS#11: {0}")]
    Token(String),
}

/// A key pair in a PKCS#11 token, signing through it. Cheap to clone;
/// clones share the sessions.
#[derive(Clone)]
pub struct Pkcs11Signer {
    alg: Algorithm,
    kid: String,
    public: PublicKeyMaterial,
    token: Arc<token::Token>,
}

impl Pkcs11Signer {
    /// Opens the key of `config` and checks it with one signature. The
    /// PKCS#11 calls run on tokio's blocking pool.
    pub async fn open(config: Pkcs11Config) -> Result<Self, Pkcs11Error> {
        tokio::task::spawn_blocking(move || Self::open_blocking(&config))
            .await
            .map_err(|e| Pkcs11Error::Token(e.to_string()))?
    }

    /// [`Pkcs11Signer::open`] on the calling thread, for start-up code
    /// outside a runtime. Signing later still needs a tokio runtime.
    pub fn open_blocking(config: &Pkcs11Config) -> Result<Self, Pkcs11Error> {
        let (token, public, alg) = token::Token::open(config)?;
        Self::checked(token, public, alg)
    }

    /// Generates a key pair for `alg` inside the token of `config`, labelled
    /// and identified as `config`'s key selector says (a label is required):
    /// private key sensitive, never extractable, on the token. Returns the
    /// signer of the new key. An existing key of that label is an error.
    pub fn generate_blocking(config: &Pkcs11Config, alg: Algorithm) -> Result<Self, Pkcs11Error> {
        let (token, public) = token::Token::generate(config, alg)?;
        Self::checked(token, public, alg)
    }

    fn checked(
        token: token::Token,
        public: PublicKeyMaterial,
        alg: Algorithm,
    ) -> Result<Self, Pkcs11Error> {
        public
            .check()
            .map_err(|e| Pkcs11Error::UnsupportedKey(e.to_string()))?;
        let kid = public.thumbprint();
        let signer = Pkcs11Signer {
            alg,
            kid,
            public,
            token: Arc::new(token),
        };
        signer.self_check()?;
        tracing::info!(kid = %signer.kid, %alg, module = %signer.token.module(), "PKCS#11 key opened");
        Ok(signer)
    }

    /// One signature, verified with the public key read from the token: a
    /// public key object that is not the private key's pair, or a
    /// mechanism the token implements differently, shows here and not in
    /// the first verifier.
    fn self_check(&self) -> Result<(), Pkcs11Error> {
        let input = b"svcauth PKCS#11 self-check";
        let signature = self
            .token
            .sign_blocking(self.alg, input)
            .map_err(|e| Pkcs11Error::SelfCheck(e.to_string()))?;
        let key = self
            .public
            .parse_for(self.alg)
            .map_err(|e| Pkcs11Error::SelfCheck(e.to_string()))?;
        key.verify_sig(input, &signature).map_err(|_| {
            Pkcs11Error::SelfCheck(
                "the token's signature does not verify with its public key".into(),
            )
        })
    }

    /// The public key read from the token.
    pub fn public_key(&self) -> &PublicKeyMaterial {
        &self.public
    }
}

impl JwsSigner for Pkcs11Signer {
    fn kid(&self) -> &str {
        &self.kid
    }

    fn alg(&self) -> Algorithm {
        self.alg
    }

    fn public_jwk(&self) -> Jwk {
        self.public.to_jwk(Some(&self.kid), Some(self.alg))
    }

    fn sign<'a>(&'a self, signing_input: &'a [u8]) -> SignatureFuture<'a> {
        Box::pin(async move {
            let _permit = self.token.permit().await?;
            let (token, alg, input) = (self.token.clone(), self.alg, signing_input.to_vec());
            tokio::task::spawn_blocking(move || token.sign_blocking(alg, &input))
                .await
                .map_err(|e| KeyError::Unavailable(format!("the signing task failed: {e}")))?
        })
    }

    fn backend(&self) -> &'static str {
        "pkcs11"
    }
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("module", &self.token.module())
            .finish_non_exhaustive()
    }
}
