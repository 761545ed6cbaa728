//! WIMSE outbound: Workload Identity Tokens and a fresh Workload Proof
//! Token on every request (draft-ietf-wimse-workload-creds-03,
//! draft-ietf-wimse-wpt-02; the wire format is [`svcauth_core::wimse`]).
//!
//! * [`WitIssuer`]: the trust domain's identity server, as a library: it
//!   signs a WIT for a workload identifier and the workload's *public* key.
//! * [`WorkloadIdentity`]: a workload's credentials, its WIT and the private
//!   key the WIT confirms; replaceable while in use as the WIT is renewed,
//!   and the maker of proofs.
//! * [`ProofLayer`]: a tower layer for `http::Request` clients that sends
//!   `Workload-Identity-Token` and a new `Workload-Proof-Token` with every
//!   request to the origins it is allowed to reach.

mod identity;
mod issuer;
mod layer;

pub use identity::{Wit, WorkloadIdentity};
pub use issuer::WitIssuer;
pub use layer::{Proof, ProofLayer};

/// A WIT could not be issued, loaded or used, or a proof not made.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WimseError {
    /// The workload identifier is not a valid SPIFFE or WIMSE URI.
    #[error("invalid workload identifier: {0}")]
    WorkloadId(#[from] svcauth_core::wimse::InvalidWorkloadId),
    /// The workload is not in the issuer's trust domain.
    #[error("{workload} is not in the trust domain {trust_domain}")]
    ForeignWorkload {
        /// The workload asked for.
        workload: String,
        /// The issuer's trust domain.
        trust_domain: String,
    },
    /// The workload's public key is unusable (private members, symmetric,
    /// no `alg`, too small).
    #[error("unusable workload key: {0}")]
    ProofKey(String),
    /// The WIT is not a well-formed `wit+jwt`, has expired, or does not
    /// confirm this workload's key.
    #[error("unusable WIT: {0}")]
    Wit(String),
    /// The request cannot carry a proof (a header repeated or not text).
    #[error("cannot prove this request: {0}")]
    Request(String),
    /// The request goes to an origin this layer may not reach.
    #[error("a WIT may not be sent to {0}")]
    OriginNotAllowed(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Key(String),
}

impl From<svcauth_jwks::KeyError> for WimseError {
    fn from(e: svcauth_jwks::KeyError) -> Self {
        WimseError::Key(e.to_string())
    }
}
