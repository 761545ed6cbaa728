//! wit-issuer: a WIMSE identity server for one trust domain.
//!
//! A workload proves who it is with the service token it already has (a
//! svcauth bearer token from an issuer trusted with `--trust`), sends its
//! *public* key, and gets a Workload Identity Token naming the workload
//! identifier mapped to that issuer with `--workload`. Verifiers trust the
//! WITs through this server's JWKS.
//!
//! ```text
//! wit-issuer --listen 127.0.0.1:8084 --trust-domain example.org \
//!     --audience http://127.0.0.1:8084 \
//!     --trust https://a.internal=http://127.0.0.1:8081/.well-known/jwks.json \
//!     --workload https://a.internal=spiffe://example.org/service-a
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use serde_json::{Value, json};
use svcauth_core::Algorithm;
use svcauth_core::wimse::WorkloadId;
use svcauth_jwks::{Jwk, JwksService, KeyRing, KeySource, SigningKey};
use svcauth_sign::wimse::WitIssuer;
use svcauth_verify::{Caller, Verifier, VerifyLayer};

#[path = "../../common/mod.rs"]
mod common;
use common::Metrics;

const ROUTES: &str = "\
Routes:
  GET  /.well-known/jwks.json   the trust domain's public keys: what verifiers
                                trust for WITs (service-b --wit-trust)
  POST /wit                     {\"jwk\": <the workload's public JWK with alg>}
                                with the workload's svcauth bearer token for
                                --audience; answers {\"wit\": ..., \"expires_at\": ...}
  GET  /healthz                 readiness and the issuing kid

Example:
  wit-issuer --trust-domain example.org --audience http://127.0.0.1:8084 \\
      --trust https://a.internal=http://127.0.0.1:8081/.well-known/jwks.json \\
      --workload https://a.internal=spiffe://example.org/service-a
";

/// A WIMSE identity server for one trust domain.
#[derive(Parser, Debug)]
#[command(version, about, after_help = ROUTES)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "WIT_ISSUER_LISTEN", default_value = "127.0.0.1:8084")]
    listen: SocketAddr,
    /// Serve `GET /metrics` on this address only, instead of on --listen.
    #[arg(long, env = "WIT_ISSUER_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    tls: common::TlsArgs,
    /// The private key (PEM) of --client-cert, for mTLS to callers' JWKS.
    #[arg(
        long = "client-key",
        env = "WIT_ISSUER_CLIENT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
    /// The trust domain, as in spiffe://TRUST_DOMAIN/...
    #[arg(long, env = "WIT_ISSUER_TRUST_DOMAIN")]
    trust_domain: String,
    /// This server's audience: workloads' tokens must name it.
    #[arg(long, env = "WIT_ISSUER_AUDIENCE")]
    audience: String,
    /// The `iss` written into WITs (optional; verifiers never use it to
    /// find keys).
    #[arg(long, env = "WIT_ISSUER_ISS")]
    iss: Option<String>,
    /// A workload issuer whose bearer tokens authenticate WIT requests, as
    /// ISS=JWKS_URL (repeatable).
    #[arg(
        long = "trust",
        env = "WIT_ISSUER_TRUST",
        value_delimiter = ',',
        value_name = "ISS=JWKS_URL"
    )]
    trust: Vec<String>,
    /// Which workload identifier a caller gets, as ISS=WORKLOAD_ID
    /// (repeatable); a caller without one is refused (403).
    #[arg(
        long = "workload",
        env = "WIT_ISSUER_WORKLOAD",
        value_delimiter = ',',
        value_name = "ISS=ID"
    )]
    workload: Vec<String>,
    /// The signing key (PKCS#8 PEM); without it an ES256 key is generated.
    #[arg(long, env = "WIT_ISSUER_KEY", value_name = "PEM_FILE")]
    key: Option<PathBuf>,
    /// WIT lifetime in seconds (at most a day).
    #[arg(long, env = "WIT_ISSUER_LIFETIME_SECS", default_value_t = 3600)]
    lifetime_secs: u64,
}

#[derive(Clone)]
struct AppState {
    issuer: WitIssuer,
    workloads: Arc<HashMap<String, WorkloadId>>,
    sources: Vec<KeySource>,
}

