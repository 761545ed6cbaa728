//! The public key set of one issuer: kid -> verification key, each key pinned
//! to the algorithms its JWK allows.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::ParsedPublicKey;
use serde_json::{Map, Value};
use svcauth_core::{Algorithm, AlgorithmSet, KeyFamily, b64};

use crate::error::{JwksError, KeyError};
use crate::public_key::{Jwk, PublicKeyMaterial};

/// Default cap on the size of a JWKS document: 64 KiB.
pub(crate) const DEFAULT_MAX_JWKS_BYTES: usize = 64 * 1024;
/// At most this many keys of a document are considered; the rest are skipped.
pub(crate) const MAX_KEYS_PER_SET: usize = 64;
const MAX_KID_LEN: usize = 256;

/// A public key ready to verify signatures.
///
/// Its algorithms are pinned when the key is built: from the JWK's `alg`, or
/// from the curve (`P-256` -> ES256, `Ed25519` -> EdDSA), or, for an RSA JWK
/// without `alg`, the six RSA algorithms. A token header can narrow that
/// choice, never widen it. The key is parsed once here, so a verification
/// costs one signature check and nothing else.
pub struct VerifyingKey {
    kid: Option<Box<str>>,
    algorithms: AlgorithmSet,
    material: PublicKeyMaterial,
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
}

/// The signature did not verify, or the algorithm is not one the key is
/// pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The algorithm is not pinned on this key (algorithm confusion).
    #[error("algorithm {0} is not allowed for this key")]
    AlgorithmNotAllowed(Algorithm),
    /// The signature is wrong.
    #[error("signature verification failed")]
    Invalid,
}

impl VerifyingKey {
    /// Builds a key from public material, pinned to `algorithms` (which must
    /// all fit the key type and must not be empty).
    pub fn new(
        kid: Option<&str>,
        material: PublicKeyMaterial,
        algorithms: AlgorithmSet,
    ) -> Result<Self, KeyError> {
        material.check()?;
        if algorithms.is_empty() {
            return Err(KeyError::Malformed("no algorithm for the key"));
        }
        let parsed = algorithms
            .iter()
            .map(|alg| material.parse_for(alg).map(|p| (alg, p)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VerifyingKey {
            kid: kid.map(Into::into),
            algorithms,
            material,
            parsed,
        })
    }

    /// Builds a key from a PEM public key (`-----BEGIN PUBLIC KEY-----`).
    /// The `kid` is `kid`, or else the RFC 7638 thumbprint; the algorithm is
    /// `alg`, or else the one the key type implies (RS256 for RSA).
    pub fn from_public_pem(
        pem_text: &str,
        kid: Option<&str>,
        alg: Option<Algorithm>,
    ) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text).map_err(|e| KeyError::Pem(e.to_string()))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(KeyError::Pem(format!(
                "expected PUBLIC KEY, found {}",
                block.tag()
            )));
        }
        let material = PublicKeyMaterial::from_spki_der(block.contents())?;
        let alg = alg.unwrap_or(match material.family() {
            KeyFamily::Ed25519 => Algorithm::EdDSA,
            KeyFamily::P256 => Algorithm::ES256,
            KeyFamily::P384 => Algorithm::ES384,
            KeyFamily::Rsa => Algorithm::RS256,
        });
        let kid = kid.map_or_else(|| material.thumbprint(), str::to_owned);
        Self::new(Some(&kid), material, AlgorithmSet::only(alg))
    }

    /// Builds a key from one public JWK object (a WIT's `cnf.jwk`, say),
    /// under the rules of a JWKS entry: no symmetric or private keys, no
    /// `use` other than `sig`, RSA of at least 2048 bits, `alg` fitting the
    /// key type.
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, SkipReason> {
        parse_jwk(jwk, false, KeyUse::Signature)
    }

    /// The key id, if the JWK had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms this key is pinned to.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// The public key material.
    pub fn material(&self) -> &PublicKeyMaterial {
        &self.material
    }

    /// The public JWK of this key (with `alg` when it is pinned to one).
    pub fn to_jwk(&self) -> Jwk {
        let alg = match self.parsed.as_slice() {
            [(alg, _)] => Some(*alg),
            _ => None,
        };
        self.material.to_jwk(self.kid(), alg)
    }

    /// Verifies `signature` over `message` with `alg`.
    pub fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let (_, key) = self
            .parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .ok_or(SignatureError::AlgorithmNotAllowed(alg))?;
        key.verify_sig(message, signature)
            .map_err(|_| SignatureError::Invalid)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .field("material", &self.material)
            .finish()
    }
}

