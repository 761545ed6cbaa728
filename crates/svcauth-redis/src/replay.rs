//! [`RedisReplayStore`]: single use of bound tokens across all replicas.

use std::fmt;
use std::sync::Arc;

use svcauth_verify::{ReplayStore, StoreFuture};

use crate::Shared;

/// Single use of bound tokens across all replicas: a token's id is stored
/// with `SET key 1 NX PX <until exp>`, so of all replicas exactly one
/// accepts it. One key per id, so on a cluster ids spread over every slot.
#[derive(Clone)]
pub struct RedisReplayStore {
    pub(crate) shared: Arc<Shared>,
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
            if self.shared.replay_acks == 0 {
                let mut set = redis::cmd("SET");
                set.arg(&key).arg(1).arg("NX").arg("PX").arg(ttl_ms);
                let answer: Option<String> = self
                    .shared
                    .run("SET NX", self.shared.connection.query(&set))
                    .await?;
                return Ok(answer.is_some());
            }
            // The id must be on the replicas too before the token is
            // accepted: a failover would otherwise forget it.
            let wait_ms = (self.shared.timeout().as_millis() / 2).max(1) as u64;
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms);
            pipe.cmd("WAIT").arg(self.shared.replay_acks).arg(wait_ms);
            let (set, acks): (Option<String>, usize) = self
                .shared
                .run("SET NX + WAIT", self.shared.connection.query_pipe(&pipe))
                .await?;
            if acks < self.shared.replay_acks {
                return Err(svcauth_verify::StoreError(format!(
                    "the id reached {acks} of {} replicas in time",
                    self.shared.replay_acks
                )));
            }
            Ok(set.is_some())
        })
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisReplayStore")
    }
}
