//! Invalidations that have not reached Redis yet, and their replay.
//!
//! An invalidation that cannot reach Redis (command failed, breaker open) is
//! kept in a bounded queue. Until it is replayed, reads of the keys it may
//! cover are misses ([`L2::ready`]): a value invalidated during an outage is
//! never read back. A background task (started with the backplane) replays
//! the queue as soon as Redis answers: `UNLINK`/`SCAN`, then the backplane
//! announcement. While items wait it asks Redis every [`PROBE_EVERY`]
//! whether it answers again (an early breaker probe), since until the
//! replay other instances can read the invalidated values from Redis. Past [`MAX_PENDING`] queued invalidations the queue is
//! replaced by "everything under this cache's prefix", the safe
//! over-approximation.
//!
//! Each item has a [`Scope`]: on one server, everything; on a cluster, the
//! bucket of a key or of a prefix below the top level, and everything for
//! the rest. A prefix that spans buckets and failed in only some of them
//! (one master down) is queued as one item per failed bucket. So while a
//! master is away, only reads of its buckets wait for the replay; the
//! others keep hitting. Invalidations commute (each removes and stamps a
//! marker with a fresh sequence number), so the replay takes the items it
//! can and leaves those whose master is still away for its next round.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cache_redis::Bucket;
use tokio::sync::Notify;

use super::backplane::Op;
pub(super) use super::deferred::{Deferred, Scope};
use super::journal::{self, Journal};
use super::{L2, TierError};
use crate::breaker::Breaker;

/// How often the replay asks whether Redis answers again, while items wait.
pub(super) const PROBE_EVERY: Duration = Duration::from_millis(50);

/// How many invalidations are queued before the queue becomes "everything".
pub(super) const MAX_PENDING: usize = 10_000;

#[derive(Debug)]
struct Item {
    id: u64,
    what: Deferred,
    scope: Scope,
}

#[derive(Debug, Default)]
struct Pending {
    items: VecDeque<Item>,
    overflow: bool,
    /// Bumped by every deferral: item ids, and tells a finished overflow
    /// replay whether anything arrived while it ran.
    generation: u64,
    /// The file that keeps the queue across a crash, if the user named one.
    journal: Option<Journal>,
}

impl Pending {
    /// Runs `write` on the journal, if there is one; a failure is logged
    /// (the queue in memory still holds the item, and the caller's call
    /// goes on).
    fn journal(&mut self, write: impl FnOnce(&mut Journal) -> std::io::Result<()>) {
        if let Some(j) = self.journal.as_mut()
            && let Err(e) = write(j)
        {
            tracing::error!(
                journal = %j.path().display(),
                error = %e,
                "could not write the outage journal: a crash now would lose queued invalidations"
            );
        }
    }
}

/// The queue: what to replay, the counts the read path checks, and the
/// signal that wakes the replay task.
#[derive(Debug)]
pub(super) struct Queue {
    pending: Mutex<Pending>,
    /// Set while anything is queued: the one check on the read path when
    /// nothing is.
    has_pending: AtomicBool,
    /// Items (and an overflow) that hold back every read.
    all: AtomicUsize,
    /// Items per cluster bucket (empty on one server).
    per_bucket: Box<[AtomicUsize]>,
    /// Shared with the replay task, which must not keep the tier alive.
    added: Arc<Notify>,
    /// One replay at a time.
    replay: tokio::sync::Mutex<()>,
}

