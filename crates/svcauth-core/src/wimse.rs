//! WIMSE workload credentials: the Workload Identity Token (WIT,
//! draft-ietf-wimse-workload-creds-03) and the Workload Proof Token (WPT,
//! draft-ietf-wimse-wpt-02), as both halves of svcauth read and write them.
//!
//! A WIT (`typ: wit+jwt`) is signed by the trust domain's identity server:
//! it names one workload in `sub` (a [`WorkloadId`]) and carries the
//! workload's public key in `cnf.jwk`, whose `alg` every proof must use. It
//! is not a bearer token: it travels in the `Workload-Identity-Token`
//! header, never in `Authorization`, and only with a WPT.
//!
//! A WPT (`typ: wpt+jwt`) is signed by the workload's own key, fresh for
//! every request: `aud` is the request's target URI without query or
//! fragment, `exp` is short, `jti` is 128 random bits, `wth` is the hash of
//! the WIT it goes with, and `ath` / `tth` / `oth` hash the access token,
//! the Txn-Token and any other token the request carries, so that none of
//! them can be swapped under the proof. Every hash is [`token_hash`].
//!
//! # Example
//!
//! ```
//! use svcauth_core::wimse::{WorkloadId, token_hash};
//!
//! let id: WorkloadId = "spiffe://example.org/ns/prod/sa/billing".parse().unwrap();
//! assert_eq!(id.trust_domain(), "example.org");
//! assert!("spiffe://Example.org/x".parse::<WorkloadId>().is_err()); // upper case
//! assert!("spiffe://example.org/a/../b".parse::<WorkloadId>().is_err()); // dot segment
//! assert!("https://example.org/a".parse::<WorkloadId>().is_err()); // not a workload scheme
//!
//! // The draft's example: the hash of the access token `16_mAd0GiwaZokU26_0902100`.
//! assert_eq!(token_hash("16_mAd0GiwaZokU26_0902100"), "CL4wjfpRmNf-bdYIbYLnV9d5rMARGwKYE10wUwzC0jI");
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The request header carrying the WIT (lower case, as `http` wants names).
pub const WORKLOAD_IDENTITY_TOKEN: &str = "workload-identity-token";
/// The request header carrying the WPT.
pub const WORKLOAD_PROOF_TOKEN: &str = "workload-proof-token";
/// The request header carrying a Transaction Token (hashed into `tth`).
pub const TXN_TOKEN: &str = "txn-token";
/// The `typ` of a WIT.
pub const WIT_TYPE: &str = "wit+jwt";
/// The `typ` of a WPT.
pub const WPT_TYPE: &str = "wpt+jwt";
/// The longest workload identifier accepted, in bytes (the SPIFFE ID
/// limit).
pub const MAX_WORKLOAD_ID_BYTES: usize = 2048;

/// base64url (no padding) of the SHA-256 of the token's ASCII bytes: the
/// `wth`, `ath`, `tth` and `oth` values of a WPT.
pub fn token_hash(token: &str) -> String {
    crate::body_sha256(token.as_bytes())
}

/// Whether a JWS `typ` names `wanted` (`wit+jwt`, `wpt+jwt`): compared
/// case-insensitively, with or without the `application/` prefix
/// (RFC 7515 §4.1.9).
pub fn is_type(typ: Option<&str>, wanted: &str) -> bool {
    let Some(typ) = typ else { return false };
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case(wanted)
}

/// A workload identifier: `spiffe://trust-domain/path` (SPIFFE ID) or
/// `wimse://trust-domain/path`, held to the SPIFFE ID rules, which are the
/// stricter: a lower-case trust domain of `a-z 0-9 . - _`, path segments of
/// `A-Z a-z 0-9 . - _` that are neither empty nor `.` or `..`, no trailing
/// `/`, no user info, port, query or fragment, at most 2048 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadId {
    uri: String,
    /// Where the trust domain ends (the path starts).
    domain_end: usize,
    /// Where the trust domain starts (after `://`).
    domain_start: usize,
}

/// Why a string is not a [`WorkloadId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidWorkloadId {
    /// Not `spiffe://` or `wimse://`.
    #[error("a workload identifier starts with spiffe:// or wimse://")]
    Scheme,
    /// The trust domain is empty, too long, or has a character outside
    /// `a-z 0-9 . - _`.
    #[error("the trust domain must be lower-case letters, digits, '.', '-' or '_'")]
    TrustDomain,
    /// A path segment is empty, `.`, `..`, or has a character outside
    /// `A-Z a-z 0-9 . - _` (which also rules out queries and fragments).
    #[error("a path segment is empty, a dot segment, or has a character outside A-Z a-z 0-9 . - _")]
    Path,
    /// Longer than [`MAX_WORKLOAD_ID_BYTES`].
    #[error("a workload identifier has at most 2048 bytes")]
    TooLong,
}