fn split_pair<'a>(flag: &str, pair: &'a str) -> Result<(&'a str, &'a str), String> {
    pair.split_once('=')
        .ok_or_else(|| format!("{flag}: expected A=B, got {pair:?}"))
}

async fn run(args: Args) -> Result<(), String> {
    let metrics = Metrics::install()?;
    let key = match &args.key {
        Some(path) => SigningKey::from_pem_file(path, None).map_err(|e| format!("--key: {e}"))?,
        None => SigningKey::generate(Algorithm::ES256).map_err(|e| e.to_string())?,
    };
    let ring = KeyRing::new(key);
    let mut issuer = WitIssuer::new(&args.trust_domain, ring.clone())
        .map_err(|e| format!("--trust-domain: {e}"))?
        .lifetime(Duration::from_secs(args.lifetime_secs))
        .map_err(|e| format!("--lifetime-secs: {e}"))?;
    if let Some(iss) = &args.iss {
        issuer = issuer.issuer(iss);
    }
    let mut workloads = HashMap::new();
    for pair in &args.workload {
        let (iss, id) = split_pair("--workload", pair)?;
        let id: WorkloadId = id.parse().map_err(|e| format!("--workload {pair}: {e}"))?;
        if id.trust_domain() != args.trust_domain {
            return Err(format!("--workload {pair}: not in {}", args.trust_domain));
        }
        workloads.insert(iss.to_owned(), id);
    }
    let client = args.tls.keys_client(args.client_key.as_deref())?;
    let mut verifier = Verifier::builder(&args.audience);
    let mut sources = Vec::new();
    for pair in &args.trust {
        let (iss, url) = split_pair("--trust", pair)?;
        let mut source = KeySource::remote(url).map_err(|e| format!("--trust {pair}: {e}"))?;
        if let Some(client) = &client {
            source = source.http_client(client.clone());
        }
        let source = source.build().map_err(|e| format!("--trust {pair}: {e}"))?;
        verifier = verifier.trust(iss, source.clone());
        sources.push(source);
    }
    let verifier = verifier.build().map_err(|e| e.to_string())?;
    let state = AppState {
        issuer,
        workloads: Arc::new(workloads),
        sources,
    };
    let app = Router::new()
        .route("/wit", post(issue))
        .layer(VerifyLayer::new(verifier))
        .route_service("/.well-known/jwks.json", JwksService::new(ring))
        .route("/healthz", get(healthz))
        .with_state(state);
    let app = common::http_layers(app, Some(64 * 1024));
    let app = metrics.attach(app, args.metrics_listen).await?;
    common::serve(args.listen, app, args.tls.server_config()?, || {
        tracing::info!(listen = %args.listen, trust_domain = %args.trust_domain, "wit-issuer ready");
    })
    .await
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A WIT for the calling workload's public key.
async fn issue(State(state): State<AppState>, caller: Caller, body: axum::body::Bytes) -> Response {
    let Some(workload) = state.workloads.get(caller.caller()) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "no workload identifier is mapped to this caller",
        );
    };
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"jwk\": {...}}");
    };
    let Some(Value::Object(jwk)) = request.get("jwk") else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"jwk\": {...}}");
    };
    // A private key sent here is a leak to refuse loudly, not to strip.
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|m| jwk.contains_key(*m))
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "send the public key only: this JWK has private members",
        );
    }
    let Ok(jwk) = serde_json::from_value::<Jwk>(Value::Object(jwk.clone())) else {
        return refuse(StatusCode::BAD_REQUEST, "not a JWK");
    };
    match state.issuer.issue(workload, &jwk).await {
        Ok(wit) => {
            tracing::info!(workload = %workload, caller = caller.caller(), "WIT issued");
            Json(json!({ "wit": wit, "workload": workload.as_str() })).into_response()
        }
        Err(e) => refuse(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "ready": state.sources.iter().all(KeySource::is_loaded),
        "trust_domain": state.issuer.trust_domain(),
        "kid": state.issuer.key_ring().signer().kid(),
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::init_tracing();
    common::exit("wit-issuer", run(Args::parse()).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_from_the_environment_too() {
        common::assert_every_flag_has_an_env_var(<Args as clap::CommandFactory>::command());
    }
}
