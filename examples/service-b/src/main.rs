//! service-b: the callee of the svcauth example pair.
//!
//! It trusts callers' issuers (by JWKS URL or OpenID discovery), verifies
//! every request's token with the svcauth verifying layer, and tells who
//! called.
//!
//! ```text
//! service-b --listen 127.0.0.1:8082 --audience https://b.internal \
//!           --trust https://a.internal=http://127.0.0.1:8081/.well-known/jwks.json
//!
//! curl -s http://127.0.0.1:8082/healthz
//! curl -s -H "authorization: Bearer $TOKEN" http://127.0.0.1:8082/whoami
//! ```
//!
//! Routes: `GET /whoami` and `POST /echo` behind the verifying layer (a
//! request-bound token is checked against the request and accepted once);
//! with `--grpc-listen`, the gRPC `svcauth.demo.Demo` service behind the
//! same layer; `GET /healthz` without authentication: readiness for anyone, and to
//! loopback callers (or anyone, with `--healthz-details-for-anyone`) each
//! issuer's key source (URLs, kids, the last fetch error) and the counters.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use demo_grpc::{Demo, demo_server::DemoServer};
use serde_json::json;
use svcauth_jwks::KeySource;
use svcauth_verify::{Caller, Transaction, Verifier, VerifyLayer};

#[path = "../../common/mod.rs"]
mod common;
mod redis;
mod trust;
use common::Metrics;

/// The callee of the svcauth example pair.
/// The routes, for `--help`.
const ROUTES: &str = "\
Routes:
  GET  /whoami    who called: the verified iss, sub, aud, kid, all claims, and
                  the proof: bearer, or wpt with the workload identifier
                  for a caller that sent a WIT and its proof (--wit-trust,
                  --spiffe-bundle); a JWT-SVID caller is spiffe://TRUST_DOMAIN;
                  with --txn-trust, the verified Txn-Token's claims under
                  txn_token (whose transaction, through which path)
  POST /echo      the body back; a request-bound token is checked against the
                  request (method, URL, query, body) and accepted once
  GET  /healthz   readiness; to loopback callers also each issuer's key source
                  and the verifier's counters (no token needed)
  gRPC svcauth.demo.Demo/WhoAmI and /Count on --grpc-listen, behind the same
                  verifying layer (examples/demo-grpc/proto/demo.proto)

Example:
  service-b --audience https://b.internal \\
            --trust https://a.internal=http://127.0.0.1:8081/.well-known/jwks.json
  curl -s http://127.0.0.1:8082/healthz
";

