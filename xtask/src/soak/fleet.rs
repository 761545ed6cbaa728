//! The soak's fleet: Redis, the OpenID Provider, service-a, two service-b
//! replicas behind a balancer, the gateway; and the two pieces the faults
//! need: a proxy in front of A's JWKS that can fail on demand, and the
//! load driver's own issuer (its JWKS), whose tokens the driver can revoke.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use svcauth_core::Algorithm;
use svcauth_jwks::SigningKey;
use svcauth_tests::{Example, OidcProvider, RedisServer, free_port};

use crate::demo::http::{http, wait_ready};

pub(super) const A_ISS: &str = "https://a.internal";
pub(super) const B_AUD: &str = "https://b.internal";
/// The load driver's own issuer, trusted by both replicas.
pub(super) const DRIVER_ISS: &str = "https://soak-driver.internal";

/// What A's JWKS proxy answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum JwksMode {
    /// A's document, as A serves it.
    Pass = 0,
    /// `500 Internal Server Error`.
    Error = 1,
    /// Accepts the connection and never answers.
    Hang = 2,
    /// `200` with a body that is not a JWKS.
    Garbage = 3,
}

/// Every process of the soak, and where it listens.
/// The replicas' revocation staleness bound (service-b's default): a
/// revocation is enforced by both within it, so the driver sends a revoked
/// token that long after.
pub(super) const REVOCATION_STALENESS: Duration = Duration::from_secs(1);

pub(super) struct Fleet {
    pub(super) redis: RedisServer,
    pub(super) op: OidcProvider,
    pub(super) a: Example,
    pub(super) b: [Option<Example>; 2],
    pub(super) b_ports: [u16; 2],
    pub(super) gateway: Example,
    pub(super) jwks_mode: Arc<AtomicU8>,
    pub(super) driver_key: Arc<SigningKey>,
    b_args: Vec<String>,
    logs: std::path::PathBuf,
    bins: std::path::PathBuf,
}

impl Fleet {
    /// Starts everything and waits until each is ready.
    pub(super) fn start(
        bins: &Path,
        logs: &Path,
        rotation_overlap_secs: u64,
    ) -> Result<Fleet, String> {
        let log = |name: &str| -> Result<Stdio, String> {
            Ok(std::fs::File::create(logs.join(name))
                .map_err(|e| e.to_string())?
                .into())
        };
        // As docs/OPERATIONS.md says to run it: an append-only file,
        // fsynced every second.
        let redis = RedisServer::start_with_fsync("everysec").ok_or("redis-server is needed")?;
        let gateway_key = logs.join("gateway-key.pem");
        let op = crate::demo::start_provider(&gateway_key)?;

        let (a_port, balancer) = (free_port(), free_port());
        let b_ports = [free_port(), free_port()];
        spawn_balancer(balancer, b_ports)?;
        let a_args = [
            "--issuer".to_owned(),
            A_ISS.to_owned(),
            "--call".to_owned(),
            format!("{B_AUD}=http://127.0.0.1:{balancer}"),
            "--danger-expose-tokens".to_owned(),
            "--rotation-overlap-secs".to_owned(),
            rotation_overlap_secs.to_string(),
        ];
        let a = Example::spawn_from(bins, a_port, "service-a", &a_args, log("service-a.log")?);
        wait_ready(a_port, "service-a", |r| r.status == 200)?;

        let jwks_mode = Arc::new(AtomicU8::new(JwksMode::Pass as u8));
        let jwks_port = spawn_jwks_proxy(a_port, jwks_mode.clone())?;
        let driver_key =
            Arc::new(SigningKey::generate(Algorithm::ES256).map_err(|e| e.to_string())?);
        let driver_port = spawn_static(json!({ "keys": [driver_key.public_jwk()] }))?;
        let b_args = vec![
            "--audience".to_owned(),
            B_AUD.to_owned(),
            "--trust".to_owned(),
            format!("{A_ISS}=http://127.0.0.1:{jwks_port}/jwks.json"),
            "--trust".to_owned(),
            format!("{DRIVER_ISS}=http://127.0.0.1:{driver_port}/jwks.json"),
            "--trust-oidc".to_owned(),
            op.issuer.clone(),
            "--redis".to_owned(),
            redis.url(),
            "--revocation-staleness-ms".to_owned(),
            REVOCATION_STALENESS.as_millis().to_string(),
            "--unknown-kid-cooldown-secs".to_owned(),
            "1".to_owned(),
        ];
        let gateway_args = [
            "--upstream".to_owned(),
            format!("http://127.0.0.1:{balancer}"),
            "--token-endpoint".to_owned(),
            op.token_endpoint(),
            "--client-id".to_owned(),
            "gateway".to_owned(),
            "--client-key".to_owned(),
            gateway_key.to_string_lossy().into_owned(),
            "--audience".to_owned(),
            B_AUD.to_owned(),
        ];
        let gateway = Example::spawn_from(
            bins,
            free_port(),
            "gateway",
            &gateway_args,
            log("gateway.log")?,
        );
        let mut fleet = Fleet {
            redis,
            op,
            a,
            b: [None, None],
            b_ports,
            gateway,
            jwks_mode,
            driver_key,
            b_args,
            logs: logs.to_path_buf(),
            bins: bins.to_path_buf(),
        };
        for replica in 0..2 {
            fleet.start_b(replica)?;
        }
        wait_ready(fleet.gateway.port(), "gateway", |r| r.status == 200)?;
        Ok(fleet)
    }

