//! A service's own keys: one signing key, plus the public keys it still
//! publishes around a rotation.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use svcauth_core::{SharedClock, system_clock};

use crate::public_key::Jwk;
use crate::signer::JwsSigner;

/// A rotation step was not possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// `promote_next` without a key added by `add_next`.
    #[error("no next key to promote: call add_next first")]
    NoNextKey,
    /// The key is already in the ring.
    #[error("key {0} is already in the ring")]
    DuplicateKid(String),
}

/// A retired key: no longer signing, still published until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiringKey {
    /// Its public JWK.
    pub jwk: Jwk,
    /// When it stops being published, in seconds since the Unix epoch.
    pub until: u64,
}

/// One consistent view of the ring.
#[derive(Debug)]
pub struct RingState {
    current: Arc<dyn JwsSigner>,
    next: Option<Arc<dyn JwsSigner>>,
    retiring: Vec<RetiringKey>,
    jwks: Bytes,
    etag: String,
}

impl RingState {
    fn new(
        current: Arc<dyn JwsSigner>,
        next: Option<Arc<dyn JwsSigner>>,
        retiring: Vec<RetiringKey>,
    ) -> Self {
        let mut keys = vec![current.public_jwk()];
        keys.extend(next.iter().map(|k| k.public_jwk()));
        keys.extend(retiring.iter().map(|r| r.jwk.clone()));
        let body = serde_json::to_vec(&serde_json::json!({ "keys": keys }))
            .expect("serialising JWKs cannot fail");
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body);
        let etag = format!("\"{}\"", svcauth_core::b64::encode(&digest.as_ref()[..16]));
        RingState {
            current,
            next,
            retiring,
            jwks: Bytes::from(body),
            etag,
        }
    }

    /// The retiring keys plus the current key, retired until `until`.
    fn retiring_with_current(&self, until: u64) -> Vec<RetiringKey> {
        let mut retiring = self.retiring.clone();
        retiring.push(RetiringKey {
            jwk: self.current.public_jwk(),
            until,
        });
        retiring
    }

    /// The key that signs now.
    pub fn current(&self) -> &Arc<dyn JwsSigner> {
        &self.current
    }

    /// The key added by `add_next`: published, not yet signing.
    pub fn next(&self) -> Option<&Arc<dyn JwsSigner>> {
        self.next.as_ref()
    }

    /// Retired keys still published.
    pub fn retiring(&self) -> &[RetiringKey] {
        &self.retiring
    }

    /// The published JWKS document (current, next and retiring keys).
    pub fn jwks(&self) -> &Bytes {
        &self.jwks
    }

    /// A strong ETag of [`RingState::jwks`].
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The kids published, current first.
    pub fn published_kids(&self) -> Vec<String> {
        let mut kids = vec![self.current.kid().to_owned()];
        kids.extend(self.next.iter().map(|k| k.kid().to_owned()));
        kids.extend(self.retiring.iter().filter_map(|r| r.jwk.kid.clone()));
        kids
    }
}

/// The keys of this service: cheap to clone, lock-free to read.
///
/// Signers read [`KeyRing::signer`] and the publisher reads
/// [`KeyRing::state`] with one atomic load each; rotation steps build a new
/// [`RingState`] and swap it in, so every reader sees either the old ring or
/// the new one, never a mix.
///
/// # Rotation without downtime
///
/// 1. [`add_next`](KeyRing::add_next): the new key is published but does not
///    sign. Wait at least the JWKS `max-age` you publish with, so that every
///    verifier's cached set contains it.
/// 2. [`promote_next`](KeyRing::promote_next): the new key signs; the old
///    one is retired but still published for `retire_for`, which must cover
///    the lifetime of the tokens it signed (plus clock leeway).
/// 3. The retired key drops out of the JWKS by itself when `retire_for` has
///    passed ([`prune`](KeyRing::prune) runs on every read of the JWKS).
///
/// [`rotate`](KeyRing::rotate) does steps 1 and 2 at once. That is safe
/// when verifiers refetch a JWKS on an unknown kid (svcauth's do, limited by
/// their cooldown), and is what the demo uses.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use svcauth_core::Algorithm;
/// use svcauth_jwks::{KeyRing, SigningKey};
///
/// let ring = KeyRing::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
/// let old = ring.signer().kid().to_owned();
/// ring.add_next(SigningKey::generate(Algorithm::EdDSA).unwrap()).unwrap();
/// ring.promote_next(Duration::from_secs(600)).unwrap();
/// assert_ne!(ring.signer().kid(), old);
/// assert!(ring.state().published_kids().contains(&old)); // still published
/// ```
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<Inner>,
}

struct Inner {
    state: ArcSwap<RingState>,
    writer: Mutex<()>,
    clock: SharedClock,
}

impl KeyRing {
    /// A ring whose only key is `key`, of any backend.
    pub fn new(key: impl JwsSigner) -> Self {
        Self::with_clock(key, system_clock())
    }

    /// A ring reading time from `clock` (for retirement deadlines).
    pub fn with_clock(key: impl JwsSigner, clock: SharedClock) -> Self {
        KeyRing {
            inner: Arc::new(Inner {
                state: ArcSwap::from_pointee(RingState::new(Arc::new(key), None, Vec::new())),
                writer: Mutex::new(()),
                clock,
            }),
        }
    }

    /// The key that signs now: one atomic load and a reference count.
    pub fn signer(&self) -> Arc<dyn JwsSigner> {
        self.inner.state.load().current.clone()
    }

