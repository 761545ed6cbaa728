//! The demo's plain HTTP/1.1 client and its transcript: each request is
//! shown as the `curl` command that repeats it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// An HTTP/1.1 response: status, headers (lower-case names), body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One request on a fresh loopback connection (`Connection: close`).
pub(crate) fn http(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect :{port}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no HTTP header end")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_owned(),
    })
}

pub(crate) fn wait_ready(
    port: u16,
    what: &str,
    ready: impl Fn(&Reply) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(reply) = http("GET", port, "/healthz", &[], "")
            && ready(&reply)
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{what} did not become ready on port {port}"))
}

pub(crate) struct Transcript {
    pub(crate) steps: usize,
    pub(crate) failures: usize,
}

impl Transcript {
    /// One checked step: its title, the commands that ran (copy-pasteable,
    /// exactly as sent), and what came back.
    pub(crate) fn step(&mut self, title: &str, ok: bool, detail: String) {
        self.steps += 1;
        let mark = if ok { "ok  " } else { "FAIL" };
        let detail = detail.replace('\n', "\n       ");
        println!("[{mark}] {title}\n       {detail}");
        if !ok {
            self.failures += 1;
        }
    }
}

/// The `curl` command that sends exactly what [`http`] sends.
pub(crate) fn curl(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut line = format!("$ curl -s -X {method} 'http://127.0.0.1:{port}{path}'");
    for (name, value) in headers {
        // Tokens go through a shell variable set on the line before.
        let value = match value.strip_prefix("Bearer ") {
            Some(_) => "Bearer $TOKEN".to_owned(),
            None => (*value).to_owned(),
        };
        line.push_str(&format!(" -H \"{name}: {value}\""));
    }
    if !body.is_empty() {
        line.push_str(&format!(" --data-raw '{body}'"));
    }
    line
}

/// `TOKEN=...` for a command that uses `$TOKEN`.
pub(crate) fn token_line(authorization: &str) -> String {
    format!(
        "$ TOKEN='{}'",
        authorization
            .strip_prefix("Bearer ")
            .unwrap_or(authorization)
    )
}

/// One request with `authorization`, and the two lines that repeat it in a
/// shell (`TOKEN=...`, then `curl`).
pub(crate) fn with_token(
    authorization: &str,
    method: &str,
    port: u16,
    path: &str,
    body: &str,
) -> Result<(String, Reply), String> {
    let headers = [("authorization", authorization)];
    let shown = format!(
        "{}\n{}",
        token_line(authorization),
        curl(method, port, path, &headers, body)
    );
    Ok((shown, http(method, port, path, &headers, body)?))
}
