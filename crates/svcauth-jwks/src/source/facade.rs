//! A remote key source's fetches through the [`metrics`] facade (feature
//! `metrics`, on by default), labelled by the source's configured URL
//! (`source`): bounded by configuration, never by a request. Handles are
//! registered when the source is built.

#[cfg(feature = "metrics")]
mod on {
    use metrics::{Counter, Gauge, counter, gauge};

    pub(crate) struct Facade {
        ok: Counter,
        not_modified: Counter,
        error: Counter,
        unknown_kid_refetches: Counter,
        cooldown_refusals: Counter,
        last_success: Gauge,
        stale: Gauge,
        keys: Gauge,
    }

    impl Facade {
        pub(crate) fn new(source: &str) -> Self {
            let fetches = |outcome: &'static str| counter!("svcauth_jwks_fetches_total", "source" => source.to_owned(), "outcome" => outcome);
            let source = source.to_owned();
            Facade {
                ok: fetches("ok"),
                not_modified: fetches("not_modified"),
                error: fetches("error"),
                unknown_kid_refetches: counter!("svcauth_jwks_unknown_kid_refetches_total", "source" => source.clone()),
                cooldown_refusals: counter!("svcauth_jwks_cooldown_refusals_total", "source" => source.clone()),
                last_success: gauge!("svcauth_jwks_last_success_timestamp_seconds", "source" => source.clone()),
                stale: gauge!("svcauth_jwks_stale", "source" => source.clone()),
                keys: gauge!("svcauth_jwks_keys", "source" => source),
            }
        }

        /// A fetch that brought a set (`keys` usable keys), or `None` when
        /// the issuer answered 304 Not Modified; `now_unix` in seconds.
        pub(crate) fn fetched(&self, keys: Option<usize>, now_unix: f64) {
            match keys {
                Some(n) => {
                    self.ok.increment(1);
                    self.keys.set(n as f64);
                }
                None => self.not_modified.increment(1),
            }
            self.last_success.set(now_unix);
            self.stale.set(0.0);
        }

        /// A failed fetch; `serving_last_good` when an older set is still in use.
        pub(crate) fn failed(&self, serving_last_good: bool) {
            self.error.increment(1);
            self.stale.set(if serving_last_good { 1.0 } else { 0.0 });
        }

        pub(crate) fn unknown_kid_refetch(&self) {
            self.unknown_kid_refetches.increment(1);
        }

        pub(crate) fn cooldown_refusal(&self) {
            self.cooldown_refusals.increment(1);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod on {
    /// Without the feature: nothing is recorded.
    pub(crate) struct Facade;

    impl Facade {
        pub(crate) fn new(_: &str) -> Self {
            Facade
        }
        pub(crate) fn fetched(&self, _: Option<usize>, _: f64) {}
        pub(crate) fn failed(&self, _: bool) {}
        pub(crate) fn unknown_kid_refetch(&self) {}
        pub(crate) fn cooldown_refusal(&self) {}
    }
}

pub(crate) use on::Facade;
