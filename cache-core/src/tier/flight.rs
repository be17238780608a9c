//! Per-key single flight within the process.
//!
//! Hand-written rather than moka's `get_with`/`try_get_with`: those hand every
//! waiter the same `Arc<E>` when the initialiser fails (we want each caller to
//! get its function's own error type, with no `Clone` bound: followers of a
//! failed leader retry), they have no bounded wait, and they own the insert
//! (we must decide per result whether to store, and check it against
//! invalidations that raced the computation). It is a sharded map of slots,
//! each a mutex-guarded state, one `Notify` and a follower count (tokio's
//! `watch` was measured: it wakes through eight `Notify`s on every flight end,
//! followers or not).
//!
//! A flight costs two allocations: its slot, and the key inside it (the map
//! is a set of slots looked up by the key they hold). Keys are hashed with
//! foldhash, seeded per process.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::memory::Shared;

const SHARDS: usize = 64;

enum State {
    Running,
    /// The leader's value (stored or not) and the invalidation epoch its
    /// computation started at: followers take it unless an invalidation since
    /// then matched the key.
    Done(Shared, u64),
    /// The leader failed, was cancelled or panicked, or nobody was waiting:
    /// followers retry.
    Abandoned,
}

struct SlotInner {
    key: Box<str>,
    state: Mutex<State>,
    notify: Notify,
    followers: AtomicUsize,
}

type Slot = Arc<SlotInner>;

/// A slot in the flight map, which is a set looked up by the slot's key.
struct Keyed(Slot);

impl Borrow<str> for Keyed {
    fn borrow(&self) -> &str {
        &self.0.key
    }
}

impl Hash for Keyed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key.hash(state);
    }
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for Keyed {}

type Shard = HashSet<Keyed, foldhash::fast::RandomState>;

pub(crate) struct Flights {
    shards: Box<[Mutex<Shard>]>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for Flights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights").finish_non_exhaustive()
    }
}

/// The role a caller got for a key.
pub(crate) enum Join<'a> {
    Leader(Leader<'a>),
    Follower(Follower),
}

/// What a follower's wait ended with.
pub(crate) enum Waited {
    Done(Shared, u64),
    Retry,
    TimedOut,
}

impl Flights {
    pub(crate) fn new() -> Flights {
        Flights {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashSet::with_hasher(Default::default())))
                .collect(),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        // `% SHARDS` keeps the index in range; the cast cannot truncate below SHARDS.
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn join(&self, key: &str) -> Join<'_> {
        let mut map = self.shard(key);
        if let Some(Keyed(slot)) = map.get(key) {
            slot.followers.fetch_add(1, Ordering::Relaxed);
            return Join::Follower(Follower {
                slot: Arc::clone(slot),
            });
        }
        let slot: Slot = Arc::new(SlotInner {
            key: key.into(),
            state: Mutex::new(State::Running),
            notify: Notify::new(),
            followers: AtomicUsize::new(0),
        });
        map.insert(Keyed(Arc::clone(&slot)));
        Join::Leader(Leader {
            flights: self,
            slot,
            finished: false,
        })
    }

    fn remove(&self, slot: &Slot) {
        let mut map = self.shard(&slot.key);
        if map.get(&*slot.key).is_some_and(|s| Arc::ptr_eq(&s.0, slot)) {
            map.remove(&*slot.key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

/// The caller that computes. Dropping it unfinished (error, cancellation,
/// panic) releases the followers to retry.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    slot: Slot,
    finished: bool,
}

impl Leader<'_> {
    /// Publishes the value, computed from data read after invalidation epoch
    /// `start`, to the followers and ends the flight.
    pub(crate) fn complete(mut self, value: Shared, start: u64) {
        self.end(State::Done(value, start));
    }

    /// Like [`complete`](Self::complete), but builds the shared value only if
    /// a follower is waiting (a follower that joins meanwhile retries).
    pub(crate) fn complete_with(mut self, make: impl FnOnce() -> Shared, start: u64) {
        let waiting = self.slot.followers.load(Ordering::Relaxed) > 0;
        self.end(if waiting {
            State::Done(make(), start)
        } else {
            State::Abandoned
        });
    }

    fn end(&mut self, state: State) {
        self.finished = true;
        *self
            .slot
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = state;
        self.slot.notify.notify_waiters();
        self.flights.remove(&self.slot);
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.end(State::Abandoned);
        }
    }
}

pub(crate) struct Follower {
    slot: Slot,
}

impl Follower {
    pub(crate) async fn wait(self, deadline: Instant) -> Waited {
        loop {
            // Register for the wake-up before looking, so an end in between is not missed.
            let notified = self.slot.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match &*self
                .slot
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
            {
                State::Running => {}
                State::Done(v, start) => return Waited::Done(Arc::clone(v), *start),
                State::Abandoned => return Waited::Retry,
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Waited::TimedOut;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::memory::Entry;
    use std::time::Duration;

    fn leader(j: Join<'_>) -> Leader<'_> {
        match j {
            Join::Leader(l) => l,
            Join::Follower(_) => panic!("expected leader"),
        }
    }

    fn follower(j: Join<'_>) -> Follower {
        match j {
            Join::Follower(f) => f,
            Join::Leader(_) => panic!("expected follower"),
        }
    }

    #[tokio::test]
    async fn followers_get_the_leaders_value() {
        let f = Flights::new();
        let l = leader(f.join("k"));
        let w = follower(f.join("k"));
        l.complete(Entry::new(Arc::new(7u32), Duration::from_secs(1)), 3);
        match w.wait(Instant::now() + Duration::from_secs(5)).await {
            Waited::Done(v, start) => {
                assert_eq!(v.value.downcast_ref::<u32>(), Some(&7));
                assert_eq!(start, 3);
            }
            _ => panic!("expected the value"),
        }
        assert_eq!(f.len(), 0);
        assert!(matches!(f.join("k"), Join::Leader(_)));
    }

    #[tokio::test]
    async fn dropped_leader_releases_followers() {
        let f = Flights::new();
        let l = leader(f.join("k"));
        let w = follower(f.join("k"));
        drop(l);
        assert!(matches!(
            w.wait(Instant::now() + Duration::from_secs(5)).await,
            Waited::Retry
        ));
        assert_eq!(f.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_is_bounded() {
        let f = Flights::new();
        let _l = leader(f.join("k"));
        let w = follower(f.join("k"));
        assert!(matches!(
            w.wait(Instant::now() + Duration::from_secs(1)).await,
            Waited::TimedOut
        ));
    }
}