/// Why a key of a JWKS document was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The entry is not a JSON object.
    NotAnObject,
    /// `kty` is missing or unknown.
    UnknownKeyType(String),
    /// A symmetric (`oct`) key: never trusted from a JWKS.
    Symmetric,
    /// The curve is not P-256, P-384 or Ed25519.
    UnknownCurve(String),
    /// `use` is not `sig`, or `key_ops` lacks `verify`.
    NotForSignatures,
    /// Private key members (`d`, `p`, `q`, ...) are present: the issuer leaks
    /// its private key, and svcauth will not use a key published that way.
    PrivateKeyMaterial,
    /// `alg` is not an accepted asymmetric algorithm, or does not fit the key.
    BadAlgorithm(String),
    /// A member is missing, of the wrong type, or not strict base64url.
    Malformed(String),
    /// RSA modulus under 2048 bits.
    RsaTooSmall(usize),
    /// An earlier key of the set has the same `kid`.
    DuplicateKid,
    /// No `kid` in a set of more than one key, or in a SPIFFE bundle.
    MissingKid,
    /// The set has more keys than svcauth considers.
    TooManyKeys,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NotAnObject => f.write_str("not a JSON object"),
            SkipReason::UnknownKeyType(k) => write!(f, "unknown kty {k:?}"),
            SkipReason::Symmetric => {
                f.write_str("symmetric (oct) keys are never trusted from a JWKS")
            }
            SkipReason::UnknownCurve(c) => write!(f, "unsupported curve {c:?}"),
            SkipReason::NotForSignatures => f.write_str("not a signature key (use/key_ops)"),
            SkipReason::PrivateKeyMaterial => f.write_str("private key material is present"),
            SkipReason::BadAlgorithm(a) => {
                write!(f, "algorithm {a:?} is not accepted for this key")
            }
            SkipReason::Malformed(m) => write!(f, "malformed: {m}"),
            SkipReason::RsaTooSmall(bits) => write!(f, "RSA key of {bits} bits (2048 required)"),
            SkipReason::DuplicateKid => {
                f.write_str("duplicate kid (the first key with it is kept)")
            }
            SkipReason::MissingKid => {
                f.write_str("no kid, in a set of several keys or a SPIFFE bundle")
            }
            SkipReason::TooManyKeys => write!(f, "more than {MAX_KEYS_PER_SET} keys in the set"),
        }
    }
}

/// A key of a JWKS document that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's `kid`, when it had a string one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// The public keys of one issuer, by `kid`.
///
/// Immutable once built: a refresh builds a new set and swaps it in whole,
/// so a key the issuer removed stops resolving.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<Box<str>, Arc<VerifyingKey>>,
    /// A key without `kid`: only ever the single key of its set.
    keyless: Option<Arc<VerifyingKey>>,
    skipped: Vec<SkippedKey>,
    /// The SPIFFE bundle members, for a set read from a bundle.
    pub(crate) bundle: Option<crate::spiffe::BundleInfo>,
}

/// Which keys of a document are taken: signature keys of a plain JWKS
/// (`use` absent or `sig`), or one SVID type's keys of a SPIFFE bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyUse {
    Signature,
    Svid(crate::SvidKind),
}

impl KeySet {
    /// An empty set.
    pub fn empty() -> Self {
        KeySet::default()
    }

