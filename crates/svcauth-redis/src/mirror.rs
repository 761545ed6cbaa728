//! The revocation mirror: each replica's copy of the deny-list, so that a
//! verification asks Redis nothing.
//!
//! Redis holds the deny-list twice, in one hash slot (the `{revocations}`
//! hash tag, so both are written in one transaction, on a cluster too): a
//! sorted set (member = hashed id, score = until when) that is the list
//! itself, and a stream of the same entries that is the change feed. A
//! mirror loads the set (full resynchronisation), then reads the stream
//! from the entry before it loaded, blocking a quarter of the staleness
//! bound at a time. Every answer from Redis, entries or none, confirms
//! the copy as of when the read was sent; a copy not confirmed within the
//! bound is stale, and its store answers with the failure policy. After any
//! error the mirror loads the set again: nothing published while it was cut
//! off is missed, whatever the stream kept.
//!
//! Why a stream and not pub/sub or keyspace notifications: both are
//! fire-and-forget (a message sent while a replica reconnects is lost, and
//! only the resync would bring it), and keyspace notifications stay on the
//! node that holds the key, so a cluster replica would have to listen to
//! every node. A stream is read from a position, in order, on one node, and
//! its `XREAD` doubles as the heartbeat that bounds staleness.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use redis::Value;
use svcauth_core::SharedClock;
use svcauth_verify::RevocationGeneration;

use crate::connection::Connection;

/// Stream entries kept (approximately): a replica away longer resyncs from
/// the set anyway.
pub(crate) const FEED_LENGTH: usize = 100_000;

/// The keys of the deny-list and its feed.
#[derive(Clone)]
pub(crate) struct Keys {
    pub(crate) list: String,
    pub(crate) feed: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            list: format!("{prefix}{{revocations}}:list"),
            feed: format!("{prefix}{{revocations}}:feed"),
        }
    }
}

/// This replica's copy of the deny-list.
pub(crate) struct Mirror {
    /// Hashed id → until when (seconds; `u64::MAX`: for good).
    entries: RwLock<HashMap<String, u64>>,
    pub(crate) generation: Arc<RevocationGeneration>,
    staleness: Duration,
    clock: SharedClock,
}

impl Mirror {
    pub(crate) fn new(staleness: Duration, clock: SharedClock) -> Arc<Self> {
        Arc::new(Mirror {
            entries: RwLock::new(HashMap::new()),
            generation: Arc::new(RevocationGeneration::stale()),
            staleness,
            clock,
        })
    }

    fn now_ms(&self) -> u64 {
        self.clock.now().as_millis() as u64
    }
    /// Whether the copy is current now.
    pub(crate) fn fresh(&self) -> bool {
        self.generation.current(self.now_ms()).is_some()
    }

    /// The staleness bound.
    pub(crate) fn bound(&self) -> Duration {
        self.staleness
    }

    pub(crate) fn contains(&self, member: &str) -> bool {
        let now = self.clock.now_secs();
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(member)
            .is_some_and(|until| *until >= now)
    }

    fn apply(&self, entries: impl IntoIterator<Item = (String, u64)>, replace: bool) {
        let now = self.clock.now_secs();
        let mut map = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if replace {
            map.clear();
        }
        map.retain(|_, until| *until >= now);
        map.extend(entries);
        drop(map);
        self.generation.advance();
    }

    /// Confirmed as of `sent_ms`, the moment the answering read was sent.
    fn confirm(&self, sent_ms: u64) {
        self.generation
            .confirm_until(sent_ms.saturating_add(self.staleness.as_millis() as u64));
    }

