//! Private signing keys, parsed once at load.

use std::fmt;
use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents,
};
use svcauth_core::{Algorithm, KeyFamily};
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::public_key::{Jwk, PublicKeyMaterial};

/// A private key that signs tokens, with its algorithm and `kid`.
///
/// The key is parsed once, when it is loaded; signing never re-parses it.
/// The `kid` is the RFC 7638 thumbprint of the public key, so every replica
/// that loads the same key publishes the same `kid`. `Debug` shows the
/// algorithm and kid, never key material.
///
/// # Example
///
/// ```
/// use svcauth_core::Algorithm;
/// use svcauth_jwks::SigningKey;
///
/// let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
/// let signature = key.sign(b"header.payload").unwrap();
/// assert_eq!(signature.len(), 64);
/// assert_eq!(key.public_jwk().kid.as_deref(), Some(key.kid()));
/// ```
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    /// The JWS header's base64url, the same for every token: encoded once.
    header_b64: String,
    public: PublicKeyMaterial,
    inner: Inner,
}

enum Inner {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
}

impl SigningKey {
    /// Generates a new key for `alg` (RSA keys have 2048 bits).
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let pkcs8 = generate_pkcs8_der(alg)?;
        Self::from_pkcs8_der(&pkcs8, Some(alg))
    }

    /// Loads a PKCS#8 private key from PEM text (`-----BEGIN PRIVATE KEY-----`).
    ///
    /// Without `alg`, the algorithm follows from the key: Ed25519 signs EdDSA,
    /// P-256 ES256, P-384 ES384, and RSA RS256. With `alg`, it must fit the key.
    pub fn from_pkcs8_pem(pem_text: &str, alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text).map_err(|e| KeyError::Pem(e.to_string()))?;
        match block.tag() {
            "PRIVATE KEY" => Self::from_pkcs8_der(block.contents(), alg),
            tag @ ("RSA PRIVATE KEY" | "EC PRIVATE KEY") => Err(KeyError::Pem(format!(
                "{tag} is not PKCS#8; convert it with `openssl pkcs8 -topk8 -nocrypt`"
            ))),
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Pem(
                "encrypted PKCS#8 is not supported; decrypt it with `openssl pkcs8 -nocrypt`"
                    .into(),
            )),
            other => Err(KeyError::Pem(format!(
                "expected PRIVATE KEY, found {other}"
            ))),
        }
    }

    /// Loads a PKCS#8 PEM private key from a file.
    pub fn from_pem_file(path: impl AsRef<Path>, alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyError::Io {
                    path: path.display().to_string(),
                    source,
                })?,
            );
        Self::from_pkcs8_pem(&text, alg)
    }

    /// Loads a PKCS#8 PEM private key from an environment variable.
    pub fn from_env(var: &str, alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let text = Zeroizing::new(std::env::var(var).map_err(|_| KeyError::Env(var.to_owned()))?);
        Self::from_pkcs8_pem(&text, alg)
    }

    /// Loads a PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8], alg: Option<Algorithm>) -> Result<Self, KeyError> {
        let (inner, public) = parse_pkcs8(der)?;
        let alg = match (alg, public.family()) {
            (Some(alg), family) if alg.family() == family => alg,
            (Some(alg), _) => return Err(KeyError::AlgorithmMismatch(alg)),
            (None, KeyFamily::Ed25519) => Algorithm::EdDSA,
            (None, KeyFamily::P256) => Algorithm::ES256,
            (None, KeyFamily::P384) => Algorithm::ES384,
            (None, _) => Algorithm::RS256,
        };
        let inner = match inner {
            Inner::Rsa(pair, _) => Inner::Rsa(pair, rsa_encoding(alg)),
            other => other,
        };
        public.check()?;
        let kid = public.thumbprint();
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#);
        Ok(SigningKey {
            alg,
            header_b64: svcauth_core::b64::encode(header),
            kid,
            public,
            inner,
        })
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id (RFC 7638 thumbprint of the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key material.
    pub fn public_key(&self) -> &PublicKeyMaterial {
        &self.public
    }

    /// The public JWK, with `kid`, `alg` and `use: sig`.
    pub fn public_jwk(&self) -> Jwk {
        self.public.to_jwk(Some(&self.kid), Some(self.alg))
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`, X.509
    /// SubjectPublicKeyInfo), for distributing keys out of band.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        use aws_lc_rs::encoding::PublicKeyX509Der;
        let fail = |_| KeyError::Backend("public key encoding failed");
        let der = match &self.inner {
            Inner::Ed25519(pair) => AsDer::<PublicKeyX509Der<'_>>::as_der(pair.public_key())
                .map_err(fail)?
                .as_ref()
                .to_vec(),
            Inner::Ecdsa(pair) => AsDer::<PublicKeyX509Der<'_>>::as_der(pair.public_key())
                .map_err(fail)?
                .as_ref()
                .to_vec(),
            Inner::Rsa(pair, _) => AsDer::<PublicKeyX509Der<'_>>::as_der(pair.public_key())
                .map_err(fail)?
                .as_ref()
                .to_vec(),
        };
        Ok(pem::encode(&pem::Pem::new("PUBLIC KEY", der)))
    }

    /// A compact JWS of `claims` (a JSON object) with the header svcauth uses:
    /// `{"alg": <this key's>, "typ": "JWT", "kid": <this key's>}`.
    ///
    /// This signs whatever it is given: the token rules (audience, lifetime,
    /// `jti`) are the caller's. `svcauth-sign` builds its tokens with it.
    ///
    /// ```
    /// use svcauth_core::Algorithm;
    /// use svcauth_jwks::SigningKey;
    ///
    /// let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    /// let token = key.sign_jws(br#"{"sub":"test"}"#).unwrap();
    /// assert_eq!(token.split('.').count(), 3);
    /// ```
    pub fn sign_jws(&self, claims: &[u8]) -> Result<String, KeyError> {
        svcauth_core::jws::encode(&self.header_b64, claims, |input| self.sign(input))
    }

    /// Signs `message` (the JWS signing input) and returns the raw signature
    /// (for ECDSA the fixed-width `r || s` form JWS uses).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Inner::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Backend("ECDSA signing failed")),
            Inner::Rsa(pair, encoding) => {
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(*encoding, &SystemRandom::new(), message, &mut out)
                    .map_err(|_| KeyError::Backend("RSA signing failed"))?;
                Ok(out)
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn rsa_encoding(alg: Algorithm) -> &'static dyn signature::RsaEncoding {
    match alg {
        Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_SHA512,
        _ => &signature::RSA_PKCS1_SHA256,
    }
}

fn parse_pkcs8(der: &[u8]) -> Result<(Inner, PublicKeyMaterial), KeyError> {
    if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
        let x = pair.public_key().as_ref().to_vec();
        return Ok((Inner::Ed25519(pair), PublicKeyMaterial::Ed25519 { x }));
    }
    let curves = [
        (&ECDSA_P256_SHA256_FIXED_SIGNING, KeyFamily::P256, 32),
        (&ECDSA_P384_SHA384_FIXED_SIGNING, KeyFamily::P384, 48),
    ];
    for (signing, curve, width) in curves {
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(signing, der) {
            let point = pair.public_key().as_ref();
            if point.len() != 1 + 2 * width || point[0] != 4 {
                return Err(KeyError::Malformed("unexpected EC public key encoding"));
            }
            let (x, y) = point[1..].split_at(width);
            let public = PublicKeyMaterial::Ec {
                curve,
                x: x.to_vec(),
                y: y.to_vec(),
            };
            return Ok((Inner::Ecdsa(pair), public));
        }
    }
    match RsaKeyPair::from_pkcs8(der) {
        Ok(pair) => {
            let c = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            let public = PublicKeyMaterial::Rsa { n: c.n, e: c.e };
            Ok((Inner::Rsa(pair, &signature::RSA_PKCS1_SHA256), public))
        }
        // aws-lc-rs refuses RSA keys under 2048 bits while parsing them, so a
        // 1024-bit key ends here too.
        Err(_) => Err(KeyError::UnsupportedKeyType(
            "not a PKCS#8 Ed25519, P-256, P-384 or RSA (2048 to 8192 bits) private key",
        )),
    }
}

fn generate_pkcs8_der(alg: Algorithm) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let rng = SystemRandom::new();
    let fail = |_| KeyError::Backend("key generation failed");
    let der = match alg.family() {
        KeyFamily::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        KeyFamily::P256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        KeyFamily::P384 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        _ => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(fail)?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair).map_err(fail)?;
            der.as_ref().to_vec()
        }
    };
    Ok(Zeroizing::new(der))
}

