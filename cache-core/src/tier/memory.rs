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
//!
//! Prefix invalidations (`user:42:*`) cost O(log n + matching keys): a
//! sorted index of the keys (a `BTreeMap` under a mutex, beside moka) is
//! searched by range. moka's own `invalidate_entries_if` keeps predicates and
//! checks them on later reads, a cost on the hit path, so it is not used. The
//! index is written on inserts (misses) and removals only; hits never touch
//! it. It maps each key to the entry it was last written with, and moka's
//! eviction listener removes a key only if it still maps to the evicted
//! entry, so a key in the cache is always in the index. Other patterns visit
//! every entry.
//!
//! Tags work the same way: the index keeps each key's tags, and a map from
//! each tag to its keys, written on tagged inserts and cleaned by the same
//! listener; removing a tag costs O(its keys).
//!
//! An entry may outlive its freshness: with `stale_if_error` it stays, past
//! `expires_at`, until `stale_until`, where only [`L1::stale`] sees it (the
//! fallback when the origin fails). With early refresh it carries the instant
//! a background refresh becomes due, and a flag so that only one caller per
//! copy starts it.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use moka::notification::RemovalCause;
use std::time::Duration;

use tokio::time::Instant;

use crate::glob::Glob;
use crate::ttl::deadline;

/// One stored value with its deadlines.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Arc<dyn Any + Send + Sync>,
    /// End of freshness: reads see the entry until then.
    pub(crate) expires_at: Instant,
    /// End of the stale window (`expires_at` without one).
    pub(crate) stale_until: Instant,
    /// When a background refresh becomes due, if the function has one.
    pub(crate) refresh_at: Option<Instant>,
    refreshing: AtomicBool,
}

pub(crate) type Shared = Arc<Entry>;

impl Entry {
    pub(crate) fn new(value: Arc<dyn Any + Send + Sync>, ttl: Duration) -> Shared {
        let expires_at = deadline(Instant::now(), ttl);
        Entry::timed(value, expires_at, expires_at, None)
    }

    /// An entry fresh until `expires_at`, kept as stale until `stale_until`.
    pub(crate) fn timed(
        value: Arc<dyn Any + Send + Sync>,
        expires_at: Instant,
        stale_until: Instant,
        refresh_at: Option<Instant>,
    ) -> Shared {
        Arc::new(Entry {
            value,
            expires_at,
            stale_until: stale_until.max(expires_at),
            refresh_at,
            refreshing: AtomicBool::new(false),
        })
    }

    /// True once per entry, for the first caller that finds a refresh due.
    pub(crate) fn claim_refresh(&self, now: Instant) -> bool {
        self.refresh_at.is_some_and(|at| now >= at) && !self.refreshing.swap(true, Ordering::AcqRel)
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
    cache: moka::sync::Cache<String, Shared, foldhash::fast::RandomState>,
    index: Arc<Mutex<Index>>,
}

/// The tags of an entry (`None`: untagged).
pub(crate) type Tags = Option<Arc<[String]>>;

#[derive(Debug, Default)]
struct Index {
    /// Key → the entry it was last written with, and its tags.
    keys: BTreeMap<String, Slot>,
    /// Tag → the keys whose slot has it.
    tags: HashMap<String, HashSet<String>>,
}

#[derive(Debug)]
struct Slot {
    address: usize,
    tags: Tags,
}

impl Index {
    fn untag(&mut self, key: &str, tags: &Tags) {
        for tag in tags.iter().flat_map(|t| t.iter()) {
            if let Some(keys) = self.tags.get_mut(tag) {
                keys.remove(key);
                if keys.is_empty() {
                    self.tags.remove(tag);
                }
            }
        }
    }
}

/// What an insert does to a key's tags.
enum Tagging {
    Set(Tags),
    /// A new entry for the same value (a new TTL): same tags.
    Keep,
}

fn address(entry: &Shared) -> usize {
    Arc::as_ptr(entry) as usize
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
        let index: Arc<Mutex<Index>> = Arc::default();
        let listener = Arc::clone(&index);
        L1 {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .eviction_listener(move |key: Arc<String>, entry: Shared, cause| {
                    if cause == RemovalCause::Replaced {
                        return; // the writer indexed the new entry first
                    }
                    let mut index = listener.lock().unwrap_or_else(PoisonError::into_inner);
                    if index
                        .keys
                        .get(key.as_str())
                        .is_some_and(|s| s.address == address(&entry))
                        && let Some(slot) = index.keys.remove(key.as_str())
                    {
                        index.untag(&key, &slot.tags);
                    }
                })
                // foldhash, seeded per process: SipHash was a fifth of a hit.
                .build_with_hasher(foldhash::fast::RandomState::default()),
            index,
        }
    }

