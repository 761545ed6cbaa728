//! [`OidcProvider`]: panva's oidc-provider as a real OpenID Provider, and
//! the client metadata tests register with it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::{node_with, peers_dir};

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

    /// Its process id while it runs (it changes on restart).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
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