/// Generates a new private key for `alg` as PKCS#8 PEM text, for
/// `cargo xtask keygen` and for tooling. Load it with
/// [`SigningKey::from_pkcs8_pem`].
pub fn generate_pkcs8_pem(alg: Algorithm) -> Result<Zeroizing<String>, KeyError> {
    let der = generate_pkcs8_der(alg)?;
    let block = pem::Pem::new("PRIVATE KEY", der.to_vec());
    Ok(Zeroizing::new(pem::encode(&block)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pem_with_the_same_kid() {
        for alg in [
            Algorithm::EdDSA,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::PS256,
        ] {
            let pem_text = generate_pkcs8_pem(alg).unwrap();
            let a = SigningKey::from_pkcs8_pem(&pem_text, Some(alg)).unwrap();
            let b = SigningKey::from_pkcs8_pem(&pem_text, Some(alg)).unwrap();
            assert_eq!(a.kid(), b.kid());
            assert_eq!(a.algorithm(), alg);
        }
    }

    #[test]
    fn algorithm_is_inferred_and_checked() {
        let pem_text = generate_pkcs8_pem(Algorithm::ES256).unwrap();
        assert_eq!(
            SigningKey::from_pkcs8_pem(&pem_text, None)
                .unwrap()
                .algorithm(),
            Algorithm::ES256
        );
        assert!(matches!(
            SigningKey::from_pkcs8_pem(&pem_text, Some(Algorithm::RS256)),
            Err(KeyError::AlgorithmMismatch(Algorithm::RS256))
        ));
    }

    #[test]
    fn debug_redacts_key_material() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()) && !shown.contains("inner"));
    }

    #[test]
    fn non_pkcs8_pem_gets_a_helpful_error() {
        let err = SigningKey::from_pkcs8_pem(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("openssl pkcs8"));
    }
}
