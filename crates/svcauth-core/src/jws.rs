//! The strict reading of a JWS in compact serialisation (RFC 7515 §7.1):
//! the one place that splits a token, decodes its segments and applies the
//! rules every svcauth reader shares, before any key is looked at.
//!
//! * The size is checked first, then the segments are counted (exactly
//!   three, none empty), then each is decoded as canonical base64url.
//! * The header and the payload must each be one JSON object in which no
//!   object, at any depth, names a member twice (RFC 7515 §5.2, RFC 8725
//!   §3.8: parsers differ on which duplicate wins). The check is linear in
//!   the number of members.
//! * The header may not carry `crit` (no extension is implemented), `b64`
//!   other than `true` (RFC 7797 changes what is signed), or `cty: JWT`
//!   (a nested token: exactly one layer is verified). `jwk`, `jku`, `x5u`
//!   and `x5c` are never read: a key is found by issuer and `kid` only.
//!
//! Both the service-token verifier and the gateway's check of signed
//! introspection answers (RFC 9701) read tokens through here. Tokens are
//! written through [`encode`] (the signature comes from the caller's key),
//! and [`peek`] reads a token's header and payload *without* verifying
//! anything, for the few places that must only tell what a token looks
//! like (a JWT at the edge, an STS token's `exp`).

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::b64;

/// Why a compact JWS was refused before any key was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Longer than the configured maximum.
    #[error("the token is too large")]
    TooLarge,
    /// Not three non-empty segments of canonical base64url, or a segment
    /// that is not one JSON object.
    #[error("the token is malformed")]
    Malformed,
    /// A JSON object names a member twice.
    #[error("the token repeats a JSON member")]
    DuplicateMember,
    /// `crit`, `b64: false` or `cty: JWT` in the header.
    #[error("the token's header asks for an unsupported JWS feature")]
    UnsupportedHeader,
}

/// A compact JWS split into its parts and decoded; nothing verified yet.
#[derive(Debug)]
pub struct Compact<'a> {
    /// `header.payload` as sent: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The protected header.
    pub header: Header,
    /// The decoded payload, checked to be one JSON object without
    /// duplicate members.
    pub payload: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// The protected header, reduced to what verification reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `alg`, as written (the caller checks it against its allow-list).
    pub alg: String,
    /// `kid`, if any.
    pub kid: Option<String>,
    /// `typ`, if any.
    pub typ: Option<String>,
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

/// A compact JWS: `header_b64` (an already encoded protected header),
/// `payload`, and the signature `sign` returns over the signing input.
///
/// ```
/// use svcauth_core::{b64, jws};
///
/// let header = b64::encode(r#"{"alg":"EdDSA"}"#);
/// let token = jws::encode(&header, br#"{"sub":"a"}"#, |input| Ok::<_, ()>(input.len().to_be_bytes().to_vec())).unwrap();
/// assert_eq!(token.split('.').count(), 3);
/// assert!(token.starts_with(&header));
/// ```
pub fn encode<E>(
    header_b64: &str,
    payload: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<String, E> {
    let input = signing_input(header_b64, payload);
    let signature = sign(input.as_bytes())?;
    Ok(attach_signature(input, &signature))
}

/// `header_b64 "." base64url(payload)`, the JWS signing input, with room
/// for the signature [`attach_signature`] appends: for signers that cannot
/// sign inside [`encode`]'s closure (one that awaits a remote key).
pub fn signing_input(header_b64: &str, payload: &[u8]) -> String {
    let mut input = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 400);
    input.push_str(header_b64);
    input.push('.');
    input.push_str(&b64::encode(payload));
    input
}

/// The compact JWS: `signing_input "." base64url(signature)`.
pub fn attach_signature(mut signing_input: String, signature: &[u8]) -> String {
    signing_input.push('.');
    signing_input.push_str(&b64::encode(signature));
    signing_input
}

