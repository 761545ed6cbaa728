//! The blocking side of the PKCS#11 backend: one loaded module per process,
//! a pool of logged-in sessions, finding and generating key pairs, reading
//! public keys, and the signing mechanism for each JOSE algorithm.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use svcauth_core::{Algorithm, KeyFamily};
use zeroize::Zeroizing;

use super::{KeySelector, Pkcs11Config, Pkcs11Error, TokenSelector};
use crate::der::{self, OID_ED25519, OID_P256, OID_P384};
use crate::error::KeyError;
use crate::public_key::PublicKeyMaterial;

/// A module is initialised once per process (a second `C_Initialize` is an
/// error), and every signer of that module shares its context.
fn context(module: &PathBuf) -> Result<Pkcs11, Pkcs11Error> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut contexts = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = contexts.get(module) {
        return Ok(ctx.clone());
    }
    let failed = |message: String| Pkcs11Error::Module {
        module: module.display().to_string(),
        message,
    };
    let ctx = Pkcs11::new(module).map_err(|e| failed(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(failed(e.to_string())),
    }
    contexts.insert(module.clone(), ctx.clone());
    Ok(ctx)
}

/// One key pair in one token, and the sessions that reach it.
pub(super) struct Token {
    module: String,
    ctx: Pkcs11,
    slot: Slot,
    pin: Arc<Zeroizing<String>>,
    key: KeySelector,
    /// Idle sessions, logged in. A session that failed is dropped, not
    /// returned, and the next signature opens a new one.
    idle: Mutex<Vec<Session>>,
    /// The private key's handle, found again after a failure.
    private: Mutex<Option<ObjectHandle>>,
    permits: tokio::sync::Semaphore,
}

impl Token {
    /// Finds the token, logs in, finds the key pair and reads its public
    /// key; the algorithm is the configured one, or the key's default.
    pub(super) fn open(
        config: &Pkcs11Config,
    ) -> Result<(Token, PublicKeyMaterial, Algorithm), Pkcs11Error> {
        let token = Token::connect(config)?;
        let session = token.session().map_err(open_error)?;
        let private = token
            .find(&session, ObjectClass::PRIVATE_KEY)?
            .ok_or_else(|| Pkcs11Error::KeyNotFound(format!("{:?}: no private key", token.key)))?;
        if !config.allow_extractable && extractable(&session, private)? {
            return Err(Pkcs11Error::Extractable);
        }
        let public = token.public_key(&session, private)?;
        let alg = match config.alg {
            Some(alg) if alg.family() == public.family() => alg,
            Some(alg) => {
                return Err(Pkcs11Error::UnsupportedKey(format!(
                    "{alg} does not fit a {:?} key",
                    public.family()
                )));
            }
            None => default_alg(public.family()),
        };
        *token.private.lock().unwrap_or_else(PoisonError::into_inner) = Some(private);
        token.give_back(session);
        Ok((token, public, alg))
    }

