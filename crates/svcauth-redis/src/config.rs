//! [`RedisConfig`]: where Redis is (one node, a cluster, or a Sentinel
//! service) and how svcauth treats it.

use std::fmt;
use std::time::Duration;

use svcauth_core::{SharedClock, system_clock};

/// Default time Redis has to answer: 50 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// Default staleness bound of the revocation mirror: 1 s.
pub const DEFAULT_STALENESS: Duration = Duration::from_secs(1);

/// How Redis is deployed.
#[derive(Clone)]
pub(crate) enum Topology {
    /// One node (or a proxy in front of several).
    Single(String),
    /// A Redis Cluster, found through these seed nodes.
    Cluster(Vec<String>),
    /// A primary and its replicas watched by Sentinel: the sentinels' URLs
    /// and the monitored service's name.
    Sentinel {
        sentinels: Vec<String>,
        service: String,
    },
}

/// Where Redis is and how to treat it.
#[derive(Clone)]
#[must_use]
pub struct RedisConfig {
    pub(crate) topology: Topology,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) revocation_fails_open: bool,
    pub(crate) staleness: Duration,
    pub(crate) replay_acks: usize,
    pub(crate) clock: SharedClock,
}

impl RedisConfig {
    /// One Redis at `url` (`redis://host:port/db`), keys prefixed `svcauth:`.
    pub fn new(url: &str) -> Self {
        Self::with(Topology::Single(url.to_owned()))
    }

    /// A Redis Cluster, discovered from `seeds` (`redis://host:port`, one or
    /// more of its nodes). Keys that must meet in one command share a hash
    /// tag, so every command goes to one slot.
    pub fn cluster<S: AsRef<str>>(seeds: &[S]) -> Self {
        Self::with(Topology::Cluster(
            seeds.iter().map(|s| s.as_ref().to_owned()).collect(),
        ))
    }

    /// The primary of the Sentinel service `service`, found through
    /// `sentinels` (`redis://host:port` of each sentinel), and found again
    /// after a failover.
    pub fn sentinel<S: AsRef<str>>(sentinels: &[S], service: &str) -> Self {
        Self::with(Topology::Sentinel {
            sentinels: sentinels.iter().map(|s| s.as_ref().to_owned()).collect(),
            service: service.to_owned(),
        })
    }

    fn with(topology: Topology) -> Self {
        RedisConfig {
            topology,
            prefix: "svcauth:".to_owned(),
            timeout: DEFAULT_TIMEOUT,
            revocation_fails_open: false,
            staleness: DEFAULT_STALENESS,
            replay_acks: 0,
            clock: system_clock(),
        }
    }

    /// The key prefix (default `svcauth:`), to share one Redis between services.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// How long Redis has to answer a command (default 50 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// When the revocation mirror has lost its feed for longer than the
    /// staleness bound, treat tokens as not revoked (accept them) instead of
    /// failing closed with 503. Replay protection never fails open.
    pub fn revocation_fails_open(mut self, open: bool) -> Self {
        self.revocation_fails_open = open;
        self
    }

    /// The staleness bound of the revocation mirror (default 1 s, at least
    /// 100 ms): a revocation written on any replica is enforced by every
    /// replica within it, and a mirror that has not heard from Redis for
    /// that long answers with the failure policy.
    pub fn revocation_staleness(mut self, bound: Duration) -> Self {
        self.staleness = bound.max(Duration::from_millis(100));
        self
    }

    /// Accept a bound token only once `replicas` replicas hold its id
    /// (`WAIT` after the `SET NX`), one node or Sentinel only. Redis
    /// replicates asynchronously: without this, an id the primary took just
    /// before dying may be missing on the promoted replica, and the token
    /// accepted once more. With it, a replica down makes replay-protected
    /// requests fail closed (503) until it is back. Default 0.
    pub fn replay_replica_acks(mut self, replicas: usize) -> Self {
        self.replay_acks = replicas;
        self
    }

    /// The clock (for entry lifetimes and staleness).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry a password: only the kind of deployment is shown.
        let topology = match &self.topology {
            Topology::Single(_) => "single",
            Topology::Cluster(_) => "cluster",
            Topology::Sentinel { .. } => "sentinel",
        };
        f.debug_struct("RedisConfig")
            .field("topology", &topology)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("revocation_fails_open", &self.revocation_fails_open)
            .field("staleness", &self.staleness)
            .finish_non_exhaustive()
    }
}
