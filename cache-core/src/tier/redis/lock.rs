//! Stampede protection across processes: a Redis lock per key.
//!
//! The in-process single flight ([`crate::tier::flight`]) makes one call per key
//! and process reach Redis; this module makes one call per key across all
//! processes reach the origin. On a Redis miss, the flight's leader sends
//! `SET <prefix>:~lock:<key> <token> NX PX <ttl>` pipelined with a second read
//! of the key (one round trip):
//!
//! - the value is there (another process stored it since our first read):
//!   use it, and let go of the lock if we took it;
//! - we took the lock: compute. While the origin runs, the lock is renewed
//!   every third of its TTL by a compare-and-`PEXPIRE` script, so it only
//!   runs out if this process dies, or if the computation outlasts
//!   `lock_wait` (by then every waiter has given up waiting; a hung origin
//!   must not keep the key locked for good). When the value is stored (or
//!   the computation given up), a compare-and-delete script releases the
//!   lock and publishes `Landed(key)` on the backplane channel in the same
//!   round trip. The guard is made before the attempt, so an attempt that
//!   timed out or was cancelled after Redis ran it is undone too;
//! - another process holds it: wait, woken by that `Landed` message, or by a
//!   poll (5 ms doubling to 200 ms) that covers lost messages and holders
//!   that died (their lock expires and a waiter takes it over). Each wake-up
//!   is the same one-round-trip lock-and-read. After
//!   [`lock_wait`](crate::CacheBuilder::lock_wait) the call computes anyway
//!   (fail-open): a slow or stuck holder delays callers by a bounded time.
//!   A function with `stale_if_error` and `timeout` that has a stale value
//!   at hand does not wait at all: it answers with the stale value while the
//!   holder computes.
//!
//! Every attempt also reads the key's generation markers (see `cache_redis::Layout`)
//! and notes the invalidation epoch: what the caller computes after taking
//! the lock starts after both, so an invalidation during the wait does not
//! discard it.
//!
//! Why a message and not polling alone: in the `stampede` bench (4 processes
//! × 250 callers, a 50 ms origin) waiters that only polled (the release
//! message was being lost) returned at p50 83 ms, 33 ms after the value
//! landed, the poll interval; woken by the message they return at p50
//! 54–57 ms, the same as with no lock at all. The holder awaits the release
//! (one round trip) before its call returns, so waiters never depend on the
//! holder's process outliving the call.
//!
//! Every lock command goes through the circuit breaker. With Redis away the
//! lock is skipped, never waited on: the call computes, and the in-process
//! single flight still holds each process to one origin call per key.
//!
//! Lock keys sit beside the cache's keys (`prefix:~lock:…`), not under them,
//! so an invalidation of `user:42:*` never removes a lock; templates cannot
//! produce a literal `~`. For Redis Cluster, a lock and its key would need a
//! common hash tag to be read in one pipeline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::backplane::Op;
use super::{L2, TierError, time_left};
use crate::tier::{Attempt, Read};

/// Calls in this process waiting on another holder's lock, by key.
pub(super) type Waiters = Mutex<HashMap<String, Arc<Notify>>>;

/// The stampede locks this process holds or is taking: token → key.
#[derive(Debug, Default)]
pub(super) struct HeldLocks(Mutex<HashMap<String, String>>);

impl HeldLocks {
    fn add(&self, token: &str, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_owned(), key.to_owned());
    }

    fn remove(&self, token: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    /// Every lock held, as (key, token), forgotten here.
    pub(super) fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
            .into_iter()
            .map(|(token, key)| (key, token))
            .collect()
    }
}