    /// Records that `key` now holds `entry`, before it is written.
    fn track(&self, key: &str, entry: &Shared, tagging: Tagging) {
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        let index = &mut *index;
        let address = address(entry);
        let old = match index.keys.get_mut(key) {
            Some(slot) => {
                slot.address = address;
                match tagging {
                    Tagging::Keep => return,
                    Tagging::Set(tags) => std::mem::replace(&mut slot.tags, tags),
                }
            }
            None => {
                let tags = match tagging {
                    Tagging::Set(tags) => tags,
                    Tagging::Keep => None,
                };
                index.keys.insert(key.to_owned(), Slot { address, tags });
                None
            }
        };
        index.untag(key, &old);
        if let Some(tags) = index.keys.get(key).and_then(|s| s.tags.clone()) {
            for tag in tags.iter() {
                index
                    .tags
                    .entry(tag.clone())
                    .or_default()
                    .insert(key.to_owned());
            }
        }
    }

    /// The live entry under `key`, if any. An expired one is removed, unless
    /// it is inside a stale window.
    pub(crate) fn entry(&self, key: &str) -> Option<Shared> {
        let e = self.cache.get(key)?;
        let now = Instant::now();
        if e.is_live(now) {
            return Some(e);
        }
        if now >= e.stale_until {
            self.remove_if_same(key, &e);
        }
        None
    }