    /// A set of the given keys. Keys need distinct `kid`s; a key without
    /// `kid` must be the only one.
    pub fn from_keys(keys: impl IntoIterator<Item = VerifyingKey>) -> Result<Self, KeyError> {
        let mut set = KeySet::default();
        let keys: Vec<_> = keys.into_iter().collect();
        let several = keys.len() > 1;
        for key in keys {
            match key.kid.clone() {
                Some(kid) => {
                    if set.by_kid.insert(kid, Arc::new(key)).is_some() {
                        return Err(KeyError::Malformed("duplicate kid in key set"));
                    }
                }
                None if several => {
                    return Err(KeyError::Malformed(
                        "a key without kid must be the only key",
                    ));
                }
                None => set.keyless = Some(Arc::new(key)),
            }
        }
        Ok(set)
    }

    /// Parses a JWKS document (RFC 7517 §5), tolerating bad keys.
    ///
    /// A key that cannot be used safely is skipped with a `tracing` warning
    /// that names its kid and the reason, and listed in [`KeySet::skipped`];
    /// the other keys stay usable. Only a document that is too large, not a
    /// JSON object, or without a `keys` array is an error.
    ///
    /// # Example
    ///
    /// ```
    /// use svcauth_jwks::KeySet;
    ///
    /// let doc = br#"{"keys":[
    ///   {"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    ///   {"kty":"oct","kid":"k2","k":"c2VjcmV0"}
    /// ]}"#;
    /// let set = KeySet::from_jwks(doc, 64 * 1024).unwrap();
    /// assert_eq!(set.len(), 1);
    /// assert!(set.get(Some("k1")).is_some());
    /// assert_eq!(set.skipped()[0].kid.as_deref(), Some("k2"));
    /// ```
    pub fn from_jwks(document: &[u8], max_bytes: usize) -> Result<Self, JwksError> {
        let (_, entries) = read_document(document, max_bytes)?;
        Ok(Self::from_entries(entries, KeyUse::Signature))
    }

    /// The keys of `entries` meant for `key_use`, each parsed on its own.
    /// In a SPIFFE bundle, keys for other SVID types are not for us and
    /// are passed over without a word; every key meant for us that cannot
    /// be used is logged and listed in [`KeySet::skipped`].
    pub(crate) fn from_entries(entries: Vec<Value>, key_use: KeyUse) -> Self {
        let several = entries.len() > 1;
        let mut set = KeySet::default();
        for (index, entry) in entries.into_iter().enumerate() {
            if let KeyUse::Svid(kind) = key_use
                && entry.get("use").and_then(Value::as_str) != Some(kind.use_value())
            {
                continue;
            }
            let kid = entry.get("kid").and_then(Value::as_str).map(str::to_owned);
            let outcome = if index >= MAX_KEYS_PER_SET {
                Err(SkipReason::TooManyKeys)
            } else {
                match entry {
                    Value::Object(jwk) => parse_jwk(&jwk, several, key_use),
                    _ => Err(SkipReason::NotAnObject),
                }
            };
            let outcome = outcome.and_then(|key| match &key.kid {
                Some(k) if set.by_kid.contains_key(k) => Err(SkipReason::DuplicateKid),
                _ => Ok(key),
            });
            match outcome {
                Ok(key) => match key.kid.clone() {
                    Some(k) => {
                        set.by_kid.insert(k, Arc::new(key));
                    }
                    None => set.keyless = Some(Arc::new(key)),
                },
                Err(reason) => {
                    tracing::warn!(kid = kid.as_deref().unwrap_or("<none>"), %reason, "skipping JWKS key");
                    set.skipped.push(SkippedKey { kid, reason });
                }
            }
        }
        set
    }

