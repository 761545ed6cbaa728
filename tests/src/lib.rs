//! Support for the end-to-end tests in `tests/tests/`: they run the project's
//! binaries and real peers as processes. This package is not published.
//!
//! * [`skip_or_fail`]: a peer that is missing skips its test under a plain
//!   `cargo test` (saying so), and fails it under `cargo xtask test`, which
//!   sets `SVCAUTH_REQUIRE_PEERS`.
//! * [`OidcProvider`]: panva's `oidc-provider` (tests/peers/oidc_provider.mjs)
//!   on a free loopback port, stopped when dropped.
//! * [`example_binaries`]: the example binaries, built once per test binary.
//! * [`RedisServer`]: redis-server on a free loopback port, killed on drop.
//! * [`run_test_in_child`]: one test of the running test binary, in a child
//!   process with its own environment variables.
//! * [`serve`] and [`JsonServer`]: an axum app, or one JSON document (a
//!   JWKS, a discovery document), on a free loopback port.
//! * [`MockAuthorizationServer`]: a token endpoint that exchanges `good-*`
//!   reference tokens (RFC 8693), for gateway tests that need no node.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// The token-exchange grant type (RFC 8693).
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `tests/peers`, where the node and Python peers live.
pub fn peers_dir() -> PathBuf {
    root().join("tests").join("peers")
}

/// Runs the test `name` of the current test binary in a child process with
/// `set` added to and `remove` taken from its environment, and returns
/// whether it passed, with its output. Environment variables are
/// process-wide (and `std::env::set_var` is unsafe in Rust 2024), so a test
/// of behaviour under, say, `HTTP_PROXY` runs its check this way; the child
/// tells itself apart by a variable in `set`.
pub fn run_test_in_child(name: &str, set: &[(&str, &str)], remove: &[&str]) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().expect("a test binary"));
    command.args([name, "--exact", "--nocapture", "--include-ignored"]);
    for var in remove {
        command.env_remove(var);
    }
    command.envs(set.iter().copied());
    let output = command.output().expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let passed = output.status.success() && stdout.contains("1 passed");
    (
        passed,
        format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr)),
    )
}

/// Serves `app` on a free loopback port in the background (a Tokio runtime
/// must be running), and returns its address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port is free");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// One JSON document (a JWKS, say) at every path of a loopback server,
/// which counts the requests it answers.
#[derive(Debug, Clone)]
pub struct JsonServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Requests answered so far.
    pub hits: std::sync::Arc<AtomicU64>,
}

impl JsonServer {
    /// Serves `body` on a free loopback port.
    pub async fn start(body: Value) -> JsonServer {
        let hits = std::sync::Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let body = body.to_string();
        let app = axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        });
        JsonServer {
            addr: serve(app).await,
            hits,
        }
    }

    /// `http://<addr>/jwks.json` (any path answers the same).
    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst) as usize
    }
}

/// A stand-in authorization server with one token endpoint (`/token`):
/// token exchange of a `subject_token` starting with `good-` gives a
/// JWT-shaped access token for 300 s (unsigned: a stand-in for what is
/// forwarded, not something to verify); any other subject token gets
/// `400 invalid_grant`; while [`set_down`](Self::set_down), every request
/// gets `503`. It counts the questions it is asked.
#[derive(Debug, Clone)]
pub struct MockAuthorizationServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    asked: std::sync::Arc<AtomicU64>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl MockAuthorizationServer {
    /// Starts one on a free loopback port.
    pub async fn start() -> Self {
        let asked = std::sync::Arc::new(AtomicU64::new(0));
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, is_down) = (asked.clone(), down.clone());
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move |form: String| {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let down = is_down.load(Ordering::SeqCst);
                async move {
                    use axum::http::StatusCode;
                    if down {
                        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({})));
                    }
                    let subject = form
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("subject_token="))
                        .unwrap_or("");
                    if !subject.starts_with("good-") {
                        let error = json!({ "error": "invalid_grant" });
                        return (StatusCode::BAD_REQUEST, axum::Json(error));
                    }
                    // {"alg":"none"} . {} . a serial: JWT-shaped, unsigned.
                    let token = format!("eyJhbGciOiJub25lIn0.e30.{n}");
                    let answer = json!({
                        "access_token": token,
                        "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
                        "token_type": "Bearer",
                        "expires_in": 300,
                    });
                    (StatusCode::OK, axum::Json(answer))
                }
            }),
        );
        MockAuthorizationServer {
            addr: serve(app).await,
            asked,
            down,
        }
    }

    /// `http://<addr>/token`.
    pub fn token_endpoint(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Questions asked so far.
    pub fn asked(&self) -> u64 {
        self.asked.load(Ordering::SeqCst)
    }

    /// Answers 503 to everything while `down`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a loopback port is free")
        .port()
}

