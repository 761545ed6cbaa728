//! service-a: the caller of the svcauth example pair.
//!
//! It publishes its public keys, and calls the services named with `--call`
//! through the svcauth signer: each call carries a token minted for exactly
//! the audience called.
//!
//! ```text
//! service-a --listen 127.0.0.1:8081 --issuer https://a.internal \
//!           --call https://b.internal=http://127.0.0.1:8082
//!
//! curl -s http://127.0.0.1:8081/.well-known/jwks.json
//! curl -s -X POST 'http://127.0.0.1:8081/call?aud=https://b.internal&path=/whoami'
//! curl -s -X POST 'http://127.0.0.1:8081/call?aud=https://b.internal&path=/echo&bind=true' -d hello
//! curl -s -X POST http://127.0.0.1:8081/rotate
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use demo_grpc::demo_client::DemoClient;
use serde::Deserialize;
use serde_json::json;
use svcauth_jwks::{JwksService, JwsSigner, KeyRing};
use svcauth_sign::{BaseUrl, BindRequest, SelfSigned, Sign, Signer, TargetAudience};
use tonic::transport::Channel;

#[path = "../../common/mod.rs"]
mod common;
mod grpc;
mod keys;
mod rotate;
mod wimse;
use common::Metrics;

/// The routes, for `--help`.
const ROUTES: &str = "\
Routes:
  GET  /.well-known/jwks.json   the public keys (current, next and retiring)
  POST /call?aud=AUD&path=/P[&method=M][&bind=true]
                                call the service mapped to AUD (see --call) at
                                its URL + /P, with a token for exactly AUD; the
                                request body is sent on. method: GET when the
                                body is empty, else POST. bind=true: a token
                                bound to this one request. aud may be left out
                                when only one service is configured.
  POST /call-grpc?aud=AUD[&rpc=whoami|count&count=N]
                                call the Demo gRPC service mapped to AUD (see
                                --call-grpc) through a signing tonic channel;
                                answers the gRPC status and replies as JSON
  POST /rotate                  publish a new key now, sign with it after
                                --rotation-overlap-secs (loopback only)
  POST /rotate?now=true         rotate at once: verifiers may refuse the new
                                key until they refetch (their cooldown)
  GET  /healthz                 signing kid, published kids, signer counters,
                                the WIT held (with --wit or --wit-issuer)

With --wit FILE (+ --wit-key) or --wit-issuer URL, every /call also carries
Workload-Identity-Token and a Workload-Proof-Token made for that request.

Example:
  service-a --issuer https://a.internal --call https://b.internal=http://127.0.0.1:8082
  curl -s -X POST 'http://127.0.0.1:8081/call?aud=https://b.internal&path=/whoami'
";

