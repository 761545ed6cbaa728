//! [`RedisRevocationStore`]: revocations written to Redis, checked against
//! this replica's mirror of them.

use std::fmt;
use std::sync::Arc;

use svcauth_verify::{
    RevocationGeneration, RevocationQuery, RevocationStore, StoreError, StoreFuture,
};

use crate::Shared;
use crate::mirror::{FEED_LENGTH, Mirror};

/// A deny-list of token ids and signing keys, shared by all replicas: each
/// replica checks its own mirror, so a verification costs no Redis
/// round trip, and a revocation written anywhere is enforced everywhere
/// within the staleness bound ([`RedisConfig::revocation_staleness`](crate::RedisConfig::revocation_staleness)).
#[derive(Clone)]
pub struct RedisRevocationStore {
    pub(crate) shared: Arc<Shared>,
    pub(crate) mirror: Arc<Mirror>,
    pub(crate) fails_open: bool,
}

/// The mirror's member for a revoked id: kind and a SHA-256 of issuer and
/// id, so token contents never appear in Redis in clear.
fn member(kind: &str, iss: &str, id: &str) -> String {
    format!("{kind}:{}", crate::hashed(&[iss, id]))
}

impl RedisRevocationStore {
    /// Revokes the token `jti` of `iss` until `until` (its `exp`, seconds
    /// since the Unix epoch): after that it is expired anyway.
    pub async fn revoke_jti(&self, iss: &str, jti: &str, until: u64) -> Result<(), StoreError> {
        self.revoke(member("jti", iss, jti), Some(until)).await
    }

    /// Revokes every token of `iss` signed by key `kid`, until `until` if
    /// given (set it past the key's last token expiry), else for good.
    pub async fn revoke_key(
        &self,
        iss: &str,
        kid: &str,
        until: Option<u64>,
    ) -> Result<(), StoreError> {
        self.revoke(member("kid", iss, kid), until).await
    }

    /// One transaction on one slot: the entry into the list, expired
    /// entries out of it, and the entry onto the feed.
    async fn revoke(&self, member: String, until: Option<u64>) -> Result<(), StoreError> {
        let keys = &self.shared.keys;
        let score = until.map_or_else(|| "+inf".to_owned(), |u| u.to_string());
        let until = until.map_or_else(|| u64::MAX.to_string(), |u| u.to_string());
        let now = self.shared.clock.now_secs();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZADD")
            .arg(&keys.list)
            .arg(&score)
            .arg(&member)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&keys.list)
            .arg("-inf")
            .arg(format!("({now}"))
            .ignore()
            .cmd("XADD")
            .arg(&keys.feed)
            .arg("MAXLEN")
            .arg("~")
            .arg(FEED_LENGTH)
            .arg("*")
            .arg("m")
            .arg(&member)
            .arg("u")
            .arg(&until)
            .ignore();
        self.shared
            .run("revoke", self.shared.connection.query_pipe::<()>(&pipe))
            .await
    }

    /// Whether this replica's mirror is current (confirmed by Redis within
    /// the staleness bound).
    pub fn mirror_is_current(&self) -> bool {
        self.mirror.fresh()
    }
}

impl RevocationStore for RedisRevocationStore {
    fn is_revoked<'a>(&'a self, token: RevocationQuery<'a>) -> StoreFuture<'a, bool> {
        let answer = if self.mirror.fresh() {
            let by_jti = token
                .jti
                .is_some_and(|jti| self.mirror.contains(&member("jti", token.iss, jti)));
            let by_kid = token
                .kid
                .is_some_and(|kid| self.mirror.contains(&member("kid", token.iss, kid)));
            Ok(by_jti || by_kid)
        } else if self.fails_open {
            tracing::warn!("revocation mirror stale; failing open as configured");
            Ok(false)
        } else {
            Err(StoreError(format!(
                "the revocation mirror has not heard from Redis within {:?}",
                self.mirror.bound()
            )))
        };
        Box::pin(std::future::ready(answer))
    }

    fn generation(&self) -> Option<Arc<RevocationGeneration>> {
        Some(self.mirror.generation.clone())
    }
}

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("fails_open", &self.fails_open)
            .field("mirror_current", &self.mirror.fresh())
            .finish()
    }
}
