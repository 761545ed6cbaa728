//! gateway: a phantom-token API edge in front of service-b.
//!
//! Clients send the opaque access token their authorization server gave
//! them. The gateway exchanges it once (RFC 8693 token exchange, the gateway
//! authenticated as a client with `private_key_jwt` or
//! `client_secret_basic`) for a JWT addressed to the internal audience,
//! caches the swap, and forwards the request upstream with that JWT. Identity
//! headers a client could forge are stripped; a JWT presented here is refused.
//!
//! ```text
//! gateway --listen 127.0.0.1:8080 --upstream http://127.0.0.1:8082 \
//!         --token-endpoint https://as.example/token --client-id gateway \
//!         --client-key gateway.pem --audience https://b.internal
//!
//! curl -s -H "authorization: Bearer $OPAQUE_TOKEN" http://127.0.0.1:8080/whoami
//! curl -s http://127.0.0.1:8080/healthz
//! ```
//!
//! With `--introspection-endpoint`, the gateway validates tokens by RFC 7662
//! introspection instead (validation only: nothing is forwarded) and answers
//! `GET /whoami` itself with what introspection said; `--issuer` makes it
//! ask for RFC 9701 signed answers and check them with that issuer's keys.
//!
//! Routes: `GET /healthz` (no token; the gateway's counters), everything else
//! through the phantom-token layer to `--upstream`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use clap::Parser;
use http::{HeaderName, StatusCode};
use serde_json::json;
use svcauth_gateway::{Gateway, Introspected, PhantomTokenLayer};
use svcauth_jwks::{KeySource, SigningKey};
use svcauth_sign::{BaseUrl, ClientAuth, StsClient};

#[path = "../../common/mod.rs"]
mod common;
mod txn;
use common::Metrics;