    /// The current state. Retired keys past their deadline are pruned first.
    pub fn state(&self) -> Arc<RingState> {
        let state = self.inner.state.load_full();
        let now = self.inner.clock.now_secs();
        if state.retiring.iter().any(|r| r.until <= now) {
            self.prune();
            return self.inner.state.load_full();
        }
        state
    }

    /// Step 1: publish `key` without signing with it yet. Replaces a
    /// previous next key that was never promoted.
    pub fn add_next(&self, key: impl JwsSigner) -> Result<(), RingError> {
        self.update(|s| {
            if s.published_kids().iter().any(|k| k == key.kid()) {
                return Err(RingError::DuplicateKid(key.kid().to_owned()));
            }
            tracing::info!(kid = key.kid(), alg = %key.alg(), backend = key.backend(), "key ring: next key published");
            Ok(RingState::new(
                s.current.clone(),
                Some(Arc::new(key) as Arc<dyn JwsSigner>),
                s.retiring.clone(),
            ))
        })
    }

    /// Step 2: the next key signs from now on; the old signing key stays
    /// published for `retire_for`.
    pub fn promote_next(&self, retire_for: Duration) -> Result<(), RingError> {
        self.replace_signing_key(retire_for, "signing key promoted", |s| {
            let next = s.next.clone().ok_or(RingError::NoNextKey)?;
            Ok((next, None))
        })
    }

    /// Steps 1 and 2 at once (see the type docs for when that is safe).
    pub fn rotate(&self, key: impl JwsSigner, retire_for: Duration) -> Result<(), RingError> {
        self.replace_signing_key(retire_for, "rotated", |s| {
            if s.published_kids().iter().any(|k| k == key.kid()) {
                return Err(RingError::DuplicateKid(key.kid().to_owned()));
            }
            Ok((Arc::new(key) as Arc<dyn JwsSigner>, s.next.clone()))
        })
    }

    /// The one way the signing key changes: `choose` names the new signing
    /// key and the next one; the current key stays published for
    /// `retire_for`.
    fn replace_signing_key(
        &self,
        retire_for: Duration,
        event: &str,
        choose: impl FnOnce(
            &RingState,
        )
            -> Result<(Arc<dyn JwsSigner>, Option<Arc<dyn JwsSigner>>), RingError>,
    ) -> Result<(), RingError> {
        let until = self.inner.clock.now_secs() + retire_for.as_secs();
        self.update(|s| {
            let (current, next) = choose(s)?;
            let retiring = s.retiring_with_current(until);
            tracing::info!(
                kid = current.kid(),
                retired = s.current.kid(),
                until,
                "key ring: {event}"
            );
            Ok(RingState::new(current, next, retiring))
        })
    }

    /// Removes retired keys whose deadline has passed.
    pub fn prune(&self) {
        let now = self.inner.clock.now_secs();
        let _ = self.update(|s| {
            let retiring: Vec<_> = s
                .retiring
                .iter()
                .filter(|r| r.until > now)
                .cloned()
                .collect();
            for gone in s.retiring.iter().filter(|r| r.until <= now) {
                tracing::info!(
                    kid = gone.jwk.kid.as_deref().unwrap_or(""),
                    "key ring: retired key dropped"
                );
            }
            Ok(RingState::new(s.current.clone(), s.next.clone(), retiring))
        });
    }

    fn update(
        &self,
        f: impl FnOnce(&RingState) -> Result<RingState, RingError>,
    ) -> Result<(), RingError> {
        let _one_writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let new = f(&self.inner.state.load())?;
        self.inner.state.store(Arc::new(new));
        Ok(())
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.state.load();
        f.debug_struct("KeyRing")
            .field("signing", &s.current.kid())
            .field("published", &s.published_kids())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use svcauth_core::{Algorithm, ManualClock};

    use crate::SigningKey;

    fn key() -> SigningKey {
        SigningKey::generate(Algorithm::EdDSA).unwrap()
    }

    #[test]
    fn full_rotation_procedure_publishes_with_overlap() {
        let clock = ManualClock::at_secs(1_000);
        let ring = KeyRing::with_clock(key(), Arc::new(clock.clone()));
        let k1 = ring.signer().kid().to_owned();
        let etag1 = ring.state().etag().to_owned();

        ring.add_next(key()).unwrap();
        let k2 = ring.state().next().unwrap().kid().to_owned();
        assert_eq!(ring.signer().kid(), k1, "a next key does not sign");
        assert_eq!(ring.state().published_kids(), [k1.clone(), k2.clone()]);
        assert_ne!(ring.state().etag(), etag1);

        ring.promote_next(Duration::from_secs(600)).unwrap();
        assert_eq!(ring.signer().kid(), k2);
        assert_eq!(ring.state().published_kids(), [k2.clone(), k1.clone()]);

        clock.advance(Duration::from_secs(599));
        assert_eq!(ring.state().published_kids().len(), 2);
        clock.advance(Duration::from_secs(1));
        assert_eq!(ring.state().published_kids(), [k2]);
        assert_eq!(ring.promote_next(Duration::ZERO), Err(RingError::NoNextKey));
    }

    #[test]
    fn published_document_is_a_parseable_jwks() {
        let ring = KeyRing::new(key());
        ring.rotate(key(), Duration::from_secs(60)).unwrap();
        let set = crate::KeySet::from_jwks(ring.state().jwks(), 65536).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.skipped().is_empty());
    }
}
