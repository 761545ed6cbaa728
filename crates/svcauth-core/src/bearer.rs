//! Reading the bearer token of a request (RFC 6750 §2.1), the one place
//! svcauth's inbound layers take a token from.

use http::{HeaderMap, header};

/// The `Authorization` header is present but unusable: several of them, not
/// ASCII, or `Bearer` with an empty token (answer 400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("exactly one Authorization: Bearer header with a token is required")]
pub struct InvalidAuthorization;

/// The token of `Authorization: Bearer <token>`. `Ok(None)`: no bearer
/// credentials at all (no header, or another scheme).
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, InvalidAuthorization> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(InvalidAuthorization);
    }
    // The same rule as `HeaderValue::to_str` (visible ASCII; a HeaderValue
    // holds no other control byte than tab), checked a word at a time
    // rather than byte by byte: this runs on every request.
    let value = value.as_bytes();
    if !value.is_ascii() {
        return Err(InvalidAuthorization);
    }
    let value = std::str::from_utf8(value).map_err(|_| InvalidAuthorization)?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(InvalidAuthorization);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_token_comes_only_from_one_authorization_header() {
        assert_eq!(bearer_token(&headers(&[])), Ok(None));
        assert_eq!(bearer_token(&headers(&["Bearer abc"])), Ok(Some("abc")));
        assert_eq!(bearer_token(&headers(&["bearer  abc "])), Ok(Some("abc")));
        assert_eq!(bearer_token(&headers(&["Basic dXNlcjpwYXNz"])), Ok(None));
        assert_eq!(bearer_token(&headers(&["Bearer"])), Ok(None));
        assert_eq!(
            bearer_token(&headers(&["Bearer  "])),
            Err(InvalidAuthorization)
        );
        assert_eq!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(InvalidAuthorization)
        );
    }
}
