//! What the three example binaries share (each includes this file with
//! `#[path]`): logs, the exit status, and `GET /metrics` in the Prometheus
//! text format.
//!
//! The libraries only emit through the `metrics` facade; the binary picks
//! the exporter, installs it before it builds anything that registers
//! metrics, and serves what it renders.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Logs to stderr at `RUST_LOG` (default `info`), in colour on a terminal.
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The process's exit status: failure, after saying why on stderr.
pub(crate) fn exit(binary: &str, result: Result<(), String>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Serves `app` on `listen` until Ctrl-C, over TLS when `tls` is given,
/// with each connection's peer address available to handlers
/// (`ConnectInfo`); `ready` logs once bound.
pub(crate) async fn serve(
    listen: SocketAddr,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    ready: impl FnOnce(),
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    ready();
    let Some(tls) = tls else {
        return axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string());
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    // One Ctrl-C listener for the whole loop: one made per turn would miss
    // a signal that arrives between two turns.
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // A failed handshake ends this connection only.
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let app = app.map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                .await;
        });
    }
}

/// TLS flags every example has: HTTPS on the listener, and the roots and
/// client certificate of its outbound HTTPS (each binary names its own
/// client-key flag, see [`TlsArgs::outbound_client`]).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(
        long,
        env = "SVCAUTH_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "SVCAUTH_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Option<PathBuf>,
    /// Trust only the CAs in this PEM file for outbound HTTPS (JWKS,
    /// discovery, token endpoint, the services called), not the system's.
    #[arg(long, env = "SVCAUTH_CA_FILE", value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Present this client certificate (PEM) on outbound HTTPS (mTLS), with
    /// its key.
    #[arg(long, env = "SVCAUTH_CLIENT_CERT", value_name = "PEM")]
    pub(crate) client_cert: Option<PathBuf>,
}

impl TlsArgs {
    /// Whether outbound clients need more than the defaults (--ca-file or
    /// --client-cert). (service-a builds its one client either way.)
    #[allow(dead_code)]
    pub(crate) fn customises_outbound(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some()
    }

    /// The listener's TLS configuration, when --tls-cert is given.
    pub(crate) fn server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("--tls-key {}: {e}", key.display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }

    /// The client for key fetches (JWKS, bundles): `None` keeps svcauth's
    /// default client, unless --ca-file or --client-cert ask for more.
    #[allow(dead_code)]
    pub(crate) fn keys_client(
        &self,
        client_key: Option<&Path>,
    ) -> Result<Option<reqwest::Client>, String> {
        if !self.customises_outbound() {
            return Ok(None);
        }
        self.outbound_client(svcauth_jwks::http_client_builder(), client_key)?
            .build()
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// `builder` with --ca-file's roots and the client certificate
    /// (--client-cert and the binary's key flag, `client_key`).
    pub(crate) fn outbound_client(
        &self,
        builder: reqwest::ClientBuilder,
        client_key: Option<&Path>,
    ) -> Result<reqwest::ClientBuilder, String> {
        let read = |path: &Path, flag: &str| {
            std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
        };
        let mut builder = builder;
        if let Some(ca) = &self.ca_file {
            let roots = reqwest::Certificate::from_pem_bundle(&read(ca, "--ca-file")?)
                .map_err(|e| format!("--ca-file {}: {e}", ca.display()))?;
            builder = builder.tls_certs_only(roots);
        }
        match (&self.client_cert, client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert, "--client-cert")?;
                pem.extend(read(key, "the client certificate's key")?);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("--client-cert {}: {e}", cert.display()))?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => return Err("a client certificate needs both the certificate and its key".into()),
        }
        Ok(builder)
    }
}

/// Every flag of `command` can also be set by an environment variable
/// (clap's env fallback, checked on the parser, not the process env).
#[cfg(test)]
pub(crate) fn assert_every_flag_has_an_env_var(command: clap::Command) {
    for arg in command
        .get_arguments()
        .filter(|a| a.get_id() != "help" && a.get_id() != "version")
    {
        assert!(
            arg.get_env().is_some(),
            "--{} has no environment variable",
            arg.get_id()
        );
    }
}

/// Headers that carry credentials svcauth reads or writes: never shown by
/// the request trace, whatever the log level.
const CREDENTIAL_HEADERS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
    HeaderName::from_static("txn-token"),
    HeaderName::from_static("x-svcauth-sent-authorization"),
];

/// How long one request may take before it is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// tower-http around `app`, outermost first: credential headers marked
/// sensitive (in requests and responses), a trace span per request (at
/// `debug` with its headers, the sensitive ones redacted), a timeout, and
/// with `body_limit` a cap on request bodies (413).
pub(crate) fn http_layers(app: Router, body_limit: Option<usize>) -> Router {
    let app = match body_limit {
        Some(limit) => app.layer(RequestBodyLimitLayer::new(limit)),
        None => app,
    };
    app.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    ))
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().include_headers(true))
            .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
    )
    .layer(SetSensitiveResponseHeadersLayer::new(CREDENTIAL_HEADERS))
    .layer(SetSensitiveRequestHeadersLayer::new(CREDENTIAL_HEADERS))
}

/// The installed Prometheus recorder.
#[derive(Clone)]
pub(crate) struct Metrics(PrometheusHandle);

impl Metrics {
    /// Installs the process-wide recorder. Call it first: metric handles
    /// registered before it are no-ops for good.
    pub(crate) fn install() -> Result<Metrics, String> {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| format!("installing the metrics recorder: {e}"))?;
        // Histograms are summarised on upkeep; without it they grow.
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(Metrics(handle))
    }

    /// `GET /metrics`.
    pub(crate) fn router(&self) -> Router {
        let handle = self.0.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let body = handle.render();
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
                }
            }),
        )
    }

    /// `/metrics` on the main listener, or, with `--metrics-listen`, on a
    /// listener of its own (so that it need not be reachable by callers).
    pub(crate) async fn attach(
        &self,
        app: Router,
        separate: Option<SocketAddr>,
    ) -> Result<Router, String> {
        let Some(addr) = separate else {
            return Ok(app.merge(self.router()));
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (--metrics-listen): {e}"))?;
        let router = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
        tracing::info!(listen = %addr, "metrics on their own listener");
        Ok(app)
    }
}