impl WorkloadId {
    /// The whole identifier.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// `spiffe` or `wimse`.
    pub fn scheme(&self) -> &str {
        &self.uri[..self.domain_start - 3]
    }

    /// The trust domain (the authority): trust is anchored here.
    pub fn trust_domain(&self) -> &str {
        &self.uri[self.domain_start..self.domain_end]
    }

    /// The path, `""` for the trust domain itself.
    pub fn path(&self) -> &str {
        &self.uri[self.domain_end..]
    }

    /// Checks a trust domain name on its own (`example.org`).
    pub fn check_trust_domain(domain: &str) -> Result<(), InvalidWorkloadId> {
        let ok = !domain.is_empty()
            && domain.len() <= 255
            && domain
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_'));
        if ok {
            Ok(())
        } else {
            Err(InvalidWorkloadId::TrustDomain)
        }
    }
}

impl FromStr for WorkloadId {
    type Err = InvalidWorkloadId;

    fn from_str(uri: &str) -> Result<Self, InvalidWorkloadId> {
        if uri.len() > MAX_WORKLOAD_ID_BYTES {
            return Err(InvalidWorkloadId::TooLong);
        }
        let rest = uri
            .strip_prefix("spiffe://")
            .or_else(|| uri.strip_prefix("wimse://"))
            .ok_or(InvalidWorkloadId::Scheme)?;
        let domain_start = uri.len() - rest.len();
        let (domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        WorkloadId::check_trust_domain(domain)?;
        if !path.is_empty() {
            for segment in path[1..].split('/') {
                let ok = !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
                if !ok {
                    return Err(InvalidWorkloadId::Path);
                }
            }
        }
        Ok(WorkloadId {
            uri: uri.to_owned(),
            domain_start,
            domain_end: domain_start + domain.len(),
        })
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl fmt::Debug for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkloadId({})", self.uri)
    }
}

impl<'de> Deserialize<'de> for WorkloadId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let uri = String::deserialize(d)?;
        uri.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for WorkloadId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.uri)
    }
}

