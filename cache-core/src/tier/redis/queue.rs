//! Invalidations that have not reached Redis yet, and their replay.
//!
//! An invalidation that cannot reach Redis (command failed, breaker open) is
//! kept in a bounded queue. Until the queue is empty, reads of Redis are
//! misses ([`L2::ready`]): a value invalidated during an outage is never
//! read back. A background task (started with the backplane) replays the
//! queue as soon as Redis answers: `UNLINK`/`SCAN`, then the backplane
//! announcement, in order. Past [`MAX_PENDING`] queued invalidations the
//! queue is replaced by "everything under this cache's prefix", the safe
//! over-approximation.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::backplane::Op;
use super::{L2, TierError};

/// How many invalidations are queued before the queue becomes "everything".
pub(super) const MAX_PENDING: usize = 10_000;

/// An invalidation that has not reached Redis yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Deferred {
    Key(String),
    Pattern(String),
}

#[derive(Debug, Default)]
struct Pending {
    items: VecDeque<Deferred>,
    overflow: bool,
    /// Bumped by every deferral: tells a finished overflow replay whether
    /// anything arrived while it ran.
    generation: u64,
}

/// The queue: what to replay, and the signal that wakes the replay task.
#[derive(Debug, Default)]
pub(super) struct Queue {
    pending: Mutex<Pending>,
    /// Set while anything is queued: the one check on the read path.
    has_pending: AtomicBool,
    /// Shared with the replay task, which must not keep the tier alive.
    added: Arc<Notify>,
    /// One replay at a time.
    replay: tokio::sync::Mutex<()>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn defer(&self, item: Deferred) {
        let mut p = self.lock();
        p.generation += 1;
        if !p.overflow {
            if p.items.len() >= MAX_PENDING {
                tracing::warn!(
                    "more than {MAX_PENDING} invalidations queued during a Redis outage: \
                     all of this cache's Redis keys will be dropped on recovery"
                );
                p.items.clear();
                p.overflow = true;
            } else {
                p.items.push_back(item);
            }
        }
        self.has_pending.store(true, SeqCst);
        drop(p);
        self.added.notify_one();
    }

    pub(super) fn defer_key(&self, key: &str) {
        self.defer(Deferred::Key(key.to_owned()));
    }

    pub(super) fn defer_pattern(&self, pattern: &str) {
        self.defer(Deferred::Pattern(pattern.to_owned()));
    }

    /// Invalidations queued and not yet replayed (`u64::MAX` after an overflow).
    pub(super) fn len(&self) -> u64 {
        let p = self.lock();
        if p.overflow {
            u64::MAX
        } else {
            p.items.len() as u64
        }
    }

    /// Wakes the replay task (to replay, or to find the tier gone).
    pub(super) fn wake(&self) {
        self.added.notify_waiters();
    }

    /// The next item to replay (the whole prefix after an overflow) and the
    /// generation it was taken at; `None` once the queue is empty.
    fn next(&self, everything: &str) -> Option<(Deferred, u64)> {
        let mut p = self.lock();
        if p.overflow {
            Some((Deferred::Pattern(everything.to_owned()), p.generation))
        } else if let Some(front) = p.items.front() {
            Some((front.clone(), p.generation))
        } else {
            // Cleared under the lock, so a concurrent `defer` cannot be lost.
            self.has_pending.store(false, SeqCst);
            p.generation = 0;
            None
        }
    }

    /// `item`, taken at `generation`, reached Redis.
    fn done(&self, generation: u64) {
        let mut p = self.lock();
        if p.overflow {
            // Everything went: earlier items with it; later ones (queued
            // while the scan ran) may have been passed over, so keep the
            // overflow for another round if any arrived.
            if p.generation == generation {
                p.overflow = false;
                p.items.clear();
            }
        } else {
            p.items.pop_front();
        }
    }
}

impl L2 {
    /// Reads of Redis wait until the queue is replayed: until then they are
    /// misses (the background task drains it; no caller waits on Redis).
    pub(super) fn ready(&self) -> Result<(), TierError> {
        if self.queue.has_pending.load(SeqCst) {
            self.queue.added.notify_one();
            return Err(TierError::Replaying);
        }
        Ok(())
    }

