//! SPIFFE trust bundles (SPIFFE Trust Domain and Bundle §4): a JWKS whose
//! keys each say, in `use`, which kind of SVID they sign, plus
//! `spiffe_sequence` and `spiffe_refresh_hint`. A verifier takes the keys
//! of one SVID kind and ignores the rest; where the bundle comes from (a
//! file, a bundle endpoint) is the [`crate::KeySource`]'s business.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::JwksError;
use crate::key_set::{KeySet, KeyUse, read_document};

/// The kind of SVID whose signing keys a verifier takes from a SPIFFE
/// bundle: the JWK `use` value it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SvidKind {
    /// JWT-SVIDs, bearer tokens: `use` = `jwt-svid` (JWT-SVID §6).
    Jwt,
    /// WIT-SVIDs, workload identity tokens presented with a proof:
    /// `use` = `wit-svid` (WIT-SVID §6).
    Wit,
}

impl SvidKind {
    /// The JWK `use` value of this kind's keys.
    pub fn use_value(self) -> &'static str {
        match self {
            SvidKind::Jwt => "jwt-svid",
            SvidKind::Wit => "wit-svid",
        }
    }
}

/// The bundle-wide members of a SPIFFE bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BundleInfo {
    pub(crate) sequence: Option<u64>,
    pub(crate) refresh_hint: Option<Duration>,
}

impl BundleInfo {
    /// `spiffe_sequence` and `spiffe_refresh_hint`, when present, must be
    /// non-negative integers: a bundle that has them wrong is refused
    /// whole rather than read with a guess.
    fn from_top(top: &Map<String, Value>) -> Result<Self, JwksError> {
        let integer = |name: &str| match top.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| JwksError::NotJson(format!("{name} is not a non-negative integer"))),
        };
        Ok(BundleInfo {
            sequence: integer("spiffe_sequence")?,
            refresh_hint: integer("spiffe_refresh_hint")?.map(Duration::from_secs),
        })
    }
}

impl KeySet {
    /// The keys of a SPIFFE bundle that sign SVIDs of `kind`.
    ///
    /// Keys for other uses (`x509-svid`, the other JWT kind, anything
    /// unknown) or without `use` are ignored, as the bundle format
    /// requires; keys of `kind` are held to the same rules as
    /// [`KeySet::from_jwks`]'s and must carry a `kid`. A bundle with no
    /// usable key of `kind` is an empty set: every SVID of that kind from
    /// the trust domain is then refused (Trust Domain and Bundle §4.1.3).
    ///
    /// # Example
    ///
    /// ```
    /// use svcauth_core::Algorithm;
    /// use svcauth_jwks::{KeySet, SigningKey, SvidKind};
    ///
    /// let key = SigningKey::generate(Algorithm::ES256).unwrap();
    /// let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
    /// jwk["use"] = "jwt-svid".into();
    /// let bundle = serde_json::json!({
    ///     "keys": [jwk], "spiffe_sequence": 7, "spiffe_refresh_hint": 300,
    /// });
    /// let bytes = bundle.to_string().into_bytes();
    ///
    /// let jwt = KeySet::from_spiffe_bundle(&bytes, 65536, SvidKind::Jwt).unwrap();
    /// assert!(jwt.get(Some(key.kid())).is_some());
    /// assert_eq!(jwt.spiffe_sequence(), Some(7));
    /// // The same bundle has no WIT-SVID keys.
    /// assert!(KeySet::from_spiffe_bundle(&bytes, 65536, SvidKind::Wit).unwrap().is_empty());
    /// ```
    pub fn from_spiffe_bundle(
        document: &[u8],
        max_bytes: usize,
        kind: SvidKind,
    ) -> Result<Self, JwksError> {
        let (top, entries) = read_document(document, max_bytes)?;
        let info = BundleInfo::from_top(&top)?;
        let mut set = KeySet::from_entries(entries, KeyUse::Svid(kind));
        set.bundle = Some(info);
        Ok(set)
    }

