//! Errors: configuration ([`ConfigError`]) and why a swap failed ([`SwapError`]).

/// A gateway that cannot be built as configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting out of range.
    #[error("invalid gateway configuration: {0}")]
    Invalid(&'static str),
    /// A header to strip is not a valid header name.
    #[error("not a header name: {0:?}")]
    HeaderName(String),
}

/// Why a reference token was not swapped.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SwapError {
    /// The authorization server says the token is not active (unknown,
    /// expired, revoked): 401.
    #[error("the reference token is not active")]
    Inactive,
    /// Not a token this gateway will look at (too long or too short): 401.
    #[error("the reference token is malformed")]
    Malformed,
    /// The authorization server could not be asked, or refused the gateway
    /// itself, or answered something unusable: 503 with `Retry-After`.
    #[error("the authorization server is unavailable")]
    Unavailable {
        /// Seconds the client is told to wait.
        retry_after: u64,
    },
    /// The answer (for instance an RFC 9701 JWT) did not check out; counted
    /// as the server's failure: 503.
    #[error("authorization server error: {0}")]
    Server(String),
    /// This client asked about too many unknown tokens: 429 with
    /// `Retry-After: 1`.
    #[error("too many unknown reference tokens from this client")]
    ClientRateLimited,
    /// Too many cache misses right now: 503 with `Retry-After: 1`.
    #[error("too many unknown reference tokens; try again shortly")]
    RateLimited,
}
