//! [`BaseUrl`]: outbound URLs built from a configured base and a checked
//! path, never from request input alone.
//!
//! A proxy or a "call service X at path P" endpoint that joins a path taken
//! from a request onto a base URL is one of the classic ways to leak a
//! credential: `Url::join` reads `//evil/x` or `http://evil/x` as another
//! origin, `format!("{base}{path}")` reads `:8080/x`, `@evil/x` or
//! `.evil/x` as another authority, and some stacks read `\` as `/` or
//! decode `%2e%2e` after the check. [`BaseUrl::join`] accepts only a path
//! that starts with exactly one `/` and cannot mean anything but a path
//! under the base, and checks the origin of the result before returning it.

use std::fmt;

use url::Url;

/// A configured base URL (scheme, host, port and a path prefix) that
/// request paths are joined under.
///
/// ```
/// use svcauth_sign::BaseUrl;
///
/// let base = BaseUrl::parse("http://127.0.0.1:8082/api").unwrap();
/// let url = base.join("/orders/7?expand=items").unwrap();
/// assert_eq!(url.as_str(), "http://127.0.0.1:8082/api/orders/7?expand=items");
/// for hostile in ["/http://evil/x", "//evil/x", "/\\evil/x", ":9/x", "@evil/x", "/%2e%2e/x"] {
///     assert!(base.join(hostile).is_err(), "{hostile}");
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl {
    url: Url,
    /// The base path without its trailing `/` (empty for the root).
    prefix: String,
}

/// Why a base URL is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid base URL {url:?}: {why}")]
pub struct InvalidBaseUrl {
    url: String,
    why: &'static str,
}

/// Why a request path was refused by [`BaseUrl::join`]. The message names
/// the rule, for a 400 answer; the path itself is not repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsafePath {
    /// The path does not start with `/` (`:port/x`, `@host/x`, `.host/x`,
    /// `x`): joined by string it would change the authority.
    #[error("the path must start with `/`")]
    NotAbsolutePath,
    /// The path starts with `//`, or has an empty segment: read as a
    /// network-path reference it names another host.
    #[error("the path must not contain `//`")]
    EmptySegment,
    /// A backslash, raw or encoded: some stacks read it as `/`.
    #[error("the path must not contain a backslash")]
    Backslash,
    /// An encoded `/` (`%2F`): decoded after the check it adds segments.
    #[error("the path must not contain an encoded `/`")]
    EncodedSlash,
    /// A `.` or `..` segment, raw or encoded: it climbs out of the base path.
    #[error("the path must not contain `.` or `..` segments")]
    DotSegment,
    /// A fragment (`#`), control characters, spaces, or bad `%` escapes.
    #[error("the path contains a fragment, a control character, a space or a bad escape")]
    BadCharacter,
    /// The result left the base's origin or path (a check after building,
    /// in case a rule above missed something).
    #[error("the resulting URL leaves the configured origin")]
    OtherOrigin,
}

impl BaseUrl {
    /// A base from configuration: `http` or `https`, a host, no user
    /// information, no query and no fragment.
    pub fn parse(base: &str) -> Result<Self, InvalidBaseUrl> {
        let invalid = |why| InvalidBaseUrl {
            url: base.to_owned(),
            why,
        };
        let url = Url::parse(base).map_err(|_| invalid("not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("user information is not allowed"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a query or fragment is not allowed"));
        }
        let prefix = url.path().trim_end_matches('/').to_owned();
        Ok(BaseUrl { url, prefix })
    }

    /// The base URL as configured (normalised).
    pub fn as_url(&self) -> &Url {
        &self.url
    }

    /// `scheme://host:port` of the base.
    pub fn origin(&self) -> url::Origin {
        self.url.origin()
    }

    /// The URL for `path_and_query` (as a request carries it, `/p/a?q=1`)
    /// under this base: the base's scheme, host and port, the base path,
    /// then the checked path, then the query unchanged.
    pub fn join(&self, path_and_query: &str) -> Result<Url, UnsafePath> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        check_path(path)?;
        if let Some(query) = query
            && query.bytes().any(|b| b == b'#' || b <= b' ' || b == 0x7f)
        {
            return Err(UnsafePath::BadCharacter);
        }
        let mut url = self.url.clone();
        url.set_path(&format!("{}{path}", self.prefix));
        url.set_query(query);
        url.set_fragment(None);
        // Belt and braces: whatever the rules above missed, the result must
        // still be under the base.
        let under_base = url.path() == self.prefix
            || url
                .path()
                .strip_prefix(&self.prefix)
                .is_some_and(|rest| rest.starts_with('/'));
        if url.origin() != self.url.origin() || !under_base || url.username() != "" {
            return Err(UnsafePath::OtherOrigin);
        }
        Ok(url)
    }
}

