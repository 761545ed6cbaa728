//! Public key material, its JWK form and its RFC 7638 thumbprint.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use serde::{Deserialize, Serialize};
use svcauth_core::{Algorithm, KeyFamily, b64};

use crate::der;
use crate::error::KeyError;

/// Smallest RSA modulus svcauth accepts, in bits (RFC 7518 §3.3 and NIST).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus svcauth accepts, in bits (what aws-lc-rs verifies).
pub const MAX_RSA_BITS: usize = 8192;

/// The public half of a key: what a JWK carries, without its metadata.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKeyMaterial {
    /// An Ed25519 public key (`kty: OKP`, 32 bytes).
    Ed25519 {
        /// The public key bytes.
        x: Vec<u8>,
    },
    /// A P-256 or P-384 point (`kty: EC`).
    Ec {
        /// [`KeyFamily::P256`] or [`KeyFamily::P384`].
        curve: KeyFamily,
        /// The x coordinate, fixed width.
        x: Vec<u8>,
        /// The y coordinate, fixed width.
        y: Vec<u8>,
    },
    /// An RSA public key (`kty: RSA`).
    Rsa {
        /// The modulus, unsigned big-endian without leading zeros.
        n: Vec<u8>,
        /// The public exponent, unsigned big-endian without leading zeros.
        e: Vec<u8>,
    },
}

impl PublicKeyMaterial {
    /// The key family.
    pub fn family(&self) -> KeyFamily {
        match self {
            PublicKeyMaterial::Ed25519 { .. } => KeyFamily::Ed25519,
            PublicKeyMaterial::Ec { curve, .. } => *curve,
            PublicKeyMaterial::Rsa { .. } => KeyFamily::Rsa,
        }
    }

    /// The RSA modulus size in bits, or `None` for other key types.
    pub fn rsa_bits(&self) -> Option<usize> {
        match self {
            PublicKeyMaterial::Rsa { n, .. } => {
                let n = der::strip_zeros(n);
                let first = n.first().copied().unwrap_or(0);
                Some(n.len().saturating_sub(1) * 8 + (8 - first.leading_zeros() as usize))
            }
            _ => None,
        }
    }

    /// Checks sizes: exact coordinate widths, RSA between 2048 and 8192 bits,
    /// an odd RSA exponent of at least 65537 and at most 32 bits. NIST SP
    /// 800-56B asks for e >= 65537; no issuer svcauth knows of uses less,
    /// and a small exponent is where padding-oracle and low-exponent
    /// attacks live, so e = 3 is refused rather than merely tolerated.
    pub(crate) fn check(&self) -> Result<(), KeyError> {
        match self {
            PublicKeyMaterial::Ed25519 { x } if x.len() != 32 => {
                Err(KeyError::Malformed("Ed25519 x must be 32 bytes"))
            }
            PublicKeyMaterial::Ec { curve, x, y } => {
                let width = if *curve == KeyFamily::P256 { 32 } else { 48 };
                if x.len() != width || y.len() != width {
                    return Err(KeyError::Malformed("EC coordinates have the wrong length"));
                }
                Ok(())
            }
            PublicKeyMaterial::Rsa { e, .. } => {
                let bits = self.rsa_bits().unwrap_or(0);
                if bits < MIN_RSA_BITS {
                    return Err(KeyError::RsaTooSmall(bits));
                }
                if bits > MAX_RSA_BITS {
                    return Err(KeyError::RsaTooLarge(bits));
                }
                let e = der::strip_zeros(e);
                let value = e.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
                if e.is_empty() || e.len() > 4 || value & 1 == 0 || value < 65_537 {
                    return Err(KeyError::Malformed(
                        "RSA exponent must be odd, >= 65537, <= 32 bits",
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url), used as the `kid`.
    pub fn thumbprint(&self) -> String {
        // The required members only, in lexicographic order, no whitespace.
        let canonical = match self {
            PublicKeyMaterial::Ed25519 { x } => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(x)
                )
            }
            PublicKeyMaterial::Ec { curve, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                curve_name(*curve),
                b64::encode(x),
                b64::encode(y)
            ),
            PublicKeyMaterial::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64::encode(e),
                b64::encode(n)
            ),
        };
        b64::encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }

    /// The public JWK of this key.
    pub fn to_jwk(&self, kid: Option<&str>, alg: Option<Algorithm>) -> Jwk {
        let mut jwk = Jwk {
            kty: String::new(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid: kid.map(str::to_owned),
            alg: alg.map(|a| a.as_str().to_owned()),
            use_: Some("sig".to_owned()),
        };
        match self {
            PublicKeyMaterial::Ed25519 { x } => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64::encode(x));
            }
            PublicKeyMaterial::Ec { curve, x, y } => {
                jwk.kty = "EC".into();
                jwk.crv = Some(curve_name(*curve).into());
                jwk.x = Some(b64::encode(x));
                jwk.y = Some(b64::encode(y));
            }
            PublicKeyMaterial::Rsa { n, e } => {
                jwk.kty = "RSA".into();
                jwk.n = Some(b64::encode(n));
                jwk.e = Some(b64::encode(e));
            }
        }
        jwk
    }

    /// Reads a SubjectPublicKeyInfo (the DER inside `-----BEGIN PUBLIC KEY-----`).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki = der::parse_spki(der).ok_or(KeyError::Malformed("not a SubjectPublicKeyInfo"))?;
        let material = match (spki.algorithm, spki.curve) {
            (der::OID_ED25519, None) => PublicKeyMaterial::Ed25519 {
                x: spki.key.to_vec(),
            },
            (der::OID_EC, Some(curve)) => {
                let (curve, width) = match curve {
                    der::OID_P256 => (KeyFamily::P256, 32),
                    der::OID_P384 => (KeyFamily::P384, 48),
                    _ => {
                        return Err(KeyError::UnsupportedKeyType(
                            "EC curve other than P-256/P-384",
                        ));
                    }
                };
                match spki.key {
                    [4, point @ ..] if point.len() == 2 * width => {
                        let (x, y) = point.split_at(width);
                        PublicKeyMaterial::Ec {
                            curve,
                            x: x.to_vec(),
                            y: y.to_vec(),
                        }
                    }
                    _ => return Err(KeyError::Malformed("EC point is not uncompressed")),
                }
            }
            (der::OID_RSA, None) => {
                let (n, e) = der::parse_rsa_public_key(spki.key)
                    .ok_or(KeyError::Malformed("bad RSAPublicKey"))?;
                PublicKeyMaterial::Rsa { n, e }
            }
            _ => return Err(KeyError::UnsupportedKeyType("unknown public key algorithm")),
        };
        material.check()?;
        Ok(material)
    }