/// A redis-server child process with an append-only file, killed on drop.
pub struct RedisServer {
    child: Child,
    /// The port it listens on (kept across restarts).
    pub port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts redis-server, or returns `None` (after saying why) when it is
    /// not installed and peers are not required.
    pub fn start() -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            return skip_or_fail("redis-server (cargo xtask test installs it)");
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("svcauth-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the temp dir is writable");
        let child = Self::spawn(port, &dir);
        Some(RedisServer { child, port, dir })
    }

    fn spawn(port: u16, dir: &std::path::Path) -> Child {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                &dir.to_string_lossy(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (connections fail until [`restart`](Self::restart)).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        // Only the process is replaced: the data directory (and its
        // append-only file) stays, as it would on a real restart.
        self.child = Self::spawn(self.port, &self.dir);
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) to the server.
    pub fn signal(&self, signal: &str) {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("redis-server runs");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory holding `service-a`, `service-b` and `gateway`, built
/// (debug) the first time a test binary asks.
pub fn example_binaries() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--package",
                "service-a",
                "--package",
                "service-b",
                "--package",
                "gateway",
            ])
            .current_dir(root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the example binaries failed");
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root().join("target"), PathBuf::from)
            .join("debug")
    })
}

/// Reports a missing peer: `None` (the test returns early, skipped) under a
/// plain `cargo test`, a panic under `cargo xtask test`.
pub fn skip_or_fail<T>(why: &str) -> Option<T> {
    assert!(
        std::env::var_os("SVCAUTH_REQUIRE_PEERS").is_none(),
        "peer missing: {why}"
    );
    eprintln!("SKIPPED peer test: {why} (cargo xtask test prepares it)");
    None
}

/// `node`, when it runs and `tests/peers/node_modules/<package>` is installed.
pub fn node_with(package: &str) -> Option<PathBuf> {
    if peers_dir().join("node_modules").join(package).is_dir()
        && Command::new("node").arg("--version").output().is_ok()
    {
        Some(PathBuf::from("node"))
    } else {
        skip_or_fail(&format!("node with tests/peers/node_modules/{package}"))
    }
}