fn check_path(path: &str) -> Result<(), UnsafePath> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(UnsafePath::NotAbsolutePath);
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#') {
        return Err(UnsafePath::BadCharacter);
    }
    if path.contains('\\') {
        return Err(UnsafePath::Backslash);
    }
    if rest.is_empty() {
        return Ok(());
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err(UnsafePath::EmptySegment);
        }
        let decoded = percent_decode(segment)?;
        if decoded.contains(&b'/') {
            return Err(UnsafePath::EncodedSlash);
        }
        if decoded.contains(&b'\\') {
            return Err(UnsafePath::Backslash);
        }
        if decoded == b"." || decoded == b".." {
            return Err(UnsafePath::DotSegment);
        }
    }
    Ok(())
}

/// The bytes of a `%`-encoded segment; a `%` not followed by two hex digits
/// is refused rather than guessed at.
fn percent_decode(segment: &str) -> Result<Vec<u8>, UnsafePath> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(UnsafePath::BadCharacter)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UnsafePath::BadCharacter)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UnsafePath::BadCharacter)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BaseUrl").field(&self.url.as_str()).finish()
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path forms an attacker tries (issue 14), each refused.
    const HOSTILE: &[&str] = &[
        "/http://h/x",
        "/https:%2F%2Fh/x",
        "/\\\\h/x",
        "//h/x",
        "/%5C%5Ch/x",
        ":9999/x",
        "@h/x",
        ".h/x",
        "/../x",
        "/%2e%2e/x",
        "/%2E%2e/x",
        "/.%2e/x",
        "/a/./b",
        "/a/%2e/b",
        "/x#@h/y",
        "/x%2",
        "/x%zz",
        "/x y",
        "/x\r\nHost: h",
        "",
        "x",
        "h/x",
    ];

    #[test]
    fn hostile_paths_are_refused() {
        for base in ["http://127.0.0.1:8082", "https://b.internal/api/"] {
            let base = BaseUrl::parse(base).unwrap();
            for path in HOSTILE {
                assert!(base.join(path).is_err(), "{base} {path:?}");
            }
        }
    }

    #[test]
    fn ordinary_paths_stay_under_the_base() {
        let base = BaseUrl::parse("https://b.internal:8443/api/").unwrap();
        let join = |p: &str| base.join(p).unwrap().to_string();
        assert_eq!(join("/"), "https://b.internal:8443/api/");
        assert_eq!(join("/whoami"), "https://b.internal:8443/api/whoami");
        assert_eq!(
            join("/a/b%20c/d.json?x=1&y=%2F"),
            "https://b.internal:8443/api/a/b%20c/d.json?x=1&y=%2F"
        );
        // A full URL inside the query stays in the query.
        let url = base.join("/go?next=http://h/x&u=//h").unwrap();
        assert_eq!(url.origin(), base.origin());
        assert_eq!(url.path(), "/api/go");
        assert_eq!(url.query(), Some("next=http://h/x&u=//h"));
        // A `#` in the query is a fragment the server never sees: refused.
        assert!(base.join("/go?x=1#y").is_err());
        // Dots inside a segment are just characters.
        assert_eq!(
            join("/v1.2/..x/x.."),
            "https://b.internal:8443/api/v1.2/..x/x.."
        );
    }

    #[test]
    fn bases_with_credentials_queries_or_other_schemes_are_refused() {
        for base in [
            "ftp://h/",
            "https://u:p@h/",
            "https://h/?q",
            "https://h/#f",
            "not a url",
            "file:///etc",
        ] {
            assert!(BaseUrl::parse(base).is_err(), "{base}");
        }
    }
}
