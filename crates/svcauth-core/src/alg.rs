//! The asymmetric algorithm allow-list.

use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm svcauth accepts.
///
/// Only asymmetric algorithms exist here: `none` and the `HS*` family cannot be
/// named, so they cannot be allowed by mistake (RFC 8725 §3.1, §3.2).
///
/// Not `#[non_exhaustive]` on purpose: code that maps algorithms to crypto
/// primitives should fail to compile, not fall through a wildcard, when an
/// algorithm is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// Ed25519 signatures (RFC 8037).
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
}

/// The key family an [`Algorithm`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
    /// `kty: EC`, `crv: P-256`.
    P256,
    /// `kty: EC`, `crv: P-384`.
    P384,
    /// `kty: RSA`.
    Rsa,
}

impl Algorithm {
    /// Every supported algorithm, in a fixed order.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];

    /// The JOSE name (`"ES256"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
        }
    }

    /// The key family this algorithm signs with.
    pub const fn family(self) -> KeyFamily {
        match self {
            Algorithm::EdDSA => KeyFamily::Ed25519,
            Algorithm::ES256 => KeyFamily::P256,
            Algorithm::ES384 => KeyFamily::P384,
            _ => KeyFamily::Rsa,
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an algorithm name that svcauth does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("algorithm {0:?} is not an accepted asymmetric JWS algorithm")]
pub struct UnsupportedAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnsupportedAlgorithm;

    /// Parses a JOSE algorithm name, exactly as written (JOSE names are
    /// case-sensitive, so `"none"`, `"None"` and `"HS256"` are all refused).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnsupportedAlgorithm(s.chars().take(32).collect()))
    }
}

/// A set of [`Algorithm`]s: the allow-list of a verifier, or the algorithms a
/// key is pinned to. A small bit set, `Copy`, with O(1) membership.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// The empty set.
    pub const EMPTY: AlgorithmSet = AlgorithmSet(0);

    /// Every supported asymmetric algorithm.
    pub const fn all() -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < Algorithm::ALL.len() {
            bits |= Algorithm::ALL[i].bit();
            i += 1;
        }
        AlgorithmSet(bits)
    }

    /// A set of one algorithm.
    pub const fn only(alg: Algorithm) -> Self {
        AlgorithmSet(alg.bit())
    }

    /// Every algorithm of one key family (all six RSA algorithms for
    /// [`KeyFamily::Rsa`]).
    pub fn family(family: KeyFamily) -> Self {
        Algorithm::ALL
            .into_iter()
            .filter(|a| a.family() == family)
            .collect()
    }

    /// This set with `alg` added.
    #[must_use]
    pub const fn with(self, alg: Algorithm) -> Self {
        AlgorithmSet(self.0 | alg.bit())
    }

    /// Whether `alg` is in the set.
    pub const fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms in both sets.
    #[must_use]
    pub const fn intersection(self, other: AlgorithmSet) -> Self {
        AlgorithmSet(self.0 & other.0)
    }

    /// The algorithms of the set, in [`Algorithm::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        iter.into_iter()
            .fold(AlgorithmSet::EMPTY, AlgorithmSet::with)
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_none_and_hmac_in_any_casing() {
        for name in [
            "none", "None", "NONE", "nOnE", "HS256", "HS384", "HS512", "hs256", "",
        ] {
            assert!(name.parse::<Algorithm>().is_err(), "{name} must be refused");
        }
        assert!(
            "es256".parse::<Algorithm>().is_err(),
            "JOSE names are case-sensitive"
        );
    }

    #[test]
    fn round_trips_every_name() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.as_str().parse::<Algorithm>().unwrap(), alg);
        }
    }

    #[test]
    fn set_membership_and_families() {
        let rsa = AlgorithmSet::family(KeyFamily::Rsa);
        assert_eq!(rsa.iter().count(), 6);
        assert!(!rsa.contains(Algorithm::ES256));
        let s = AlgorithmSet::only(Algorithm::EdDSA).with(Algorithm::ES256);
        assert_eq!(s.intersection(rsa), AlgorithmSet::EMPTY);
        assert_eq!(AlgorithmSet::all().iter().count(), 9);
    }
}
