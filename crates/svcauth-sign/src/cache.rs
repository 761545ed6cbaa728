//! The per-audience token cache: reuse until a refresh point, refresh in the
//! background by one task per audience (with backoff after failures), never
//! hand out a token about to expire.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use http::HeaderValue;
use svcauth_core::__private::BoundedMap;
use svcauth_core::__private::PerThread;

use arc_swap::ArcSwapOption;

use crate::source::{OnBehalfOf, Token};

pub(crate) struct Cached {
    pub(crate) token: Token,
    /// Clock time (ms) from which a background refresh is started.
    pub(crate) refresh_at: u64,
    /// Clock time (ms) after which the token is not handed out any more.
    pub(crate) usable_until: u64,
}

pub(crate) struct Slot {
    pub(crate) audience: String,
    pub(crate) on_behalf_of: Option<OnBehalfOf>,
    pub(crate) current: ArcSwapOption<Cached>,
    refreshing: AtomicBool,
    /// No background refresh before this clock time (ms): backoff after failures.
    next_attempt: AtomicU64,
    failures: AtomicU32,
    pub(crate) mint: tokio::sync::Mutex<()>,
}

/// What the cache has for a slot right now.
pub(crate) enum Fresh {
    /// Use it.
    Yes(Token),
    /// Use it, and start a background refresh.
    Refresh(Token),
    /// Nothing usable: mint before the call.
    No,
}

impl Slot {
    fn new(audience: &str, on_behalf_of: Option<OnBehalfOf>) -> Self {
        Slot {
            audience: audience.to_owned(),
            on_behalf_of,
            current: ArcSwapOption::empty(),
            refreshing: AtomicBool::new(false),
            next_attempt: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            mint: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn fresh(&self, now_ms: u64) -> Fresh {
        match &*self.current.load() {
            Some(c) if now_ms < c.refresh_at => Fresh::Yes(c.token.clone()),
            Some(c) if now_ms < c.usable_until => Fresh::Refresh(c.token.clone()),
            _ => Fresh::No,
        }
    }

    /// Keeps a freshly minted token: refreshed from `refresh_fraction` of
    /// its lifetime (less up to 5% of jitter, so that replicas and
    /// audiences do not all refresh at once), handed out until
    /// `safety_margin_ms` (at most a quarter of the lifetime) before expiry.
    pub(crate) fn store(
        &self,
        token: &Token,
        now_ms: u64,
        refresh_fraction: f64,
        safety_margin_ms: u64,
    ) {
        let expires = token.expires_at().saturating_mul(1000);
        let lifetime = expires.saturating_sub(now_ms);
        let margin = safety_margin_ms.min(lifetime / 4);
        let refresh_at = now_ms + (lifetime as f64 * (refresh_fraction - 0.05 * jitter())) as u64;
        self.current.store(Some(Arc::new(Cached {
            token: token.clone(),
            refresh_at,
            usable_until: expires - margin,
        })));
        self.failures.store(0, Ordering::Relaxed);
    }

    /// Makes the current token due for a background refresh now, still
    /// handed out meanwhile, and lifts a failure's backoff.
    fn renew(&self, now_ms: u64) {
        if let Some(current) = self.current.load_full() {
            self.current.store(Some(Arc::new(Cached {
                token: current.token.clone(),
                refresh_at: current.refresh_at.min(now_ms),
                usable_until: current.usable_until,
            })));
        }
        self.next_attempt.store(0, Ordering::Relaxed);
    }

    /// Claims the slot's one background refresh: `false` while one runs or
    /// while a recent failure's backoff lasts.
    pub(crate) fn start_refresh(&self, now_ms: u64) -> bool {
        now_ms >= self.next_attempt.load(Ordering::Relaxed)
            && !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Ends the background refresh; after a failure, none is tried again
    /// for 2, 4, ... 32 s.
    pub(crate) fn finish_refresh(&self, failed: bool, now_ms: u64) {
        if failed {
            let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            let backoff = 1000u64 << failures.min(5);
            self.next_attempt.store(now_ms + backoff, Ordering::Relaxed);
        }
        self.refreshing.store(false, Ordering::Release);
    }
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut b);
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
}

/// A thread's own copy of a cached header, usable until the token's refresh
/// point: handing it out touches no cache line another thread writes.
struct LocalToken {
    header: HeaderValue,
    refresh_at: u64,
    epoch: u64,
}

/// Audiences each thread keeps copies for, per cache.
const LOCAL_CAPACITY: usize = 256;
/// Caches a thread keeps copies for before it starts over.
const LOCAL_CACHES: usize = 16;

thread_local! {
    static LOCAL: RefCell<PerThread<LocalToken>> = const { RefCell::new(PerThread::new()) };
}

pub(crate) struct TokenCache {
    slots: BoundedMap<Box<str>, Arc<Slot>>,
    id: u64,
    /// Bumped by `clear`, so threads' copies made before it stop answering.
    epoch: AtomicU64,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            slots: BoundedMap::new(capacity),
            id: PerThread::<LocalToken>::new_owner(),
            epoch: AtomicU64::new(0),
        }
    }

