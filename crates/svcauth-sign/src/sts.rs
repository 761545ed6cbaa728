//! Tokens from an STS: OAuth 2.0 client credentials (RFC 6749 §4.4) and
//! token exchange (RFC 8693), with the client authenticated by
//! `private_key_jwt` (RFC 7523, preferred: no long-lived secret crosses the
//! wire) or `client_secret_basic` (RFC 6749 §2.3.1).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use svcauth_core::{SharedClock, system_clock};
use svcauth_jwks::JwsSigner;
use url::Url;
use zeroize::Zeroizing;

use crate::error::{ConfigError, SignError};
use crate::source::Token;
use crate::source::self_signed::{compact_jws, random_id};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Attempts for a transient failure (5xx, 429, transport), backing off.
const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(200);
/// The largest answer read from an endpoint of the authorization server: 64 KiB.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How the client proves who it is to the token endpoint.
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientAuth {
    /// A short-lived JWT signed with the client's private key (RFC 7523),
    /// wherever that key is kept (in memory, an HSM, a KMS).
    PrivateKeyJwt(Arc<dyn JwsSigner>),
    /// HTTP Basic with a shared secret (held in memory only, zeroed on drop).
    ClientSecretBasic(Arc<Zeroizing<String>>),
}

impl ClientAuth {
    /// `private_key_jwt` with `key`, of any backend.
    pub fn private_key_jwt(key: impl JwsSigner) -> Self {
        ClientAuth::PrivateKeyJwt(Arc::new(key))
    }

    /// `client_secret_basic` with `secret`.
    pub fn client_secret_basic(secret: impl Into<String>) -> Self {
        ClientAuth::ClientSecretBasic(Arc::new(Zeroizing::new(secret.into())))
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuth::PrivateKeyJwt(key) => {
                f.debug_tuple("PrivateKeyJwt").field(&key.kid()).finish()
            }
            ClientAuth::ClientSecretBasic(_) => f.write_str("ClientSecretBasic(<redacted>)"),
        }
    }
}

/// The form parameter that names the audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AudienceParameter {
    /// `resource` (RFC 8707), the default.
    #[default]
    Resource,
    /// `audience` (RFC 8693 §2.1, and some providers' client credentials).
    Audience,
}

/// A client of one token endpoint, shared by [`ClientCredentials`](crate::ClientCredentials) and
/// [`TokenExchange`](crate::TokenExchange).
#[derive(Clone)]
pub struct StsClient {
    endpoint: Url,
    client_id: String,
    auth: ClientAuth,
    audience_parameter: AudienceParameter,
    scope: Option<String>,
    http: reqwest::Client,
    clock: SharedClock,
}

/// How long one request to the authorization server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The STS client's HTTP client: 10 s, no redirects (a token request must
/// not be replayed to another URL), no proxy but the configured one.
fn sts_http_client(proxy: Option<reqwest::Proxy>) -> Result<reqwest::Client, ConfigError> {
    let builder = StsClient::http_client_builder().timeout(REQUEST_TIMEOUT);
    match proxy {
        Some(proxy) => builder.proxy(proxy),
        None => builder,
    }
    .build()
    .map_err(|_| ConfigError::Invalid("the HTTP client cannot be built"))
}

impl StsClient {
    /// A client of `token_endpoint` (https, or http to loopback) as `client_id`.
    pub fn new(
        token_endpoint: &str,
        client_id: &str,
        auth: ClientAuth,
    ) -> Result<Self, ConfigError> {
        let endpoint = checked_url(token_endpoint)?;
        if client_id.is_empty() {
            return Err(ConfigError::Empty("client_id"));
        }
        let http = sts_http_client(None)?;
        Ok(StsClient {
            endpoint,
            client_id: client_id.to_owned(),
            auth,
            audience_parameter: AudienceParameter::default(),
            scope: None,
            http,
            clock: system_clock(),
        })
    }

    /// Sends requests through this HTTP proxy. Without it no proxy is used:
    /// `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are ignored, because
    /// client secrets and subject tokens go to the STS.
    pub fn proxy(mut self, url: &str) -> Result<Self, ConfigError> {
        let proxy = reqwest::Proxy::all(url).map_err(|_| ConfigError::Url(url.to_owned()))?;
        self.http = sts_http_client(Some(proxy))?;
        Ok(self)
    }