    /// Looks up the key for a token's `kid`.
    ///
    /// With a `kid`, the key with that `kid`. Without one, the only key of a
    /// single-key set (RFC 7515 makes `kid` optional; with several keys a
    /// missing `kid` is ambiguous and finds nothing). A set whose single key
    /// has no `kid` answers every lookup with it.
    pub fn get(&self, kid: Option<&str>) -> Option<&Arc<VerifyingKey>> {
        if let Some(key) = &self.keyless {
            return Some(key);
        }
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None if self.by_kid.len() == 1 => self.by_kid.values().next(),
            None => None,
        }
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.by_kid.len() + usize::from(self.keyless.is_some())
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `kid`s of the usable keys, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.by_kid.keys().map(|k| k.to_string()).collect();
        kids.sort();
        kids
    }

    /// The keys of the parsed document that were skipped, with reasons.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// Whether two sets hold the same keys (same kids, same material, same
    /// pinned algorithms).
    pub fn same_keys(&self, other: &KeySet) -> bool {
        let same = |a: &VerifyingKey, b: &VerifyingKey| {
            a.material == b.material && a.algorithms == b.algorithms
        };
        self.by_kid.len() == other.by_kid.len()
            && self
                .by_kid
                .iter()
                .all(|(k, a)| other.by_kid.get(k).is_some_and(|b| same(a, b)))
            && match (&self.keyless, &other.keyless) {
                (None, None) => true,
                (Some(a), Some(b)) => same(a, b),
                _ => false,
            }
    }

    /// The public JWKS document of this set.
    pub fn to_jwks(&self) -> serde_json::Value {
        let mut keys: Vec<_> = self
            .by_kid
            .values()
            .chain(self.keyless.iter())
            .map(|k| k.to_jwk())
            .collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        serde_json::json!({ "keys": keys })
    }
}

/// A JWKS document's top-level object, without its `keys`, and the keys:
/// the size cap, JSON, an object, a `keys` array.
pub(crate) fn read_document(
    document: &[u8],
    max_bytes: usize,
) -> Result<(Map<String, Value>, Vec<Value>), JwksError> {
    if document.len() > max_bytes {
        return Err(JwksError::TooLarge { limit: max_bytes });
    }
    let value: Value =
        serde_json::from_slice(document).map_err(|e| JwksError::NotJson(e.to_string()))?;
    let Value::Object(mut top) = value else {
        return Err(JwksError::NotJson("the top level is not an object".into()));
    };
    let Some(Value::Array(entries)) = top.remove("keys") else {
        return Err(JwksError::NoKeysArray);
    };
    Ok((top, entries))
}

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn b64_member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, SkipReason> {
    let text = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| SkipReason::Malformed(format!("missing string member {name:?}")))?;
    b64::decode(text)
        .map_err(|_| SkipReason::Malformed(format!("{name:?} is not strict base64url")))
}

