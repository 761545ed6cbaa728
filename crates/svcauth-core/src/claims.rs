//! The service-token claims (RFC 7519 §4.1, RFC 8693 §4.1, and svcauth's
//! request-binding claims).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The claims of a svcauth service token.
///
/// Registered claims are typed; anything else lands in [`Claims::extra`].
/// Deserialisation is strict about types: `exp: "123"` or `aud: 5` is an
/// error, never a silently missing claim.
///
/// # Example
///
/// ```
/// use svcauth_core::{Audience, Claims};
///
/// let json = r#"{"iss":"https://a.internal","sub":"https://a.internal",
///                "aud":["https://b.internal"],"exp":1700000300,"iat":1700000000,
///                "jti":"k3J7","tenant":"blue"}"#;
/// let claims: Claims = serde_json::from_str(json).unwrap();
/// assert!(claims.aud.contains("https://b.internal"));
/// assert_eq!(claims.extra["tenant"], "blue");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: who minted the token (for self-signed tokens, the calling
    /// service). Empty when the token has none (a SPIFFE JWT-SVID may not);
    /// an empty issuer is never trusted.
    #[serde(default)]
    pub iss: String,
    /// Subject: on whose behalf the call is made (the service itself, or a
    /// user when delegating, with [`Claims::act`] naming the service).
    pub sub: String,
    /// Audience: the one service the token is for.
    pub aud: Audience,
    /// Expiry, seconds since the Unix epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: u64,
    /// Not before, seconds since the Unix epoch.
    #[serde(
        default,
        deserialize_with = "opt_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the Unix epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub iat: u64,
    /// Unique token id (random, 128 bits for self-signed tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The acting party when the token is delegated (RFC 8693 §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// Request binding: the HTTP method, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub htm: Option<String>,
    /// Request binding: `scheme://authority/path` of the request, without
    /// query or fragment (RFC 9449 §4.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub htu: Option<String>,
    /// Request binding: base64url (no padding) SHA-256 of the exact body bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    /// Request binding: base64url (no padding) SHA-256 of the exact query
    /// string (see [`crate::RequestBinding`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_sha256: Option<String>,
    /// Every other claim, as found.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The request-binding claims, when the token carries `htm`, `htu` and
    /// `body_sha256` (and `query_sha256`, which may be missing from tokens
    /// of other stacks).
    ///
    /// Returns `Err(())` when the token carries some but not all of them:
    /// a half-bound token is malformed, not unbound.
    #[allow(clippy::result_unit_err)]
    pub fn binding(&self) -> Result<Option<crate::RequestBinding>, ()> {
        match (&self.htm, &self.htu, &self.body_sha256) {
            (None, None, None) if self.query_sha256.is_none() => Ok(None),
            (Some(htm), Some(htu), Some(body)) => Ok(Some(crate::RequestBinding {
                htm: htm.clone(),
                htu: htu.clone(),
                body_sha256: body.clone(),
                query_sha256: self.query_sha256.clone(),
            })),
            _ => Err(()),
        }
    }
}

/// The `aud` claim: one string, or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is named exactly (byte for byte).
    ///
    /// An empty `audience` or the wildcard `"*"` never matches anything, so a
    /// misconfigured verifier cannot accept every token.
    pub fn contains(&self, audience: &str) -> bool {
        if audience.is_empty() || audience == "*" {
            return false;
        }
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(all) => all.iter().any(|a| a == audience),
        }
    }

    /// The audiences as a slice-like iterator.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Audience::One(a) => (Some(a.as_str()), &[][..]),
            Audience::Many(all) => (None, all.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }
}

impl From<&str> for Audience {
    fn from(a: &str) -> Self {
        Audience::One(a.to_owned())
    }
}

impl From<String> for Audience {
    fn from(a: String) -> Self {
        Audience::One(a)
    }
}

/// The `act` claim: who acts on behalf of the subject (RFC 8693 §4.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting party.
    pub sub: String,
    /// The acting party's issuer, when it differs from the token's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// A prior actor in a delegation chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// An actor with only a subject.
    pub fn new(sub: impl Into<String>) -> Self {
        Actor {
            sub: sub.into(),
            iss: None,
            act: None,
        }
    }
}

/// A JWT `NumericDate` (RFC 7519 §2): a JSON number of seconds. Fractions
/// are truncated; strings, negatives, NaN and values past `u64` are errors.
pub(crate) fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a non-negative JSON number of seconds")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("negative NumericDate"))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                Ok(v as u64)
            } else {
                Err(E::custom("NumericDate out of range"))
            }
        }
    }
    d.deserialize_any(V)
}

pub(crate) fn opt_numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    numeric_date(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Claims, serde_json::Error> {
        serde_json::from_str(json)
    }

    const BASE: &str = r#""iss":"i","sub":"s","aud":"b","iat":10"#;

    #[test]
    fn wrong_json_types_are_errors() {
        assert!(parse(&format!(r#"{{{BASE},"exp":"20"}}"#)).is_err());
        assert!(parse(&format!(r#"{{{BASE},"exp":-1}}"#)).is_err());
        assert!(parse(&format!(r#"{{{BASE},"exp":20,"nbf":true}}"#)).is_err());
        assert!(parse(r#"{"iss":"i","sub":"s","aud":5,"iat":1,"exp":2}"#).is_err());
        assert!(parse(r#"{"iss":1,"sub":"s","aud":"b","iat":1,"exp":2}"#).is_err());
        assert_eq!(parse(&format!(r#"{{{BASE},"exp":20.9}}"#)).unwrap().exp, 20);
    }

    #[test]
    fn exp_and_iat_are_required() {
        assert!(parse(r#"{"iss":"i","sub":"s","aud":"b","iat":1}"#).is_err());
        assert!(parse(r#"{"iss":"i","sub":"s","aud":"b","exp":1}"#).is_err());
    }

    #[test]
    fn audience_matches_exactly_and_never_wildcards() {
        let many = Audience::Many(vec!["a".into(), "*".into(), "".into()]);
        assert!(many.contains("a"));
        assert!(!many.contains("A"));
        assert!(!many.contains("*"));
        assert!(!many.contains(""));
        assert!(!Audience::One("*".into()).contains("b"));
        assert!(!Audience::Many(vec![]).contains("b"));
    }

    #[test]
    fn half_bound_token_is_malformed() {
        let mut c = parse(&format!(r#"{{{BASE},"exp":20}}"#)).unwrap();
        assert_eq!(c.binding(), Ok(None));
        c.htm = Some("POST".into());
        assert_eq!(c.binding(), Err(()));
    }
}