    /// A `reqwest::ClientBuilder` with this client's rules: no redirect
    /// is followed (a token request, with the client's credentials, must not
    /// be replayed to another URL), no proxy from the environment, 10 s to
    /// connect. Add your roots, a client certificate for mTLS, a proxy or
    /// default headers, and give the result to
    /// [`http_client`](Self::http_client).
    pub fn http_client_builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .connect_timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("svcauth-sign/", env!("CARGO_PKG_VERSION")))
    }

    /// Sends requests with `client` (custom roots, mTLS, a proxy, headers).
    /// Every request keeps this client's 10 s limit and the response size
    /// cap, and an answer that comes from anywhere but the token endpoint
    /// (a redirect followed) is refused. Build the client from
    /// [`http_client_builder`](Self::http_client_builder): a client that
    /// follows redirects would carry the client's credentials to wherever
    /// the redirect points before svcauth sees the answer.
    #[must_use]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = client;
        self
    }

    /// Which form parameter names the audience (default `resource`).
    #[must_use]
    pub fn audience_parameter(mut self, parameter: AudienceParameter) -> Self {
        self.audience_parameter = parameter;
        self
    }

    /// The client's identifier at the authorization server.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// A `scope` to ask for with every token.
    #[must_use]
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_owned());
        self
    }

    /// The clock (for client assertions and expiry).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub(crate) fn audience_form(&self, audience: &str) -> (&'static str, String) {
        let name = match self.audience_parameter {
            AudienceParameter::Resource => "resource",
            AudienceParameter::Audience => "audience",
        };
        (name, audience.to_owned())
    }

    /// A token request at the token endpoint.
    pub(crate) async fn request(
        &self,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<Token, SignError> {
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.clone()));
        }
        let answer = self
            .send(&self.endpoint, &form, "application/json", "token request")
            .await?;
        self.parse(&answer.body)
    }

    /// POSTs `form` to `endpoint`, another endpoint of the same
    /// authorization server (https, or http to loopback), with the client
    /// authenticated as for token requests, and returns a `200` answer.
    /// Transient failures (transport, 5xx, 429) are retried with backoff;
    /// any other status is a [`SignError::TokenEndpoint`] with the OAuth
    /// `error` code. For grants and endpoints this crate does not model
    /// (introspection, say).
    pub async fn post(
        &self,
        endpoint: &str,
        form: &[(&'static str, String)],
        accept: &'static str,
    ) -> Result<StsAnswer, SignError> {
        let url = checked_url(endpoint).map_err(|e| SignError::Transport(e.to_string()))?;
        self.send(&url, form, accept, "request").await
    }

    /// The one retry loop: [`post_form`](Self::post_form) until a `200`, a
    /// lasting failure, or the last attempt.
    async fn send(
        &self,
        url: &Url,
        form: &[(&'static str, String)],
        accept: &'static str,
        what: &str,
    ) -> Result<StsAnswer, SignError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.post_form(url, form, accept).await {
                Ok(answer) if answer.status == 200 => Ok(answer),
                Ok(answer) => Err(oauth_error(answer.status, &answer.body)),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    let delay = BACKOFF * 2u32.pow(attempt - 1);
                    tracing::warn!(error = %e, attempt, "{what} failed; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                result => return result,
            }
        }
    }

    /// POSTs `form` to `url` (an endpoint of the same authorization server)
    /// with the client authenticated, and returns the status, the
    /// `Content-Type` and the body (at most [`MAX_RESPONSE_BYTES`]).
    async fn post_form(
        &self,
        url: &Url,
        form: &[(&'static str, String)],
        accept: &'static str,
    ) -> Result<StsAnswer, SignError> {
        let mut form = form.to_vec();
        let mut request = self.http.post(url.clone());
        // The credential is used here only, when a token must be fetched.
        match &self.auth {
            ClientAuth::PrivateKeyJwt(key) => {
                let now = self.clock.now_secs();
                let assertion = serde_json::json!({
                    "iss": self.client_id, "sub": self.client_id, "aud": self.endpoint.as_str(),
                    "jti": random_id(), "iat": now, "exp": now + 60,
                });
                form.push(("client_assertion_type", ASSERTION_TYPE.to_owned()));
                form.push(("client_assertion", compact_jws(&**key, &assertion).await?));
                form.push(("client_id", self.client_id.clone()));
            }
            ClientAuth::ClientSecretBasic(secret) => {
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair =
                    Zeroizing::new(format!("{}:{}", encode(&self.client_id), encode(secret)));
                let basic = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
                let mut value = http::HeaderValue::try_from(format!("Basic {basic}"))
                    .map_err(|_| SignError::Key("client secret cannot be sent".into()))?;
                value.set_sensitive(true);
                request = request.header(http::header::AUTHORIZATION, value);
            }
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let response = request
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, accept)
            .body(body)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| SignError::Transport(e.to_string()))?;
        if response.url() != url {
            return Err(SignError::Transport(format!(
                "the answer came from {} after a redirect, not from {url}",
                response.url().origin().ascii_serialization()
            )));
        }
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(SignError::TokenResponse("response too large".into()));
        }
        // Read chunk by chunk: an answer without Content-Length is capped
        // as it arrives, not after it is all in memory.
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| SignError::Transport(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(SignError::TokenResponse("response too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        let bytes = bytes::Bytes::from(body);
        Ok(StsAnswer {
            status,
            content_type,
            body: bytes,
        })
    }

    fn parse(&self, bytes: &[u8]) -> Result<Token, SignError> {
        token_response(bytes, self.clock.now_secs())
    }
}

/// A token endpoint's JSON answer (RFC 6749 §5.1) received at `now`: the
/// token, and when to ask again.
pub(crate) fn token_response(bytes: &[u8], now: u64) -> Result<Token, SignError> {
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
        #[serde(default)]
        token_type: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    // JSON is UTF-8 (RFC 8259 §8.1). serde_json skips the members it
    // ignores without checking them, so check the whole text first (found
    // by fuzzing: invalid bytes in an ignored member were accepted).
    let text =
        std::str::from_utf8(bytes).map_err(|_| SignError::TokenResponse("not UTF-8".into()))?;
    // One JSON object with no member named twice: serde reads an array as
    // the struct's fields in order, and keeps one of two `access_token`s
    // (both found by fuzzing).
    svcauth_core::jws::check_json_object(bytes)
        .map_err(|e| SignError::TokenResponse(format!("not a token response: {e}")))?;
    let response: TokenResponse = serde_json::from_str(text)
        .map_err(|e| SignError::TokenResponse(format!("not a token response: {e}")))?;
    if let Some(kind) = &response.token_type
        && !kind.eq_ignore_ascii_case("bearer")
        && kind != "N_A"
    {
        return Err(SignError::TokenResponse(format!(
            "token_type {kind:?} is not Bearer"
        )));
    }
    // Without expires_in, the JWT's own exp (read, not trusted: only to
    // know when to ask again), else a conservative minute.
    let expires_at = match response.expires_in {
        Some(secs) => now.saturating_add(secs),
        None => jwt_exp(&response.access_token).unwrap_or(now + 60),
    };
    // A token that is already expired would only be asked for again at
    // once, in a loop (found by fuzzing: a JWT whose own exp has passed).
    if expires_at <= now {
        return Err(SignError::TokenResponse(
            "the token has already expired".into(),
        ));
    }
    Token::new(&response.access_token, now, expires_at)
}

/// An endpoint URL: https, or http to loopback.
fn checked_url(text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|_| ConfigError::Url(text.to_owned()))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(ConfigError::Url(text.to_owned()));
    }
    Ok(url)
}

fn oauth_error(status: u16, body: &[u8]) -> SignError {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
    }
    let error = serde_json::from_slice::<OAuthError>(body)
        .ok()
        .map(|e| e.error.chars().take(64).collect());
    SignError::TokenEndpoint { status, error }
}

/// An answer of the authorization server to [`StsClient::post`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StsAnswer {
    /// The HTTP status (200 for what `post` returns).
    pub status: u16,
    /// The `Content-Type`, or empty.
    pub content_type: String,
    /// The body, at most [`MAX_RESPONSE_BYTES`].
    pub body: bytes::Bytes,
}

fn jwt_exp(token: &str) -> Option<u64> {
    let (_, payload) = svcauth_core::jws::peek(token)?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    claims.get("exp")?.as_u64()
}

impl fmt::Debug for StsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("audience_parameter", &self.audience_parameter)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_response_must_be_utf8_throughout() {
        let ok = br#"{"access_token":"a.b.c","token_type":"Bearer","expires_in":60,"x":"\u00e9"}"#;
        assert_eq!(token_response(ok, 100).unwrap().expires_at(), 160);
        let long = br#"{"access_token":"a","expires_in":18446744073709551615}"#;
        assert_eq!(token_response(long, 100).unwrap().expires_at(), u64::MAX);
        // Fuzzing found it: invalid UTF-8 inside a member we ignore was
        // accepted, because serde_json skips ignored members unchecked.
        let mut bad = br#"{"access_token":"a.b.c","issued_token_type":"urn"#.to_vec();
        bad.extend_from_slice(&[0x96, 0xff]);
        bad.extend_from_slice(br#"","token_type":"N_A"}"#);
        assert!(matches!(
            token_response(&bad, 100),
            Err(SignError::TokenResponse(_))
        ));
        // And a token a Bearer header cannot carry as it is (RFC 6750
        // b64token): non-ASCII, spaces, empty.
        for body in [
            &br#"["a.b.c"]"#[..],
            br#"{"access_token":"a","access_token":"b"}"#,
            br#"{"access_token":"a","expires_in":0}"#,
        ] {
            assert!(token_response(body, 100).is_err(), "{body:?}");
        }
        for token in ["a.bι.c", "a b", "", "==", "a\"b"] {
            let body = serde_json::json!({ "access_token": token }).to_string();
            assert!(token_response(body.as_bytes(), 100).is_err(), "{token:?}");
        }
    }
}