/// What a compact JWS says, read without any check of its signature or
/// its claims: the protected header as JSON, and the decoded payload.
/// `None` when it is not three segments whose first two are base64url and
/// whose header is a JSON object with an `alg`. Never a basis for trust.
pub fn peek(token: &str) -> Option<(serde_json::Map<String, serde_json::Value>, Vec<u8>)> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&b64::decode(header).ok()?).ok()?;
    header.get("alg")?;
    Some((header, b64::decode(payload).ok()?))
}

/// Splits and decodes `token` under every rule of this module.
///
/// ```
/// use svcauth_core::{b64, jws};
///
/// let token = format!("{}.{}.{}", b64::encode(r#"{"alg":"ES256","kid":"k1"}"#), b64::encode(r#"{"a":1}"#), b64::encode("sig"));
/// let parsed = jws::parse(&token, 8192).unwrap();
/// assert_eq!((parsed.header.alg.as_str(), parsed.header.kid.as_deref()), ("ES256", Some("k1")));
/// let twice = format!("{}.{}.{}", b64::encode(r#"{"alg":"ES256"}"#), b64::encode(r#"{"a":1,"a":2}"#), b64::encode("sig"));
/// assert_eq!(jws::parse(&twice, 8192).unwrap_err(), jws::JwsError::DuplicateMember);
/// ```
pub fn parse(token: &str, max_len: usize) -> Result<Compact<'_>, JwsError> {
    if token.len() > max_len {
        return Err(JwsError::TooLarge);
    }
    if token.bytes().filter(|b| *b == b'.').count() != 2 {
        return Err(JwsError::Malformed);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(JwsError::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(JwsError::Malformed)?;
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(JwsError::Malformed);
    }
    let header = b64::decode(header).map_err(|_| JwsError::Malformed)?;
    let header = parse_header(&header)?;
    let payload = b64::decode(payload).map_err(|_| JwsError::Malformed)?;
    check_json_object(&payload)?;
    let signature = b64::decode(signature).map_err(|_| JwsError::Malformed)?;
    Ok(Compact {
        signing_input,
        header,
        payload,
        signature,
    })
}

fn parse_header(bytes: &[u8]) -> Result<Header, JwsError> {
    check_json_object(bytes)?;
    let raw: RawHeader = serde_json::from_slice(bytes).map_err(|_| JwsError::Malformed)?;
    // RFC 7515 §4.1.11: we implement no extension, so any `crit` is refused.
    if raw.crit.is_some() {
        return Err(JwsError::UnsupportedHeader);
    }
    // RFC 7797: an unencoded payload changes what is signed. Not supported.
    match raw.b64 {
        None | Some(serde_json::Value::Bool(true)) => {}
        Some(_) => return Err(JwsError::UnsupportedHeader),
    }
    // RFC 7519 §5.2: a nested JWT; exactly one layer is verified.
    if raw.cty.is_some_and(|c| c.eq_ignore_ascii_case("JWT")) {
        return Err(JwsError::UnsupportedHeader);
    }
    Ok(Header {
        alg: raw.alg,
        kid: raw.kid,
        typ: raw.typ,
    })
}

/// Checks that `bytes` is one JSON object in which no object, at any depth,
/// names a member twice.
pub fn check_json_object(bytes: &[u8]) -> Result<(), JwsError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(JwsError::Malformed);
    }
    match serde_json::from_slice::<Unique>(bytes) {
        Ok(Unique) => Ok(()),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(JwsError::DuplicateMember),
        Err(_) => Err(JwsError::Malformed),
    }
}

const DUPLICATE: &str = "duplicate member";

/// Objects with up to this many members are checked by a linear scan of
/// the names seen (faster than hashing for the few members of a real
/// token); larger ones through a hash set, so that a token of thousands of
/// members costs linear time, not quadratic.
const SCAN_MEMBERS: usize = 16;