    /// The bundle's `spiffe_sequence`, for a set read from a SPIFFE bundle
    /// that has one.
    pub fn spiffe_sequence(&self) -> Option<u64> {
        self.bundle.and_then(|b| b.sequence)
    }

    /// The bundle's `spiffe_refresh_hint`, for a set read from a SPIFFE
    /// bundle that has one.
    pub fn spiffe_refresh_hint(&self) -> Option<Duration> {
        self.bundle.and_then(|b| b.refresh_hint)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::SigningKey;
    use svcauth_core::Algorithm;

    fn jwk(key: &SigningKey, key_use: Option<&str>) -> Value {
        let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
        match key_use {
            Some(u) => jwk["use"] = u.into(),
            None => {
                jwk.as_object_mut().unwrap().remove("use");
            }
        }
        jwk
    }

    #[test]
    fn each_kind_takes_its_own_keys_and_ignores_the_rest() {
        let jwt = SigningKey::generate(Algorithm::ES256).unwrap();
        let wit = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let x509 = SigningKey::generate(Algorithm::ES256).unwrap();
        let bare = SigningKey::generate(Algorithm::ES256).unwrap();
        let sig = SigningKey::generate(Algorithm::ES256).unwrap();
        let doc = serde_json::json!({"keys": [
            jwk(&jwt, Some("jwt-svid")), jwk(&wit, Some("wit-svid")),
            jwk(&x509, Some("x509-svid")), jwk(&bare, None), jwk(&sig, Some("sig")),
            {"kty": "EC", "use": "JWT-SVID", "kid": "case"},
        ]})
        .to_string();
        let set = KeySet::from_spiffe_bundle(doc.as_bytes(), 65536, SvidKind::Jwt).unwrap();
        assert_eq!(set.kids(), vec![jwt.kid().to_owned()]);
        assert!(set.skipped().is_empty(), "other uses are not failures");
        let set = KeySet::from_spiffe_bundle(doc.as_bytes(), 65536, SvidKind::Wit).unwrap();
        assert_eq!(set.kids(), vec![wit.kid().to_owned()]);
        assert_eq!(
            (set.spiffe_sequence(), set.spiffe_refresh_hint()),
            (None, None)
        );
    }

    #[test]
    fn bundle_keys_keep_every_jwks_rule_and_need_a_kid() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let mut no_kid = jwk(&key, Some("jwt-svid"));
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut private = jwk(&key, Some("jwt-svid"));
        private["d"] = "AAAA".into();
        let doc = serde_json::json!({"keys": [
            no_kid, private, {"kty": "oct", "use": "jwt-svid", "kid": "s", "k": "c2VjcmV0"},
        ]})
        .to_string();
        let set = KeySet::from_spiffe_bundle(doc.as_bytes(), 65536, SvidKind::Jwt).unwrap();
        assert!(set.is_empty());
        let reasons: Vec<_> = set.skipped().iter().map(|s| s.reason.clone()).collect();
        assert_eq!(
            reasons,
            [
                crate::SkipReason::MissingKid,
                crate::SkipReason::PrivateKeyMaterial,
                crate::SkipReason::Symmetric
            ]
        );
    }

    #[test]
    fn sequence_and_refresh_hint_are_read_and_must_be_integers() {
        let ok = br#"{"keys":[],"spiffe_sequence":18446744073709551615,"spiffe_refresh_hint":60}"#;
        let set = KeySet::from_spiffe_bundle(ok, 1024, SvidKind::Jwt).unwrap();
        assert_eq!(set.spiffe_sequence(), Some(u64::MAX));
        assert_eq!(set.spiffe_refresh_hint(), Some(Duration::from_secs(60)));
        for bad in [
            &br#"{"keys":[],"spiffe_sequence":-1}"#[..],
            br#"{"keys":[],"spiffe_sequence":"7"}"#,
            br#"{"keys":[],"spiffe_refresh_hint":1.5}"#,
            br#"{"keys":{}}"#,
        ] {
            assert!(KeySet::from_spiffe_bundle(bad, 1024, SvidKind::Jwt).is_err());
        }
    }
}