#[derive(Parser, Debug)]
#[command(version, about, after_help = ROUTES)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SERVICE_B_LISTEN", default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// Serve `GET /metrics` (Prometheus text format) on this address only,
    /// instead of on --listen.
    #[arg(long, env = "SERVICE_B_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    tls: common::TlsArgs,
    /// The private key (PEM) of --client-cert, for mTLS to JWKS and discovery endpoints.
    #[arg(
        long = "client-key",
        env = "SERVICE_B_CLIENT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    client_key: Option<std::path::PathBuf>,
    /// This service's audience: tokens must name it in `aud`.
    #[arg(long, env = "SERVICE_B_AUDIENCE")]
    audience: String,
    /// A trusted issuer and its JWKS URL, as ISS=JWKS_URL (repeatable).
    #[arg(
        long = "trust",
        env = "SERVICE_B_TRUST",
        value_delimiter = ',',
        value_name = "ISS=JWKS_URL"
    )]
    trust: Vec<String>,
    /// A trusted issuer found by OpenID Connect discovery (repeatable).
    #[arg(
        long = "trust-oidc",
        env = "SERVICE_B_TRUST_OIDC",
        value_delimiter = ',',
        value_name = "ISSUER_URL"
    )]
    trust_oidc: Vec<String>,
    /// With --trust-oidc: also accept a `jwks_uri` on this origin
    /// (`scheme://host[:port]`; repeatable). By default the keys must be on
    /// the issuer's own origin.
    #[arg(
        long = "allow-jwks-uri-origin",
        env = "SERVICE_B_ALLOW_JWKS_URI_ORIGIN",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    allow_jwks_uri_origin: Vec<String>,
    /// Clock leeway for exp, nbf and iat, in seconds (at most 300).
    #[arg(long, env = "SERVICE_B_LEEWAY_SECS", default_value_t = 30)]
    leeway_secs: u64,
    /// Longest accepted token lifetime (exp - iat), in seconds.
    #[arg(long, env = "SERVICE_B_MAX_LIFETIME_SECS", default_value_t = 600)]
    max_lifetime_secs: u64,
    /// Admit only callers from these issuers (repeatable; others get 403).
    #[arg(
        long = "allow-caller",
        env = "SERVICE_B_ALLOW_CALLER",
        value_delimiter = ',',
        value_name = "ISS"
    )]
    allow_caller: Vec<String>,
    /// Show `/healthz` details (issuer URLs, kids, fetch errors, counters)
    /// to any address, not only loopback.
    #[arg(long, env = "SERVICE_B_HEALTHZ_DETAILS_FOR_ANYONE")]
    healthz_details_for_anyone: bool,
    /// Minimum seconds between JWKS fetches caused by unknown kids.
    #[arg(
        long,
        env = "SERVICE_B_UNKNOWN_KID_COOLDOWN_SECS",
        default_value_t = 30
    )]
    unknown_kid_cooldown_secs: u64,
    /// The URL clients reach this service at, for request binding behind a proxy.
    #[arg(long, env = "SERVICE_B_PUBLIC_BASE_URL")]
    public_base_url: Option<String>,
    /// Largest body of a request-bound call, in bytes.
    #[arg(long, env = "SERVICE_B_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Also serve the Demo gRPC service (examples/demo-grpc) on this address,
    /// behind the same verifying layer; over TLS when --tls-cert is given.
    #[arg(long, env = "SERVICE_B_GRPC_LISTEN", value_name = "ADDR")]
    grpc_listen: Option<SocketAddr>,
    #[command(flatten)]
    redis: redis::RedisArgs,
    /// Accept WIMSE Workload Identity Tokens (with a Workload Proof Token)
    /// from workloads of TRUST_DOMAIN (as in spiffe://TRUST_DOMAIN/...),
    /// signed by a key of the JWKS at URL (repeatable).
    #[arg(
        long = "wit-trust",
        env = "SERVICE_B_WIT_TRUST",
        value_delimiter = ',',
        value_name = "TRUST_DOMAIN=JWKS_URL"
    )]
    wit_trust: Vec<String>,
    /// Accept SPIFFE SVIDs of TRUST_DOMAIN with the keys of its trust
    /// bundle at BUNDLE: an https (or loopback http) bundle endpoint, or a
    /// file, watched for changes (repeatable). JWT-SVIDs are bearer tokens
    /// checked with the bundle's jwt-svid keys; WIT-SVIDs come with a proof
    /// and are checked with its wit-svid keys.
    #[arg(
        long = "spiffe-bundle",
        env = "SERVICE_B_SPIFFE_BUNDLE",
        value_delimiter = ',',
        value_name = "TRUST_DOMAIN=BUNDLE"
    )]
    spiffe_bundle: Vec<String>,
    /// Refuse bearer tokens: every caller must present a WIT and its proof.
    #[arg(long, env = "SERVICE_B_REQUIRE_PROOF")]
    require_proof: bool,
    /// A URL callers reach this service at, which a proof's `aud` may name
    /// (repeatable). Default: the audience, --public-base-url, and the
    /// --listen address when it is a specific IP.
    #[arg(
        long = "proof-target",
        env = "SERVICE_B_PROOF_TARGET",
        value_delimiter = ',',
        value_name = "URL"
    )]
    proof_target: Vec<String>,
    /// Verify the `Txn-Token` header (a Transaction Token) of requests:
    /// signed by the Transaction Token Service TTS_ISSUER with a key of the
    /// JWKS at URL (repeatable), for --trust-domain. `GET /whoami` then
    /// shows the verified claims under "txn_token".
    #[arg(
        long = "txn-trust",
        env = "SERVICE_B_TXN_TRUST",
        value_delimiter = ',',
        value_name = "TTS_ISSUER=JWKS_URL",
        requires = "trust_domain"
    )]
    txn_trust: Vec<String>,
    /// This service's trust domain: a Txn-Token's `aud` must name it.
    #[arg(
        long = "trust-domain",
        env = "SERVICE_B_TRUST_DOMAIN",
        value_name = "NAME",
        requires = "txn_trust"
    )]
    trust_domain: Option<String>,
    /// Refuse requests without a valid Txn-Token (403 txn_token_required).
    #[arg(long, env = "SERVICE_B_REQUIRE_TXN_TOKEN", requires = "txn_trust")]
    require_txn_token: bool,
}