impl L2 {
    /// Tries to take the lock of `key` with `token` (for `ttl`, renewed for
    /// at most `hold` while held) and reads `key`, in one round trip (see
    /// [`cache_redis::RedisStore::lock_and_get`]). The guard is armed before
    /// the attempt: one that Redis ran but that timed out here, or was
    /// cancelled, leaves no lock behind.
    pub(crate) async fn try_lock<V: DeserializeOwned + 'static>(
        self: &Arc<Self>,
        key: &str,
        token: &str,
        ttl: Duration,
        hold: Duration,
        version: u32,
    ) -> Result<Attempt<V>, TierError> {
        self.ready(self.layout.key_bucket(key))?;
        let guard = Held::new(Arc::clone(self), key, token, ttl, hold);
        let lock = self.layout.lock_key(key);
        let sequence = self.layout.sequence_for(key);
        let name = self.layout.physical(key);
        let asked = Instant::now();
        let (held, fetched, observed) = self
            .guarded(
                self.layout.key_bucket(key),
                self.store.lock_and_get(&lock, token, ttl, &name, &sequence),
            )
            .await?;
        let held = if held {
            Some(guard)
        } else {
            guard.disarm();
            None
        };
        let read = match fetched {
            None => Read::Miss,
            Some((bytes, ttl)) => self.decoded(key, &bytes, time_left(ttl), version).await,
        };
        Ok(Attempt {
            held,
            read,
            observed: (observed, asked),
        })
    }

    /// Extends the lock of `key` if `token` still holds it.
    async fn renew_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, TierError> {
        let lock = self.layout.lock_key(key);
        self.guarded(
            self.layout.key_bucket(key),
            self.store.renew_lock(&lock, token, ttl),
        )
        .await
    }

    /// Releases the lock of `key` if `token` holds it, and wakes the
    /// processes waiting on it, all in one round trip.
    pub(super) async fn unlock(&self, key: &str, token: &str) -> Result<bool, TierError> {
        let lock = self.layout.lock_key(key);
        let payload = self.payload(Op::Landed(key.to_owned()));
        self.guarded(
            self.layout.key_bucket(key),
            self.store
                .unlock(&lock, token, self.layout.channel(), &payload),
        )
        .await
    }

    /// Registers interest in `key`'s lock being released; dropping the
    /// returned handle withdraws it.
    pub(crate) fn waiter(&self, key: &str) -> Waiter<'_> {
        let mut map = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        let notify = Arc::clone(map.entry(key.to_owned()).or_default());
        Waiter {
            l2: self,
            key: key.to_owned(),
            notify,
        }
    }

    /// Wakes the calls waiting on `key`'s lock.
    pub(super) fn wake(&self, key: &str) {
        let map = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get(key) {
            n.notify_waiters();
        }
    }
}

/// Interest in one key's lock; see [`L2::waiter`].
pub(crate) struct Waiter<'a> {
    l2: &'a L2,
    key: String,
    notify: Arc<Notify>,
}

impl Waiter<'_> {
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut map = self
            .l2
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's reference and ours: nobody else waits on this key.
        if Arc::strong_count(&self.notify) == 2 {
            map.remove(&self.key);
        }
    }
}

/// A lock this process holds on a key. Renewed while [`Held::run`] runs;
/// released with the `Landed` message by [`Held::release`], or, if dropped
/// without (an early return, a cancelled call), by a background task.
pub(crate) struct Held {
    l2: Arc<L2>,
    key: String,
    token: String,
    ttl: Duration,
    /// Renewals stop after this long: see [`Held::run`].
    hold: Duration,
    released: bool,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("key", &self.key).finish()
    }
}

impl Held {
    /// A guard for the lock of `key` with `token`, made *before* the attempt
    /// to take it: if the attempt times out or is cancelled after Redis ran
    /// it, dropping the guard still deletes the lock (compare-and-delete, so
    /// another holder's lock is safe). Renewals stop after `hold`.
    fn new(l2: Arc<L2>, key: &str, token: &str, ttl: Duration, hold: Duration) -> Held {
        l2.held.add(token, key);
        Held {
            l2,
            key: key.to_owned(),
            token: token.to_owned(),
            ttl,
            hold,
            released: false,
        }
    }

    /// The attempt found the lock held by another process: nothing to release.
    fn disarm(mut self) {
        self.l2.held.remove(&self.token);
        self.released = true;
    }