    /// Generates a key pair for `alg` in the token (see
    /// `Pkcs11Signer::generate_blocking`).
    pub(super) fn generate(
        config: &Pkcs11Config,
        alg: Algorithm,
    ) -> Result<(Token, PublicKeyMaterial), Pkcs11Error> {
        let Some(KeySelector::Label(label)) = &config.key else {
            return Err(Pkcs11Error::KeyNotFound(
                "a new key needs a label (key_label)".into(),
            ));
        };
        let token = Token::connect(config)?;
        let session = token
            .login(token.ctx.open_rw_session(token.slot))
            .map_err(open_error)?;
        if token.find(&session, ObjectClass::PRIVATE_KEY)?.is_some() {
            return Err(Pkcs11Error::UnsupportedKey(format!(
                "the token already holds a key labelled {label:?}"
            )));
        }
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| Pkcs11Error::Token("no randomness".into()))?;
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
                if private {
                    Attribute::Sign(true)
                } else {
                    Attribute::Verify(true)
                },
            ]
        };
        let mut public = common(false);
        let mut private = common(true);
        private.extend([
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
        ]);
        let mechanism = match alg.family() {
            KeyFamily::Ed25519 => {
                public.push(Attribute::EcParams(oid_der(OID_ED25519)));
                Mechanism::EccEdwardsKeyPairGen
            }
            KeyFamily::P256 => {
                public.push(Attribute::EcParams(oid_der(OID_P256)));
                Mechanism::EccKeyPairGen
            }
            KeyFamily::P384 => {
                public.push(Attribute::EcParams(oid_der(OID_P384)));
                Mechanism::EccKeyPairGen
            }
            _ => {
                public.extend([
                    Attribute::ModulusBits(2048.into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                ]);
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        let (_, private) = session
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| Pkcs11Error::Token(format!("generating a {alg} key pair: {e}")))?;
        let public = token.public_key(&session, private)?;
        // Handles live while a session of the slot is open: this one stays.
        *token.private.lock().unwrap_or_else(PoisonError::into_inner) = Some(private);
        token.give_back(session);
        Ok((token, public))
    }

    fn connect(config: &Pkcs11Config) -> Result<Token, Pkcs11Error> {
        let pin = config
            .pin
            .clone()
            .ok_or_else(|| Pkcs11Error::Pin("no PIN configured (a file or a variable)".into()))?;
        let key = config
            .key
            .clone()
            .ok_or_else(|| Pkcs11Error::KeyNotFound("no key label or id configured".into()))?;
        let ctx = context(&config.module)?;
        let slot = find_slot(&ctx, &config.token)?;
        Ok(Token {
            module: config.module.display().to_string(),
            ctx,
            slot,
            pin,
            key,
            idle: Mutex::new(Vec::new()),
            private: Mutex::new(None),
            permits: tokio::sync::Semaphore::new(config.sessions),
        })
    }

    pub(super) fn module(&self) -> &str {
        &self.module
    }

    /// One of the pool's places: at most as many signatures in flight as
    /// sessions configured.
    pub(super) async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, KeyError> {
        self.permits
            .acquire()
            .await
            .map_err(|_| KeyError::Unavailable("the PKCS#11 session pool is closed".into()))
    }

    /// An idle session, or a new one, logged in.
    fn session(&self) -> Result<Session, CkError> {
        if let Some(session) = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
        {
            return Ok(session);
        }
        self.login(self.ctx.open_ro_session(self.slot))
    }

    /// Logs the user in on a new session. Login is per token and
    /// application, so a session opened after another one is often in
    /// already.
    fn login(&self, session: Result<Session, CkError>) -> Result<Session, CkError> {
        let session = session?;
        let pin = AuthPin::new(self.pin.as_str().into());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(e),
        }
    }

    fn give_back(&self, session: Session) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(session);
    }

    /// Signs on the calling thread (a blocking-pool thread, or start-up).
    /// After a failure the session and the key handle are dropped, so the
    /// next call starts afresh: a token re-inserted, or a module restarted,
    /// is picked up without a restart of the service.
    pub(super) fn sign_blocking(&self, alg: Algorithm, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            KeyError::Unavailable(format!("PKCS#11 {what}: {e}"))
        };
        let session = self.session().map_err(|e| unavailable("session", &e))?;
        let result = self
            .private_handle(&session)
            .and_then(|key| super::mechanism::sign_with(&session, key, alg, input));
        match result {
            Ok(signature) => {
                self.give_back(session);
                Ok(signature)
            }
            Err(e) => {
                *self.private.lock().unwrap_or_else(PoisonError::into_inner) = None;
                tracing::warn!(module = %self.module, error = %e, "PKCS#11 signature failed; the session is dropped");
                Err(unavailable("signature", &e))
            }
        }
    }

    fn private_handle(&self, session: &Session) -> Result<ObjectHandle, CkError> {
        let mut cached = self.private.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = *cached {
            return Ok(handle);
        }
        let handle = session
            .find_objects(&self.template(ObjectClass::PRIVATE_KEY))?
            .into_iter()
            .next()
            .ok_or(CkError::Pkcs11(
                RvError::KeyHandleInvalid,
                cryptoki::context::Function::FindObjects,
            ))?;
        *cached = Some(handle);
        Ok(handle)
    }

    fn template(&self, class: ObjectClass) -> Vec<Attribute> {
        let selector = match &self.key {
            KeySelector::Label(label) => Attribute::Label(label.as_bytes().to_vec()),
            KeySelector::Id(id) => Attribute::Id(id.clone()),
        };
        vec![Attribute::Class(class), selector]
    }

    /// The one object of `class` the selector names; two is an error (which
    /// would sign?).
    fn find(
        &self,
        session: &Session,
        class: ObjectClass,
    ) -> Result<Option<ObjectHandle>, Pkcs11Error> {
        let found = session
            .find_objects(&self.template(class))
            .map_err(|e| Pkcs11Error::Token(format!("finding {:?}: {e}", self.key)))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(Pkcs11Error::KeyNotFound(format!(
                "{:?}: {} objects match; label or id must name one key",
                self.key,
                found.len()
            ))),
        }
    }

    /// The public key: from the public key object of the pair, else from
    /// the private key's `CKA_PUBLIC_KEY_INFO` (tokens that keep no public
    /// object).
    fn public_key(
        &self,
        session: &Session,
        private: ObjectHandle,
    ) -> Result<PublicKeyMaterial, Pkcs11Error> {
        if let Some(public) = self.find(session, ObjectClass::PUBLIC_KEY)? {
            return read_public_key(session, public);
        }
        let info = session
            .get_attributes(private, &[AttributeType::PublicKeyInfo])
            .map_err(|e| Pkcs11Error::Token(e.to_string()))?;
        match info.as_slice() {
            [Attribute::PublicKeyInfo(spki)] if !spki.is_empty() => {
                PublicKeyMaterial::from_spki_der(spki)
                    .map_err(|e| Pkcs11Error::UnsupportedKey(e.to_string()))
            }
            _ => Err(Pkcs11Error::KeyNotFound(format!(
                "{:?}: no public key object and no CKA_PUBLIC_KEY_INFO",
                self.key
            ))),
        }
    }
}

