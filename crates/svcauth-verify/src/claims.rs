//! What a successful verification hands to the application.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use svcauth_core::{Actor, Algorithm, Audience, Claims};

/// The claims of a verified token, with the token's raw JSON payload so that
/// your own claims type can be read from it.
///
/// Shared behind an `Arc`: a cached verification hands out the same value
/// (each thread its own copy, so reference counts are not contended).
#[derive(Clone)]
pub struct VerifiedClaims {
    pub(crate) claims: Claims,
    pub(crate) payload: Bytes,
    pub(crate) kid: Option<String>,
    pub(crate) alg: Option<Algorithm>,
    pub(crate) valid_from: u64,
    /// For a WIT: the workload and the key its proofs must be signed with.
    pub(crate) workload: Option<Arc<crate::wimse::ProofKey>>,
}

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Proof {
    /// A bearer token in `Authorization`: whoever holds it.
    Bearer,
    /// A Workload Identity Token with a Workload Proof Token signed by the
    /// key it confirms: only the holder of that key.
    WorkloadProofToken,
}

impl Proof {
    /// `"bearer"` or `"wpt"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::Bearer => "bearer",
            Proof::WorkloadProofToken => "wpt",
        }
    }
}

impl VerifiedClaims {
    /// The issuer (`iss`): a trusted issuer, by construction.
    pub fn iss(&self) -> &str {
        &self.claims.iss
    }

    /// The subject (`sub`): the calling service, or the user it acts for.
    pub fn sub(&self) -> &str {
        &self.claims.sub
    }

    /// The audience (`aud`), which contains this service.
    pub fn aud(&self) -> &Audience {
        &self.claims.aud
    }

    /// The acting party of a delegated token (`act`, RFC 8693 §4.1).
    pub fn act(&self) -> Option<&Actor> {
        self.claims.act.as_ref()
    }

    /// Who presented the call: the current actor (`act.sub`, RFC 8693
    /// §4.1) of a delegated token, else `sub`. Caller rules compare this.
    pub fn caller(&self) -> &str {
        self.act().map_or(self.sub(), |actor| actor.sub.as_str())
    }

    /// The token id (`jti`).
    pub fn jti(&self) -> Option<&str> {
        self.claims.jti.as_deref()
    }

    /// Expiry (`exp`), seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.claims.exp
    }

    /// The `kid` of the key that signed the token.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm the token was signed with (`None` for the HMAC option).
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.alg
    }

    /// Whether the token was bound to its request (and the binding checked).
    pub fn is_bound(&self) -> bool {
        self.claims.htm.is_some()
    }

    /// How the caller proved its identity.
    pub fn proof(&self) -> Proof {
        match self.workload {
            Some(_) => Proof::WorkloadProofToken,
            None => Proof::Bearer,
        }
    }

    /// The verified workload identifier, for a caller that presented a WIT
    /// and its proof (also its [`sub`](Self::sub); its [`iss`](Self::iss)
    /// is then the trust domain, `spiffe://example.org`).
    pub fn workload(&self) -> Option<&svcauth_core::wimse::WorkloadId> {
        self.workload.as_ref().map(|w| &w.workload)
    }

    /// All typed claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The scopes of the `scope` claim (space-separated, RFC 8693 §4.2).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.claims
            .extra
            .get("scope")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// The verified JSON payload, exactly as signed.
    pub fn raw_json(&self) -> &[u8] {
        &self.payload
    }

    /// Reads the payload as your own claims type.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

impl fmt::Debug for VerifiedClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedClaims")
            .field("iss", &self.claims.iss)
            .field("sub", &self.claims.sub)
            .field("aud", &self.claims.aud)
            .field("exp", &self.claims.exp)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The request extension the verifying layer inserts: the verified caller,
/// or `None` on a route where authentication is optional and no token came.
///
/// Extractors read it; its absence means the layer is not installed. In
/// tonic handlers, which get the HTTP request's extensions, read it with
/// [`Authentication::caller`].
#[derive(Debug, Clone)]
pub struct Authentication(pub Option<Arc<VerifiedClaims>>);

impl Authentication {
    /// The verified caller in `extensions`, if the layer put one there.
    ///
    /// ```
    /// # fn handler(request: tonic::Request<()>) -> Result<(), tonic::Status> {
    /// let caller = svcauth_verify::Authentication::caller(request.extensions())
    ///     .ok_or_else(|| tonic::Status::unauthenticated("a bearer token is required"))?;
    /// println!("called by {}", caller.sub());
    /// # Ok(()) }
    /// ```
    pub fn caller(extensions: &http::Extensions) -> Option<&VerifiedClaims> {
        extensions.get::<Authentication>()?.0.as_deref()
    }
}
