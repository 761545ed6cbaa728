//! [`RedisCluster`] and [`RedisSentinel`]: the deployments teams run for
//! availability, on loopback, made by the test that needs them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, skip_or_fail};

/// One redis-server process of a deployment, killed on drop.
struct Node {
    child: Option<Child>,
    port: u16,
}

impl Node {
    fn spawn(port: u16, dir: &std::path::Path, args: &[String]) -> Node {
        let child = Command::new("redis-server")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        assert!(wait_for_port(port), "redis-server on {port} did not start");
        Node {
            child: Some(child),
            port,
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until redis-server on `port` takes connections (5 s at most);
/// whether it does.
pub(crate) fn wait_for_port(port: u16) -> bool {
    for _ in 0..250 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok()
        && Command::new("redis-cli").arg("--version").output().is_ok()
}

fn temp_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "svcauth-{kind}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("the temp dir is writable");
    dir
}

/// `redis-cli -p port args...`, its output.
fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn base_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A Redis Cluster of three masters, each with `replicas` replicas
/// (`redis-server --cluster-enabled yes`, then `redis-cli --cluster
/// create`), removed on drop.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts the nodes and waits until the cluster reports `ok`; `None`
    /// (after saying why) when redis-server is missing and peers are not
    /// required.
    pub fn start(replicas: usize) -> Option<RedisCluster> {
        if !installed() {
            return skip_or_fail("redis-server and redis-cli (cargo xtask test installs them)");
        }
        let dir = temp_dir("cluster");
        let mut nodes = Vec::new();
        for _ in 0..3 * (1 + replicas) {
            let port = free_port();
            let mut args = base_args(port);
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    "1500",
                ]
                .map(str::to_owned),
            );
            nodes.push(Node::spawn(port, &dir, &args));
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = RedisCluster { nodes, dir };
        cluster.wait_until_ok(Duration::from_secs(20));
        Some(cluster)
    }

    /// Waits until every live node says `cluster_state:ok`.
    pub fn wait_until_ok(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let ok = self
                .nodes
                .iter()
                .filter(|n| n.child.is_some())
                .all(|n| cli(n.port, &["cluster", "info"]).contains("cluster_state:ok"));
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster did not reach state ok within {within:?}");
    }

    /// `redis://127.0.0.1:<port>` of every node, as seeds.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The port of the master that holds `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = cli(self.nodes[0].port, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("a slot");
        let shards = cli(self.nodes[0].port, &["cluster", "slots"]);
        // redis-cli prints each range as: start, end, then the master's ip and port.
        let lines: Vec<&str> = shards.lines().map(str::trim).collect();
        for window in lines.windows(4) {
            if let (Ok(start), Ok(end)) = (window[0].parse::<u16>(), window[1].parse::<u16>())
                && (start..=end).contains(&slot)
                && window[2] == "127.0.0.1"
                && let Ok(port) = window[3].parse()
            {
                return port;
            }
        }
        panic!("no master for slot {slot} in:\n{shards}");
    }

    /// Kills the node on `port` (its replica, if any, is promoted after the
    /// node timeout).
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            node.kill();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A primary, one replica and one sentinel watching them (quorum 1, the
/// primary judged down after 1 s), removed on drop.
pub struct RedisSentinel {
    primary: Node,
    replica: Node,
    sentinel: Node,
    dir: PathBuf,
}

/// The service name the sentinel monitors.
pub const SENTINEL_SERVICE: &str = "svcauth-test";

impl RedisSentinel {
    /// Starts the three and waits until the sentinel knows the replica.
    pub fn start() -> Option<RedisSentinel> {
        if !installed() {
            return skip_or_fail("redis-server and redis-cli (cargo xtask test installs them)");
        }
        let dir = temp_dir("sentinel");
        let (p, r, s) = (free_port(), free_port(), free_port());
        let primary = Node::spawn(p, &dir, &base_args(p));
        let mut replica_args = base_args(r);
        replica_args.extend(["--replicaof", "127.0.0.1", &p.to_string()].map(str::to_owned));
        let replica = Node::spawn(r, &dir, &replica_args);
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {s}\nbind 127.0.0.1\nsentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {p} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
                 sentinel failover-timeout {SENTINEL_SERVICE} 3000\n\
                 sentinel parallel-syncs {SENTINEL_SERVICE} 1\n"
            ),
        )
        .expect("the conf is writable");
        let sentinel = Node::spawn(s, &dir, &[conf.display().to_string(), "--sentinel".into()]);
        let set = RedisSentinel {
            primary,
            replica,
            sentinel,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !cli(s, &["sentinel", "replicas", SENTINEL_SERVICE]).contains(&r.to_string())
            || !cli(p, &["info", "replication"]).contains("state=online")
        {
            assert!(Instant::now() < deadline, "the replica never came online");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(set)
    }

    /// `redis://127.0.0.1:<port>` of the sentinel.
    pub fn sentinel_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.sentinel.port)
    }

    /// The port of the primary the sentinel names now.
    pub fn primary_port(&self) -> u16 {
        let answer = cli(
            self.sentinel.port,
            &["sentinel", "get-master-addr-by-name", SENTINEL_SERVICE],
        );
        answer
            .lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .expect("a primary")
    }

    /// Kills the first primary: the sentinel promotes the replica.
    pub fn kill_primary(&mut self) {
        self.primary.kill();
    }

    /// Kills the replica (a primary without replicas).
    pub fn kill_replica(&mut self) {
        self.replica.kill();
    }

    /// The replica's port (the primary after a failover).
    pub fn replica_port(&self) -> u16 {
        self.replica.port
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.sentinel.kill();
        self.replica.kill();
        self.primary.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
