//! [`PinnedOrigin`]: the one origin a client reaches, for
//! [`crate::SignLayer::origin`] and `Signer::tonic_channel`.

use crate::error::{ConfigError, SignError};
use crate::route::{Destination, destination, parse_origin};

/// The one origin a client reaches, for clients that decide it themselves
/// and send requests with a path only (a tonic `Channel` connected to one
/// endpoint): relative request URIs get this origin, absolute ones must
/// already name it.
#[derive(Debug, Clone)]
pub(crate) struct PinnedOrigin {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// Scheme, lowercase host and port, as [`Route`]s hold them.
    key: (String, String, u16),
}

impl PinnedOrigin {
    /// `origin` as `scheme://host[:port]`, http or https.
    pub(crate) fn parse(origin: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::Origin(origin.to_owned());
        let key = parse_origin(origin)?;
        let uri: http::Uri = origin.parse().map_err(|_| bad())?;
        let parts = uri.into_parts();
        match (parts.scheme, parts.authority) {
            (Some(scheme), Some(authority))
                if matches!(scheme.as_str(), "http" | "https")
                    && !authority.as_str().contains('@') =>
            {
                Ok(PinnedOrigin {
                    scheme,
                    authority,
                    key,
                })
            }
            _ => Err(bad()),
        }
    }

    /// Gives a relative `uri` this origin; refuses an absolute one that
    /// names another, since the client would send it here all the same
    /// (tonic's channel overwrites the origin) with a token planned for the
    /// other.
    pub(crate) fn apply(&self, uri: &mut http::Uri) -> Result<(), SignError> {
        match (uri.scheme(), uri.authority()) {
            (None, None) => {
                let mut parts = std::mem::take(uri).into_parts();
                parts.scheme = Some(self.scheme.clone());
                parts.authority = Some(self.authority.clone());
                if parts.path_and_query.is_none() {
                    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
                }
                *uri = http::Uri::from_parts(parts).map_err(|_| SignError::RelativeUrl)?;
                Ok(())
            }
            _ => self.check(&destination(uri)?),
        }
    }

    /// Refuses a destination on another origin.
    pub(crate) fn check(&self, d: &Destination<'_>) -> Result<(), SignError> {
        let (scheme, host, port) = &self.key;
        if d.port == *port
            && d.scheme.eq_ignore_ascii_case(scheme)
            && d.host.eq_ignore_ascii_case(host)
        {
            return Ok(());
        }
        Err(SignError::OriginMismatch {
            pinned: format!("{scheme}://{}", self.authority),
            requested: d.origin(),
        })
    }
}
