//! Replay and revocation state on Redis: one node (`--redis`), a cluster
//! (`--redis-cluster`, repeatable) or a Sentinel service (`--redis-sentinel`
//! with `--redis-service`).

use std::time::Duration;

use svcauth_redis::{RedisConfig, RedisStores};

/// Where the state shared by all replicas lives.
#[derive(clap::Args, Debug)]
pub(crate) struct RedisArgs {
    /// Redis for replay and revocation state shared by all replicas
    /// (redis://host:port/db); without it (or --redis-cluster,
    /// --redis-sentinel), state is per process.
    #[arg(long, env = "SERVICE_B_REDIS", value_name = "URL", conflicts_with_all = ["redis_cluster", "redis_sentinel"])]
    redis: Option<String>,
    /// A seed node of a Redis Cluster (redis://host:port; repeatable).
    #[arg(
        long = "redis-cluster",
        env = "SERVICE_B_REDIS_CLUSTER",
        value_delimiter = ',',
        value_name = "URL",
        conflicts_with = "redis_sentinel"
    )]
    redis_cluster: Vec<String>,
    /// A sentinel watching the Redis primary (redis://host:port;
    /// repeatable); needs --redis-service.
    #[arg(
        long = "redis-sentinel",
        env = "SERVICE_B_REDIS_SENTINEL",
        value_delimiter = ',',
        value_name = "URL",
        requires = "redis_service"
    )]
    redis_sentinel: Vec<String>,
    /// The service name the sentinels monitor.
    #[arg(
        long = "redis-service",
        env = "SERVICE_B_REDIS_SERVICE",
        value_name = "NAME",
        requires = "redis_sentinel"
    )]
    redis_service: Option<String>,
    /// How long Redis gets per command, in milliseconds, before the request
    /// fails closed (503).
    #[arg(
        long,
        env = "SERVICE_B_REDIS_TIMEOUT",
        value_name = "MS",
        default_value_t = 50
    )]
    redis_timeout_ms: u64,
    /// The revocation mirror's staleness bound, in milliseconds: a
    /// revocation written on any replica is enforced here within it, and
    /// a mirror that has not heard from Redis for longer fails closed
    /// (503) on revocation-checked requests.
    #[arg(
        long = "revocation-staleness-ms",
        env = "SERVICE_B_REVOCATION_STALENESS_MS",
        value_name = "MS",
        default_value_t = 1000
    )]
    revocation_staleness_ms: u64,
    /// Accept a bound token only once this many Redis replicas hold its id
    /// (one node or Sentinel): no token is accepted twice across a failover,
    /// at the price of 503s while fewer replicas answer.
    #[arg(
        long = "redis-replay-replica-acks",
        env = "SERVICE_B_REDIS_REPLAY_REPLICA_ACKS",
        value_name = "N",
        default_value_t = 0
    )]
    redis_replay_replica_acks: usize,
}

impl RedisArgs {
    /// The stores, when Redis is configured: connected now if Redis is up;
    /// otherwise the service starts anyway and fails closed (503) on the
    /// requests that need Redis until it is back.
    pub(crate) async fn stores(&self) -> Result<Option<RedisStores>, String> {
        let config = if let Some(url) = &self.redis {
            RedisConfig::new(url)
        } else if !self.redis_cluster.is_empty() {
            RedisConfig::cluster(&self.redis_cluster)
        } else if let Some(service) = &self.redis_service {
            RedisConfig::sentinel(&self.redis_sentinel, service)
        } else {
            return Ok(None);
        };
        let config = config
            .timeout(Duration::from_millis(self.redis_timeout_ms))
            .revocation_staleness(Duration::from_millis(self.revocation_staleness_ms))
            .replay_replica_acks(self.redis_replay_replica_acks);
        Ok(Some(match RedisStores::connect(config.clone()).await {
            Ok(stores) => stores,
            Err(e) => {
                tracing::warn!(error = %e, "Redis unreachable at start; replay-protected and revocation-checked requests answer 503 until it is back");
                RedisStores::new(config).map_err(|e| format!("--redis: {e}"))?
            }
        }))
    }
}
