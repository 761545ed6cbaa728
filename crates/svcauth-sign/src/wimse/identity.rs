//! [`WorkloadIdentity`]: a workload's WIT and proof key, and the proofs
//! (WPTs) made with them.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, Uri, header};
use serde_json::{Map, Value, json};
use svcauth_core::wimse::{
    TXN_TOKEN, WIT_TYPE, WPT_TYPE, WitClaims, WorkloadId, is_type, token_hash,
};
use svcauth_core::{SharedClock, b64, jws, system_clock};
use svcauth_jwks::SigningKey;

use super::WimseError;
use super::issuer::confirmation_jwk;
use crate::source::self_signed::random_id;

/// The default lifetime of a proof: it is made for one request, sent at
/// once, and checked against a replay store until it expires.
const DEFAULT_PROOF_LIFETIME: Duration = Duration::from_secs(60);

/// A WIT as this workload holds it: the token, its hash (`wth`), whom it
/// names and until when. Read from the token without checking its
/// signature: it is the workload's own credential, checked by whoever
/// receives it.
#[derive(Debug, Clone)]
pub struct Wit {
    token: String,
    hash: String,
    workload: WorkloadId,
    expires_at: u64,
}

impl Wit {
    /// The token, as sent in `Workload-Identity-Token`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The workload identifier in its `sub`.
    pub fn workload(&self) -> &WorkloadId {
        &self.workload
    }

    /// `exp`, seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Reads `token` and checks that it confirms `key`: `typ: wit+jwt`, a
    /// valid `sub`, and `cnf.jwk` the public key of `key` with its `alg`.
    fn read(token: &str, key: &SigningKey) -> Result<Wit, WimseError> {
        let token = token.trim();
        let compact = jws::parse(token, 16 * 1024).map_err(|e| WimseError::Wit(e.to_string()))?;
        if !is_type(compact.header.typ.as_deref(), WIT_TYPE) {
            return Err(WimseError::Wit("its typ is not wit+jwt".into()));
        }
        let claims: WitClaims = serde_json::from_slice(&compact.payload)
            .map_err(|e| WimseError::Wit(format!("its claims: {e}")))?;
        let ours = confirmation_jwk(&key.public_jwk())?;
        if !same_public_key(&claims.cnf.jwk, &ours) {
            return Err(WimseError::Wit(
                "its cnf.jwk is not this workload's public key and alg".into(),
            ));
        }
        Ok(Wit {
            hash: token_hash(token),
            token: token.to_owned(),
            workload: claims.sub,
            expires_at: claims.exp,
        })
    }
}

/// The members that make a public key and its algorithm.
fn same_public_key(theirs: &Map<String, Value>, ours: &Value) -> bool {
    ["kty", "crv", "x", "y", "n", "e", "alg"]
        .iter()
        .all(|m| theirs.get(*m) == ours.get(*m))
}

struct Inner {
    key: SigningKey,
    /// `{"alg":..,"typ":"wpt+jwt"}`, encoded once.
    header_b64: String,
    wit: ArcSwap<Wit>,
    proof_lifetime: u64,
    clock: SharedClock,
}

/// A workload's credentials: its WIT and the private key the WIT's
/// `cnf.jwk` names. Cheap to clone; clones share the WIT, so
/// [`set_wit`](Self::set_wit) renews it for every client at once.
///
/// See [`crate::wimse::WitIssuer`] for an example.
#[derive(Clone)]
pub struct WorkloadIdentity {
    inner: Arc<Inner>,
}

impl WorkloadIdentity {
    /// Credentials from the workload's key and a WIT that confirms it.
    pub fn new(key: SigningKey, wit: &str) -> Result<Self, WimseError> {
        let wit = Wit::read(wit, &key)?;
        let header = json!({ "alg": key.algorithm().as_str(), "typ": WPT_TYPE });
        Ok(WorkloadIdentity {
            inner: Arc::new(Inner {
                header_b64: b64::encode(header.to_string()),
                key,
                wit: ArcSwap::from_pointee(wit),
                proof_lifetime: DEFAULT_PROOF_LIFETIME.as_secs(),
                clock: system_clock(),
            }),
        })
    }

