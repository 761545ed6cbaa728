//! Strict parsing of a JWS compact token (RFC 7515 §7.1), before any key is
//! looked at. Everything here is untrusted input: sizes are checked before
//! decoding, segments are counted before splitting, base64url must be
//! canonical, and JSON may not repeat a member.

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use svcauth_core::{Algorithm, Claims, b64};

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

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    cty: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default)]
    b64: Option<serde_json::Value>,
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
    if token.len() > max_len {
        return Err(ErrorKind::TokenTooLarge);
    }
    if token.bytes().filter(|b| *b == b'.').count() != 2 {
        return Err(ErrorKind::Malformed);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(ErrorKind::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(ErrorKind::Malformed)?;
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(ErrorKind::Malformed);
    }
    let header = b64::decode(header).map_err(|_| ErrorKind::Malformed)?;
    let header = parse_header(&header)?;
    let payload = b64::decode(payload).map_err(|_| ErrorKind::Malformed)?;
    let claims = parse_claims(&payload)?;
    let signature = b64::decode(signature).map_err(|_| ErrorKind::Malformed)?;
    Ok(Parsed {
        signing_input,
        header,
        claims,
        payload,
        signature,
    })
}

fn parse_header(bytes: &[u8]) -> Result<Header, ErrorKind> {
    check_json_object(bytes)?;
    let raw: RawHeader = serde_json::from_slice(bytes).map_err(|_| ErrorKind::Malformed)?;
    // RFC 7515 §4.1.11: we implement no extension, so any `crit` is refused.
    if raw.crit.is_some() {
        return Err(ErrorKind::UnsupportedHeader);
    }
    // RFC 7797: an unencoded payload changes what is signed. Not supported.
    match raw.b64 {
        None | Some(serde_json::Value::Bool(true)) => {}
        Some(_) => return Err(ErrorKind::UnsupportedHeader),
    }
    // RFC 7519 §5.2: a nested JWT; svcauth verifies exactly one layer.
    if raw.cty.is_some_and(|c| c.eq_ignore_ascii_case("JWT")) {
        return Err(ErrorKind::UnsupportedHeader);
    }
    let alg = match raw.alg.as_str() {
        "HS256" => HeaderAlg::Hmac(Hmac::Hs256),
        "HS384" => HeaderAlg::Hmac(Hmac::Hs384),
        "HS512" => HeaderAlg::Hmac(Hmac::Hs512),
        other => HeaderAlg::Asymmetric(other.parse().map_err(|_| ErrorKind::UnsupportedAlgorithm)?),
    };
    Ok(Header {
        alg,
        kid: raw.kid,
        typ: raw.typ,
    })
}

fn parse_claims(bytes: &[u8]) -> Result<Claims, ErrorKind> {
    check_json_object(bytes)?;
    serde_json::from_slice(bytes).map_err(|_| ErrorKind::InvalidClaims)
}

/// Checks that `bytes` is one JSON object in which no object, at any depth,
/// names a member twice (RFC 7515 §5.2 and RFC 8725 §3.8: parsers differ on
/// which duplicate wins, so a token that has any is refused).
fn check_json_object(bytes: &[u8]) -> Result<(), ErrorKind> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ErrorKind::Malformed);
    }
    match serde_json::from_slice::<Unique>(bytes) {
        Ok(Unique) => Ok(()),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(ErrorKind::DuplicateMember),
        Err(_) => Err(ErrorKind::Malformed),
    }
}

const DUPLICATE: &str = "duplicate member";

/// A JSON value walked only to find duplicate members.
struct Unique;

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut seen: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(DUPLICATE));
            }
            seen.push(key);
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_are_found_at_any_depth() {
        assert_eq!(
            check_json_object(br#"{"a":1,"a":1}"#),
            Err(ErrorKind::DuplicateMember)
        );
        assert_eq!(
            check_json_object(br#"{"a":{"b":1,"b":2}}"#),
            Err(ErrorKind::DuplicateMember)
        );
        assert_eq!(
            check_json_object(br#"{"a":[{"b":1,"b":2}]}"#),
            Err(ErrorKind::DuplicateMember)
        );
        assert_eq!(check_json_object(br#"{"a":1,"b":{"a":1}}"#), Ok(()));
        assert_eq!(check_json_object(br#"[1]"#), Err(ErrorKind::Malformed));
        assert_eq!(
            check_json_object(br#"{"a":1} x"#),
            Err(ErrorKind::Malformed)
        );
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(
            check_json_object(format!(r#"{{"a":{deep}}}"#).as_bytes()),
            Err(ErrorKind::Malformed)
        );
    }

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
