//! Why a request was refused.

use std::fmt;

use http::StatusCode;

/// What went wrong, for matching and counting. New kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// The `Authorization` header is unusable (several of them, not ASCII).
    InvalidRequest,
    /// The token is longer than the configured limit.
    TokenTooLarge,
    /// Not three base64url segments of JSON, or not strict base64url.
    Malformed,
    /// A JSON object in the header or claims names a member twice.
    DuplicateMember,
    /// `alg` is `none`, HMAC, unknown, or not on the allow-list.
    UnsupportedAlgorithm,
    /// `crit`, `b64: false` or a nested-JWT `cty`: features svcauth does not implement.
    UnsupportedHeader,
    /// `typ` is not one of the accepted types.
    UnacceptedType,
    /// A claim is missing or of the wrong JSON type.
    InvalidClaims,
    /// `iss` is not a trusted issuer.
    UntrustedIssuer,
    /// The issuer has no key with this `kid` (or no `kid` and several keys).
    UnknownKey,
    /// The token's `alg` is not the one pinned on the key.
    KeyAlgorithmMismatch,
    /// The issuer's keys could not be loaded (503).
    KeysUnavailable,
    /// The signature does not verify.
    InvalidSignature,
    /// `aud` does not name this service.
    WrongAudience,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// `exp - iat` exceeds the maximum lifetime.
    LifetimeTooLong,
    /// The route requires a request-bound token and this one is not bound.
    BindingRequired,
    /// The token's `htm`, `htu` or `body_sha256` does not match the request.
    BindingMismatch,
    /// The body of a bound request exceeds the limit (413).
    BodyTooLarge,
    /// The body of a bound request could not be read (400).
    BodyUnreadable,
    /// A bound token without `jti`, so it cannot be protected from replay.
    MissingJti,
    /// This bound token was already used.
    Replayed,
    /// The token (its `jti`, or its signing key) is revoked.
    Revoked,
    /// A replay or revocation store did not answer (503).
    StoreUnavailable,
    /// The caller is not allowed on this route (403).
    CallerNotAllowed,
    /// The token lacks a required scope (403).
    InsufficientScope,
    /// A bearer token from a caller that must prove possession (a WIT and a
    /// WPT) on this route.
    ProofRequired,
    /// The Workload Identity Token is malformed, repeated, of the wrong
    /// `typ`, badly signed, or its `cnf.jwk` is unusable (400, as the WIMSE
    /// drafts say).
    WitInvalid,
    /// The WIT names a workload of a trust domain that is not trusted (400).
    WitUntrusted,
    /// The WIT has expired, is not valid yet, or lives too long (400).
    WitExpired,
    /// The Workload Proof Token is missing, repeated, malformed, of the
    /// wrong `typ` or `alg`, or not signed by the WIT's key (400).
    ProofInvalid,
    /// The WPT is for another target, another WIT, or another access,
    /// transaction or other token than the request carries (400).
    ProofMismatch,
    /// The WPT has expired, or lives longer than the verifier accepts (400).
    ProofExpired,
    /// This WPT was already used (400).
    ProofReplayed,
    /// The route requires a `Txn-Token` and none came (403).
    TxnTokenRequired,
    /// The `Txn-Token` is repeated, malformed, of the wrong `typ` or `alg`,
    /// lacks a required claim, or its signature does not verify (403).
    TxnTokenInvalid,
    /// The `Txn-Token` was not signed by a trusted Transaction Token
    /// Service: unknown `iss` or key, a service's key (403).
    TxnTokenUntrusted,
    /// The `Txn-Token`'s `aud` is not this trust domain (403).
    TxnTokenWrongDomain,
    /// The `Txn-Token` has expired, is issued in the future, or lives
    /// longer than accepted (403).
    TxnTokenExpired,
    /// A Txn-Token was presented in `Authorization`: it is not a
    /// credential (401).
    TxnTokenAsCredential,
}

