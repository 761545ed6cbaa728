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
    let Some(value) = single_authorization(headers)? else {
        return Ok(None);
    };
    // The same rule as `HeaderValue::to_str` (visible ASCII; a HeaderValue
    // holds no other control byte than tab), checked a word at a time
    // rather than byte by byte: this runs on every request.
    if !value.is_ascii() {
        return Err(InvalidAuthorization);
    }
    let Some(token) = split_bearer(value)? else {
        return Ok(None);
    };
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| InvalidAuthorization)
}

/// The raw bytes of the bearer token, unchecked: what [`bearer_token`]
/// gives, as bytes, and also the bytes of a single `Bearer` header that is
/// not ASCII (which [`bearer_token`] refuses); `None` in every other case.
/// For exact-match lookups of tokens already verified (which are ASCII, so
/// such bytes never match), where validating the bytes again would only
/// cost time; anything else must use [`bearer_token`].
pub fn bearer_token_bytes(headers: &HeaderMap) -> Option<&[u8]> {
    split_bearer(single_authorization(headers).ok()??).ok()?
}

fn single_authorization(headers: &HeaderMap) -> Result<Option<&[u8]>, InvalidAuthorization> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(InvalidAuthorization);
    }
    Ok(Some(value.as_bytes()))
}

fn split_bearer(value: &[u8]) -> Result<Option<&[u8]>, InvalidAuthorization> {
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        return Ok(None);
    };
    let (scheme, token) = (&value[..space], &value[space + 1..]);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let start = token.iter().position(|b| *b != b' ').unwrap_or(token.len());
    let end = token
        .iter()
        .rposition(|b| *b != b' ')
        .map_or(start, |i| i + 1);
    let token = &token[start..end];
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
    fn the_bytes_agree_with_the_checked_token() {
        for values in [
            &[][..],
            &["Bearer abc"],
            &["bearer  abc "],
            &["Basic dXNlcjpwYXNz"],
            &["Bearer"],
            &["Bearer  "],
            &["Bearer a", "Bearer b"],
        ] {
            let h = headers(values);
            assert_eq!(
                bearer_token_bytes(&h),
                bearer_token(&h).ok().flatten().map(str::as_bytes),
                "{values:?}"
            );
        }
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
