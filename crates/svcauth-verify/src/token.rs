//! A service token read before any key is looked at: the compact JWS under
//! the strict rules of [`svcauth_core::jws`], then its `alg` and claims
//! typed. Everything here is untrusted input.

use svcauth_core::jws::{self, JwsError};
use svcauth_core::{Algorithm, Claims};

use crate::error::ErrorKind;

/// The HMAC algorithms, accepted only for an issuer configured with a local
/// secret through the `danger_` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hmac {
    Hs256,
    Hs384,
    Hs512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderAlg {
    Asymmetric(Algorithm),
    Hmac(Hmac),
}

/// The protected header, reduced to what verification uses. `jwk`, `jku`,
/// `x5u` and `x5c` are never read: a key is found by `iss` and `kid` only.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) alg: HeaderAlg,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
}

/// A token split and decoded, not yet verified.
pub(crate) struct Parsed<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'a str,
    pub(crate) header: Header,
    pub(crate) claims: Claims,
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

pub(crate) fn parse(token: &str, max_len: usize) -> Result<Parsed<'_>, ErrorKind> {
    let compact = jws::parse(token, max_len).map_err(|e| match e {
        JwsError::TooLarge => ErrorKind::TokenTooLarge,
        JwsError::DuplicateMember => ErrorKind::DuplicateMember,
        JwsError::UnsupportedHeader => ErrorKind::UnsupportedHeader,
        _ => ErrorKind::Malformed,
    })?;
    let alg = match compact.header.alg.as_str() {
        "HS256" => HeaderAlg::Hmac(Hmac::Hs256),
        "HS384" => HeaderAlg::Hmac(Hmac::Hs384),
        "HS512" => HeaderAlg::Hmac(Hmac::Hs512),
        other => HeaderAlg::Asymmetric(other.parse().map_err(|_| ErrorKind::UnsupportedAlgorithm)?),
    };
    let claims: Claims =
        serde_json::from_slice(&compact.payload).map_err(|_| ErrorKind::InvalidClaims)?;
    Ok(Parsed {
        signing_input: compact.signing_input,
        header: Header {
            alg,
            kid: compact.header.kid,
            typ: compact.header.typ,
        },
        claims,
        payload: compact.payload,
        signature: compact.signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_counted_before_splitting() {
        for token in ["a", "a.b", "a.b.c.d", "a.b.c.d.e", "..", "a..c"] {
            assert!(
                matches!(parse(token, 8192), Err(ErrorKind::Malformed)),
                "{token}"
            );
        }
        assert!(matches!(
            parse(&"a".repeat(9000), 8192),
            Err(ErrorKind::TokenTooLarge)
        ));
    }
}
