//! SPIFFE JWT-SVIDs: bearer tokens whose issuer is the trust domain in
//! their `sub`, verified with the `jwt-svid` keys of that trust domain's
//! bundle (a [`svcauth_jwks::KeySource::spiffe_bundle`] or
//! [`spiffe_bundle_file`](svcauth_jwks::KeySource::spiffe_bundle_file)).
//!
//! Only a token whose `iss` is not a trusted issuer is read as a JWT-SVID,
//! so a configured issuer's tokens are never checked against a bundle.
//! The JWT-SVID profile then adds its header rules to the usual ones
//! (JWT-SVID §2): `alg` one of RS, ES or PS, `typ` absent, `JWT` or
//! `JOSE`, and no header member but `alg`, `kid` and `typ`. Its claim
//! rules (`sub` a SPIFFE ID, `aud` with this verifier's audience, `exp`)
//! are the verifier's own, plus `iat`, which svcauth needs to hold the
//! token to its lifetime cap.

use svcauth_core::wimse::WorkloadId;
use svcauth_core::{Algorithm, jws};

use crate::error::ErrorKind;
use crate::token::{HeaderAlg, Parsed};
use crate::verifier::Verifier;

impl Verifier {
    /// The index of the JWT-SVID issuer for `parsed`: the trust domain of
    /// its `sub`, when trusted for JWT-SVIDs, after the profile's header
    /// rules. `None` when it is not a JWT-SVID of a trusted domain.
    pub(crate) fn jwt_svid_issuer(
        &self,
        token: &str,
        parsed: &Parsed<'_>,
    ) -> Result<Option<usize>, ErrorKind> {
        let domains = &self.inner().svid_domains;
        if domains.is_empty() {
            return Ok(None);
        }
        let Ok(id) = parsed.claims.sub.parse::<WorkloadId>() else {
            return Ok(None);
        };
        if id.scheme() != "spiffe" {
            return Ok(None);
        }
        let Some(&index) = domains.get(id.trust_domain()) else {
            return Ok(None);
        };
        // A workload's SPIFFE ID has a path; the trust domain's own ID
        // names no workload.
        if id.path().is_empty() {
            return Err(ErrorKind::InvalidClaims);
        }
        if !matches!(parsed.header.typ.as_deref(), None | Some("JWT" | "JOSE")) {
            return Err(ErrorKind::UnacceptedType);
        }
        match parsed.header.alg {
            HeaderAlg::Asymmetric(alg)
                if self.policy().algorithms.contains(alg) && alg != Algorithm::EdDSA => {}
            _ => return Err(ErrorKind::UnsupportedAlgorithm),
        }
        let (header, _) = jws::peek(token).ok_or(ErrorKind::Malformed)?;
        if header
            .keys()
            .any(|name| !matches!(name.as_str(), "alg" | "kid" | "typ"))
        {
            return Err(ErrorKind::UnsupportedHeader);
        }
        Ok(Some(index))
    }
}