/// Largest request or response body forwarded: 10 MiB.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The routes, for `--help`.
const ROUTES: &str = "\
Routes:
  GET  /healthz   the gateway's counters (no token needed)
  *    /*         with token exchange: the opaque token is swapped for a JWT
                  and the request forwarded to --upstream + its path
  GET  /whoami    with --introspection-endpoint: what introspection said
  GET  /txn-token-service/jwks.json   with --txn-token-service: the keys that
                  verify the Txn-Tokens forwarded in the Txn-Token header
  POST /txn-token-service/token       with --txn-token-service: Txn-Token
                  Requests (RFC 8693) from --txn-requester workloads

Example:
  gateway --upstream http://127.0.0.1:8082 --token-endpoint https://as.example/token \\
          --client-id gateway --client-key gateway.pem --audience https://b.internal
  curl -s -H \"authorization: Bearer $OPAQUE_TOKEN\" http://127.0.0.1:8080/whoami
";

/// Command-line flags (each also read from a `GATEWAY_*` environment variable).
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about, after_help = ROUTES)]
#[command(group(clap::ArgGroup::new("client_auth").required(true).args(["client_key", "client_secret_file"])))]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve `GET /metrics` (Prometheus text format) on this address only,
    /// instead of on --listen.
    #[arg(long, env = "GATEWAY_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    tls: common::TlsArgs,
    /// The private key (PEM) of --client-cert, for mTLS to the authorization server and the upstream (--client-key is the private_key_jwt key).
    #[arg(
        long = "client-cert-key",
        env = "GATEWAY_CLIENT_CERT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    client_cert_key: Option<std::path::PathBuf>,
    /// Base URL requests are forwarded to (https, or http to loopback);
    /// required with token exchange, unused with introspection. A request
    /// for `/p?q` goes to this URL's origin, at its path followed by `/p?q`;
    /// paths that could leave it (`//h`, `/http://h`, `\`, `%2e%2e`,
    /// `%2f`) are refused with 400.
    #[arg(long, env = "GATEWAY_UPSTREAM", value_name = "URL")]
    upstream: Option<String>,
    /// The authorization server's token endpoint.
    #[arg(long, env = "GATEWAY_TOKEN_ENDPOINT", value_name = "URL")]
    token_endpoint: String,
    /// The gateway's client id at the authorization server.
    #[arg(long, env = "GATEWAY_CLIENT_ID", value_name = "ID")]
    client_id: String,
    /// The gateway's private key (PKCS#8 PEM), for private_key_jwt (preferred).
    #[arg(long, env = "GATEWAY_CLIENT_KEY", value_name = "PEM_FILE")]
    client_key: Option<String>,
    /// A file holding the client secret, for client_secret_basic.
    #[arg(long, env = "GATEWAY_CLIENT_SECRET_FILE", value_name = "FILE")]
    client_secret_file: Option<String>,
    /// The internal audience the exchanged JWTs are for.
    #[arg(long, env = "GATEWAY_AUDIENCE", value_name = "AUD")]
    audience: String,
    /// Validate by RFC 7662 introspection at this endpoint instead of
    /// exchanging (validation only: nothing is forwarded).
    #[arg(long, env = "GATEWAY_INTROSPECTION_ENDPOINT", value_name = "URL")]
    introspection_endpoint: Option<String>,
    /// With introspection: ask for RFC 9701 signed answers and verify them
    /// with this issuer's keys (OpenID discovery).
    #[arg(long, env = "GATEWAY_ISSUER", value_name = "URL")]
    issuer: Option<String>,
    /// Longest reuse of a swap, in seconds: also how long a token revoked at
    /// the authorization server still works here.
    #[arg(long, env = "GATEWAY_MAX_TTL_SECS", default_value_t = 300)]
    max_ttl_secs: u64,
    /// How long an inactive token is remembered, in seconds.
    #[arg(long, env = "GATEWAY_NEGATIVE_TTL_SECS", default_value_t = 30)]
    negative_ttl_secs: u64,
    /// Questions to the authorization server allowed per second.
    #[arg(long, env = "GATEWAY_MISS_RATE", default_value_t = 50)]
    miss_rate: u32,
    /// Questions allowed at once above that rate.
    #[arg(long, env = "GATEWAY_MISS_BURST", default_value_t = 100)]
    miss_burst: u32,
    /// Questions to the authorization server allowed per second to one
    /// client (by address); a client over its budget gets 429.
    #[arg(long, env = "GATEWAY_CLIENT_MISS_RATE", default_value_t = 5)]
    client_miss_rate: u32,
    /// Questions allowed at once to one client above that rate.
    #[arg(long, env = "GATEWAY_CLIENT_MISS_BURST", default_value_t = 20)]
    client_miss_burst: u32,
    /// Behind a trusted reverse proxy only: take the client's address from
    /// the last entry of this header (for example `x-forwarded-for`) rather
    /// than from the connection.
    #[arg(long, env = "GATEWAY_CLIENT_IP_HEADER", value_name = "HEADER")]
    client_ip_header: Option<String>,
    /// Also strip this request header before forwarding (repeatable; `_`
    /// matches `-`, a trailing `*` matches any rest). Common identity headers
    /// are always stripped.
    #[arg(
        long = "strip-header",
        env = "GATEWAY_STRIP_HEADER",
        value_delimiter = ',',
        value_name = "HEADER"
    )]
    strip_header: Vec<String>,
    /// With introspection: accept only tokens whose answer names this
    /// audience in `aud` (tokens for other APIs are refused).
    #[arg(long, env = "GATEWAY_INTROSPECTION_AUDIENCE", value_name = "AUD")]
    introspection_audience: Option<String>,
    /// Largest response forwarded from upstream, in bytes; a larger one is
    /// cut off (502 when its length is announced).
    #[arg(long, env = "GATEWAY_MAX_RESPONSE_BYTES", default_value_t = 10 * 1024 * 1024)]
    max_response_bytes: u64,
    /// Let JWTs presented at the edge through to upstream's verifying layer
    /// (default: refuse them with 401).
    #[arg(long, env = "GATEWAY_PASS_THROUGH_JWTS")]
    pass_through_jwts: bool,
    /// DANGER: forward over plain http to a host that is not loopback, where
    /// anyone on the path can read the exchanged JWTs.
    #[arg(long, env = "GATEWAY_DANGER_ALLOW_INSECURE_HTTP")]
    danger_allow_insecure_http: bool,
    #[command(flatten)]
    txn: txn::TxnArgs,
}

#[derive(Clone)]
struct AppState {
    gateway: Gateway,
    upstream: Option<BaseUrl>,
    http: reqwest::Client,
    introspection: bool,
    max_response_bytes: u64,
    client_ip_header: Option<HeaderName>,
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

async fn run(args: Args) -> Result<(), String> {
    // First: handles registered before the recorder are no-ops.
    let metrics = Metrics::install()?;
    let upstream = match (&args.upstream, &args.introspection_endpoint) {
        (Some(upstream), _) => Some(checked_upstream(upstream, args.danger_allow_insecure_http)?),
        (None, Some(_)) => None,
        (None, None) => {
            return Err(
                "--upstream is required with token exchange (the base URL requests are forwarded to)"
                    .into(),
            );
        }
    };
    let auth = match (&args.client_key, &args.client_secret_file) {
        (Some(pem), _) => ClientAuth::private_key_jwt(
            SigningKey::from_pem_file(pem, None).map_err(|e| format!("--client-key {pem}: {e}"))?,
        ),
        (None, Some(file)) => {
            let secret = std::fs::read_to_string(file)
                .map_err(|e| format!("--client-secret-file {file}: {e}"))?;
            ClientAuth::client_secret_basic(secret.trim_end_matches(['\r', '\n']))
        }
        (None, None) => unreachable!("clap requires one of them"),
    };
    let mut sts = StsClient::new(&args.token_endpoint, &args.client_id, auth)
        .map_err(|e| format!("--token-endpoint: {e}"))?;
    let custom_tls = args.tls.customises_outbound();
    let cert_key = args.client_cert_key.as_deref();
    if custom_tls {
        let client = args
            .tls
            .outbound_client(StsClient::http_client_builder(), cert_key)?;
        sts = sts.http_client(client.build().map_err(|e| e.to_string())?);
    }
    let builder = match &args.introspection_endpoint {
        Some(endpoint) => {
            let mut builder = Gateway::introspection(sts, endpoint);
            if let Some(audience) = &args.introspection_audience {
                builder = builder.introspection_audience(audience);
            }
            if let Some(issuer) = &args.issuer {
                let mut keys =
                    KeySource::discover(issuer).map_err(|e| format!("--issuer {issuer}: {e}"))?;
                if let Some(client) = args.tls.keys_client(cert_key)? {
                    keys = keys.http_client(client);
                }
                let keys = keys
                    .build()
                    .map_err(|e| format!("--issuer {issuer}: {e}"))?;
                builder = builder.jwt_introspection_responses(issuer, keys);
            }
            builder
        }
        None => Gateway::token_exchange(sts, &args.audience),
    };
    let mut builder = builder
        .max_ttl(Duration::from_secs(args.max_ttl_secs))
        .negative_ttl(Duration::from_secs(args.negative_ttl_secs))
        .miss_rate_limit(args.miss_rate, args.miss_burst)
        .client_miss_rate_limit(args.client_miss_rate, args.client_miss_burst);
    if let Some(header) = &args.client_ip_header {
        builder = builder.client_address_header(header);
    }
    for header in &args.strip_header {
        builder = builder.strip_header(header);
    }
    if args.pass_through_jwts {
        builder = builder.pass_through_jwts();
    }
    let scheme = if args.tls.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let tts = args.txn.service(
        &format!("{scheme}://{}", args.listen),
        args.tls.keys_client(cert_key)?,
    )?;
    if let Some(tts) = &tts {
        builder = builder.txn_token_service(tts.clone());
    }
    let gateway = builder.build().map_err(|e| e.to_string())?;
    // No redirects (the client sees them), no proxy from the environment
    // (it would see every exchanged JWT).
    let upstream_client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30));
    let http = args
        .tls
        .outbound_client(upstream_client, cert_key)?
        .build()
        .map_err(|e| e.to_string())?;
    let client_ip_header = args
        .client_ip_header
        .as_deref()
        .map(|h| HeaderName::try_from(h).map_err(|_| format!("--client-ip-header {h:?}")))
        .transpose()?;
    let state = AppState {
        gateway: gateway.clone(),
        upstream,
        http,
        introspection: args.introspection_endpoint.is_some(),
        max_response_bytes: args.max_response_bytes,
        client_ip_header,
    };
    let guarded = if state.introspection {
        Router::new().route("/whoami", get(introspected))
    } else {
        Router::new().fallback(forward)
    };
    let mut app = guarded
        .layer(PhantomTokenLayer::new(gateway))
        .route("/healthz", get(healthz))
        .with_state(state);
    if let Some(tts) = tts {
        let jwks = tts.clone();
        app = app
            .route(
                txn::JWKS_PATH,
                get(move || async move {
                    (
                        [(http::header::CONTENT_TYPE, "application/jwk-set+json")],
                        jwks.jwks(),
                    )
                }),
            )
            .merge(tts.router(txn::TOKEN_PATH));
    }
    // No body limit here: bodies stream to the upstream, which limits them.
    let app = common::http_layers(app, None);
    let app = metrics.attach(app, args.metrics_listen).await?;
    common::serve(args.listen, app, args.tls.server_config()?, || {
        tracing::info!(listen = %args.listen, upstream = ?args.upstream, audience = %args.audience, "gateway ready");
    })
    .await
}

/// The upstream base: https, or http to loopback unless dangerously allowed.
fn checked_upstream(upstream: &str, allow_insecure_http: bool) -> Result<BaseUrl, String> {
    let base = BaseUrl::parse(upstream).map_err(|e| format!("--upstream: {e}"))?;
    let url = base.as_url();
    let secure = url.scheme() == "https" || is_loopback(url) || allow_insecure_http;
    if !secure {
        return Err(format!(
            "--upstream {upstream}: https, or http to loopback (or --danger-allow-insecure-http)"
        ));
    }
    Ok(base)
}

/// Headers that belong to one connection, not to the request (RFC 9110
/// §7.6.1), and those the gateway sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Headers about the client that a client could forge: the gateway sets
/// `x-forwarded-for` itself, from what it saw.
const CLIENT_CLAIMS: &[&str] = &["forwarded", "x-forwarded-for", "x-real-ip", "x-client-ip"];

/// The header names to drop when forwarding `headers`: hop-by-hop ones, and
/// those the `Connection` header names (RFC 9110 §7.6.1).
fn connection_scoped(headers: &http::HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = HOP_BY_HOP
        .iter()
        .map(|h| HeaderName::from_static(h))
        .collect();
    for value in headers.get_all(http::header::CONNECTION) {
        for name in value.to_str().unwrap_or("").split(',') {
            if let Ok(name) = HeaderName::try_from(name.trim()) {
                names.push(name);
            }
        }
    }
    names
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Forwards the request (its token already swapped) to the upstream: the
/// configured origin and base path, plus the request's checked path.
async fn forward(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let Some(upstream) = &state.upstream else {
        return error(StatusCode::NOT_FOUND, "nothing is forwarded in this mode");
    };
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = match upstream.join(path) {
        Ok(url) => url,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("path refused: {e}")),
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    };
    let client = client_address(&state, &parts.headers, peer);
    let mut outbound = state.http.request(parts.method, url).body(body);
    let dropped = connection_scoped(&parts.headers);
    for (name, value) in &parts.headers {
        if !dropped.contains(name) && !CLIENT_CLAIMS.contains(&name.as_str()) {
            outbound = outbound.header(name, value);
        }
    }
    outbound = outbound.header("x-forwarded-for", client);
    let response = match outbound.send().await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(error = %e, "upstream unreachable");
            return error(StatusCode::BAD_GATEWAY, "upstream unreachable");
        }
    };
    let cap = state.max_response_bytes;
    if response.content_length().is_some_and(|len| len > cap) {
        tracing::warn!(cap, "upstream response larger than the cap");
        return error(StatusCode::BAD_GATEWAY, "upstream response too large");
    }
    let status = response.status();
    let dropped = connection_scoped(response.headers());
    let mut reply = Response::new(Body::empty());
    *reply.status_mut() = status;
    for (name, value) in response.headers() {
        if !dropped.contains(name) {
            reply.headers_mut().append(name.clone(), value.clone());
        }
    }
    if let Some(len) = response.content_length() {
        reply
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, len.into());
    }
    // Streamed through with a running count: memory stays at a chunk, and
    // a body past the cap ends the response with an error (the client sees
    // a cut-off transfer, never more than the cap).
    let chunks = futures_util::stream::unfold(Some((response, 0u64)), move |state| async move {
        let (mut response, sent) = state?;
        match response.chunk().await {
            Ok(Some(chunk)) if sent.saturating_add(chunk.len() as u64) <= cap => {
                let sent = sent + chunk.len() as u64;
                Some((Ok(chunk), Some((response, sent))))
            }
            Ok(Some(_)) => {
                tracing::warn!(cap, "upstream response cut off at the cap");
                Some((
                    Err(std::io::Error::other("upstream response too large")),
                    None,
                ))
            }
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    *reply.body_mut() = Body::from_stream(chunks);
    reply
}

/// The client's address as forwarded upstream: the trusted header's last
/// entry when configured, else the connection's peer.
fn client_address(state: &AppState, headers: &http::HeaderMap, peer: SocketAddr) -> String {
    state
        .client_ip_header
        .as_ref()
        .and_then(|name| headers.get_all(name).iter().next_back())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok())
        .map_or_else(|| peer.ip().to_string(), str::to_owned)
}

/// Validation-only mode: what introspection said of the caller's token.
async fn introspected(Extension(claims): Extension<Introspected>) -> Json<serde_json::Value> {
    Json(json!({
        "subject": claims.subject(),
        "sub": claims.sub(),
        "client_id": claims.client_id(),
        "claims": claims.claims(),
    }))
}

/// The gateway's counters.
async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    let m = state.gateway.metrics();
    Json(json!({
        "ready": true,
        "mode": if state.introspection { "introspection" } else { "token_exchange" },
        "cache": {
            "hits": m.hits,
            "negative_hits": m.negative_hits,
            "misses": m.misses,
            "rate_limited": m.rate_limited,
            "entries": m.entries,
        },
        "authorization_server": {
            "errors": m.server_errors,
            "latency_mean_ms": m.exchange_latency_mean().map(|d| d.as_secs_f64() * 1000.0),
            "latency_max_ms": m.exchange_latency_max.as_secs_f64() * 1000.0,
        },
        "jwts_at_edge": { "refused": m.jwts_refused, "passed": m.jwts_passed },
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::init_tracing();
    common::exit("gateway", run(Args::parse()).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_from_the_environment_too() {
        common::assert_every_flag_has_an_env_var(<Args as clap::CommandFactory>::command());
    }

    #[test]
    fn one_client_credential_is_required() {
        let base = [
            "gateway",
            "--upstream",
            "http://127.0.0.1:1",
            "--token-endpoint",
            "http://127.0.0.1:2/token",
            "--client-id",
            "gw",
            "--audience",
            "https://b.internal",
        ];
        assert!(Args::try_parse_from(base).is_err());
        let mut with_both = base.to_vec();
        with_both.extend(["--client-key", "k.pem", "--client-secret-file", "s"]);
        assert!(Args::try_parse_from(with_both).is_err());
        let mut with_key = base.to_vec();
        with_key.extend(["--client-key", "k.pem"]);
        assert!(Args::try_parse_from(with_key).is_ok());
    }
}
