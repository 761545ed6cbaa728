//! svcauth's replay and revocation state on Redis, shared by every replica
//! of a service.
//!
//! * [`RedisReplayStore`]: a bound token's id is stored with
//!   `SET key 1 NX PX <until exp>`, so of all replicas exactly one accepts it.
//! * [`RedisRevocationStore`]: a deny-list of token ids (kept until the
//!   token would expire anyway) and of signing keys, checked with one
//!   `EXISTS` round trip.
//!
//! Failure policy, explicit: when Redis does not answer within the timeout
//! (default 50 ms), replay-protected requests fail closed (the verifier
//! answers 503), and revocation checks fail closed too unless
//! [`RedisConfig::revocation_fails_open`] says otherwise. A Redis outage never
//! admits a replayed token. The connection is re-established by redis-rs's
//! connection manager; a service can start while Redis is down.
//!
//! Keys are `<prefix>replay:<sha256>`, `<prefix>revoked:jti:<sha256>` and
//! `<prefix>revoked:kid:<sha256>` (base64url SHA-256 of issuer and id), so
//! token contents never appear in Redis in clear.
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
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use svcauth_core::{SharedClock, b64, system_clock};
use svcauth_verify::{ReplayStore, RevocationQuery, RevocationStore, StoreError, StoreFuture};

/// Default time Redis has to answer: 50 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

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
}

/// Where Redis is and how to treat it.
#[derive(Clone)]
#[must_use]
pub struct RedisConfig {
    url: String,
    prefix: String,
    timeout: Duration,
    revocation_fails_open: bool,
    clock: SharedClock,
}

impl RedisConfig {
    /// Redis at `url` (`redis://host:port/db`), keys prefixed `svcauth:`.
    pub fn new(url: &str) -> Self {
        RedisConfig {
            url: url.to_owned(),
            prefix: "svcauth:".to_owned(),
            timeout: DEFAULT_TIMEOUT,
            revocation_fails_open: false,
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

    /// When Redis does not answer, treat tokens as not revoked (accept them)
    /// instead of failing closed with 503. Replay protection never fails open.
    pub fn revocation_fails_open(mut self, open: bool) -> Self {
        self.revocation_fails_open = open;
        self
    }

    /// The clock (for replay-entry lifetimes).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisConfig")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("revocation_fails_open", &self.revocation_fails_open)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Shared {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    clock: SharedClock,
}

impl Shared {
    /// `<prefix><kind>:<base64url sha256(parts joined by \n)>`.
    fn key(&self, kind: &str, parts: &[&str]) -> String {
        let joined = parts.join("\n");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, joined.as_bytes());
        format!("{}{kind}:{}", self.prefix, b64::encode(digest))
    }

    async fn run<T>(
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

/// Both stores on one connection.
#[derive(Clone)]
pub struct RedisStores {
    shared: Shared,
    revocation_fails_open: bool,
}

impl RedisStores {
    /// Stores for `config`. Connects lazily: a service starts even when Redis
    /// is down, and requests that need it fail closed until it is back.
    pub fn new(config: RedisConfig) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| RedisStoreError::Url(e.to_string()))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.timeout))
            .set_connection_timeout(Some(config.timeout.max(Duration::from_millis(250))))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| RedisStoreError::Url(e.to_string()))?;
        Ok(RedisStores {
            shared: Shared {
                connection,
                prefix: config.prefix,
                timeout: config.timeout,
                clock: config.clock,
            },
            revocation_fails_open: config.revocation_fails_open,
        })
    }

    /// Stores for `config`, connected now: waits (up to the connection
    /// timeout, at least 250 ms) for Redis to answer a PING. Use this at
    /// start-up; the first commands then need not also connect.
    pub async fn connect(config: RedisConfig) -> Result<Self, RedisStoreError> {
        let stores = Self::new(config)?;
        let mut connection = stores.shared.connection.clone();
        let wait = stores.shared.timeout.max(Duration::from_millis(250));
        match tokio::time::timeout(
            wait,
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await
        {
            Ok(Ok(_)) => Ok(stores),
            Ok(Err(e)) => Err(RedisStoreError::Command(e.to_string())),
            Err(_) => Err(RedisStoreError::Command(format!(
                "no answer to PING within {wait:?}"
            ))),
        }
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
            fails_open: self.revocation_fails_open,
        }
    }
}