/// A member name, borrowed from the input unless it has escapes (serde
/// hands those over decoded): most names cost no allocation.
#[derive(PartialEq, Eq, Hash)]
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

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
        let mut seen: Vec<Key<'de>> = Vec::new();
        let mut many: Option<std::collections::HashSet<Key<'de>>> = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let repeated = match &mut many {
                Some(set) => !set.insert(key),
                None if seen.contains(&key) => true,
                None => {
                    seen.push(key);
                    if seen.len() > SCAN_MEMBERS {
                        many = Some(seen.drain(..).collect());
                    }
                    false
                }
            };
            if repeated {
                return Err(de::Error::custom(DUPLICATE));
            }
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
            Err(JwsError::DuplicateMember)
        );
        assert_eq!(
            check_json_object(br#"{"a":{"b":1,"b":2}}"#),
            Err(JwsError::DuplicateMember)
        );
        assert_eq!(
            check_json_object(br#"{"a":[{"b":1,"b":2}]}"#),
            Err(JwsError::DuplicateMember)
        );
        assert_eq!(check_json_object(br#"{"a":1,"b":{"a":1}}"#), Ok(()));
        assert_eq!(check_json_object(br#"[1]"#), Err(JwsError::Malformed));
        assert_eq!(check_json_object(br#"{"a":1} x"#), Err(JwsError::Malformed));
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(
            check_json_object(format!(r#"{{"a":{deep}}}"#).as_bytes()),
            Err(JwsError::Malformed)
        );
    }

    #[test]
    fn many_members_are_checked_in_linear_time_and_still_caught() {
        // 862 members in 8 KiB was ~1.6 ms with a quadratic scan.
        let members: Vec<String> = (0..5_000).map(|i| format!("\"m{i}\":0")).collect();
        let object = format!("{{{}}}", members.join(","));
        assert_eq!(check_json_object(object.as_bytes()), Ok(()));
        for at in [3, 16, 17, 4_999] {
            let twice = format!("{{{},\"m{at}\":1}}", members.join(","));
            assert_eq!(
                check_json_object(twice.as_bytes()),
                Err(JwsError::DuplicateMember),
                "duplicate of member {at}"
            );
        }
    }

    #[test]
    fn segments_are_counted_before_splitting() {
        for token in ["a", "a.b", "a.b.c.d", "a.b.c.d.e", "..", "a..c"] {
            assert_eq!(
                parse(token, 8192).unwrap_err(),
                JwsError::Malformed,
                "{token}"
            );
        }
        assert_eq!(
            parse(&"a".repeat(9000), 8192).unwrap_err(),
            JwsError::TooLarge
        );
    }

    #[test]
    fn peek_reads_only_what_looks_like_a_jws() {
        let header = b64::encode(r#"{"alg":"ES256","typ":"at+jwt"}"#);
        let (h, payload) = peek(&format!("{header}.{}.c2ln", b64::encode(r#"{"exp":5}"#))).unwrap();
        assert_eq!(h["typ"], "at+jwt");
        assert_eq!(payload, br#"{"exp":5}"#);
        for not_a_jws in [
            "MtvM3TU2FU8L4-M9ZjUfuO1GfvmRY5znByGOUBIvDQW".to_owned(),
            "a.b.c".to_owned(),
            String::new(),
            format!("{header}.e30"),
            format!("{header}.e30.c2ln.x"),
            format!("{}.e30.c2ln", b64::encode(r#"{"typ":"JWT"}"#)),
        ] {
            assert!(peek(&not_a_jws).is_none(), "{not_a_jws}");
        }
    }

    #[test]
    fn unsupported_header_features_are_refused() {
        let with = |header: &str| {
            format!(
                "{}.{}.{}",
                b64::encode(header),
                b64::encode("{}"),
                b64::encode("s")
            )
        };
        for header in [
            r#"{"alg":"ES256","crit":["exp"]}"#,
            r#"{"alg":"ES256","b64":false}"#,
            r#"{"alg":"ES256","cty":"JWT"}"#,
        ] {
            assert_eq!(
                parse(&with(header), 8192).unwrap_err(),
                JwsError::UnsupportedHeader,
                "{header}"
            );
        }
        assert!(parse(&with(r#"{"alg":"ES256","b64":true}"#), 8192).is_ok());
    }
}