fn temp_path(what: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "svcauth-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// panva's `oidc-provider` 9.x, run by `tests/peers/oidc_provider.mjs` on
/// `127.0.0.1` with an in-memory adapter: client credentials with Resource
/// Indicators (RFC 9068 JWT access tokens), opaque tokens when no resource
/// is asked for, introspection with JWT responses, revocation, and token
/// exchange as a custom grant. The process is killed on drop.
#[derive(Debug)]
pub struct OidcProvider {
    child: Option<Child>,
    config: Value,
    log: PathBuf,
    /// The issuer identifier, `http://127.0.0.1:<port>`.
    pub issuer: String,
    /// The port it listens on (kept across restarts).
    pub port: u16,
}

impl OidcProvider {
    /// Fresh private signing keys, one per algorithm (RS256, ES256, EdDSA),
    /// as a JWKS; `None` when node or the package is missing (skipped).
    pub fn keygen() -> Option<Value> {
        let node = node_with("oidc-provider")?;
        let out = Command::new(node)
            .args(["oidc_provider.mjs", "keygen"])
            .current_dir(peers_dir())
            .stderr(Stdio::null())
            .output()
            .expect("node runs");
        assert!(out.status.success(), "oidc_provider.mjs keygen failed");
        Some(serde_json::from_slice(&out.stdout).expect("keygen prints a JWKS"))
    }

    /// Starts a provider with `config` (see the script's header: `keys`,
    /// `clients`, `resources`, `client_algs`, `opaque_ttl`) on a free port.
    /// `None` when node or the package is missing (skipped).
    pub fn start(mut config: Value) -> Option<Self> {
        node_with("oidc-provider")?;
        config["port"] = json!(0);
        let mut provider = OidcProvider {
            child: None,
            config,
            log: temp_path("oidc-provider.log"),
            issuer: String::new(),
            port: 0,
        };
        provider.spawn();
        Some(provider)
    }

    fn spawn(&mut self) {
        let config_path = temp_path("oidc-provider.json");
        std::fs::write(&config_path, self.config.to_string()).expect("temp dir is writable");
        let log = std::fs::File::create(&self.log).expect("temp dir is writable");
        let mut child = Command::new("node")
            .arg("oidc_provider.mjs")
            .arg("serve")
            .arg(&config_path)
            .current_dir(peers_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = std::fs::remove_file(&config_path);
        if read.is_err() || line.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("oidc-provider did not start:\n{}", self.log());
        }
        let ready: Value = serde_json::from_str(&line).expect("the script prints its address");
        self.issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        self.port = u16::try_from(ready["port"].as_u64().expect("port")).expect("a port");
        self.config["port"] = json!(self.port);
        self.child = Some(child);
    }

    /// What the provider wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the provider (connections are refused until [`restart`](Self::restart)).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts on the same port and issuer with a new signing key set (the
    /// first key of each algorithm signs). In-memory state (opaque tokens)
    /// is lost, as with any restart of a provider without a database.
    pub fn restart(&mut self, keys: Value) {
        self.stop();
        self.config["keys"] = keys;
        self.spawn();
    }

    /// `<issuer>/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// `<issuer>/token/introspection`.
    pub fn introspection_endpoint(&self) -> String {
        format!("{}/token/introspection", self.issuer)
    }

    /// `<issuer>/token/revocation`.
    pub fn revocation_endpoint(&self) -> String {
        format!("{}/token/revocation", self.issuer)
    }

    /// Requests counted by the provider: `token`, `introspection`,
    /// `token_exchange`.
    pub async fn counts(&self) -> Value {
        reqwest::get(format!("{}/__counts", self.issuer))
            .await
            .expect("the provider answers")
            .json()
            .await
            .expect("counts are JSON")
    }

    /// A client-credentials token response for a `client_secret_basic`
    /// client, for `resource` (a JWT) or none (an opaque token).
    pub async fn client_credentials(
        &self,
        client_id: &str,
        secret: &str,
        resource: Option<&str>,
    ) -> Value {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        let response = reqwest::Client::new()
            .post(self.token_endpoint())
            .basic_auth(client_id, Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("the provider does not answer: {e}\n{}", self.log()));
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON answer");
        assert_eq!(status, 200, "client credentials for {client_id}: {body}");
        body
    }

    /// Revokes `token` (RFC 7009) as its `client_secret_basic` client.
    pub async fn revoke(&self, client_id: &str, secret: &str, token: &str) {
        let response = reqwest::Client::new()
            .post(self.revocation_endpoint())
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .expect("the provider answers");
        assert_eq!(response.status(), 200, "revocation");
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Client metadata for a `client_secret_basic` client allowed `grants`.
pub fn secret_client(client_id: &str, secret: &str, grants: &[&str]) -> Value {
    json!({
        "client_id": client_id,
        "client_secret": secret,
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": grants,
        "redirect_uris": [],
        "response_types": [],
        "introspection_signed_response_alg": "ES256",
    })
}

/// Client metadata for a `private_key_jwt` client whose public key is `jwk`.
pub fn private_key_jwt_client(client_id: &str, jwk: Value, grants: &[&str]) -> Value {
    json!({
        "client_id": client_id,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": { "keys": [jwk] },
        "grant_types": grants,
        "redirect_uris": [],
        "response_types": [],
        "introspection_signed_response_alg": "ES256",
    })
}
