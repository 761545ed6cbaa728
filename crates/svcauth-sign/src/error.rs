//! Errors of the signing side.

use svcauth_core::BindingError;
use svcauth_jwks::KeyError;

/// A token could not be attached. Service errors of the signing layer are
/// `tower::BoxError`s; downcast to this type to match on the cause.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// No audience is known for the destination and the signer is set to
    /// refuse such requests.
    #[error("no audience is configured for {0}")]
    NoAudience(String),
    /// The request names an audience ([`crate::TargetAudience`]) that its
    /// destination is not mapped to, nor allowed to receive
    /// ([`crate::SignerBuilder::allow_audience_at`]). Nothing was sent: a
    /// token for one service must not reach another.
    #[error("a token for {audience} may not be sent to {origin}")]
    AudienceNotAllowed {
        /// The audience the request asked for.
        audience: String,
        /// The origin the request was going to.
        origin: String,
    },
    /// The request names another origin than the one its client is pinned
    /// to ([`crate::SignLayer::origin`]). Nothing was sent.
    #[error("the request names {requested} but this client only reaches {pinned}")]
    OriginMismatch {
        /// The origin the client reaches.
        pinned: String,
        /// The origin the request named.
        requested: String,
    },
    /// A plain-http destination that is not loopback, with a token required.
    #[error("refusing to send a token over plain http to {0}")]
    InsecureDestination(String),
    /// The request carries a `Txn-Token` to an origin outside the trust
    /// domain ([`crate::SignerBuilder::propagate_txn_tokens`]). Nothing
    /// was sent: a Txn-Token is valid in its trust domain only.
    #[error("refusing to send a Txn-Token to {0}, outside the trust domain")]
    TxnTokenOutsideTrustDomain(String),
    /// The request URL has no scheme or host.
    #[error("the request URL is not absolute")]
    RelativeUrl,
    /// A bound request whose body is a stream of unknown length.
    #[error("a request-bound token needs the whole body, and this body is a stream")]
    UnhashableBody,
    /// A bound request whose body exceeds the limit.
    #[error("the body of a bound request exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// The body could not be read.
    #[error("reading the request body failed: {0}")]
    Body(String),
    /// The request cannot be bound.
    #[error("cannot bind the request: {0}")]
    Binding(#[from] BindingError),
    /// The signing key failed.
    #[error("signing failed: {0}")]
    Key(String),
    /// The signing key is held elsewhere (an HSM, a KMS) and could not sign
    /// now; cached tokens stay in use, and the signer tries again later.
    #[error("signing key unavailable: {0}")]
    KeyUnavailable(String),
    /// The token source cannot do what was asked (binding or delegation).
    #[error("the token source does not support {0}")]
    Unsupported(&'static str),
    /// The token endpoint answered with an OAuth error.
    #[error("token endpoint answered HTTP {status}{}", error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    TokenEndpoint {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code, such as `invalid_client`.
        error: Option<String>,
    },
    /// The token endpoint's answer is not a usable token response.
    #[error("token endpoint response unusable: {0}")]
    TokenResponse(String),
    /// The token endpoint could not be reached.
    #[error("token endpoint unreachable: {0}")]
    Transport(String),
}

impl SignError {
    /// Whether trying again later may succeed (transport failures, 5xx,
    /// 429, a remote signing key unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            SignError::Transport(_) | SignError::KeyUnavailable(_) => true,
            SignError::TokenEndpoint { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

impl From<KeyError> for SignError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Unavailable(message) => SignError::KeyUnavailable(message),
            other => SignError::Key(other.to_string()),
        }
    }
}

/// A signer or token source could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Token lifetimes are capped at one hour.
    #[error("token lifetime must be between 1 second and 1 hour")]
    Lifetime,
    /// An issuer or client id is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// A URL is invalid or insecure.
    #[error("invalid or insecure URL {0:?} (https, or http only to loopback)")]
    Url(String),
    /// An origin in the audience map is not `scheme://host[:port]`.
    #[error("invalid origin {0:?}")]
    Origin(String),
    /// Another bound is out of range.
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
}
