//! Errors of key loading, JWKS parsing and fetching.

use svcauth_core::Algorithm;

/// A key could not be loaded, generated or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM text is not PEM, or holds the wrong kind of block.
    #[error("PEM: {0}")]
    Pem(String),
    /// The key is of a type svcauth does not sign or verify with.
    #[error("unsupported key type: {0}")]
    UnsupportedKeyType(&'static str),
    /// The key's bytes are malformed.
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    /// RSA keys must have at least 2048 bits.
    #[error("RSA key of {0} bits is too small (at least 2048 are required)")]
    RsaTooSmall(usize),
    /// RSA keys may have at most 8192 bits.
    #[error("RSA key of {0} bits is too large (at most 8192 are accepted)")]
    RsaTooLarge(usize),
    /// The algorithm does not fit the key type.
    #[error("algorithm {0} does not fit this key type")]
    AlgorithmMismatch(Algorithm),
    /// Reading a key file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An environment variable is missing or not Unicode.
    #[error("environment variable {0} is not set or not valid Unicode")]
    Env(String),
    /// The crypto backend failed to generate or sign.
    #[error("crypto backend failure: {0}")]
    Backend(&'static str),
    /// A JWKS document could not be used.
    #[error(transparent)]
    Jwks(#[from] JwksError),
    /// A signer outside this process (an HSM, a KMS) could not sign now:
    /// the token removed, the service unreachable, a session lost. Trying
    /// again later may succeed.
    #[error("signing key unavailable: {0}")]
    Unavailable(String),
}

impl KeyError {
    /// Whether trying again later may succeed ([`KeyError::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, KeyError::Unavailable(_))
    }
}

/// A JWKS document as a whole is unusable. (Single bad keys are skipped, not
/// errors: see [`crate::SkippedKey`].)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The document is larger than the configured limit.
    #[error("JWKS document exceeds {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The document is not a JSON object.
    #[error("JWKS document is not a JSON object: {0}")]
    NotJson(String),
    /// The object has no `keys` array.
    #[error("JWKS document has no \"keys\" array")]
    NoKeysArray,
    /// A SPIFFE bundle's `spiffe_sequence` is lower than the one in use: an
    /// older bundle (replayed, or from a stale cache) is not taken, since it
    /// may still hold a key the trust domain has withdrawn.
    #[error("SPIFFE bundle sequence {received} is lower than {current}, the one in use")]
    SequenceRegressed {
        /// The sequence of the bundle in use.
        current: u64,
        /// The sequence of the bundle received.
        received: u64,
    },
}

/// Fetching keys from an issuer failed. The last good key set stays in use.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connecting, sending or receiving failed (including timeouts).
    #[error("HTTP request to {url} failed: {message}")]
    Transport {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with a status other than 200 or 304.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL fetched.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The response body is larger than allowed.
    #[error("response from {url} exceeds {limit} bytes")]
    TooLarge {
        /// The URL fetched.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The JWKS could not be parsed.
    #[error("JWKS from {url}: {error}")]
    Jwks {
        /// The URL fetched.
        url: String,
        /// The parse error.
        error: JwksError,
    },
    /// The OpenID configuration is unusable.
    #[error("OpenID discovery at {url}: {message}")]
    Discovery {
        /// The discovery URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The discovery document names another issuer (OpenID Connect Discovery §4.3).
    #[error("OpenID discovery names issuer {found:?}, expected exactly {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
    /// Discovery named a `jwks_uri` on another origin than the issuer's,
    /// and that origin was not allowed with
    /// [`crate::RemoteBuilder::allow_jwks_uri_origin`]: whoever controls the
    /// discovery document must not be able to point key fetches anywhere.
    #[error("OpenID discovery names jwks_uri {jwks_uri:?}, outside the issuer's origin")]
    JwksUriOrigin {
        /// The `jwks_uri` the document names.
        jwks_uri: String,
    },
    /// A URL is not allowed (plain http to a non-loopback host, or a redirect
    /// to another origin).
    #[error("refusing URL {0}: only https, or http to a loopback host, is allowed")]
    InsecureUrl(String),
    /// A watched bundle file could not be read.
    #[error("reading {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A key source could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The URL does not parse.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
    /// Plain http to a non-loopback host without the insecure option.
    #[error("refusing {0}: use https, or http only for a loopback host (or the danger option)")]
    InsecureUrl(String),
    /// A bound is out of range.
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
}