impl Queue {
    /// A queue for a tier with `buckets` cluster buckets (0 on one server).
    pub(super) fn new(buckets: usize) -> Queue {
        Queue {
            pending: Mutex::default(),
            has_pending: AtomicBool::new(false),
            all: AtomicUsize::new(0),
            per_bucket: (0..buckets).map(|_| AtomicUsize::new(0)).collect(),
            added: Arc::default(),
            replay: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn counter(&self, scope: Scope) -> &AtomicUsize {
        match scope {
            Scope::Bucket(b) => self.per_bucket.get(b).unwrap_or(&self.all),
            Scope::All => &self.all,
        }
    }

    pub(super) fn defer(&self, what: Deferred, scope: Scope) {
        let mut p = self.lock();
        p.generation += 1;
        if !p.overflow {
            if p.items.len() >= MAX_PENDING {
                tracing::warn!(
                    "more than {MAX_PENDING} invalidations queued during a Redis outage: \
                     all of this cache's Redis keys will be dropped on recovery"
                );
                self.overflow(&mut p);
            } else {
                let id = p.generation;
                self.counter(scope).fetch_add(1, SeqCst);
                p.journal(|j| j.add(id, &what, scope));
                p.items.push_back(Item { id, what, scope });
            }
        }
        self.has_pending.store(true, SeqCst);
        drop(p);
        self.added.notify_one();
    }

    /// The queue becomes "everything under the prefix".
    fn overflow(&self, p: &mut Pending) {
        for item in p.items.drain(..) {
            self.counter(item.scope).fetch_sub(1, SeqCst);
        }
        p.overflow = true;
        self.all.fetch_add(1, SeqCst);
        p.journal(Journal::everything);
    }

    /// Keeps the queue in `journal` from now on, and queues what the
    /// instances that used it before left there. `cluster`: whether this
    /// tier has buckets (a journal written on a cluster may be read on one
    /// server, and the other way round).
    pub(super) fn open_journal(&self, journal: Journal, left: journal::Pending, cluster: bool) {
        self.lock().journal = Some(journal);
        for (what, scope) in left.items {
            let (what, scope) = match (what, scope) {
                (Deferred::PatternIn(b, pattern), _) if cluster => {
                    (Deferred::PatternIn(b, pattern), Scope::Bucket(b))
                }
                (Deferred::PatternIn(_, pattern), _) => (Deferred::Pattern(pattern), Scope::All),
                (Deferred::TagIn(b, tag), _) if cluster => {
                    (Deferred::TagIn(b, tag), Scope::Bucket(b))
                }
                (Deferred::TagIn(_, tag), _) => (Deferred::Tag(tag), Scope::All),
                (what, _) if !cluster => (what, Scope::All),
                (what, scope) => (what, scope),
            };
            self.defer(what, scope);
        }
        let mut p = self.lock();
        if left.everything && !p.overflow {
            p.generation += 1;
            self.overflow(&mut p);
            self.has_pending.store(true, SeqCst);
        }
        p.journal(Journal::settle);
        drop(p);
        self.added.notify_one();
    }

    /// Whether queued invalidations are kept in a journal.
    pub(super) fn journaled(&self) -> bool {
        self.lock().journal.is_some()
    }

    /// Whether reads of `bucket` (`None`: a single node, or a command that
    /// concerns every master) must wait for the replay.
    fn blocks(&self, bucket: Bucket) -> bool {
        if !self.has_pending.load(SeqCst) {
            return false;
        }
        if self.all.load(SeqCst) > 0 {
            return true;
        }
        match bucket.and_then(|b| self.per_bucket.get(b)) {
            Some(count) => count.load(SeqCst) > 0,
            None => true,
        }
    }

    /// The breakers' buckets that queued items wait on (`None`: a single
    /// node, or every master).
    fn waiting(&self) -> Vec<Bucket> {
        let mut out = Vec::new();
        if self.all.load(SeqCst) > 0 {
            out.push(None);
        }
        for (b, count) in self.per_bucket.iter().enumerate() {
            if count.load(SeqCst) > 0 {
                out.push(Some(b));
            }
        }
        out
    }

    /// What is queued, as the keys and patterns it invalidates
    /// (`everything` after an overflow).
    pub(super) fn describe(&self, everything: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (what, _) in self.snapshot(everything) {
            let text = match what {
                Deferred::Key(k) => k,
                Deferred::Pattern(p) | Deferred::PatternIn(_, p) => p,
                Deferred::Tag(t) | Deferred::TagIn(_, t) => format!("tag {t}"),
            };
            if !out.contains(&text) {
                out.push(text);
            }
        }
        out
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

    /// What to replay now, each with the id to report it done with (after
    /// an overflow, the whole prefix, with the generation it was taken
    /// at); empty once the queue is.
    fn snapshot(&self, everything: &str) -> Vec<(Deferred, u64)> {
        let p = self.lock();
        if p.overflow {
            vec![(Deferred::Pattern(everything.to_owned()), p.generation)]
        } else if p.items.is_empty() {
            // Cleared under the lock, so a concurrent `defer` cannot be lost.
            self.has_pending.store(false, SeqCst);
            Vec::new()
        } else {
            p.items.iter().map(|i| (i.what.clone(), i.id)).collect()
        }
    }

    /// The item `id` (from [`snapshot`](Self::snapshot)) reached Redis.
    fn done(&self, id: u64) {
        let mut p = self.lock();
        if p.overflow {
            // Everything went: earlier items with it; later ones (queued
            // while the scan ran) may have been passed over, so keep the
            // overflow for another round if any arrived.
            if p.generation == id {
                p.overflow = false;
                p.items.clear();
                self.all.fetch_sub(1, SeqCst);
            }
        } else if let Some(at) = p.items.iter().position(|i| i.id == id)
            && let Some(item) = p.items.remove(at)
        {
            self.counter(item.scope).fetch_sub(1, SeqCst);
            if !p.items.is_empty() {
                p.journal(|j| j.done(id));
            }
        }
        if p.items.is_empty() && !p.overflow {
            p.journal(Journal::clear);
        }
    }
}

impl L2 {
    /// Reads of Redis for `bucket` wait until the invalidations that may
    /// cover it are replayed: until then they are misses (the background
    /// task drains the queue; no caller waits on Redis).
    pub(super) fn ready(&self, bucket: Bucket) -> Result<(), TierError> {
        if self.queue.blocks(bucket) {
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
    /// caller waits on it); true once none is left. Items whose master is
    /// still away stay for the next round; the others go now.
    pub(super) async fn replay_pending(&self) -> bool {
        if !self.queue.has_pending.load(SeqCst) {
            return true;
        }
        let _one_at_a_time = self.queue.replay.lock().await;
        loop {
            let items = self.queue.snapshot(self.layout.everything());
            if items.is_empty() {
                return true;
            }
            let mut left = false;
            for (item, id) in items {
                let (removed, op) = match &item {
                    Deferred::Key(k) => (self.remove(k).await.map(drop), Op::Key(k.clone())),
                    Deferred::Pattern(p) => (
                        self.remove_matching(p).await.map(drop).map_err(|u| u.error),
                        Op::Pattern(p.clone()),
                    ),
                    Deferred::PatternIn(bucket, p) => (
                        self.remove_prefix_in(*bucket, p).await.map(drop),
                        Op::Pattern(p.clone()),
                    ),
                    Deferred::Tag(t) => (
                        self.remove_tag(t).await.map(drop).map_err(|u| u.error),
                        Op::Tag(t.clone()),
                    ),
                    Deferred::TagIn(bucket, t) => (
                        self.drain_tag(Some(*bucket), t).await.map(drop),
                        Op::Tag(t.clone()),
                    ),
                };
                if L2::must_retry("unlink", removed)
                    || L2::must_retry("announce", self.announce(op).await)
                {
                    left = true;
                    continue;
                }
                self.queue.done(id);
                tracing::debug!(
                    ?item,
                    "replayed an invalidation queued during a Redis outage"
                );
            }
            if left {
                return false;
            }
        }
    }

    /// Redis may answer again long before a breaker's cool-down ends, and
    /// until the queue is replayed another instance may read a value this
    /// one invalidated. So while items wait, each open breaker they wait on
    /// gets an early probe, one light command (`GET` of its bucket's
    /// sequence key, or `PING`): once it answers the breaker closes and the
    /// replay runs at once.
    pub(super) async fn probe_early(&self) {
        for bucket in self.queue.waiting() {
            let Some(permit) = self.breaker(bucket).and_then(Breaker::probe_early) else {
                continue;
            };
            let result = match bucket {
                Some(_) => self
                    .store
                    .observe(&self.layout.sequence_in(bucket))
                    .await
                    .map(drop),
                None => self.store.ping().await.map(drop),
            };
            let answered = !matches!(&result, Err(e) if e.is_unavailable());
            if answered {
                tracing::debug!(
                    ?bucket,
                    "Redis answers again: replaying queued invalidations"
                );
            }
            permit.record(answered);
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
                    // Redis is still away: ask again shortly.
                    tokio::time::sleep(PROBE_EVERY).await;
                    let Some(l2) = weak.upgrade() else {
                        return;
                    };
                    l2.probe_early().await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(q: &Queue, k: &str) {
        q.defer(Deferred::Key(k.into()), Scope::All);
    }

    #[test]
    fn items_come_back_in_order_and_leave_once_done() {
        let q = Queue::new(0);
        assert!(q.snapshot("p:*").is_empty());
        key(&q, "p:a");
        q.defer(Deferred::Pattern("p:user:*".into()), Scope::All);
        assert_eq!(q.len(), 2);
        assert!(q.blocks(None));
        let items = q.snapshot("p:*");
        assert_eq!(items[0].0, Deferred::Key("p:a".into()));
        assert_eq!(items[1].0, Deferred::Pattern("p:user:*".into()));
        q.done(items[1].1);
        assert_eq!(q.len(), 1, "done in any order");
        assert!(q.blocks(None));
        q.done(items[0].1);
        assert!(q.snapshot("p:*").is_empty());
        assert!(!q.blocks(None), "empty: reads go to Redis again");
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn an_item_that_failed_stays() {
        let q = Queue::new(0);
        key(&q, "p:a");
        key(&q, "p:b");
        // Taken, not done (Redis went away again): it comes back.
        let taken = q.snapshot("p:*");
        assert_eq!(q.snapshot("p:*"), taken);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_bucket_item_holds_back_only_its_bucket() {
        let q = Queue::new(4);
        q.defer(Deferred::PatternIn(2, "p:user:*".into()), Scope::Bucket(2));
        assert!(q.blocks(Some(2)));
        assert!(!q.blocks(Some(1)), "another master's keys keep hitting");
        assert!(q.blocks(None), "a command over every master waits");
        q.defer(Deferred::Pattern("p:*:x".into()), Scope::All);
        assert!(
            q.blocks(Some(1)),
            "a scanned pattern holds back every bucket"
        );
        for (_, id) in q.snapshot("p:*") {
            q.done(id);
        }
        assert!(q.snapshot("p:*").is_empty());
        assert!(!q.blocks(Some(2)) && !q.blocks(None));
    }

    #[test]
    fn overflow_becomes_everything_until_a_round_sees_nothing_new() {
        let q = Queue::new(4);
        for i in 0..=MAX_PENDING {
            q.defer(Deferred::Key(format!("p:{i}")), Scope::Bucket(i % 4));
        }
        assert_eq!(q.len(), u64::MAX);
        assert!(q.blocks(Some(0)) && q.blocks(Some(3)));
        let items = q.snapshot("p:*");
        assert_eq!(items, [(Deferred::Pattern("p:*".into()), items[0].1)]);
        // Something arrives while "everything" is replayed: another round.
        key(&q, "p:late");
        q.done(items[0].1);
        assert_eq!(q.len(), u64::MAX);
        let items = q.snapshot("p:*");
        assert_eq!(items[0].0, Deferred::Pattern("p:*".into()));
        q.done(items[0].1);
        assert_eq!(q.len(), 0);
        assert!(q.snapshot("p:*").is_empty());
        assert!(!q.blocks(Some(0)));
    }
}