    /// Whether a step of the replay must be tried again later: Redis is away.
    /// A command error (e.g. an ACL refusing `PUBLISH`) will not go away by
    /// retrying; it is logged and the step skipped, or the queue would block
    /// every read for good.
    fn must_retry(step: &str, result: Result<(), TierError>) -> bool {
        match result {
            Ok(()) => false,
            Err(TierError::Store(e)) if !e.is_unavailable() => {
                tracing::error!(step, error = %e, "Redis refused a replayed invalidation step; skipping it");
                false
            }
            Err(_) => true,
        }
    }

    /// Replays queued invalidations (run by the background task only, so no
    /// caller waits on it); true once none is left.
    async fn replay_pending(&self) -> bool {
        if !self.queue.has_pending.load(SeqCst) {
            return true;
        }
        let _one_at_a_time = self.queue.replay.lock().await;
        loop {
            let Some((item, generation)) = self.queue.next(self.layout.everything()) else {
                return true;
            };
            let (removed, op) = match &item {
                Deferred::Key(k) => (self.remove(k).await.map(drop), Op::Key(k.clone())),
                Deferred::Pattern(p) => (
                    self.remove_matching(p).await.map(drop),
                    Op::Pattern(p.clone()),
                ),
            };
            if L2::must_retry("unlink", removed) {
                return false;
            }
            if L2::must_retry("announce", self.announce(op).await) {
                return false;
            }
            self.queue.done(generation);
            tracing::debug!(
                ?item,
                "replayed an invalidation queued during a Redis outage"
            );
        }
    }

    /// Starts the replay task: it holds the tier weakly and ends with it.
    pub(super) fn start_replay(self: &Arc<Self>, rt: &tokio::runtime::Handle) {
        let weak = Arc::downgrade(self);
        let notify = Arc::clone(&self.queue.added);
        rt.spawn(async move {
            loop {
                let added = notify.notified();
                let mut added = std::pin::pin!(added);
                added.as_mut().enable();
                let done = {
                    let Some(l2) = weak.upgrade() else {
                        return;
                    };
                    l2.replay_pending().await
                };
                if done {
                    added.await;
                } else {
                    // Redis is still away: try again shortly (while the
                    // breaker is open this is refused at once, no I/O).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_back_in_order_and_leave_once_done() {
        let q = Queue::default();
        assert_eq!(q.next("p:*"), None);
        q.defer_key("p:a");
        q.defer_pattern("p:user:*");
        assert_eq!(q.len(), 2);
        assert!(q.has_pending.load(SeqCst));
        let (first, generation) = q.next("p:*").unwrap_or_else(|| panic!("queued"));
        assert_eq!(first, Deferred::Key("p:a".into()));
        q.done(generation);
        let (second, generation) = q.next("p:*").unwrap_or_else(|| panic!("queued"));
        assert_eq!(second, Deferred::Pattern("p:user:*".into()));
        q.done(generation);
        assert_eq!(q.next("p:*"), None);
        assert!(
            !q.has_pending.load(SeqCst),
            "empty: reads go to Redis again"
        );
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn an_item_that_failed_stays_first() {
        let q = Queue::default();
        q.defer_key("p:a");
        q.defer_key("p:b");
        // Taken, not done (Redis went away again): the same item comes back.
        let taken = q.next("p:*").map(|(d, _)| d);
        assert_eq!(q.next("p:*").map(|(d, _)| d), taken);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn overflow_becomes_everything_until_a_round_sees_nothing_new() {
        let q = Queue::default();
        for i in 0..=MAX_PENDING {
            q.defer_key(&format!("p:{i}"));
        }
        assert_eq!(q.len(), u64::MAX);
        let (item, generation) = q.next("p:*").unwrap_or_else(|| panic!("queued"));
        assert_eq!(item, Deferred::Pattern("p:*".into()));
        // Something arrives while "everything" is replayed: another round.
        q.defer_key("p:late");
        q.done(generation);
        assert_eq!(q.len(), u64::MAX);
        let (item, generation) = q.next("p:*").unwrap_or_else(|| panic!("queued"));
        assert_eq!(item, Deferred::Pattern("p:*".into()));
        q.done(generation);
        assert_eq!(q.len(), 0);
        assert_eq!(q.next("p:*"), None);
    }
}