    /// Starts replica `i` of service-b (again, after a restart) and waits
    /// until it is ready.
    pub(super) fn start_b(&mut self, i: usize) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("service-b{}.log", i + 1)))
            .map_err(|e| e.to_string())?;
        let port = self.b_ports[i];
        self.b[i] = Some(Example::spawn_from(
            &self.bins,
            port,
            "service-b",
            &self.b_args,
            log.into(),
        ));
        wait_ready(port, "service-b", |r| r.json()["ready"] == true)
    }

    /// Stops replica `i` (its port refuses connections until `start_b`).
    pub(super) fn stop_b(&mut self, i: usize) {
        self.b[i] = None;
    }

    pub(super) fn set_jwks(&self, mode: JwksMode) {
        self.jwks_mode.store(mode as u8, Ordering::Release);
    }

    /// `(name, pid)` of every process now running.
    pub(super) fn processes(&self) -> Vec<(String, u32)> {
        let mut out = vec![
            ("service-a".to_owned(), self.a.pid()),
            ("gateway".to_owned(), self.gateway.pid()),
            ("redis-server".to_owned(), self.redis.pid()),
        ];
        for (i, b) in self.b.iter().enumerate() {
            if let Some(b) = b {
                out.push((format!("service-b{}", i + 1), b.pid()));
            }
        }
        if let Some(pid) = self.op.pid() {
            out.push(("oidc-provider".to_owned(), pid));
        }
        out
    }
}

/// A TCP balancer on `port` over the replicas: connections alternate
/// between them, and one the chosen replica refuses goes to the other, as
/// a load balancer with connect retries does.
fn spawn_balancer(port: u16, backends: [u16; 2]) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let next = AtomicUsize::new(0);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let first = next.fetch_add(1, Ordering::Relaxed) % 2;
            let upstream = [first, 1 - first]
                .iter()
                .find_map(|i| TcpStream::connect(("127.0.0.1", backends[*i])).ok());
            let Some(upstream) = upstream else { continue };
            pipe(client, upstream);
        }
    });
    Ok(())
}

/// Copies bytes both ways until either side closes.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Both);
            let _ = from.shutdown(std::net::Shutdown::Both);
        });
    };
    copy(a, b2);
    copy(b, a2);
}

/// Reads a request's head (the proxies answer GETs only).
fn read_head(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A's JWKS, through a proxy whose answer `mode` sets.
fn spawn_jwks_proxy(a_port: u16, mode: Arc<AtomicU8>) -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mode = mode.load(Ordering::Acquire);
            std::thread::spawn(move || {
                let mut stream = stream;
                read_head(&mut stream);
                match mode {
                    m if m == JwksMode::Error as u8 => {
                        respond(&mut stream, "500 Internal Server Error", "{}")
                    }
                    m if m == JwksMode::Hang as u8 => std::thread::sleep(Duration::from_secs(30)),
                    m if m == JwksMode::Garbage as u8 => {
                        respond(&mut stream, "200 OK", "<html>not a key set</html>")
                    }
                    _ => match http("GET", a_port, "/.well-known/jwks.json", &[], "") {
                        Ok(reply) if reply.status == 200 => {
                            respond(&mut stream, "200 OK", &reply.body)
                        }
                        _ => respond(&mut stream, "502 Bad Gateway", "{}"),
                    },
                }
            });
        }
    });
    Ok(port)
}

/// `body` at every path.
pub(crate) fn spawn_static(body: Value) -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let body = body.to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            read_head(&mut stream);
            respond(&mut stream, "200 OK", &body);
        }
    });
    Ok(port)
}
