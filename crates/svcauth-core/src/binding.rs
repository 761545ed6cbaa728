//! The request binding shared by signer and verifier.
//!
//! A bound token carries four claims computed from the request as sent:
//!
//! * `htm`: the HTTP method, e.g. `POST`;
//! * `htu`: `scheme://authority/path`, with no query and no fragment
//!   (RFC 9449 §4.2), normalised: scheme and host lower-cased, the scheme's
//!   default port removed, an empty path written `/`;
//! * `query_sha256`: base64url (no padding) of the SHA-256 of the exact
//!   query string as sent, without the `?` (no query hashes as the empty
//!   string). `htu` leaves the query out, as DPoP does; this claim puts it
//!   back, so that `?amount=1` cannot become `?amount=1000000`;
//! * `body_sha256`: base64url (no padding) of the SHA-256 of the exact body
//!   bytes (the empty body included).
//!
//! A token from another stack may omit `query_sha256`; it is then accepted
//! only for a request with no query (see [`RequestBinding::matches`]).

use aws_lc_rs::digest;
use http::{Method, Uri};

/// The binding claims of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBinding {
    /// The method (`htm`).
    pub htm: String,
    /// The normalised target URL without query (`htu`).
    pub htu: String,
    /// base64url SHA-256 of the body (`body_sha256`).
    pub body_sha256: String,
    /// base64url SHA-256 of the exact query string (`query_sha256`); `None`
    /// only when read from a token that does not bind the query.
    pub query_sha256: Option<String>,
}

/// Why a request cannot be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The URI has no scheme or authority (a client must send absolute URIs).
    #[error("the request URI is not absolute (scheme and authority are needed)")]
    NotAbsolute,
    /// The scheme is neither `http` nor `https`.
    #[error("unsupported URI scheme (only http and https can be bound)")]
    UnsupportedScheme,
    /// The authority carries user information, or is otherwise unusable.
    #[error("the URI authority cannot be bound (user information or empty host)")]
    BadAuthority,
}

impl RequestBinding {
    /// The binding of a request to an absolute URI, as a client sends it.
    ///
    /// # Example
    ///
    /// ```
    /// use http::{Method, Uri};
    /// use svcauth_core::RequestBinding;
    ///
    /// let uri: Uri = "https://Service-B.internal:443/v1/orders?dry_run=1".parse().unwrap();
    /// let b = RequestBinding::for_request(&Method::POST, &uri, br#"{"sku":"A-1","qty":2}"#).unwrap();
    /// assert_eq!(b.htm, "POST");
    /// assert_eq!(b.htu, "https://service-b.internal/v1/orders");
    /// assert_eq!(b.query_sha256.as_deref(), Some(svcauth_core::query_sha256("dry_run=1").as_str()));
    /// assert_eq!(b.body_sha256, "08ld4tZtuaBCYDY318ddzbgQxPSl5VMNRQ_9NEsCJjY");
    /// ```
    pub fn for_request(method: &Method, uri: &Uri, body: &[u8]) -> Result<Self, BindingError> {
        let scheme = uri.scheme_str().ok_or(BindingError::NotAbsolute)?;
        let authority = uri.authority().ok_or(BindingError::NotAbsolute)?;
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        Self::for_parts(method, scheme, authority.as_str(), target, body)
    }

    /// The binding from separate parts, as a server reconstructs it (scheme
    /// and authority from its public base URL or the `Host` header).
    /// `target` is the path with the query as sent (`/v1/orders?dry_run=1`);
    /// a fragment, never sent, is ignored.
    pub fn for_parts(
        method: &Method,
        scheme: &str,
        authority: &str,
        target: &str,
        body: &[u8],
    ) -> Result<Self, BindingError> {
        let target = target.split('#').next().unwrap_or("");
        let query = target.split_once('?').map_or("", |(_, q)| q);
        Ok(RequestBinding {
            htm: method.as_str().to_owned(),
            htu: htu(scheme, authority, target)?,
            body_sha256: body_sha256(body),
            query_sha256: Some(query_sha256(query)),
        })
    }

    /// Whether a token's binding (`self`) holds for the request whose
    /// binding is `request` (as computed by [`for_parts`](Self::for_parts)).
    /// A token without `query_sha256` holds only for a request without a
    /// query: it says nothing about one, so none may be added.
    pub fn matches(&self, request: &RequestBinding) -> bool {
        let query = match &self.query_sha256 {
            Some(bound) => request.query_sha256.as_ref() == Some(bound),
            None => request
                .query_sha256
                .as_ref()
                .is_none_or(|q| *q == query_sha256("")),
        };
        query
            && self.htm == request.htm
            && self.htu == request.htu
            && self.body_sha256 == request.body_sha256
    }
}

