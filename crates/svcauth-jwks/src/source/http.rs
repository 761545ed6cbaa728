//! The HTTP side of a remote key source: one bounded GET.

use std::time::Duration;

use http::header;
use reqwest::redirect;
use url::{Host, Url};

use crate::error::FetchError;

/// What a GET brought back.
pub(super) enum Fetched {
    /// `304 Not Modified`.
    NotModified { max_age: Option<Duration> },
    /// `200 OK` with its body.
    Body {
        body: Vec<u8>,
        max_age: Option<Duration>,
        etag: Option<String>,
    },
}

/// Whether `url` may be fetched: https, or http to a loopback host, or any
/// http when the danger option is set.
pub(super) fn url_allowed(url: &Url, allow_insecure_http: bool) -> bool {
    match url.scheme() {
        "https" => true,
        "http" if allow_insecure_http => true,
        "http" => match url.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

/// An HTTP client for key fetches: bounded time, redirects only within the
/// origin first asked (at most 3), no cookies, no proxy but the one
/// configured (never one from the environment).
pub(super) fn client(timeout: Duration, proxy: Option<&Url>) -> reqwest::Result<reqwest::Client> {
    let builder = client_builder().timeout(timeout).connect_timeout(timeout);
    match proxy {
        Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy.as_str())?).build(),
        None => builder.build(),
    }
}

/// A `reqwest::ClientBuilder` with the rules svcauth's own key-fetching
/// client has: redirects followed only within the origin first asked (at
/// most 3), no proxy from the environment (`HTTP_PROXY` and the like are
/// ignored), 5 s to connect, svcauth's user agent. Add your roots
/// (`add_root_certificate`), a client certificate (`identity`), a proxy or
/// default headers, build it, and give it to
/// [`RemoteBuilder::http_client`](crate::RemoteBuilder::http_client).
///
/// ```
/// let client = svcauth_jwks::http_client_builder().build().unwrap();
/// let source = svcauth_jwks::KeySource::remote("https://issuer.example/jwks.json")
///     .unwrap()
///     .http_client(client);
/// # let _ = source;
/// ```
pub fn client_builder() -> reqwest::ClientBuilder {
    let policy = redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if attempt.previous().len() > 3 {
            attempt.error("too many redirects")
        } else if same_origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(policy)
        .no_proxy()
        .user_agent(concat!("svcauth-jwks/", env!("CARGO_PKG_VERSION")))
}

/// `max-age` of a `Cache-Control` value; `no-cache`/`no-store` read as zero
/// (the caller clamps to its minimum).
pub(super) fn max_age(value: &str) -> Option<Duration> {
    let mut found = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            found = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

/// One GET of `url` within `timeout`, its body capped at `limit`, whatever
/// rules `client` was built with.
pub(super) async fn get(
    client: &reqwest::Client,
    url: &Url,
    etag: Option<&str>,
    limit: usize,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    let transport = |e: reqwest::Error| FetchError::Transport {
        url: url.to_string(),
        message: error_chain(&e),
    };
    let mut request = client
        .get(url.clone())
        .timeout(timeout)
        .header(header::ACCEPT, "application/jwk-set+json, application/json");
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let mut response = request.send().await.map_err(transport)?;
    // A caller's client may follow redirects anywhere: an answer from
    // another origin is not the issuer's.
    if response.url().origin() != url.origin() {
        return Err(FetchError::Transport {
            url: url.to_string(),
            message: format!(
                "redirected to another origin ({})",
                response.url().origin().ascii_serialization()
            ),
        });
    }
    let headers = response.headers();
    let max_age = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let new_etag = headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 256)
        .map(str::to_owned);
    match response.status().as_u16() {
        304 if etag.is_some() => return Ok(Fetched::NotModified { max_age }),
        200 => {}
        status => {
            return Err(FetchError::Status {
                url: url.to_string(),
                status,
            });
        }
    }
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit,
    };
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched::Body {
        body,
        max_age,
        etag: new_etag,
    })
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age_and_no_cache() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            max_age("Max-Age=5, must-revalidate"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }

    #[test]
    fn plain_http_only_for_loopback() {
        let ok = |u: &str, insecure| url_allowed(&Url::parse(u).unwrap(), insecure);
        assert!(ok("https://issuer.example/jwks", false));
        assert!(ok("http://127.0.0.1:8080/jwks", false));
        assert!(ok("http://127.5.0.1/jwks", false));
        assert!(ok("http://[::1]:80/jwks", false));
        assert!(ok("http://localhost/jwks", false));
        assert!(!ok("http://issuer.example/jwks", false));
        assert!(!ok("http://10.0.0.1/jwks", false));
        assert!(ok("http://issuer.example/jwks", true));
        assert!(!ok("ftp://issuer.example/jwks", true));
    }
}