impl fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStores")
            .field("prefix", &self.shared.prefix)
            .finish_non_exhaustive()
    }
}

/// Single use of bound tokens across all replicas.
#[derive(Clone)]
pub struct RedisReplayStore {
    shared: Shared,
}

impl ReplayStore for RedisReplayStore {
    fn first_use<'a>(&'a self, id: &'a str, expires_at: u64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let key = self.shared.key("replay", &[id]);
            let now_ms = self.shared.clock.now().as_millis() as u64;
            // At least a second, so an entry outlives any clock skew within it.
            let ttl_ms = expires_at
                .saturating_mul(1000)
                .saturating_sub(now_ms)
                .max(1000);
            let mut connection = self.shared.connection.clone();
            let options = redis::SetOptions::default()
                .conditional_set(redis::ExistenceCheck::NX)
                .with_expiration(redis::SetExpiry::PX(ttl_ms));
            let set: Option<String> = self
                .shared
                .run("SET NX", connection.set_options(&key, 1, options))
                .await?;
            Ok(set.is_some())
        })
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisReplayStore")
    }
}

/// A deny-list of token ids and signing keys, shared by all replicas.
#[derive(Clone)]
pub struct RedisRevocationStore {
    shared: Shared,
    fails_open: bool,
}

impl RedisRevocationStore {
    /// Revokes the token `jti` of `iss` until `until` (its `exp`, seconds
    /// since the Unix epoch): after that it is expired anyway.
    pub async fn revoke_jti(&self, iss: &str, jti: &str, until: u64) -> Result<(), StoreError> {
        let key = self.shared.key("revoked:jti", &[iss, jti]);
        let mut connection = self.shared.connection.clone();
        let options =
            redis::SetOptions::default().with_expiration(redis::SetExpiry::EXAT(until.max(1)));
        let _: Option<String> = self
            .shared
            .run("SET", connection.set_options(&key, 1, options))
            .await?;
        Ok(())
    }

    /// Revokes every token of `iss` signed by key `kid`, until `until` if
    /// given (set it past the key's last token expiry), else for good.
    pub async fn revoke_key(
        &self,
        iss: &str,
        kid: &str,
        until: Option<u64>,
    ) -> Result<(), StoreError> {
        let key = self.shared.key("revoked:kid", &[iss, kid]);
        let mut connection = self.shared.connection.clone();
        let options = match until {
            Some(until) => {
                redis::SetOptions::default().with_expiration(redis::SetExpiry::EXAT(until.max(1)))
            }
            None => redis::SetOptions::default(),
        };
        let _: Option<String> = self
            .shared
            .run("SET", connection.set_options(&key, 1, options))
            .await?;
        Ok(())
    }
}

impl RevocationStore for RedisRevocationStore {
    fn is_revoked<'a>(&'a self, token: RevocationQuery<'a>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut keys = Vec::with_capacity(2);
            if let Some(jti) = token.jti {
                keys.push(self.shared.key("revoked:jti", &[token.iss, jti]));
            }
            if let Some(kid) = token.kid {
                keys.push(self.shared.key("revoked:kid", &[token.iss, kid]));
            }
            if keys.is_empty() {
                return Ok(false);
            }
            let mut connection = self.shared.connection.clone();
            match self
                .shared
                .run("EXISTS", connection.exists::<_, u64>(&keys))
                .await
            {
                Ok(found) => Ok(found > 0),
                Err(error) if self.fails_open => {
                    tracing::warn!(%error, "revocation store unavailable; failing open as configured");
                    Ok(false)
                }
                Err(error) => Err(error),
            }
        })
    }
}

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("fails_open", &self.fails_open)
            .finish()
    }
}