/// The caller of the svcauth example pair.
#[derive(Parser, Debug)]
#[command(version, about, after_help = ROUTES)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SERVICE_A_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Serve `GET /metrics` (Prometheus text format) on this address only,
    /// instead of on --listen.
    #[arg(long, env = "SERVICE_A_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    tls: common::TlsArgs,
    /// The private key (PEM) of --client-cert, for mTLS to the services called.
    #[arg(
        long = "client-key",
        env = "SERVICE_A_CLIENT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    client_key: Option<std::path::PathBuf>,
    /// This service's identity: `iss` and `sub` of its tokens.
    #[arg(long, env = "SERVICE_A_ISSUER")]
    issuer: String,
    /// A service to call, as AUD=URL (repeatable).
    #[arg(
        long = "call",
        env = "SERVICE_A_CALL",
        value_delimiter = ',',
        value_name = "AUD=URL"
    )]
    call: Vec<String>,
    /// A gRPC service to call with `POST /call-grpc`, as AUD=URL (repeatable):
    /// the Demo service (examples/demo-grpc) at URL, through a tonic
    /// channel that signs every call for AUD.
    #[arg(
        long = "call-grpc",
        env = "SERVICE_A_CALL_GRPC",
        value_delimiter = ',',
        value_name = "AUD=URL"
    )]
    call_grpc: Vec<String>,
    #[command(flatten)]
    keys: keys::KeyArgs,
    /// Token lifetime in seconds (at most 3600).
    #[arg(long, env = "SERVICE_A_LIFETIME_SECS", default_value_t = 300)]
    lifetime_secs: u64,
    /// `max-age` of the published JWKS, in seconds.
    #[arg(long, env = "SERVICE_A_JWKS_MAX_AGE_SECS", default_value_t = 300)]
    jwks_max_age_secs: u64,
    /// How long `POST /rotate` publishes the next key before signing with
    /// it, in seconds; default: the JWKS max-age, so that every verifier's
    /// cached set holds the key before any token needs it.
    #[arg(long, env = "SERVICE_A_ROTATION_OVERLAP_SECS", value_name = "SECS")]
    rotation_overlap_secs: Option<u64>,
    /// Accept POST /rotate from any address, not only loopback.
    #[arg(long, env = "SERVICE_A_ALLOW_REMOTE_ROTATE")]
    allow_remote_rotate: bool,
    /// DANGER: answer /call with the Authorization header sent downstream
    /// (`x-svcauth-sent-authorization`), so a demo can replay it.
    #[arg(long, env = "SERVICE_A_DANGER_EXPOSE_TOKENS")]
    danger_expose_tokens: bool,
    /// DANGER: send tokens over plain http to non-loopback hosts.
    #[arg(long, env = "SERVICE_A_DANGER_ALLOW_INSECURE_HTTP")]
    danger_allow_insecure_http: bool,
    #[command(flatten)]
    wimse: wimse::WimseArgs,
}

#[derive(Clone)]
struct AppState {
    ring: KeyRing,
    signer: Signer,
    http: reqwest::Client,
    calls: Arc<HashMap<String, BaseUrl>>,
    grpc: Arc<HashMap<String, DemoClient<Sign<Channel>>>>,
    /// Where `POST /rotate` makes the next key.
    keys: Arc<keys::Keys>,
    lifetime: Duration,
    rotation_overlap: Duration,
    allow_remote_rotate: bool,
    expose_tokens: bool,
    /// With --wit or --wit-issuer: calls carry the WIT and a proof.
    wimse: bool,
    proofs: wimse::Proofs,
}