#[derive(Clone)]
struct AppState {
    sources: Vec<(String, KeySource)>,
    verifier: Verifier,
    details_for_anyone: bool,
}

async fn run(args: Args) -> Result<(), String> {
    // First: handles registered before the recorder are no-ops.
    let metrics = Metrics::install()?;
    let trust::Sources {
        mut sources,
        wit_sources,
        svid_sources,
        txn_sources,
    } = trust::sources(&args)?;
    let mut builder = Verifier::builder(&args.audience)
        .leeway(Duration::from_secs(args.leeway_secs))
        .max_lifetime(Duration::from_secs(args.max_lifetime_secs))
        .max_body_bytes(args.max_body_bytes);
    for (iss, source) in &sources {
        builder = builder.trust(iss, source.clone());
    }
    for (domain, source) in &wit_sources {
        builder = builder.trust_workloads(domain, source.clone());
    }
    for (domain, source) in &svid_sources {
        builder = builder.trust_jwt_svids(domain, source.clone());
    }
    if let Some(domain) = &args.trust_domain {
        for (tts, source) in &txn_sources {
            builder = builder.trust_txn_tokens(domain, tts, source.clone());
        }
    }
    if !wit_sources.is_empty() {
        for url in proof_targets(&args) {
            let url = url
                .parse()
                .map_err(|e| format!("--proof-target {url}: {e}"))?;
            builder = builder.proof_target(url);
        }
    }
    if let Some(url) = &args.public_base_url {
        builder =
            builder.public_base_url(url.parse().map_err(|e| format!("--public-base-url: {e}"))?);
    }
    if let Some(stores) = args.redis.stores().await? {
        builder = builder
            .replay_store(std::sync::Arc::new(stores.replay()))
            .revocation_store(std::sync::Arc::new(stores.revocation()));
    }
    let verifier = builder.build().map_err(|e| e.to_string())?;
    let mut layer = VerifyLayer::new(verifier.clone());
    for iss in &args.allow_caller {
        layer = layer.allow_caller(iss, None);
    }
    if args.require_proof {
        layer = layer.require_proof();
    }
    if args.require_txn_token {
        layer = layer.require_txn_token();
    }
    sources.extend(
        wit_sources
            .into_iter()
            .map(|(domain, source)| (format!("spiffe://{domain}"), source)),
    );
    sources.extend(
        svid_sources
            .into_iter()
            .map(|(domain, source)| (format!("spiffe://{domain} (jwt-svid)"), source)),
    );
    sources.extend(
        txn_sources
            .into_iter()
            .map(|(tts, source)| (format!("{tts} (txn-token service)"), source)),
    );

    let grpc_layer = layer.clone();
    let state = AppState {
        sources,
        verifier,
        details_for_anyone: args.healthz_details_for_anyone,
    };
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/echo", post(echo))
        .layer(layer)
        .route("/healthz", get(healthz))
        .fallback(|| async { not_here(axum::http::StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            not_here(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            )
        })
        .with_state(state);
    let app = common::http_layers(app, Some(args.max_body_bytes));
    let app = metrics.attach(app, args.metrics_listen).await?;
    let http = common::serve(args.listen, app, args.tls.server_config()?, || {
        tracing::info!(listen = %args.listen, audience = %args.audience, "service-b ready");
    });
    match args.grpc_listen {
        Some(listen) => {
            tokio::try_join!(http, serve_grpc(listen, grpc_layer, &args.tls)).map(|_| ())
        }
        None => http.await,
    }
}

/// Where a proof's `aud` may point: --proof-target, else the audience,
/// --public-base-url and the listen address (when it is a specific IP).
fn proof_targets(args: &Args) -> Vec<String> {
    if !args.proof_target.is_empty() {
        return args.proof_target.clone();
    }
    let scheme = if args.tls.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let mut targets: Vec<String> = [Some(&args.audience), args.public_base_url.as_ref()]
        .into_iter()
        .flatten()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .cloned()
        .collect();
    if !args.listen.ip().is_unspecified() {
        targets.push(format!("{scheme}://{}", args.listen));
    }
    targets
}

/// Serves the Demo gRPC service on `listen` behind `layer` until Ctrl-C:
/// tonic's own server, as a tonic user would run it. Rejections are gRPC
/// statuses (16 UNAUTHENTICATED, 7 PERMISSION_DENIED, 14 UNAVAILABLE).
async fn serve_grpc(
    listen: SocketAddr,
    layer: VerifyLayer,
    tls: &common::TlsArgs,
) -> Result<(), String> {
    let mut server = tonic::transport::Server::builder();
    if let (Some(cert), Some(key)) = (&tls.tls_cert, &tls.tls_key) {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let identity = tonic::transport::Identity::from_pem(read(cert)?, read(key)?);
        server = server
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| format!("--tls-cert/--tls-key for gRPC: {e}"))?;
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen} (gRPC): {e}"))?;
    tracing::info!(listen = %listen, "service-b gRPC ready");
    server
        .layer(layer)
        .add_service(DemoServer::new(Demo))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await
        .map_err(|e| format!("gRPC server: {e}"))
}

