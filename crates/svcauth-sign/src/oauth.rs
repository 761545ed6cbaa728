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
use svcauth_jwks::SigningKey;
use url::Url;
use zeroize::Zeroizing;

use crate::error::{ConfigError, SignError};
use crate::self_signed::{compact_jws, random_id};
use crate::token::{BoxFuture, OnBehalfOf, Token, TokenRequest, TokenSource};

const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Attempts for a transient failure (5xx, 429, transport), backing off.
const ATTEMPTS: u32 = 3;
const BACKOFF: Duration = Duration::from_millis(200);
/// The largest answer read from a token or introspection endpoint: 64 KiB.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How the client proves who it is to the token endpoint.
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientAuth {
    /// A short-lived JWT signed with the client's private key (RFC 7523).
    PrivateKeyJwt(Arc<SigningKey>),
    /// HTTP Basic with a shared secret (held in memory only, zeroed on drop).
    ClientSecretBasic(Arc<Zeroizing<String>>),
}

impl ClientAuth {
    /// `private_key_jwt` with `key`.
    pub fn private_key_jwt(key: SigningKey) -> Self {
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

/// A client of one token endpoint, shared by [`ClientCredentials`] and
/// [`TokenExchange`].
#[derive(Clone)]
pub struct StsClient {
    endpoint: Url,
    introspection: Option<Url>,
    client_id: String,
    auth: ClientAuth,
    audience_parameter: AudienceParameter,
    scope: Option<String>,
    http: reqwest::Client,
    clock: SharedClock,
}

/// The STS client's HTTP client: 10 s, no redirects (a token request must
/// not be replayed to another URL), no proxy but the configured one.
fn sts_http_client(proxy: Option<reqwest::Proxy>) -> Result<reqwest::Client, ConfigError> {
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
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
            introspection: None,
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

    /// Which form parameter names the audience (default `resource`).
    #[must_use]
    pub fn audience_parameter(mut self, parameter: AudienceParameter) -> Self {
        self.audience_parameter = parameter;
        self
    }

    /// The authorization server's introspection endpoint (RFC 7662), for
    /// [`introspect`](StsClient::introspect): https, or http to loopback.
    pub fn introspection_endpoint(mut self, url: &str) -> Result<Self, ConfigError> {
        self.introspection = Some(checked_url(url)?);
        Ok(self)
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

    fn audience_form(&self, audience: &str) -> (&'static str, String) {
        let name = match self.audience_parameter {
            AudienceParameter::Resource => "resource",
            AudienceParameter::Audience => "audience",
        };
        (name, audience.to_owned())
    }

    /// POSTs a token request, retrying transient failures with backoff.
    async fn request(&self, mut form: Vec<(&'static str, String)>) -> Result<Token, SignError> {
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.clone()));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.request_once(&form).await {
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    let delay = BACKOFF * 2u32.pow(attempt - 1);
                    tracing::warn!(error = %e, attempt, "token endpoint failed; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                result => return result,
            }
        }
    }

    async fn request_once(&self, form: &[(&'static str, String)]) -> Result<Token, SignError> {
        let (status, _, bytes) = self
            .post_form(&self.endpoint, form, "application/json")
            .await?;
        if status != 200 {
            return Err(oauth_error(status, &bytes));
        }
        self.parse(&bytes)
    }

    /// POSTs `form` to `url` (an endpoint of the same authorization server)
    /// with the client authenticated, and returns the status, the
    /// `Content-Type` and the body (at most [`MAX_RESPONSE_BYTES`]).
    async fn post_form(
        &self,
        url: &Url,
        form: &[(&'static str, String)],
        accept: &'static str,
    ) -> Result<(u16, String, bytes::Bytes), SignError> {
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
                form.push(("client_assertion", compact_jws(key, &assertion)?));
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
            .send()
            .await
            .map_err(|e| SignError::Transport(e.to_string()))?;
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
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SignError::Transport(e.to_string()))?;
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(SignError::TokenResponse("response too large".into()));
        }
        Ok((status, content_type, bytes))
    }

    /// Asks the authorization server's introspection endpoint (RFC 7662)
    /// about `token`, authenticated as this client. With `jwt_response`, the
    /// answer is asked for as a signed JWT (RFC 9701,
    /// `application/token-introspection+jwt`); the caller must verify it.
    ///
    /// Transient failures (transport, 5xx, 429) are retried with backoff,
    /// like token requests.
    ///
    /// Fails with [`SignError::Unsupported`] unless
    /// [`introspection_endpoint`](StsClient::introspection_endpoint) was set.
    pub async fn introspect(
        &self,
        token: &str,
        jwt_response: bool,
    ) -> Result<IntrospectionResponse, SignError> {
        let Some(url) = &self.introspection else {
            return Err(SignError::Unsupported(
                "introspection (no endpoint configured)",
            ));
        };
        let form = vec![
            ("token", token.to_owned()),
            ("token_type_hint", "access_token".to_owned()),
        ];
        let accept = if jwt_response {
            "application/token-introspection+jwt"
        } else {
            "application/json"
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.post_form(url, &form, accept).await {
                Ok((200, content_type, body)) => {
                    if content_type.starts_with("application/token-introspection+jwt") {
                        String::from_utf8(body.to_vec())
                            .map(|jwt| IntrospectionResponse::Jwt(jwt.trim().to_owned()))
                            .map_err(|_| SignError::TokenResponse("not UTF-8".into()))
                    } else {
                        serde_json::from_slice(&body)
                            .map(IntrospectionResponse::Json)
                            .map_err(|e| {
                                SignError::TokenResponse(format!(
                                    "not an introspection response: {e}"
                                ))
                            })
                    }
                }
                Ok((status, _, body)) => Err(oauth_error(status, &body)),
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    let delay = BACKOFF * 2u32.pow(attempt - 1);
                    tracing::warn!(error = %e, attempt, "introspection failed; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                result => return result,
            }
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<Token, SignError> {
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            #[serde(default)]
            token_type: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let response: TokenResponse = serde_json::from_slice(bytes)
            .map_err(|e| SignError::TokenResponse(format!("not a token response: {e}")))?;
        if let Some(kind) = &response.token_type
            && !kind.eq_ignore_ascii_case("bearer")
            && kind != "N_A"
        {
            return Err(SignError::TokenResponse(format!(
                "token_type {kind:?} is not Bearer"
            )));
        }
        let now = self.clock.now_secs();
        // Without expires_in, the JWT's own exp (read, not trusted: only to
        // know when to ask again), else a conservative minute.
        let expires_at = match response.expires_in {
            Some(secs) => now + secs,
            None => jwt_exp(&response.access_token).unwrap_or(now + 60),
        };
        Token::new(&response.access_token, now, expires_at)
    }
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

/// What an introspection endpoint answered (RFC 7662 / RFC 9701).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum IntrospectionResponse {
    /// A plain JSON answer (RFC 7662 §2.2): `{"active": ..., ...}`.
    Json(serde_json::Map<String, serde_json::Value>),
    /// A signed JWT answer (RFC 9701) whose `token_introspection` claim holds
    /// the JSON answer. Not yet verified.
    Jwt(String),
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

/// Tokens from the client credentials grant, one per audience.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    sts: StsClient,
}

impl ClientCredentials {
    /// Asks `sts` for tokens as the client itself.
    pub fn new(sts: StsClient) -> Self {
        ClientCredentials { sts }
    }
}

impl TokenSource for ClientCredentials {
    fn token<'a>(&'a self, request: TokenRequest<'a>) -> BoxFuture<'a, Result<Token, SignError>> {
        Box::pin(async move {
            if request.binding.is_some() {
                return Err(SignError::Unsupported(
                    "request binding (an STS token cannot be bound)",
                ));
            }
            if request.on_behalf_of.is_some() {
                return Err(SignError::Unsupported("delegation (use TokenExchange)"));
            }
            let form = vec![
                ("grant_type", GRANT_CLIENT_CREDENTIALS.to_owned()),
                self.sts.audience_form(request.audience),
            ];
            let token = self.sts.request(form).await?;
            tracing::debug!(
                aud = request.audience,
                "token obtained by client credentials"
            );
            Ok(token)
        })
    }
}

/// Tokens from RFC 8693 token exchange: the user's inbound token
/// ([`OnBehalfOf::SubjectToken`]) for a token addressed to the next audience.
#[derive(Debug, Clone)]
pub struct TokenExchange {
    sts: StsClient,
    subject_token_type: String,
}

impl TokenExchange {
    /// Exchanges subject tokens (access tokens) at `sts`.
    pub fn new(sts: StsClient) -> Self {
        TokenExchange {
            sts,
            subject_token_type: TOKEN_TYPE_ACCESS.to_owned(),
        }
    }

    /// The `subject_token_type` URN (default the access-token type).
    #[must_use]
    pub fn subject_token_type(mut self, urn: &str) -> Self {
        self.subject_token_type = urn.to_owned();
        self
    }
}

impl TokenSource for TokenExchange {
    fn token<'a>(&'a self, request: TokenRequest<'a>) -> BoxFuture<'a, Result<Token, SignError>> {
        Box::pin(async move {
            let Some(OnBehalfOf::SubjectToken(subject)) = request.on_behalf_of else {
                return Err(SignError::Unsupported(
                    "a call without a subject token (token exchange needs one)",
                ));
            };
            if request.binding.is_some() {
                return Err(SignError::Unsupported(
                    "request binding (an STS token cannot be bound)",
                ));
            }
            let form = vec![
                ("grant_type", GRANT_TOKEN_EXCHANGE.to_owned()),
                ("subject_token", subject.clone()),
                ("subject_token_type", self.subject_token_type.clone()),
                ("requested_token_type", TOKEN_TYPE_ACCESS.to_owned()),
                self.sts.audience_form(request.audience),
            ];
            let token = self.sts.request(form).await?;
            tracing::debug!(aud = request.audience, "token obtained by token exchange");
            Ok(token)
        })
    }
}