    /// How long each proof lives (default 60 s; 1 s to 5 minutes, what a
    /// verifier accepts by default). Set before the credentials are shared.
    pub fn proof_lifetime(self, lifetime: Duration) -> Result<Self, WimseError> {
        self.configure(|inner| {
            if lifetime < Duration::from_secs(1) || lifetime > Duration::from_secs(300) {
                return Err(WimseError::Key(
                    "a proof lives between 1 second and 5 minutes".into(),
                ));
            }
            inner.proof_lifetime = lifetime.as_secs();
            Ok(())
        })
    }

    /// The clock proofs are dated by (tests). Set before sharing.
    pub fn clock(self, clock: SharedClock) -> Result<Self, WimseError> {
        self.configure(|inner| {
            inner.clock = clock;
            Ok(())
        })
    }

    fn configure(
        mut self,
        f: impl FnOnce(&mut Inner) -> Result<(), WimseError>,
    ) -> Result<Self, WimseError> {
        let inner = Arc::get_mut(&mut self.inner)
            .ok_or_else(|| WimseError::Key("configure the identity before cloning it".into()))?;
        f(inner)?;
        Ok(self)
    }

    /// Replaces the WIT (renewed by the identity server), for every clone.
    /// The new WIT must confirm the same key.
    pub fn set_wit(&self, wit: &str) -> Result<(), WimseError> {
        let wit = Wit::read(wit, &self.inner.key)?;
        self.inner.wit.store(Arc::new(wit));
        Ok(())
    }

    /// The current WIT.
    pub fn wit(&self) -> Arc<Wit> {
        self.inner.wit.load_full()
    }

    /// The workload's public key, as the identity server needs it.
    pub fn public_jwk(&self) -> svcauth_jwks::Jwk {
        self.inner.key.public_jwk()
    }

    /// A WPT for a request to `uri` (absolute) with `headers`: `aud` is the
    /// target URI without query or fragment, `wth` the current WIT's hash,
    /// `ath` the hash of the `Authorization` header's token, `tth` of the
    /// `Txn-Token` header, and `oth` of each header in `other` that is
    /// present. Returns the WIT it goes with, and the proof.
    pub fn proof(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        other: &[HeaderName],
    ) -> Result<(Arc<Wit>, String), WimseError> {
        let inner = &*self.inner;
        let wit = self.wit();
        let now = inner.clock.now_secs();
        if now >= wit.expires_at {
            return Err(WimseError::Wit("it has expired; renew it".into()));
        }
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(WimseError::Request("the URL is not absolute".into()));
        };
        let aud = svcauth_core::htu(scheme, authority.as_str(), uri.path())
            .map_err(|e| WimseError::Request(e.to_string()))?;
        let mut claims = json!({
            "aud": aud,
            "iat": now,
            "exp": now + inner.proof_lifetime,
            "jti": random_id(),
            "wth": wit.hash,
        });
        if let Some(value) = single(headers, &header::AUTHORIZATION)? {
            claims["ath"] = Value::from(token_hash(access_token(value)));
        }
        if let Some(value) = single(headers, &HeaderName::from_static(TXN_TOKEN))? {
            claims["tth"] = Value::from(token_hash(value.trim()));
        }
        let mut oth = Map::new();
        for name in other {
            if let Some(value) = single(headers, name)? {
                oth.insert(
                    name.as_str().to_owned(),
                    Value::from(token_hash(value.trim())),
                );
            }
        }
        if !oth.is_empty() {
            claims["oth"] = Value::Object(oth);
        }
        let claims = serde_json::to_vec(&claims).map_err(|e| WimseError::Key(e.to_string()))?;
        let proof = jws::encode(&inner.header_b64, &claims, |input| inner.key.sign(input))?;
        Ok((wit, proof))
    }
}

/// The token of an `Authorization` value: what follows the scheme
/// (`Bearer`, `DPoP`, ...), as RFC 9449 hashes it for `ath`.
pub(crate) fn access_token(value: &str) -> &str {
    let value = value.trim();
    value
        .split_once(' ')
        .map_or(value, |(_, token)| token.trim_start())
}

/// The one value of `name`, as text; an error when it is repeated or not
/// visible ASCII (the draft supports no repeated headers).
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, WimseError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(WimseError::Request(format!("{name} is repeated")));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| WimseError::Request(format!("{name} is not visible ASCII")))
}

impl std::fmt::Debug for WorkloadIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wit = self.wit();
        f.debug_struct("WorkloadIdentity")
            .field("workload", &wit.workload)
            .field("wit_expires_at", &wit.expires_at)
            .field("alg", &self.inner.key.algorithm())
            .finish_non_exhaustive()
    }
}
