//! The in-process tier: typed values in moka, per-entry TTL.
//!
//! Entries hold the value as `Arc<dyn Any>`, so a hit is a downcast and a
//! `Clone` of the caller's type, never a deserialization.
//!
//! It is moka's `sync::Cache`: the tier does no I/O and has no async
//! eviction listener, and the synchronous `get` was measured ~100 ns cheaper
//! than `future::Cache::get` (no future layering), so a hit needs no ``.
//! Its maintenance runs in short, bounded batches on the calling thread.
//!
//! Expiry is ours, not moka's: every read compares the entry's deadline with
//! `tokio::time::Instant::now()`, so `ttl()` is exact and paused-time tests
//! work. moka's per-entry `Expiry` policy was measured at +30–60 ns per read
//! (timer-wheel bookkeeping), about a third of the L1 hit budget, so it is
//! not used. Memory stays bounded by `max_entries`: an expired entry is
//! removed when it is next read, overwritten, or evicted by moka's
//! size-based policy (TinyLFU), whichever comes first.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::glob::Glob;

/// One stored value with its deadline.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Arc<dyn Any + Send + Sync>,
    pub(crate) expires_at: Instant,
}

pub(crate) type Shared = Arc<Entry>;

/// TTLs are capped at ten years, so deadlines never overflow `Instant`.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// `now + d`, saturating at `now + MAX_TTL`.
pub(crate) fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_TTL)).unwrap_or(now)
}

impl Entry {
    pub(crate) fn new(value: Arc<dyn Any + Send + Sync>, ttl: Duration) -> Shared {
        Arc::new(Entry {
            value,
            expires_at: deadline(Instant::now(), ttl),
        })
    }

    pub(crate) fn is_live(&self, now: Instant) -> bool {
        now < self.expires_at
    }

    pub(crate) fn remaining(&self, now: Instant) -> Option<Duration> {
        self.expires_at
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
    }
}

/// What a typed read found.
pub(crate) enum Lookup<V> {
    Hit(V),
    /// Absent or expired.
    Miss,
    /// Present under another type (another function or caller shares the key).
    WrongType,
}

pub(crate) struct L1 {
    cache: moka::sync::Cache<String, Shared>,
}

impl std::fmt::Debug for L1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl L1 {
    pub(crate) fn new(max_entries: u64) -> L1 {
        L1 {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .build(),
        }
    }

    /// The live entry under `key`, if any. An expired one is removed.
    pub(crate) fn entry(&self, key: &str) -> Option<Shared> {
        let e = self.cache.get(key)?;
        if e.is_live(Instant::now()) {
            return Some(e);
        }
        self.remove_if_same(key, &e);
        None
    }

    /// Removes `key` only if it still holds `entry` (a newer write is kept).
    fn remove_if_same(&self, key: &str, entry: &Shared) {
        use moka::ops::compute::Op;
        self.cache
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                Some(c) if Arc::ptr_eq(c.value(), entry) => Op::Remove,
                _ => Op::Nop,
            });
    }

    pub(crate) fn get<V: Clone + 'static>(&self, key: &str) -> Lookup<V> {
        match self.entry(key) {
            None => Lookup::Miss,
            Some(e) => match e.value.downcast_ref::<V>() {
                Some(v) => Lookup::Hit(v.clone()),
                None => Lookup::WrongType,
            },
        }
    }

    pub(crate) fn insert(&self, key: String, entry: Shared) {
        self.cache.insert(key, entry);
    }

    /// Removes `key`; true if a live entry was there.
    pub(crate) fn remove(&self, key: &str) -> bool {
        self.cache
            .remove(key)
            .is_some_and(|e| e.is_live(Instant::now()))
    }

    /// Removes every key the pattern matches; returns how many live entries went.
    ///
    /// Exact keys cost one removal; wildcard patterns visit every entry (the
    /// indexed prefix invalidation is its own piece of work).
    pub(crate) fn remove_matching(&self, glob: &Glob) -> u64 {
        if let Some(key) = glob.exact() {
            return u64::from(self.remove(&key));
        }
        let keys: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(k, _)| glob.matches(k))
            .map(|(k, _)| k)
            .collect();
        let mut removed = 0;
        for k in keys {
            removed += u64::from(self.remove(&k));
        }
        removed
    }

    /// Replaces the live entry under `key` with `f(entry)`; false if none is live.
    pub(crate) fn update_live(&self, key: &str, f: impl FnOnce(&Shared) -> Shared) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let result = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                Some(e) if e.value().is_live(Instant::now()) => Op::Put(f(e.value())),
                _ => Op::Nop,
            });
        matches!(result, CompResult::ReplacedWith(_))
    }

    pub(crate) fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    pub(crate) fn sync(&self) {
        self.cache.run_pending_tasks();
    }
}