async fn run(args: Args) -> Result<(), String> {
    // First: handles registered before the recorder are no-ops.
    let metrics = Metrics::install()?;
    let (keys, key) = keys::Keys::first(&args.keys).await?;
    tracing::info!(kid = key.kid(), alg = %key.alg(), backend = key.backend(), "signing key loaded");
    let ring = KeyRing::new(key);
    let lifetime = Duration::from_secs(args.lifetime_secs);
    let source = SelfSigned::new(&args.issuer, ring.clone())
        .map_err(|e| e.to_string())?
        .lifetime(lifetime)
        .map_err(|e| format!("--lifetime-secs: {e}"))?;
    // Each audience may go to its configured origin only: /call names the
    // audience, and the signer refuses it anywhere else.
    let mut signer = Signer::builder(source);
    let mut calls = HashMap::new();
    for pair in &args.call {
        let (aud, url) = pair
            .split_once('=')
            .ok_or_else(|| format!("--call: expected AUD=URL, got {pair:?}"))?;
        let base = BaseUrl::parse(url).map_err(|e| format!("--call {aud}: {e}"))?;
        signer = signer.allow_audience_at(&base.origin().ascii_serialization(), aud);
        calls.insert(aud.to_owned(), base);
    }
    // A gRPC channel reaches one origin and names no audience per call:
    // the origin's default audience is the one named here.
    let mut grpc_endpoints = Vec::new();
    for pair in &args.call_grpc {
        let (aud, url) = pair
            .split_once('=')
            .ok_or_else(|| format!("--call-grpc: expected AUD=URL, got {pair:?}"))?;
        let endpoint = grpc::grpc_endpoint(url, &args.tls, args.client_key.as_deref())
            .map_err(|e| format!("--call-grpc {aud}: {e}"))?;
        let uri = endpoint.uri();
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str())
        );
        signer = signer.audience(&origin, aud);
        grpc_endpoints.push((aud.to_owned(), endpoint));
    }
    let origins: Vec<String> = calls
        .values()
        .map(|base: &BaseUrl| base.origin().ascii_serialization())
        .collect();
    let (wimse_plan, with_issuer) = args.wimse.plan(signer)?;
    signer = with_issuer;
    if args.danger_allow_insecure_http {
        signer = signer.danger_allow_insecure_http();
    }
    let signer = signer.build().map_err(|e| e.to_string())?;
    let mut grpc = HashMap::new();
    for (aud, endpoint) in grpc_endpoints {
        let channel = signer
            .tonic_channel(&endpoint)
            .map_err(|e| format!("--call-grpc {aud}: {e}"))?;
        grpc.insert(aud, DemoClient::new(channel));
    }

    let state = AppState {
        ring: ring.clone(),
        signer,
        // No proxy from the environment: a proxy would see every token.
        http: args
            .tls
            .outbound_client(
                reqwest::Client::builder()
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none()),
                args.client_key.as_deref(),
            )?
            .build()
            .map_err(|e| e.to_string())?,
        calls: Arc::new(calls),
        grpc: Arc::new(grpc),
        keys: Arc::new(keys),
        lifetime,
        rotation_overlap: Duration::from_secs(
            args.rotation_overlap_secs.unwrap_or(args.jwks_max_age_secs),
        ),
        allow_remote_rotate: args.allow_remote_rotate,
        expose_tokens: args.danger_expose_tokens,
        wimse: wimse_plan.is_some(),
        proofs: wimse::Proofs::default(),
    };
    if let Some(plan) = wimse_plan {
        plan.start(
            state.proofs.clone(),
            origins,
            state.signer.clone(),
            state.http.clone(),
        );
    }
    let jwks = JwksService::new(ring).max_age(Duration::from_secs(args.jwks_max_age_secs));
    let app = Router::new()
        .route_service("/.well-known/jwks.json", jwks)
        .route("/call", post(call))
        .route("/call-grpc", post(grpc::call_grpc))
        .route("/rotate", post(rotate::rotate))
        .route("/healthz", get(healthz))
        .with_state(state);
    // /call bodies are forwarded (and hashed when bound): 1 MiB is plenty.
    let app = common::http_layers(app, Some(1 << 20));
    let app = metrics.attach(app, args.metrics_listen).await?;
    common::serve(args.listen, app, args.tls.server_config()?, || {
        tracing::info!(listen = %args.listen, issuer = %args.issuer, "service-a ready");
    })
    .await
}