/// The normalised `htu` of a request target.
pub fn htu(scheme: &str, authority: &str, path: &str) -> Result<String, BindingError> {
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return Err(BindingError::UnsupportedScheme),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(BindingError::BadAuthority);
    }
    let mut authority = authority.to_ascii_lowercase();
    if authority.ends_with(default_port) {
        authority.truncate(authority.len() - default_port.len());
    }
    // A host is required: `http://:80/` would normalise to `http:///`,
    // which is no URI (found by fuzzing).
    let host = match authority.strip_prefix('[') {
        Some(_) => authority.as_str(),
        None => authority
            .rsplit_once(':')
            .map_or(authority.as_str(), |(host, _)| host),
    };
    if host.is_empty() {
        return Err(BindingError::BadAuthority);
    }
    // Only the path: whatever follows `?` or `#` is not part of htu.
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = if path.is_empty() { "/" } else { path };
    Ok(format!("{scheme}://{authority}{path}"))
}

/// base64url (no padding) of the SHA-256 of `body`.
pub fn body_sha256(body: &[u8]) -> String {
    crate::b64::encode(digest::digest(&digest::SHA256, body))
}

/// base64url (no padding) of the SHA-256 of the exact query string (without
/// the `?`; no query is the empty string). Not decoded, not reordered: the
/// bytes the server receives are the bytes hashed.
pub fn query_sha256(query: &str) -> String {
    body_sha256(query.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_normalises_scheme_host_and_default_port() {
        assert_eq!(
            htu("HTTPS", "B.Example:443", "").unwrap(),
            "https://b.example/"
        );
        assert_eq!(htu("http", "b:80", "/x").unwrap(), "http://b/x");
        assert_eq!(htu("http", "b:8080", "/x").unwrap(), "http://b:8080/x");
        assert_eq!(htu("https", "b:80", "/x").unwrap(), "https://b:80/x");
        assert_eq!(htu("https", "b", "/x?q=1#f").unwrap(), "https://b/x");
        assert_eq!(htu("https", "[::1]:443", "/").unwrap(), "https://[::1]/");
    }

    #[test]
    fn htu_refuses_what_cannot_be_bound() {
        assert_eq!(htu("ftp", "b", "/"), Err(BindingError::UnsupportedScheme));
        assert_eq!(htu("https", "u:p@b", "/"), Err(BindingError::BadAuthority));
        assert_eq!(htu("https", "", "/"), Err(BindingError::BadAuthority));
        // Fuzzing found these: a port and no host normalised to `http:///`.
        assert_eq!(htu("http", ":80", "/a"), Err(BindingError::BadAuthority));
        assert_eq!(htu("https", ":8443", "/a"), Err(BindingError::BadAuthority));
        assert_eq!(htu("http", "[::1]:80", "/").unwrap(), "http://[::1]/");
        let rel: Uri = "/only/path".parse().unwrap();
        assert_eq!(
            RequestBinding::for_request(&Method::GET, &rel, b""),
            Err(BindingError::NotAbsolute)
        );
    }

    #[test]
    fn the_query_is_bound_exactly() {
        let bind = |target: &str| {
            RequestBinding::for_parts(&Method::POST, "https", "b", target, b"").unwrap()
        };
        let token = bind("/pay?amount=1");
        assert_eq!(token.htu, "https://b/pay");
        assert!(token.matches(&bind("/pay?amount=1")));
        assert!(token.matches(&bind("/pay?amount=1#frag")));
        for other in [
            "/pay",
            "/pay?",
            "/pay?amount=1000000&to=attacker",
            "/pay?amount=1&amount=1000000",
            "/pay?amount=%31",
        ] {
            assert!(!token.matches(&bind(other)), "{other}");
        }
        // No query and an empty query are the same request.
        assert!(bind("/pay").matches(&bind("/pay?")));
        // A token that does not bind the query (another stack's) holds only
        // for a request without one.
        let mut legacy = bind("/pay");
        legacy.query_sha256 = None;
        assert!(legacy.matches(&bind("/pay")));
        assert!(!legacy.matches(&bind("/pay?amount=1000000")));
    }

    #[test]
    fn body_hash_of_empty_body_is_the_sha256_of_nothing() {
        assert_eq!(
            body_sha256(b""),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }
}