fn find_slot(ctx: &Pkcs11, selector: &TokenSelector) -> Result<Slot, Pkcs11Error> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| Pkcs11Error::Token(e.to_string()))?;
    for slot in slots {
        let matches = match selector {
            TokenSelector::Slot(id) => slot.id() == *id,
            TokenSelector::Label(label) => ctx
                .get_token_info(slot)
                .is_ok_and(|info| info.label().trim_end() == label),
        };
        if matches {
            return Ok(slot);
        }
    }
    Err(Pkcs11Error::TokenNotFound(match selector {
        TokenSelector::Label(label) => format!("labelled {label:?}"),
        TokenSelector::Slot(id) => format!("in slot {id}"),
    }))
}

/// Errors of the first session: a refused PIN is its own variant.
fn open_error(e: CkError) -> Pkcs11Error {
    match e {
        CkError::Pkcs11(
            rv @ (RvError::PinIncorrect
            | RvError::PinInvalid
            | RvError::PinLenRange
            | RvError::PinLocked
            | RvError::PinExpired),
            _,
        ) => Pkcs11Error::Login(rv.to_string()),
        CkError::Pkcs11(
            rv @ (RvError::TokenNotPresent | RvError::TokenNotRecognized | RvError::DeviceRemoved),
            _,
        ) => Pkcs11Error::TokenNotFound(rv.to_string()),
        other => Pkcs11Error::Token(other.to_string()),
    }
}

/// Whether the private key could leave the token.
fn extractable(session: &Session, private: ObjectHandle) -> Result<bool, Pkcs11Error> {
    let attributes = session
        .get_attributes(
            private,
            &[AttributeType::Extractable, AttributeType::Sensitive],
        )
        .map_err(|e| Pkcs11Error::Token(e.to_string()))?;
    Ok(attributes.iter().any(|a| {
        matches!(
            a,
            Attribute::Extractable(true) | Attribute::Sensitive(false)
        )
    }))
}

fn default_alg(family: KeyFamily) -> Algorithm {
    match family {
        KeyFamily::Ed25519 => Algorithm::EdDSA,
        KeyFamily::P256 => Algorithm::ES256,
        KeyFamily::P384 => Algorithm::ES384,
        _ => Algorithm::RS256,
    }
}

fn oid_der(oid: &[u8]) -> Vec<u8> {
    let mut der = vec![0x06, oid.len() as u8];
    der.extend_from_slice(oid);
    der
}

fn read_public_key(
    session: &Session,
    public: ObjectHandle,
) -> Result<PublicKeyMaterial, Pkcs11Error> {
    let wanted = [
        AttributeType::KeyType,
        AttributeType::EcParams,
        AttributeType::EcPoint,
        AttributeType::Modulus,
        AttributeType::PublicExponent,
    ];
    let attributes = session
        .get_attributes(public, &wanted)
        .map_err(|e| Pkcs11Error::Token(e.to_string()))?;
    let (mut key_type, mut params, mut point, mut n, mut e) = (None, None, None, None, None);
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            Attribute::Modulus(m) => n = Some(m),
            Attribute::PublicExponent(x) => e = Some(x),
            _ => {}
        }
    }
    let unsupported = |what: &str| Pkcs11Error::UnsupportedKey(what.to_owned());
    let point = point.as_deref().map(|p| der::octet_string(p).unwrap_or(p));
    match (key_type, params.as_deref(), point) {
        (Some(KeyType::RSA), ..) => match (n, e) {
            (Some(n), Some(e)) => Ok(PublicKeyMaterial::Rsa {
                n: der::strip_zeros(&n).to_vec(),
                e: der::strip_zeros(&e).to_vec(),
            }),
            _ => Err(unsupported("an RSA public key without modulus or exponent")),
        },
        (Some(KeyType::EC_EDWARDS), Some(params), Some(x)) => {
            // The OID, or the PrintableString name older tokens write.
            let ed25519 =
                params == oid_der(OID_ED25519).as_slice() || params.ends_with(b"edwards25519");
            if !ed25519 || x.len() != 32 {
                return Err(unsupported("an Edwards curve other than Ed25519"));
            }
            Ok(PublicKeyMaterial::Ed25519 { x: x.to_vec() })
        }
        (Some(KeyType::EC), Some(params), Some(point)) => {
            let (curve, width) = if params == oid_der(OID_P256).as_slice() {
                (KeyFamily::P256, 32)
            } else if params == oid_der(OID_P384).as_slice() {
                (KeyFamily::P384, 48)
            } else {
                return Err(unsupported("an EC curve other than P-256 and P-384"));
            };
            match point.split_first() {
                Some((4, xy)) if xy.len() == 2 * width => {
                    let (x, y) = xy.split_at(width);
                    Ok(PublicKeyMaterial::Ec {
                        curve,
                        x: x.to_vec(),
                        y: y.to_vec(),
                    })
                }
                _ => Err(unsupported("an EC point that is not uncompressed")),
            }
        }
        _ => Err(unsupported("a key type other than RSA, EC and Ed25519")),
    }
}
