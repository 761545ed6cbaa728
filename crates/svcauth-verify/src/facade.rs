//! The verifier's outcomes through the [`metrics`] facade (feature
//! `metrics`, on by default), for whatever recorder the application
//! installed; the crate installs none.
//!
//! Every handle is registered when the verifier is built, so the recorder
//! must be installed before that (as the `metrics` crate asks of every
//! library), and a request only bumps a handle: no label is built, nothing
//! is allocated. Labels are bounded by configuration: the issuers trusted,
//! the rejection reasons. A rejected token's `iss` is never a label: it is
//! whatever the caller wrote.

use std::time::{Duration, Instant};

/// What a replay or revocation store answered.
#[derive(Clone, Copy)]
pub(crate) enum StoreOutcome {
    /// Not seen before (replay) or not revoked (revocation).
    Pass,
    /// Replayed or revoked.
    Refuse,
    /// The store did not answer.
    Unavailable,
}

impl StoreOutcome {
    /// From a store's answer, `Ok(true)` meaning the token may pass.
    pub(crate) fn of<E>(passes: Result<bool, E>) -> Self {
        match passes {
            Ok(true) => StoreOutcome::Pass,
            Ok(false) => StoreOutcome::Refuse,
            Err(_) => StoreOutcome::Unavailable,
        }
    }
}

/// One verification in this many cache hits on a thread is timed: a hit
/// costs tens of nanoseconds, and reading the clock twice for each would
/// cost as much again.
const HIT_SAMPLE: u32 = 64;

#[cfg(feature = "metrics")]
mod on {
    use metrics::{Counter, Histogram, counter, histogram};

    use super::*;
    use crate::error::ErrorKind;

    pub(crate) struct Facade {
        accepted_hit: Box<[Counter]>,
        accepted_full: Box<[Counter]>,
        rejected: Box<[Counter]>,
        duration_hit: Histogram,
        duration_full: Histogram,
        revocation: [Counter; 3],
        revocation_seconds: Histogram,
        replay: [Counter; 3],
        replay_seconds: Histogram,
    }

    fn store_counters(name: &'static str) -> [Counter; 3] {
        ["pass", "refuse", "unavailable"].map(|outcome| counter!(name, "outcome" => outcome))
    }

    impl Facade {
        pub(crate) fn new(issuers: &[&str]) -> Self {
            let accepted = |cache: &'static str| {
                issuers
                    .iter()
                    .map(|iss| {
                        counter!("svcauth_verifications_total", "result" => "accepted",
                            "issuer" => iss.to_string(), "cache" => cache)
                    })
                    .collect()
            };
            Facade {
                accepted_hit: accepted("hit"),
                accepted_full: accepted("miss"),
                rejected: ErrorKind::ALL
                    .iter()
                    .map(|kind| {
                        counter!("svcauth_verifications_total", "result" => "rejected",
                            "reason" => kind.as_str())
                    })
                    .collect(),
                duration_hit: histogram!("svcauth_verification_duration_seconds", "cache" => "hit"),
                duration_full: histogram!("svcauth_verification_duration_seconds", "cache" => "miss"),
                revocation: store_counters("svcauth_revocation_checks_total"),
                revocation_seconds: histogram!("svcauth_revocation_check_duration_seconds"),
                replay: store_counters("svcauth_replay_checks_total"),
                replay_seconds: histogram!("svcauth_replay_check_duration_seconds"),
            }
        }

        pub(crate) fn accepted(&self, cache_hit: bool, issuer: usize) {
            let by_issuer = if cache_hit {
                &self.accepted_hit
            } else {
                &self.accepted_full
            };
            if let Some(counter) = by_issuer.get(issuer) {
                counter.increment(1);
            }
        }

        pub(crate) fn rejected(&self, index: usize) {
            if let Some(counter) = self.rejected.get(index) {
                counter.increment(1);
            }
        }

        pub(crate) fn duration(&self, cache_hit: bool, took: Duration) {
            match cache_hit {
                true => self.duration_hit.record(took),
                false => self.duration_full.record(took),
            }
        }

        pub(crate) fn revocation(&self, outcome: StoreOutcome, took: Duration) {
            self.revocation[outcome as usize].increment(1);
            self.revocation_seconds.record(took);
        }

        pub(crate) fn replay(&self, outcome: StoreOutcome, took: Duration) {
            self.replay[outcome as usize].increment(1);
            self.replay_seconds.record(took);
        }

        /// `Some(now)` for one cache hit in [`HIT_SAMPLE`] on this thread.
        pub(crate) fn sample_hit(&self) -> Option<Instant> {
            use std::cell::Cell;
            thread_local!(static COUNT: Cell<u32> = const { Cell::new(0) });
            COUNT.with(|count| {
                let n = count.get().wrapping_add(1);
                count.set(n);
                (n % HIT_SAMPLE == 0).then(Instant::now)
            })
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod on {
    use super::*;

    /// Without the feature: nothing is recorded.
    pub(crate) struct Facade;

    impl Facade {
        pub(crate) fn new(_: &[&str]) -> Self {
            Facade
        }
        pub(crate) fn accepted(&self, _: bool, _: usize) {}
        pub(crate) fn rejected(&self, _: usize) {}
        pub(crate) fn duration(&self, _: bool, _: Duration) {}
        pub(crate) fn revocation(&self, _: StoreOutcome, _: Duration) {}
        pub(crate) fn replay(&self, _: StoreOutcome, _: Duration) {}
        pub(crate) fn sample_hit(&self) -> Option<Instant> {
            let _ = HIT_SAMPLE;
            None
        }
    }
}

pub(crate) use on::Facade;
