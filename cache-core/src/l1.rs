//! The in-process tier: typed values in moka, per-entry TTL.
//!
//! Entries hold the value as `Arc<dyn Any>`, so a hit is a downcast and a
//! `Clone` of the caller's type, never a deserialization. Expiry is checked
//! against `tokio::time::Instant` on every read (so paused-time tests and
//! `ttl()` are exact); moka's own per-entry expiry frees the memory.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use moka::Expiry;
use tokio::time::Instant;

use crate::glob::Glob;

/// One stored value with its deadline.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Arc<dyn Any + Send + Sync>,
    pub(crate) expires_at: Instant,
    pub(crate) ttl: Duration,
}

pub(crate) type Shared = Arc<Entry>;

impl Entry {
    pub(crate) fn new(value: Arc<dyn Any + Send + Sync>, ttl: Duration) -> Shared {
        Arc::new(Entry {
            value,
            expires_at: Instant::now() + ttl,
            ttl,
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

struct EntryExpiry;

impl Expiry<String, Shared> for EntryExpiry {
    fn expire_after_create(
        &self,
        _: &String,
        v: &Shared,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        v: &Shared,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

pub(crate) struct L1 {
    cache: moka::future::Cache<String, Shared>,
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
            cache: moka::future::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(EntryExpiry)
                .build(),
        }
    }

    /// The live entry under `key`, if any.
    pub(crate) async fn entry(&self, key: &str) -> Option<Shared> {
        let e = self.cache.get(key).await?;
        e.is_live(Instant::now()).then_some(e)
    }

    pub(crate) async fn get<V: Clone + 'static>(&self, key: &str) -> Lookup<V> {
        match self.entry(key).await {
            None => Lookup::Miss,
            Some(e) => match e.value.downcast_ref::<V>() {
                Some(v) => Lookup::Hit(v.clone()),
                None => Lookup::WrongType,
            },
        }
    }

    pub(crate) async fn insert(&self, key: String, entry: Shared) {
        self.cache.insert(key, entry).await;
    }

    /// Removes `key`; true if a live entry was there.
    pub(crate) async fn remove(&self, key: &str) -> bool {
        self.cache
            .remove(key)
            .await
            .is_some_and(|e| e.is_live(Instant::now()))
    }

    /// Removes every key the pattern matches; returns how many live entries went.
    ///
    /// Exact keys cost one removal; wildcard patterns visit every entry (the
    /// indexed prefix invalidation is its own piece of work).
    pub(crate) async fn remove_matching(&self, glob: &Glob) -> u64 {
        if let Some(key) = glob.exact() {
            return u64::from(self.remove(&key).await);
        }
        let keys: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(k, _)| glob.matches(k))
            .map(|(k, _)| k)
            .collect();
        let mut removed = 0;
        for k in keys {
            removed += u64::from(self.remove(&k).await);
        }
        removed
    }

    /// Replaces the live entry under `key` with `f(entry)`; false if none is live.
    pub(crate) async fn update_live(&self, key: &str, f: impl FnOnce(&Shared) -> Shared) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let result = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let op = match current {
                    Some(e) if e.value().is_live(Instant::now()) => Op::Put(f(e.value())),
                    _ => Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
        matches!(result, CompResult::ReplacedWith(_))
    }

    pub(crate) async fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks().await;
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    pub(crate) async fn sync(&self) {
        self.cache.run_pending_tasks().await;
    }
}
