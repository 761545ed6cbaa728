//! Loopback HTTP servers for tests: any axum app ([`serve`]), one JSON
//! document ([`JsonServer`]), a stand-in authorization server
//! ([`MockAuthorizationServer`]).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

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
/// which counts the requests it answers; [`set`](Self::set) changes it.
#[derive(Debug, Clone)]
pub struct JsonServer {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Requests answered so far.
    pub hits: std::sync::Arc<AtomicU64>,
    body: std::sync::Arc<std::sync::Mutex<String>>,
}

impl JsonServer {
    /// Serves `body` on a free loopback port.
    pub async fn start(body: Value) -> JsonServer {
        let hits = std::sync::Arc::new(AtomicU64::new(0));
        let counter = hits.clone();
        let body = std::sync::Arc::new(std::sync::Mutex::new(body.to_string()));
        let served = body.clone();
        let app = axum::Router::new().fallback(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = served.lock().unwrap_or_else(|e| e.into_inner()).clone();
            async move { ([("content-type", "application/json")], body) }
        });
        JsonServer {
            addr: serve(app).await,
            hits,
            body,
        }
    }

    /// Serves `body` from now on.
    pub fn set(&self, body: Value) {
        *self.body.lock().unwrap_or_else(|e| e.into_inner()) = body.to_string();
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