    /// Parses the key for verification with `alg` (once; verifications reuse it).
    pub(crate) fn parse_for(&self, alg: Algorithm) -> Result<ParsedPublicKey, KeyError> {
        if alg.family() != self.family() {
            return Err(KeyError::AlgorithmMismatch(alg));
        }
        let verification: &'static dyn VerificationAlgorithm = match alg {
            Algorithm::EdDSA => &signature::ED25519,
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        };
        let bytes = match self {
            PublicKeyMaterial::Ed25519 { x } => x.clone(),
            PublicKeyMaterial::Ec { x, y, .. } => {
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                point
            }
            PublicKeyMaterial::Rsa { n, e } => der::rsa_public_key(n, e),
        };
        ParsedPublicKey::new(verification, bytes)
            .map_err(|_| KeyError::Malformed("public key rejected by the crypto backend"))
    }
}

impl fmt::Debug for PublicKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKeyMaterial::Rsa { .. } => {
                write!(f, "Rsa({} bits)", self.rsa_bits().unwrap_or(0))
            }
            other => write!(f, "{:?}", other.family()),
        }
    }
}

pub(crate) fn curve_name(family: KeyFamily) -> &'static str {
    match family {
        KeyFamily::P256 => "P-256",
        KeyFamily::P384 => "P-384",
        KeyFamily::Ed25519 => "Ed25519",
        KeyFamily::Rsa => "",
    }
}

/// A public JSON Web Key (RFC 7517), as svcauth publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP`, `EC` or `RSA`.
    pub kty: String,
    /// Curve, for `OKP` and `EC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// x coordinate or Ed25519 public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Key id: the RFC 7638 thumbprint for keys svcauth makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The one algorithm this key is used with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use: always `sig` here.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1: the example RSA key and its thumbprint.
    #[test]
    fn thumbprint_matches_rfc7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let key = PublicKeyMaterial::Rsa {
            n: b64::decode(n).unwrap(),
            e: b64::decode("AQAB").unwrap(),
        };
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(key.rsa_bits(), Some(2048));
        key.check().unwrap();
    }

    #[test]
    fn small_rsa_and_even_exponent_are_refused() {
        let small = PublicKeyMaterial::Rsa {
            n: vec![0xFF; 128],
            e: vec![1, 0, 1],
        };
        assert!(matches!(small.check(), Err(KeyError::RsaTooSmall(1024))));
        let even = PublicKeyMaterial::Rsa {
            n: vec![0xFF; 256],
            e: vec![1, 0, 0],
        };
        assert!(even.check().is_err());
        // SP 800-56B: e >= 65537. e = 3 and e = 257 are refused.
        for e in [vec![3], vec![1, 1], vec![0, 0, 3]] {
            let small_e = PublicKeyMaterial::Rsa {
                n: vec![0xFF; 256],
                e,
            };
            assert!(small_e.check().is_err());
        }
        let f4 = PublicKeyMaterial::Rsa {
            n: vec![0xFF; 256],
            e: vec![1, 0, 1],
        };
        assert!(f4.check().is_ok());
    }
}