#[derive(Deserialize)]
struct CallQuery {
    #[serde(default)]
    aud: Option<String>,
    #[serde(default)]
    bind: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    method: Option<String>,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Calls the service mapped to `aud` with a token for exactly that audience
/// and answers with its status and body.
async fn call(
    State(state): State<AppState>,
    query: Result<Query<CallQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "unreadable query; expected /call?aud=AUD&path=/P[&method=M][&bind=true]".into(),
        );
    };
    let (aud, base) = match configured(&state.calls, q.aud.as_deref(), "--call") {
        Ok(found) => found,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let Some(path) = q.path.as_deref() else {
        return error(
            StatusCode::BAD_REQUEST,
            "path is required: the path to call at the audience's URL, for example path=/whoami"
                .into(),
        );
    };
    let bind = match q.bind.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bind must be true or false, not {other:?}"),
            );
        }
    };
    let default_method = if body.is_empty() { "GET" } else { "POST" };
    let method = match q
        .method
        .as_deref()
        .unwrap_or(default_method)
        .to_ascii_uppercase()
        .parse::<reqwest::Method>()
    {
        Ok(m) => m,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid method {:?}", q.method.unwrap_or_default()),
            );
        }
    };
    // The URL is the configured base plus a checked path: never a string
    // joined from request input.
    let url = match base.join(path) {
        Ok(url) => url,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("path {path:?} refused: {e}"),
            );
        }
    };
    let mut request = state.http.request(method, url).body(body);
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    let mut options = http::Extensions::new();
    options.insert(TargetAudience(aud.clone()));
    options.insert(BindRequest(bind));
    let request = match state.signer.sign_with(request, &options).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(aud = %aud, error = %e, "could not sign a call");
            return error(
                StatusCode::BAD_GATEWAY,
                format!("could not sign the call: {e}"),
            );
        }
    };
    let (client, request) = request.build_split();
    let mut request = match request {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if state.wimse {
        // After the bearer token is on: the proof binds it (ath).
        let Some(proofs) = state.proofs.layer() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no WIT yet: waiting for --wit or --wit-issuer".into(),
            );
        };
        if let Err(e) = proofs.prove_reqwest(&mut request) {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("could not prove the call: {e}"),
            );
        }
    }
    let sent = request.headers().get(header::AUTHORIZATION).cloned();
    let sent_wit = request.headers().get("workload-identity-token").cloned();
    let response = match client.execute(request).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(aud = %aud, error = %e, "call failed");
            return error(StatusCode::BAD_GATEWAY, format!("call failed: {e}"));
        }
    };
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HeaderMap::new();
    for name in [
        header::CONTENT_TYPE,
        header::WWW_AUTHENTICATE,
        header::RETRY_AFTER,
    ] {
        if let Some(v) = response.headers().get(&name) {
            out.insert(name, v.clone());
        }
    }
    if state.expose_tokens
        && let Some(mut sent) = sent
    {
        sent.set_sensitive(false);
        out.insert("x-svcauth-sent-authorization", sent);
        if let Some(mut wit) = sent_wit {
            wit.set_sensitive(false);
            out.insert("x-svcauth-sent-wit", wit);
        }
    }
    let body = response.bytes().await.unwrap_or_default();
    (status, out, body).into_response()
}

/// The service `aud` names among `configured` (set with `flag`), or the one
/// service when `aud` is left out and only one is configured.
fn configured<'a, T>(
    configured: &'a HashMap<String, T>,
    aud: Option<&str>,
    flag: &str,
) -> Result<(String, &'a T), String> {
    let known = || {
        let mut known: Vec<&str> = configured.keys().map(String::as_str).collect();
        known.sort_unstable();
        known.join(", ")
    };
    let aud = match (aud, configured.len()) {
        (Some(aud), _) => aud,
        (None, 1) => configured.keys().next().map_or("", String::as_str),
        (None, _) => return Err(format!("aud is required: one of {}", known())),
    };
    match configured.get(aud) {
        Some(found) => Ok((aud.to_owned(), found)),
        None => Err(format!(
            "unknown audience {aud:?}; configured with {flag}: {}",
            known()
        )),
    }
}

async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "kid": state.ring.signer().kid(),
        "published": state.ring.state().published_kids(),
        "signer": state.signer.metrics(),
        "wit": state.proofs.status(),
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::init_tracing();
    common::exit("service-a", run(Args::parse()).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotate::rotate_allowed;

    #[test]
    fn rotation_is_loopback_only_unless_allowed() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert!(rotate_allowed(local, false));
        assert!(!rotate_allowed(remote, false));
        assert!(rotate_allowed(remote, true));
        let args =
            Args::try_parse_from(["service-a", "--issuer", "i", "--allow-remote-rotate"]).unwrap();
        assert!(args.allow_remote_rotate);
    }

    #[test]
    fn flags_are_read_from_the_environment_too() {
        common::assert_every_flag_has_an_env_var(<Args as clap::CommandFactory>::command());
    }
}