/// A 404 or 405 that says what is here.
fn not_here(
    status: axum::http::StatusCode,
    what: &str,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    (
        status,
        Json(json!({
            "error": format!("{what}; routes: GET /whoami, POST /echo (behind the verifying layer), GET /healthz"),
        })),
    )
}

/// Who called: the verified claims; with a verified Txn-Token, on whose
/// behalf and in which transaction, under "txn_token".
async fn whoami(caller: Caller, txn: Option<Transaction>) -> Json<serde_json::Value> {
    let claims: serde_json::Value = serde_json::from_slice(caller.raw_json()).unwrap_or_default();
    let mut answer = json!({
        "iss": caller.iss(),
        "sub": caller.sub(),
        "proof": caller.proof().as_str(),
        "workload": caller.workload().map(|w| w.as_str()),
        "aud": caller.aud(),
        "kid": caller.kid(),
        "claims": claims,
    });
    if let Some(txn) = txn {
        answer["txn_token"] = serde_json::from_slice(txn.raw_json()).unwrap_or_default();
    }
    Json(answer)
}

/// The body, as received (a bound token's binding was checked against it).
async fn echo(_caller: Caller, body: Bytes) -> Bytes {
    body
}

/// Key-source state per issuer, and the verifier's counters.
///
/// The details name internal issuer URLs, key ids and error messages: an
/// outsider gets readiness only, which is all a load balancer needs.
async fn healthz(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Json<serde_json::Value> {
    let ready = state.sources.iter().all(|(_, s)| s.is_loaded());
    if !state.details_for_anyone && !peer.ip().is_loopback() {
        return Json(json!({ "ready": ready }));
    }
    let issuers: serde_json::Map<String, serde_json::Value> = state
        .sources
        .iter()
        .map(|(iss, source)| {
            (
                iss.clone(),
                serde_json::to_value(source.stats()).unwrap_or_default(),
            )
        })
        .collect();
    Json(json!({ "ready": ready, "issuers": issuers, "verifier": state.verifier.metrics() }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::init_tracing();
    common::exit("service-b", run(Args::parse()).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_from_the_environment_too() {
        common::assert_every_flag_has_an_env_var(<Args as clap::CommandFactory>::command());
    }
}