impl ErrorKind {
    /// Every kind, in order; used for counters.
    pub(crate) const ALL: [ErrorKind; 43] = [
        ErrorKind::MissingToken,
        ErrorKind::InvalidRequest,
        ErrorKind::TokenTooLarge,
        ErrorKind::Malformed,
        ErrorKind::DuplicateMember,
        ErrorKind::UnsupportedAlgorithm,
        ErrorKind::UnsupportedHeader,
        ErrorKind::UnacceptedType,
        ErrorKind::InvalidClaims,
        ErrorKind::UntrustedIssuer,
        ErrorKind::UnknownKey,
        ErrorKind::KeyAlgorithmMismatch,
        ErrorKind::KeysUnavailable,
        ErrorKind::InvalidSignature,
        ErrorKind::WrongAudience,
        ErrorKind::Expired,
        ErrorKind::NotYetValid,
        ErrorKind::IssuedInFuture,
        ErrorKind::LifetimeTooLong,
        ErrorKind::BindingRequired,
        ErrorKind::BindingMismatch,
        ErrorKind::BodyTooLarge,
        ErrorKind::BodyUnreadable,
        ErrorKind::MissingJti,
        ErrorKind::Replayed,
        ErrorKind::Revoked,
        ErrorKind::StoreUnavailable,
        ErrorKind::CallerNotAllowed,
        ErrorKind::InsufficientScope,
        ErrorKind::ProofRequired,
        ErrorKind::WitInvalid,
        ErrorKind::WitUntrusted,
        ErrorKind::WitExpired,
        ErrorKind::ProofInvalid,
        ErrorKind::ProofMismatch,
        ErrorKind::ProofExpired,
        ErrorKind::ProofReplayed,
        ErrorKind::TxnTokenRequired,
        ErrorKind::TxnTokenInvalid,
        ErrorKind::TxnTokenUntrusted,
        ErrorKind::TxnTokenWrongDomain,
        ErrorKind::TxnTokenExpired,
        ErrorKind::TxnTokenAsCredential,
    ];