/// The claims of a WIT. Types are strict, as for [`crate::Claims`]; other
/// claims are kept in `extra` and otherwise ignored, as the draft says.
#[derive(Debug, Clone, Deserialize)]
pub struct WitClaims {
    /// The identity server (optional; never used to find keys).
    #[serde(default)]
    pub iss: Option<String>,
    /// The one workload identifier this WIT is for.
    pub sub: WorkloadId,
    /// Expiry, seconds since the Unix epoch.
    #[serde(deserialize_with = "crate::claims::numeric_date")]
    pub exp: u64,
    /// Issued at.
    #[serde(default, deserialize_with = "crate::claims::opt_numeric_date")]
    pub iat: Option<u64>,
    /// Not before.
    #[serde(default, deserialize_with = "crate::claims::opt_numeric_date")]
    pub nbf: Option<u64>,
    /// Token id (optional for a WIT).
    #[serde(default)]
    pub jti: Option<String>,
    /// The confirmation: the workload's public key.
    pub cnf: Confirmation,
    /// Every other claim, as found.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `cnf` claim of a WIT (RFC 7800 §3.2): the workload's public JWK,
/// which must carry `alg`.
#[derive(Debug, Clone, Deserialize)]
pub struct Confirmation {
    /// The public key, as a JWK object.
    pub jwk: Map<String, Value>,
}

/// The claims of a WPT.
#[derive(Debug, Clone, Deserialize)]
pub struct WptClaims {
    /// The target URI of the request, without query or fragment.
    pub aud: crate::Audience,
    /// Expiry: seconds, or minutes at most.
    #[serde(deserialize_with = "crate::claims::numeric_date")]
    pub exp: u64,
    /// Issued at (optional in the draft).
    #[serde(default, deserialize_with = "crate::claims::opt_numeric_date")]
    pub iat: Option<u64>,
    /// The proof's unique id (required).
    pub jti: String,
    /// [`token_hash`] of the WIT.
    pub wth: String,
    /// [`token_hash`] of the access token in `Authorization`, if any.
    #[serde(default)]
    pub ath: Option<String>,
    /// [`token_hash`] of the `Txn-Token` header, if any.
    #[serde(default)]
    pub tth: Option<String>,
    /// [`token_hash`] of other token-bearing headers, by lower-case name.
    #[serde(default)]
    pub oth: Option<Map<String, Value>>,
    /// Every other claim, as found.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_ids_follow_the_spiffe_rules() {
        for good in [
            "spiffe://example.org",
            "spiffe://example.org/a",
            "spiffe://ex-ample_1.org/A/b.c/d-e_f",
            "wimse://example.com/specific-workload",
        ] {
            let id: WorkloadId = good.parse().unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(id.as_str(), good);
        }
        let id: WorkloadId = "spiffe://td.example/ns/x".parse().unwrap();
        assert_eq!(
            (id.scheme(), id.trust_domain(), id.path()),
            ("spiffe", "td.example", "/ns/x")
        );
        for (bad, why) in [
            ("spiffe://", InvalidWorkloadId::TrustDomain),
            ("spiffe:///path", InvalidWorkloadId::TrustDomain),
            ("spiffe://Example.org/a", InvalidWorkloadId::TrustDomain),
            (
                "spiffe://user@example.org/a",
                InvalidWorkloadId::TrustDomain,
            ),
            ("spiffe://example.org:443/a", InvalidWorkloadId::TrustDomain),
            ("spiffe://example.org/", InvalidWorkloadId::Path),
            ("spiffe://example.org//a", InvalidWorkloadId::Path),
            ("spiffe://example.org/a/", InvalidWorkloadId::Path),
            ("spiffe://example.org/./a", InvalidWorkloadId::Path),
            ("spiffe://example.org/a/..", InvalidWorkloadId::Path),
            ("spiffe://example.org/a?b=c", InvalidWorkloadId::Path),
            ("spiffe://example.org/a#f", InvalidWorkloadId::Path),
            ("spiffe://example.org/a%2Fb", InvalidWorkloadId::Path),
            ("SPIFFE://example.org/a", InvalidWorkloadId::Scheme),
            ("https://example.org/a", InvalidWorkloadId::Scheme),
            ("spiffe:example.org/a", InvalidWorkloadId::Scheme),
        ] {
            assert_eq!(bad.parse::<WorkloadId>(), Err(why), "{bad}");
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(2100));
        assert_eq!(long.parse::<WorkloadId>(), Err(InvalidWorkloadId::TooLong));
    }

    #[test]
    fn types_compare_without_case_or_prefix() {
        assert!(is_type(Some("wit+jwt"), WIT_TYPE));
        assert!(is_type(Some("application/WIT+JWT"), WIT_TYPE));
        assert!(!is_type(Some("JWT"), WIT_TYPE));
        assert!(!is_type(Some("wpt+jwt"), WIT_TYPE));
        assert!(!is_type(None, WPT_TYPE));
    }

    #[test]
    fn claims_are_typed_strictly() {
        let wit: WitClaims = serde_json::from_str(
            r#"{"sub":"spiffe://e.org/a","exp":5,"cnf":{"jwk":{"kty":"OKP","alg":"EdDSA"}}}"#,
        )
        .unwrap();
        assert_eq!(wit.sub.trust_domain(), "e.org");
        for bad in [
            r#"{"sub":"https://e.org/a","exp":5,"cnf":{"jwk":{}}}"#,
            r#"{"sub":"spiffe://e.org/a","exp":"5","cnf":{"jwk":{}}}"#,
            r#"{"sub":"spiffe://e.org/a","exp":5}"#,
            r#"{"sub":"spiffe://e.org/a","exp":5,"cnf":{"jwk":"k"}}"#,
        ] {
            assert!(serde_json::from_str::<WitClaims>(bad).is_err(), "{bad}");
        }
        let wpt: WptClaims =
            serde_json::from_str(r#"{"aud":"https://b/x","exp":5,"jti":"j","wth":"h"}"#).unwrap();
        assert!(wpt.aud.contains("https://b/x"));
        for bad in [
            r#"{"aud":"https://b/x","exp":5,"wth":"h"}"#,
            r#"{"aud":"https://b/x","exp":5,"jti":"j"}"#,
            r#"{"aud":"https://b/x","exp":5,"jti":"j","wth":"h","oth":["x"]}"#,
            r#"{"aud":"https://b/x","exp":5,"jti":"j","wth":"h","ath":1}"#,
        ] {
            assert!(serde_json::from_str::<WptClaims>(bad).is_err(), "{bad}");
        }
    }
}