    /// Releases the lock and wakes its waiters, one round trip. Awaited by
    /// the holder rather than left to a task: waiters elsewhere should not
    /// depend on this process staying up after its call returns. If this
    /// call is cancelled meanwhile, the drop does it in the background.
    pub(crate) async fn release(mut self) {
        self.l2.held.remove(&self.token);
        self.released = true;
        if self.l2.unlock(&self.key, &self.token).await.is_err() {
            // Redis is away: release it once it answers, not a TTL later.
            let (key, token) = (
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.token),
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(unlock_until_gone(
                    Arc::clone(&self.l2),
                    key,
                    token,
                    self.ttl,
                ));
            }
        }
    }

    /// Runs `fut`, renewing the lock every third of its TTL meanwhile, for
    /// at most the hold bound (the cache's `lock_wait`): by then every
    /// waiter has stopped waiting, so a computation that hangs keeps the
    /// lock no longer than that plus one lock TTL.
    pub(crate) async fn run<F: Future>(&self, fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        tokio::select! {
            out = &mut fut => return out,
            () = self.renew_while_held() => {}
        }
        fut.await
    }

    async fn renew_while_held(&self) {
        let every = self.ttl / 3;
        let stop = tokio::time::Instant::now() + self.hold;
        loop {
            tokio::time::sleep(every).await;
            if tokio::time::Instant::now() >= stop {
                tracing::debug!(
                    key = self.key,
                    "stampede lock held to its bound; letting it expire"
                );
                return;
            }
            match self.l2.renew_lock(&self.key, &self.token, self.ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(key = self.key, "stampede lock lost while computing");
                }
                Err(e) => {
                    tracing::debug!(key = self.key, error = %e, "stampede lock not renewed");
                }
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.l2.held.remove(&self.token);
        // Without a runtime the lock simply expires.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let l2 = Arc::clone(&self.l2);
        let key = std::mem::take(&mut self.key);
        let token = std::mem::take(&mut self.token);
        rt.spawn(unlock_until_gone(l2, key, token, self.ttl));
    }
}

/// Releases a lock this process held, trying again while Redis is away
/// (backing off from 50 ms to 500 ms) until the lock would have expired
/// anyway: after an outage, processes waiting on it go on as soon as Redis
/// answers instead of a lock TTL later.
async fn unlock_until_gone(l2: Arc<L2>, key: String, token: String, ttl: Duration) {
    let give_up = Instant::now() + ttl;
    let mut pause = Duration::from_millis(50);
    loop {
        match l2.unlock(&key, &token).await {
            Ok(_) => return,
            // Refused (not a failure to reach Redis): trying again will not help.
            Err(TierError::Store(e)) if !e.is_unavailable() => {
                tracing::debug!(key, error = %e, "stampede lock not released; it will expire");
                return;
            }
            Err(_) => {}
        }
        if Instant::now() + pause >= give_up {
            tracing::debug!(
                key,
                "stampede lock not released while Redis was away; it expires"
            );
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::tests::unreachable;
    use crate::tier::TierError;

    #[tokio::test]
    async fn a_waiter_is_registered_until_the_last_one_for_its_key_goes() {
        let l2 = unreachable();
        let a = l2.waiter("t:k");
        let b = l2.waiter("t:k");
        assert!(Arc::ptr_eq(&a.notify, &b.notify), "one Notify per key");
        drop(a);
        assert!(
            l2.waiters
                .lock()
                .map(|m| m.contains_key("t:k"))
                .unwrap_or(false)
        );
        drop(b);
        assert!(l2.waiters.lock().map(|m| m.is_empty()).unwrap_or(false));
    }

    #[tokio::test]
    async fn a_release_message_wakes_the_waiters_of_its_key_only() {
        let l2 = unreachable();
        let mine = l2.waiter("t:k");
        let other = l2.waiter("t:other");
        let woken = mine.notify().notified();
        let mut woken = std::pin::pin!(woken);
        woken.as_mut().enable();
        let not_woken = other.notify().notified();
        let mut not_woken = std::pin::pin!(not_woken);
        not_woken.as_mut().enable();
        l2.wake("t:k");
        // Both futures were enabled before the wake: a notified one is ready at once.
        assert!(futures_ready(woken.as_mut()));
        assert!(!futures_ready(not_woken.as_mut()));
    }

    #[tokio::test]
    async fn with_redis_away_a_lock_attempt_fails_and_leaves_nothing_registered() {
        let l2 = unreachable();
        let attempt = l2
            .try_lock::<u32>(
                "t:k",
                "token",
                Duration::from_secs(5),
                Duration::from_secs(5),
                0,
            )
            .await;
        assert!(matches!(attempt, Err(TierError::Store(_))));
        assert!(l2.waiters.lock().map(|m| m.is_empty()).unwrap_or(false));
    }

    fn futures_ready<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        fut.poll(&mut cx).is_ready()
    }
}