    /// A stable snake_case name, for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::MissingToken => "missing_token",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::TokenTooLarge => "token_too_large",
            ErrorKind::Malformed => "malformed",
            ErrorKind::DuplicateMember => "duplicate_member",
            ErrorKind::UnsupportedAlgorithm => "unsupported_algorithm",
            ErrorKind::UnsupportedHeader => "unsupported_header",
            ErrorKind::UnacceptedType => "unaccepted_type",
            ErrorKind::InvalidClaims => "invalid_claims",
            ErrorKind::UntrustedIssuer => "untrusted_issuer",
            ErrorKind::UnknownKey => "unknown_key",
            ErrorKind::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            ErrorKind::KeysUnavailable => "keys_unavailable",
            ErrorKind::InvalidSignature => "invalid_signature",
            ErrorKind::WrongAudience => "wrong_audience",
            ErrorKind::Expired => "expired",
            ErrorKind::NotYetValid => "not_yet_valid",
            ErrorKind::IssuedInFuture => "issued_in_future",
            ErrorKind::LifetimeTooLong => "lifetime_too_long",
            ErrorKind::BindingRequired => "binding_required",
            ErrorKind::BindingMismatch => "binding_mismatch",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::BodyUnreadable => "body_unreadable",
            ErrorKind::MissingJti => "missing_jti",
            ErrorKind::Replayed => "replayed",
            ErrorKind::Revoked => "revoked",
            ErrorKind::StoreUnavailable => "store_unavailable",
            ErrorKind::CallerNotAllowed => "caller_not_allowed",
            ErrorKind::InsufficientScope => "insufficient_scope",
            ErrorKind::ProofRequired => "proof_required",
            ErrorKind::WitInvalid => "wit_invalid",
            ErrorKind::WitUntrusted => "wit_untrusted",
            ErrorKind::WitExpired => "wit_expired",
            ErrorKind::ProofInvalid => "proof_invalid",
            ErrorKind::ProofMismatch => "proof_mismatch",
            ErrorKind::ProofExpired => "proof_expired",
            ErrorKind::ProofReplayed => "proof_replayed",
            ErrorKind::TxnTokenRequired => "txn_token_required",
            ErrorKind::TxnTokenInvalid => "txn_token_invalid",
            ErrorKind::TxnTokenUntrusted => "txn_token_untrusted",
            ErrorKind::TxnTokenWrongDomain => "txn_token_wrong_domain",
            ErrorKind::TxnTokenExpired => "txn_token_expired",
            ErrorKind::TxnTokenAsCredential => "txn_token_as_credential",
        }
    }

    /// A short human description. Never contains token contents.
    pub fn description(self) -> &'static str {
        match self {
            ErrorKind::MissingToken => "a bearer token is required",
            ErrorKind::InvalidRequest => "the Authorization header is malformed",
            ErrorKind::TokenTooLarge => "the token is too large",
            ErrorKind::Malformed => "the token is not a well-formed JWS",
            ErrorKind::DuplicateMember => "the token repeats a JSON member",
            ErrorKind::UnsupportedAlgorithm => "the token's algorithm is not accepted",
            ErrorKind::UnsupportedHeader => "the token uses an unsupported JWS header feature",
            ErrorKind::UnacceptedType => "the token's typ is not accepted",
            ErrorKind::InvalidClaims => "the token's claims are missing or of the wrong type",
            ErrorKind::UntrustedIssuer => "the token's issuer is not trusted",
            ErrorKind::UnknownKey => "the token's signing key is unknown",
            ErrorKind::KeyAlgorithmMismatch => "the token's algorithm does not match its key",
            ErrorKind::KeysUnavailable => "the issuer's keys are unavailable",
            ErrorKind::InvalidSignature => "the token's signature is invalid",
            ErrorKind::WrongAudience => "the token is not for this audience",
            ErrorKind::Expired => "the token has expired",
            ErrorKind::NotYetValid => "the token is not valid yet",
            ErrorKind::IssuedInFuture => "the token is issued in the future",
            ErrorKind::LifetimeTooLong => "the token's lifetime exceeds the maximum",
            ErrorKind::BindingRequired => "a request-bound token is required",
            ErrorKind::BindingMismatch => "the token is bound to another request",
            ErrorKind::BodyTooLarge => "the request body is too large",
            ErrorKind::BodyUnreadable => "the request body could not be read",
            ErrorKind::MissingJti => "a bound token needs a jti",
            ErrorKind::Replayed => "the token was already used",
            ErrorKind::Revoked => "the token is revoked",
            ErrorKind::StoreUnavailable => "token state is unavailable",
            ErrorKind::CallerNotAllowed => "the caller is not allowed here",
            ErrorKind::InsufficientScope => "the token lacks a required scope",
            ErrorKind::ProofRequired => {
                "this caller must present a WIT and a proof, not a bearer token"
            }
            ErrorKind::WitInvalid => "the workload identity token is invalid",
            ErrorKind::WitUntrusted => "the workload's trust domain is not trusted",
            ErrorKind::WitExpired => "the workload identity token is expired or not yet valid",
            ErrorKind::ProofInvalid => "the workload proof token is missing or invalid",
            ErrorKind::ProofMismatch => "the workload proof token does not match this request",
            ErrorKind::ProofExpired => "the workload proof token has expired",
            ErrorKind::ProofReplayed => "the workload proof token was already used",
            ErrorKind::TxnTokenRequired => "a Txn-Token is required",
            ErrorKind::TxnTokenInvalid => "the Txn-Token is invalid",
            ErrorKind::TxnTokenUntrusted => {
                "the Txn-Token is not signed by a trusted transaction token service"
            }
            ErrorKind::TxnTokenWrongDomain => "the Txn-Token is for another trust domain",
            ErrorKind::TxnTokenExpired => "the Txn-Token is expired or not valid yet",
            ErrorKind::TxnTokenAsCredential => {
                "a Txn-Token is not a credential: send it in the Txn-Token header"
            }
        }
    }

    /// The HTTP status this kind is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::BodyUnreadable => StatusCode::BAD_REQUEST,
            kind if kind.is_workload_proof() => StatusCode::BAD_REQUEST,
            kind if kind.is_txn_token() => StatusCode::FORBIDDEN,
            ErrorKind::CallerNotAllowed | ErrorKind::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorKind::KeysUnavailable | ErrorKind::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The gRPC status code this kind is answered with on a gRPC request:
    /// 16 UNAUTHENTICATED for a missing or bad token, 7 PERMISSION_DENIED
    /// for a caller the route does not admit, 14 UNAVAILABLE when keys or
    /// stores are unavailable (retry), 8 RESOURCE_EXHAUSTED for a body over
    /// the limit, 3 INVALID_ARGUMENT for a body that could not be read.
    pub fn grpc_code(self) -> u16 {
        match self {
            kind if kind.is_txn_token() => 7,
            ErrorKind::CallerNotAllowed | ErrorKind::InsufficientScope => 7,
            ErrorKind::KeysUnavailable | ErrorKind::StoreUnavailable => 14,
            ErrorKind::BodyTooLarge => 8,
            ErrorKind::BodyUnreadable => 3,
            _ => 16,
        }
    }

    /// Whether this is a failure of a WIT or its WPT: answered 400 without
    /// a `WWW-Authenticate` challenge, as the WIMSE drafts ask (401 would
    /// invite an `Authorization` header, which a WIT must never be in).
    pub fn is_workload_proof(self) -> bool {
        matches!(
            self,
            ErrorKind::WitInvalid
                | ErrorKind::WitUntrusted
                | ErrorKind::WitExpired
                | ErrorKind::ProofInvalid
                | ErrorKind::ProofMismatch
                | ErrorKind::ProofExpired
                | ErrorKind::ProofReplayed
        )
    }

    /// Whether this is a failure of the `Txn-Token` (not of the caller's
    /// credential): answered 403 without a challenge, since the caller
    /// authenticated and the transaction context is what fails.
    pub fn is_txn_token(self) -> bool {
        matches!(
            self,
            ErrorKind::TxnTokenRequired
                | ErrorKind::TxnTokenInvalid
                | ErrorKind::TxnTokenUntrusted
                | ErrorKind::TxnTokenWrongDomain
                | ErrorKind::TxnTokenExpired
        )
    }

    /// The RFC 6750 §3.1 error code, if this kind has one.
    pub fn oauth_error(self) -> Option<&'static str> {
        match self {
            ErrorKind::MissingToken
            | ErrorKind::KeysUnavailable
            | ErrorKind::StoreUnavailable
            | ErrorKind::BodyTooLarge
            | ErrorKind::BodyUnreadable => None,
            kind if kind.is_workload_proof() || kind.is_txn_token() => None,
            ErrorKind::InvalidRequest => Some("invalid_request"),
            ErrorKind::CallerNotAllowed | ErrorKind::InsufficientScope => {
                Some("insufficient_scope")
            }
            _ => Some("invalid_token"),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// A request was refused. `kind()` says why, and decides the response it
/// becomes (RFC 6750: 401 with `WWW-Authenticate`, 403 for a caller the
/// route does not admit, 503 with `Retry-After` when keys or stores are
/// unavailable, 413, 400). Its text never repeats token contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    kind: ErrorKind,
}

impl VerifyError {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        VerifyError { kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status of the rejection.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl From<ErrorKind> for VerifyError {
    fn from(kind: ErrorKind) -> Self {
        VerifyError::new(kind)
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.description())
    }
}

impl std::error::Error for VerifyError {}

/// A verifier could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The audience is empty or a wildcard.
    #[error("the audience must be a non-empty exact name, not empty or \"*\"")]
    BadAudience,
    /// No issuer is trusted.
    #[error("at least one trusted issuer is required")]
    NoIssuers,
    /// The same issuer is configured twice.
    #[error("issuer {0:?} is configured twice")]
    DuplicateIssuer(String),
    /// Leeway over 5 minutes.
    #[error("leeway may be at most 300 seconds")]
    LeewayTooLarge,
    /// The allow-list is empty.
    #[error("the algorithm allow-list is empty")]
    NoAlgorithms,
    /// An HMAC secret shorter than 32 bytes.
    #[error("an HMAC secret must have at least 32 bytes")]
    WeakHmacSecret,
    /// A bound is zero.
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
}