fn parse_jwk(
    jwk: &Map<String, Value>,
    several: bool,
    key_use: KeyUse,
) -> Result<VerifyingKey, SkipReason> {
    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    if kty == "oct" {
        return Err(SkipReason::Symmetric);
    }
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(SkipReason::PrivateKeyMaterial);
    }
    match (jwk.get("use"), key_use) {
        (None, KeyUse::Signature) => {}
        (Some(Value::String(u)), KeyUse::Signature) if u == "sig" => {}
        // A bundle's entries were chosen by their `use` already.
        (Some(_), KeyUse::Svid(_)) => {}
        _ => return Err(SkipReason::NotForSignatures),
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err(SkipReason::NotForSignatures);
        }
    }
    let kid = match jwk.get("kid") {
        // SPIFFE requires a kid on every bundle key (JWT-SVID §6.1).
        None if several || matches!(key_use, KeyUse::Svid(_)) => {
            return Err(SkipReason::MissingKid);
        }
        None => None,
        Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_KID_LEN => Some(k.as_str()),
        Some(_) => {
            return Err(SkipReason::Malformed(
                "kid must be a non-empty string of at most 256 bytes".into(),
            ));
        }
    };

    let material = match kty {
        "RSA" => PublicKeyMaterial::Rsa {
            n: crate::der::strip_zeros(&b64_member(jwk, "n")?).to_vec(),
            e: crate::der::strip_zeros(&b64_member(jwk, "e")?).to_vec(),
        },
        "EC" | "OKP" => {
            let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or("");
            match (kty, crv) {
                ("OKP", "Ed25519") => PublicKeyMaterial::Ed25519 {
                    x: b64_member(jwk, "x")?,
                },
                ("EC", "P-256" | "P-384") => PublicKeyMaterial::Ec {
                    curve: if crv == "P-256" {
                        KeyFamily::P256
                    } else {
                        KeyFamily::P384
                    },
                    x: b64_member(jwk, "x")?,
                    y: b64_member(jwk, "y")?,
                },
                _ => return Err(SkipReason::UnknownCurve(crv.chars().take(32).collect())),
            }
        }
        other => return Err(SkipReason::UnknownKeyType(other.chars().take(32).collect())),
    };
    if let Some(bits) = material
        .rsa_bits()
        .filter(|bits| *bits < crate::public_key::MIN_RSA_BITS)
    {
        return Err(SkipReason::RsaTooSmall(bits));
    }

    let algorithms = match jwk.get("alg") {
        None => AlgorithmSet::family(material.family()),
        Some(Value::String(name)) => match name.parse::<Algorithm>() {
            Ok(alg) if alg.family() == material.family() => AlgorithmSet::only(alg),
            _ => return Err(SkipReason::BadAlgorithm(name.chars().take(32).collect())),
        },
        Some(_) => return Err(SkipReason::BadAlgorithm("<not a string>".into())),
    };
    VerifyingKey::new(kid, material, algorithms).map_err(|e| SkipReason::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    fn jwks_of(keys: &[&SigningKey]) -> Vec<u8> {
        let keys: Vec<_> = keys.iter().map(|k| k.public_jwk()).collect();
        serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
    }

    #[test]
    fn every_algorithm_signs_and_verifies_through_a_parsed_jwks() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let set = KeySet::from_jwks(&jwks_of(&[&key]), DEFAULT_MAX_JWKS_BYTES).unwrap();
            let vk = set.get(Some(key.kid())).unwrap();
            assert_eq!(vk.algorithms(), AlgorithmSet::only(alg));
            let sig = key.sign(b"a.b").unwrap();
            assert_eq!(vk.verify(alg, b"a.b", &sig), Ok(()), "{alg}");
            assert_eq!(
                vk.verify(alg, b"a.c", &sig),
                Err(SignatureError::Invalid),
                "{alg}"
            );
            let other = Algorithm::ALL.into_iter().find(|a| *a != alg).unwrap();
            assert_eq!(
                vk.verify(other, b"a.b", &sig),
                Err(SignatureError::AlgorithmNotAllowed(other))
            );
        }
    }

    #[test]
    fn rsa_jwk_without_alg_is_pinned_to_the_rsa_family_only() {
        let key = SigningKey::generate(Algorithm::PS256).unwrap();
        let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
        jwk.as_object_mut().unwrap().remove("alg");
        let doc = serde_json::to_vec(&serde_json::json!({ "keys": [jwk] })).unwrap();
        let set = KeySet::from_jwks(&doc, DEFAULT_MAX_JWKS_BYTES).unwrap();
        let vk = set.get(None).unwrap();
        assert_eq!(vk.algorithms(), AlgorithmSet::family(KeyFamily::Rsa));
        assert!(
            vk.verify(Algorithm::PS256, b"m", &key.sign(b"m").unwrap())
                .is_ok()
        );
        assert_eq!(
            vk.verify(Algorithm::ES256, b"m", &[0; 64]),
            Err(SignatureError::AlgorithmNotAllowed(Algorithm::ES256))
        );
    }

    #[test]
    fn kid_is_required_to_choose_among_several_keys() {
        let a = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let b = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let set = KeySet::from_jwks(&jwks_of(&[&a, &b]), DEFAULT_MAX_JWKS_BYTES).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.get(None).is_none());
        assert!(set.get(Some(a.kid())).is_some());
        assert!(set.get(Some("nope")).is_none());
    }

    #[test]
    fn whole_document_errors() {
        assert!(matches!(
            KeySet::from_jwks(b"<html>", 100),
            Err(JwksError::NotJson(_))
        ));
        assert!(matches!(
            KeySet::from_jwks(b"[]", 100),
            Err(JwksError::NotJson(_))
        ));
        assert_eq!(
            KeySet::from_jwks(br#"{"kids":[]}"#, 100).unwrap_err(),
            JwksError::NoKeysArray
        );
        assert_eq!(
            KeySet::from_jwks(&[b' '; 101], 100).unwrap_err(),
            JwksError::TooLarge { limit: 100 }
        );
    }
}