    /// A value of type `V` under `key` that is past its freshness but inside
    /// its stale window, with the end of that window.
    pub(crate) fn stale<V: Clone + 'static>(&self, key: &str) -> Option<(V, Instant)> {
        let e = self.cache.get(key)?;
        let now = Instant::now();
        if now >= e.stale_until {
            self.remove_if_same(key, &e);
            return None;
        }
        let v = e.value.downcast_ref::<V>()?;
        Some((v.clone(), e.stale_until))
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
        self.insert_tagged(key, entry, None);
    }

    /// Inserts an entry that a tag invalidation of any of `tags` removes.
    pub(crate) fn insert_tagged(&self, key: String, entry: Shared, tags: Tags) {
        self.track(&key, &entry, Tagging::Set(tags));
        self.cache.insert(key, entry);
    }

    /// The tags `key` was last written with.
    pub(crate) fn tags_of(&self, key: &str) -> Vec<String> {
        let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        index
            .keys
            .get(key)
            .and_then(|s| s.tags.as_deref())
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }

    /// Removes every entry tagged `tag`; returns how many live ones went.
    pub(crate) fn remove_tagged(&self, tag: &str) -> u64 {
        // As for prefixes, only the eviction listener takes keys out of
        // the index.
        let keys: Vec<String> = {
            let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
            index
                .tags
                .get(tag)
                .map(|k| k.iter().cloned().collect())
                .unwrap_or_default()
        };
        keys.iter().map(|k| u64::from(self.remove(k))).sum()
    }

    /// Removes `key`; true if a live entry was there.
    pub(crate) fn remove(&self, key: &str) -> bool {
        self.cache
            .remove(key)
            .is_some_and(|e| e.is_live(Instant::now()))
    }

    /// Removes every key the pattern matches; returns how many live entries went.
    ///
    /// Exact keys cost one removal, prefixes (`user:42:*`) a range of the
    /// index; other patterns visit every entry.
    pub(crate) fn remove_matching(&self, glob: &Glob) -> u64 {
        if let Some(key) = glob.exact() {
            return u64::from(self.remove(&key));
        }
        if let Some(prefix) = glob.prefix() {
            // Only the eviction listener takes keys out of the index (by entry
            // identity): taking them out here could race a write of the same
            // key that has indexed its new entry but not yet stored it.
            let keys: Vec<String> = {
                let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
                index
                    .keys
                    .range::<str, _>((
                        std::ops::Bound::Included(prefix.as_str()),
                        std::ops::Bound::Unbounded,
                    ))
                    .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                    .map(|(k, _)| k.clone())
                    .collect()
            };
            return keys.iter().map(|k| u64::from(self.remove(k))).sum();
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
                Some(e) if e.value().is_live(Instant::now()) => {
                    let new = f(e.value());
                    self.track(key, &new, Tagging::Keep);
                    Op::Put(new)
                }
                _ => Op::Nop,
            });
        matches!(result, CompResult::ReplacedWith(_))
    }

    /// Re-arms `key` with a new TTL, keeping its value. Atomic with respect to
    /// concurrent writes of the same key.
    pub(crate) fn retime(&self, key: &str, ttl: Duration) -> bool {
        self.update_live(key, |e: &Shared| Entry::new(Arc::clone(&e.value), ttl))
    }

    pub(crate) fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }

    /// Live entries per top-level segment of the key after `head` (the
    /// cache's `prefix:`): `user:` for `head` + `user:42`, `""` for a key
    /// without a segment. Visits every entry.
    /// Live entries per key prefix `depth` segments deep (or as deep as
    /// the key goes; `""` for keys without a segment).
    pub(crate) fn namespaces(&self, head: &str, depth: usize) -> BTreeMap<String, u64> {
        let now = Instant::now();
        let mut out = BTreeMap::new();
        for (key, entry) in self.cache.iter() {
            if !entry.is_live(now) {
                continue;
            }
            let Some(rest) = key.strip_prefix(head) else {
                continue;
            };
            let segment = rest
                .match_indices(':')
                .take(depth.max(1))
                .last()
                .map_or("", |(i, _)| &rest[..=i]);
            *out.entry(segment.to_owned()).or_insert(0) += 1;
        }
        out
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    pub(crate) fn sync(&self) {
        self.cache.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(l1: &L1, key: &str) {
        l1.insert(
            key.to_owned(),
            Entry::new(Arc::new(1u32), Duration::from_secs(60)),
        );
    }

    fn indexed(l1: &L1) -> usize {
        l1.index.lock().unwrap().keys.len()
    }

    fn tagged(l1: &L1, key: &str, tags: &[&str]) {
        let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        l1.insert_tagged(
            key.to_owned(),
            Entry::new(Arc::new(1u32), Duration::from_secs(60)),
            Some(tags.into()),
        );
    }

    #[tokio::test]
    async fn tags_remove_exactly_their_entries_and_leave_no_trace() {
        let l1 = L1::new(10_000);
        tagged(&l1, "report:1", &["tenant:7", "q3"]);
        tagged(&l1, "dashboard:7", &["tenant:7"]);
        tagged(&l1, "report:2", &["tenant:8"]);
        put(&l1, "employee:1");
        // Rewritten without the tag: a tag invalidation leaves it alone.
        tagged(&l1, "report:3", &["tenant:7"]);
        put(&l1, "report:3");
        assert_eq!(l1.remove_tagged("tenant:7"), 2);
        assert!(matches!(l1.get::<u32>("report:1"), Lookup::Miss));
        assert!(matches!(l1.get::<u32>("dashboard:7"), Lookup::Miss));
        assert!(matches!(l1.get::<u32>("report:2"), Lookup::Hit(1)));
        assert!(matches!(l1.get::<u32>("report:3"), Lookup::Hit(1)));
        l1.sync();
        let index = l1.index.lock().unwrap();
        assert!(!index.tags.contains_key("tenant:7"));
        assert!(
            !index.tags.contains_key("q3"),
            "report:1's other tag went with it"
        );
        assert_eq!(index.tags["tenant:8"].len(), 1);
    }

    #[tokio::test]
    async fn prefix_removal_uses_the_index_and_takes_exactly_the_prefix() {
        let l1 = L1::new(10_000);
        for i in 0..100 {
            put(&l1, &format!("user:{i}:profile"));
            put(&l1, &format!("user:{i}:orders"));
        }
        put(&l1, "user:1"); // a sibling, not under "user:1:"
        assert_eq!(l1.remove_matching(&Glob::new("user:1:*")), 2);
        assert!(matches!(l1.get::<u32>("user:1"), Lookup::Hit(1)));
        assert!(matches!(l1.get::<u32>("user:10:profile"), Lookup::Hit(1)));
        assert!(matches!(l1.get::<u32>("user:1:orders"), Lookup::Miss));
        assert_eq!(indexed(&l1), 199);
        assert_eq!(l1.remove_matching(&Glob::new("user:*")), 199);
        assert_eq!(indexed(&l1), 0);
    }

    #[tokio::test]
    async fn evicted_and_rewritten_keys_keep_the_index_a_superset_of_the_cache() {
        let l1 = L1::new(50);
        for round in 0..3 {
            for i in 0..500 {
                put(&l1, &format!("k:{}", (i * 7 + round) % 300));
            }
        }
        l1.sync();
        // Every key in the cache is indexed, and evicted ones were dropped from it.
        {
            let index = l1.index.lock().unwrap();
            for (k, e) in &l1.cache {
                assert_eq!(
                    index.keys.get(k.as_str()).map(|s| s.address),
                    Some(address(&e)),
                    "{k}"
                );
            }
            assert!(
                index.keys.len() <= 2 * 50 + 10,
                "{} indexed",
                index.keys.len()
            );
        }
        let live = l1.cache.iter().count() as u64;
        assert_eq!(l1.remove_matching(&Glob::new("k:*")), live);
        assert_eq!(l1.cache.iter().count(), 0);
    }
}