    /// Keeps the copy in step with Redis until every store is dropped:
    /// the task holds the mirror only while it applies an answer, never
    /// across a wait.
    pub(crate) fn follow(mirror: &Arc<Mirror>, feed: Connection, keys: Keys) {
        let weak = Arc::downgrade(mirror);
        let clock = mirror.clock.clone();
        let block = (mirror.staleness / 4).max(Duration::from_millis(20));
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                match resync_then_read(&weak, &clock, &feed, &keys, block).await {
                    Ok(()) => return,
                    Err(error) => {
                        failures += 1;
                        if failures == 1 || failures.is_power_of_two() {
                            tracing::warn!(%error, failures, "revocation feed lost; resynchronising");
                        }
                    }
                }
                // Backing off, but never longer than a read would block: a
                // Redis that is back is found within a quarter of the bound.
                let backoff = Duration::from_millis(50 * u64::from(failures.min(10)));
                tokio::time::sleep(backoff.min(block)).await;
                if weak.strong_count() == 0 {
                    return;
                }
            }
        });
    }
}

/// Loads the list, then follows the feed until an error (or until the
/// mirror is dropped: `Ok`).
async fn resync_then_read(
    weak: &Weak<Mirror>,
    clock: &SharedClock,
    feed: &Connection,
    keys: &Keys,
    block: Duration,
) -> redis::RedisResult<()> {
    let now_ms = || clock.now().as_millis() as u64;
    let sent = now_ms();
    // The feed's position first: entries added after it are read below,
    // even if the list already had them (applying one twice is harmless).
    let last: Value = feed
        .query(
            redis::cmd("XREVRANGE")
                .arg(&keys.feed)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1),
        )
        .await?;
    let mut position = stream_ids(&last)
        .into_iter()
        .next()
        .unwrap_or_else(|| "0-0".into());
    let listed: Vec<(String, f64)> = feed
        .query(
            redis::cmd("ZRANGE")
                .arg(&keys.list)
                .arg(clock.now_secs())
                .arg("+inf")
                .arg("BYSCORE")
                .arg("WITHSCORES"),
        )
        .await?;
    let Some(mirror) = weak.upgrade() else {
        return Ok(());
    };
    let loaded = listed.len();
    mirror.apply(
        listed.into_iter().map(|(m, until)| (m, score_until(until))),
        true,
    );
    mirror.confirm(sent);
    drop(mirror);
    tracing::debug!(entries = loaded, "revocation mirror synchronised");
    loop {
        let sent = now_ms();
        let read: Value = feed
            .query(
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(1000)
                    .arg("BLOCK")
                    .arg(block.as_millis() as u64)
                    .arg("STREAMS")
                    .arg(&keys.feed)
                    .arg(&position),
            )
            .await?;
        let Some(mirror) = weak.upgrade() else {
            return Ok(());
        };
        let entries = stream_entries(&read);
        if let Some((id, _)) = entries.last() {
            position = id.clone();
            mirror.apply(entries.into_iter().flat_map(|(_, e)| e), false);
        }
        mirror.confirm(sent);
    }
}

fn score_until(score: f64) -> u64 {
    if score.is_finite() && score >= 0.0 {
        score as u64
    } else {
        u64::MAX
    }
}

/// The ids of an `XRANGE`-shaped reply.
fn stream_ids(reply: &Value) -> Vec<String> {
    let Value::Array(entries) = reply else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            Value::Array(parts) => parts.first().and_then(text),
            _ => None,
        })
        .collect()
}

/// The entries of an `XREAD` reply on one stream: id, and the `(member,
/// until)` each holds.
fn stream_entries(reply: &Value) -> Vec<(String, Option<(String, u64)>)> {
    let streams = match reply {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) => pair.get(1),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Value::Map(streams) => streams.iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            continue;
        };
        for entry in entries {
            let Value::Array(parts) = entry else { continue };
            let (Some(id), Some(Value::Array(fields))) =
                (parts.first().and_then(text), parts.get(1))
            else {
                continue;
            };
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|kv| kv.first().and_then(text).as_deref() == Some(name))
                    .and_then(|kv| kv.get(1).and_then(text))
            };
            let revoked = field("m").map(|member| {
                let until = field("u").and_then(|u| u.parse().ok()).unwrap_or(u64::MAX);
                (member, until)
            });
            out.push((id, revoked));
        }
    }
    out
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}