    /// This thread's copy of the header for `audience`, if still before its
    /// refresh point and made since the last `clear`.
    pub(crate) fn local(&self, audience: &str, now_ms: u64) -> Option<HeaderValue> {
        let epoch = self.epoch.load(Ordering::Acquire);
        LOCAL.with(|l| {
            let all = l.borrow();
            let t = all.get(self.id, audience)?;
            (now_ms < t.refresh_at && t.epoch == epoch).then(|| t.header.clone())
        })
    }

    /// Keeps a copy of `header` (its own allocation) for this thread.
    pub(crate) fn keep_local(&self, audience: &str, header: &HeaderValue, refresh_at: u64) {
        let Ok(mut copy) = HeaderValue::from_bytes(header.as_bytes()) else {
            return;
        };
        copy.set_sensitive(true);
        let epoch = self.epoch.load(Ordering::Acquire);
        let token = LocalToken {
            header: copy,
            refresh_at,
            epoch,
        };
        LOCAL.with(|l| {
            l.borrow_mut()
                .insert(self.id, audience, token, LOCAL_CAPACITY, LOCAL_CACHES)
        });
    }

    /// Runs `f` on the slot of the service's own tokens for `audience`, if
    /// any. No allocation and no reference count: the hot path.
    pub(crate) fn with<R>(
        &self,
        audience: &str,
        f: impl FnOnce(&Arc<Slot>) -> Option<R>,
    ) -> Option<R> {
        self.slots.with(audience, f)?
    }

    /// The slot for `audience` (and a delegation), created if needed.
    pub(crate) fn slot(
        &self,
        audience: &str,
        on_behalf_of: Option<&OnBehalfOf>,
        now_ms: u64,
    ) -> Arc<Slot> {
        let key = match on_behalf_of {
            None => audience.to_owned(),
            // The subject token itself is never a key: its SHA-256 is.
            Some(obo) => {
                let (tag, value) = match obo {
                    OnBehalfOf::Subject(s) => ("sub", s.as_str()),
                    OnBehalfOf::SubjectToken(t) => ("tok", t.as_str()),
                };
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
                format!(
                    "{audience}\u{0}{tag}\u{0}{}",
                    svcauth_core::b64::encode(digest)
                )
            }
        };
        // When full, the slots whose token is still usable are the ones
        // worth keeping.
        self.slots.get_or_insert_with(
            key.into_boxed_str(),
            || Arc::new(Slot::new(audience, on_behalf_of.cloned())),
            |_| false,
            |s| {
                s.current
                    .load()
                    .as_ref()
                    .is_some_and(|c| c.usable_until > now_ms)
            },
        )
    }

    /// Every slot due for a background refresh; threads' copies stop
    /// answering, so the next request to each audience starts it.
    pub(crate) fn renew(&self, now_ms: u64) {
        self.slots.for_each(|_, slot| slot.renew(now_ms));
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.slots.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}
