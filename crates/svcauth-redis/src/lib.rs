//! svcauth's replay and revocation state on Redis, shared by every replica
//! of a service.
//!
//! One Redis node, a Redis Cluster ([`RedisConfig::cluster`]) or a
//! Sentinel-watched primary ([`RedisConfig::sentinel`]).
//!
//! * [`RedisReplayStore`]: a bound token's id is stored with
//!   `SET key 1 NX PX <until exp>`, so of all replicas exactly one accepts it.
//! * [`RedisRevocationStore`]: a deny-list of token ids (kept until the
//!   token would expire anyway) and of signing keys. Each replica keeps a
//!   mirror of it, fed by a Redis stream and resynchronised after every
//!   reconnect, so a verification costs no Redis round trip; a revocation
//!   written on any replica is enforced by all within the staleness bound
//!   (default 1 s, [`RedisConfig::revocation_staleness`]).
//!
//! Failure policy, explicit: when Redis does not answer within the timeout
//! (default 50 ms), replay-protected requests fail closed (the verifier
//! answers 503); when the mirror has not heard from Redis within the
//! staleness bound, revocation-checked requests fail closed too unless
//! [`RedisConfig::revocation_fails_open`] says otherwise. A Redis outage never
//! admits a replayed token. Connections are re-established by redis-rs (for
//! Sentinel, at the primary the sentinels name then); a service can start
//! while Redis is down.
//!
//! Keys are `<prefix>replay:<sha256>` (one per id, spread over a
//! cluster's slots) and `<prefix>{revocations}:list` and
//! `<prefix>{revocations}:feed` (one hash slot, written in one transaction);
//! ids are base64url SHA-256 of issuer and id, so token contents never
//! appear in Redis in clear.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use svcauth_redis::{RedisConfig, RedisStores};
//! use svcauth_verify::Verifier;
//! # let keys = svcauth_jwks::KeySource::fixed(svcauth_jwks::KeySet::empty());
//!
//! let stores = RedisStores::connect(RedisConfig::new("redis://127.0.0.1:6379/")).await?;
//! let verifier = Verifier::builder("https://b.internal")
//!     .trust("https://a.internal", keys)
//!     .replay_store(Arc::new(stores.replay()))
//!     .revocation_store(Arc::new(stores.revocation()))
//!     .build()?;
//! stores.revocation().revoke_jti("https://a.internal", "leaked-jti", 1_900_000_000).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use svcauth_core::{SharedClock, b64};
use svcauth_verify::StoreError;

mod config;
mod connection;
mod mirror;
mod replay;
mod revocation;

pub use config::{DEFAULT_STALENESS, DEFAULT_TIMEOUT, RedisConfig};
pub use replay::RedisReplayStore;
pub use revocation::RedisRevocationStore;

use connection::Connection;
use mirror::{Keys, Mirror};

/// Redis could not be configured or did not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL is not a Redis URL.
    #[error("invalid Redis URL: {0}")]
    Url(String),
    /// A command failed or timed out.
    #[error("Redis command failed: {0}")]
    Command(String),
    /// The configuration asks for something the deployment cannot do.
    #[error("{0}")]
    Config(&'static str),
    /// No tokio runtime to run the revocation mirror on.
    #[error("svcauth-redis needs a tokio runtime (the revocation mirror runs on it)")]
    NoRuntime,
}

/// Base64url SHA-256 of `parts` joined by `\n`: how an issuer and an id
/// appear in Redis, so token contents never do in clear.
pub(crate) fn hashed(parts: &[&str]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parts.join("\n").as_bytes());
    b64::encode(digest)
}

/// What both stores share: the connection, the keys, the timeout.
pub(crate) struct Shared {
    pub(crate) connection: Connection,
    pub(crate) keys: Keys,
    prefix: String,
    timeout: Duration,
    pub(crate) replay_acks: usize,
    pub(crate) clock: SharedClock,
}

impl Shared {
    /// `<prefix><kind>:<hashed id>`.
    pub(crate) fn key(&self, kind: &str, parts: &[&str]) -> String {
        format!("{}{kind}:{}", self.prefix, hashed(parts))
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) async fn run<T>(
        &self,
        what: &str,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError(format!("redis {what}: {e}"))),
            Err(_) => Err(StoreError(format!(
                "redis {what}: no answer within {:?}",
                self.timeout
            ))),
        }
    }
}

/// Both stores, on one connection, with this replica's revocation mirror.
#[derive(Clone)]
pub struct RedisStores {
    shared: Arc<Shared>,
    mirror: Arc<Mirror>,
    revocation_fails_open: bool,
}

impl RedisStores {
    /// Stores for `config`. Connects lazily: a service starts even when Redis
    /// is down, and requests that need it fail closed until it is back. The
    /// revocation mirror starts following Redis at once, on the current
    /// tokio runtime (one dedicated connection for its blocking reads).
    pub fn new(config: RedisConfig) -> Result<Self, RedisStoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisStoreError::NoRuntime);
        }
        if config.replay_acks > 0 && matches!(config.topology, config::Topology::Cluster(_)) {
            return Err(RedisStoreError::Config(
                "replay_replica_acks is for one node or Sentinel: WAIT names no key, so a cluster cannot route it to the id's master",
            ));
        }
        let connection = Connection::open(&config.topology, config.timeout)?;
        let block = (config.staleness / 4).max(Duration::from_millis(20));
        let feed = Connection::open(
            &config.topology,
            block + config.timeout + Duration::from_millis(250),
        )?;
        let keys = Keys::new(&config.prefix);
        let mirror = Mirror::new(config.staleness, config.clock.clone());
        Mirror::follow(&mirror, feed, keys.clone());
        Ok(RedisStores {
            shared: Arc::new(Shared {
                connection,
                keys,
                prefix: config.prefix,
                timeout: config.timeout,
                replay_acks: config.replay_acks,
                clock: config.clock,
            }),
            mirror,
            revocation_fails_open: config.revocation_fails_open,
        })
    }

    /// Stores for `config`, connected now: waits (up to the staleness bound,
    /// at least 250 ms) for Redis to answer a PING and for the revocation
    /// mirror's first synchronisation. Use this at start-up; requests then
    /// need not wait for either.
    pub async fn connect(config: RedisConfig) -> Result<Self, RedisStoreError> {
        let wait = config
            .staleness
            .max(config.timeout)
            .max(Duration::from_millis(250));
        let stores = Self::new(config)?;
        let command = redis::cmd("PING");
        let ping = stores.shared.connection.query::<String>(&command);
        match tokio::time::timeout(wait, ping).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(RedisStoreError::Command(e.to_string())),
            Err(_) => {
                return Err(RedisStoreError::Command(format!(
                    "no answer to PING within {wait:?}"
                )));
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        while !stores.mirror.fresh() {
            if tokio::time::Instant::now() >= deadline {
                return Err(RedisStoreError::Command(format!(
                    "the revocation mirror did not synchronise within {wait:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(stores)
    }

    /// The replay store.
    pub fn replay(&self) -> RedisReplayStore {
        RedisReplayStore {
            shared: self.shared.clone(),
        }
    }

    /// The revocation store.
    pub fn revocation(&self) -> RedisRevocationStore {
        RedisRevocationStore {
            shared: self.shared.clone(),
            mirror: self.mirror.clone(),
            fails_open: self.revocation_fails_open,
        }
    }
}

impl fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStores")
            .field("prefix", &self.shared.prefix)
            .field("mirror_current", &self.mirror.fresh())
            .finish_non_exhaustive()
    }
}
