//! The shared tier: typed reads and writes over `cache-redis`, and the
//! backplane that keeps every instance's in-process tier in step.
//!
//! # Backplane
//!
//! Every explicit write (`set`), delete and invalidation is published on
//! `<prefix>:__backplane` with the writer's instance id. Values computed on a
//! miss are not: they follow a miss in Redis, and an in-process copy never
//! outlives the Redis key it was read from, so no instance can hold an older
//! copy to drop. Each instance applies
//! the others' messages to its in-process tier (its own are ignored) and
//! records them in its invalidation log, so a computation racing a remote
//! invalidation is not stored either. Pub/sub delivers nothing to a
//! disconnected subscriber, so whenever the subscription (re)starts the
//! in-process tier is cleared: an entry that may have missed an invalidation
//! is not served.
//!
//! # Keys, indexes and markers
//!
//! Under the cache's prefix `P`, a value of `user:42:profile` lives at
//! `P:user:42:profile`. Beside it, in a namespace templates cannot produce
//! (they escape `~`):
//!
//! - `P:~idx:user:` and `P:~idx:user:42:`: sets of the keys under each
//!   segment prefix (up to 8 segments deep; deeper prefix patterns use
//!   `SCAN`). Every write adds its key to them in the same script as the
//!   `SET`, so a key is never stored unindexed; a set lives as long as its
//!   longest-lived member (`expire` extends it too). `user:42:*` drains its
//!   set (read whole and deleted when it fits one batch of 1,000, else
//!   `SPOP` batches) and `UNLINK`s the members: O(matching keys),
//!   independent of the keyspace. Members that expired on their own cost a
//!   no-op `UNLINK`.
//! - `P:~gen:#seq`, the invalidation sequence, and the markers `P:~gen:`
//!   (the root), `P:~gen:user:`, `P:~gen:user:42:` and
//!   `P:~key:user:42:profile`. Every invalidation takes the next sequence
//!   number and stamps it on one marker: an exact key (or explicit write)
//!   on the key's own, a prefix on the prefix's, any other pattern on the
//!   deepest segment prefix before its first wildcard, or the root. Before a
//!   miss calls the origin, it reads the sequence (in the same round trip as
//!   its lock); the result is written by a script only if none of the key's
//!   markers carries a later number. So a value computed from data that an
//!   invalidation anywhere (another instance, or a replay after an outage)
//!   has since replaced is refused by Redis itself, even before the
//!   backplane message arrives. Numbers only grow, so a marker that expired
//!   and was stamped again never looks unchanged. Reads are a plain `GET`:
//!   nothing of this is on the hit path. Markers live an hour after their
//!   last stamp ([`MARKER_TTL`]); a computation that started longer ago than
//!   that does not write (the invalidation that could refuse it may be gone).
//! - `P:~lock:user:42:profile`: the stampede lock ([`crate::lock`]).
//!
//! Pattern deletion (`SCAN`) never removes these bookkeeping keys.
//!
//! Requirements and limits: Redis must not evict the bookkeeping keys
//! (`maxmemory-policy noeviction`, or memory to spare): an evicted index set
//! leaves its keys to expire by TTL instead of being invalidated. Each time
//! the backplane (re)subscribes, `INFO memory` is read and a warning logged
//! if Redis has a memory limit with an evicting policy. Keys
//! written before this layout (an older version of this crate) are in no
//! index set: after upgrading, `clear()` once or let them expire. Write path
//! cost (the `invalidation` bench): one `EVALSHA` instead of a `SET`,
//! 1.28–1.32× its time.
//!
//! ## Redis Cluster
//!
//! Not supported yet; this is how the layout maps to hash slots when it is.
//! A script may only touch keys of one slot, and today a write touches the
//! value, its index sets and (computed values) its markers, which hash to
//! different slots. The plan: give every key of one top-level segment a
//! hash tag, `P:{user}:42:profile`, `P:~idx:{user}:42:`, `P:~gen:{user}:42:`,
//! so a write, its indexes and markers share a slot and stay one script.
//! Prefix invalidations below the top level then run on one shard. The root
//! marker and top-level prefixes (`user:*`) span every slot holding that
//! segment, so they become per-shard operations (bump the root marker on
//! every master; drain `P:~idx:{user}:` on its shard, where all of `user`
//! lives). Skewed segments concentrate on one shard; a finer tag (two
//! segments) trades that for more fan-out on top-level patterns.
//!
//! # Failures
//!
//! Every command goes through the [circuit breaker](crate::breaker). An
//! invalidation that cannot reach Redis (command failed, breaker open) is
//! kept in a bounded queue: before any read of Redis is served again, and
//! from a background task as soon as Redis answers, the queue is replayed:
//! `UNLINK`/`SCAN`, then the backplane announcement, so a value invalidated
//! during an outage is never read back. Past 10,000 queued invalidations the
//! queue is replaced by "everything under this cache's prefix", the safe
//! over-approximation.

use std::sync::{Arc, Weak};
use std::time::Duration;

use cache_redis::{Event, KeyTtl, RedisStore, WriteGuard};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::cache::Inner;
use crate::codec::{self, CodecConfig, Compression, Format};
use crate::glob::Glob;
use crate::stats::bump;
pub(crate) use crate::tier::{BackplaneStatus, Observed, Read, Timing};

#[derive(Debug, Serialize, Deserialize)]
struct Message {
    origin: u64,
    op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
enum Op {
    /// A key was written or deleted: drop it.
    Key(String),
    /// A pattern was invalidated.
    Pattern(String),
    /// A lock on a key was released (its value stored, or the computation
    /// given up): processes waiting on that lock read again.
    Landed(String),
}

pub(crate) use cache_redis::RedisConfig;
use cache_redis::StoreError;

use crate::breaker::{Breaker, BreakerConfig, BreakerState};

/// Why the shared tier was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TierError {
    #[error("circuit breaker open")]
    BreakerOpen,
    #[error("invalidations from an outage are still being replayed")]
    Replaying,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TierError {
    /// A failed command, as opposed to one not attempted (breaker open, replay pending).
    pub(crate) fn is_failure(&self) -> bool {
        matches!(self, TierError::Store(_))
    }
}

const MAX_PENDING: usize = 10_000;

/// An invalidation that has not reached Redis yet.
#[derive(Debug, Clone)]
enum Deferred {
    Key(String),
    Pattern(String),
}

#[derive(Debug, Default)]
struct Pending {
    items: std::collections::VecDeque<Deferred>,
    overflow: bool,
    /// Bumped by every deferral: tells a finished overflow replay whether
    /// anything arrived while it ran.
    generation: u64,
}

pub(crate) struct L2 {
    store: RedisStore,
    codec: CodecConfig,
    instance: u64,
    channel: String,
    /// `prefix:*`, or `*` without a prefix: what an overflowed queue deletes.
    everything: String,
    status: watch::Sender<BackplaneStatus>,
    breaker: Breaker,
    pending: std::sync::Mutex<Pending>,
    has_pending: std::sync::atomic::AtomicBool,
    /// Shared with the replay task, which must not keep the cache alive.
    pending_added: Arc<tokio::sync::Notify>,
    /// The backplane receiver, stopped with the cache (a quiet channel would
    /// otherwise keep it, and its connection, waiting forever).
    receiver: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    replay: tokio::sync::Mutex<()>,
    /// `prefix:` (empty without a prefix): what lock keys are built from.
    prefix: String,
    /// `prefix:~gen:#seq`: the invalidation sequence (see the module docs).
    sequence: String,
    /// Calls in this process waiting on another holder's lock, by key.
    waiters: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl Drop for L2 {
    fn drop(&mut self) {
        // Wakes the replay task, which then finds the cache gone and ends.
        self.pending_added.notify_waiters();
        if let Some(task) = self
            .receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl std::fmt::Debug for L2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2")
            .field("store", &self.store)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl L2 {
    pub(crate) fn connect(
        config: RedisConfig,
        codec: CodecConfig,
        breaker: BreakerConfig,
        prefix: &str,
    ) -> Result<L2, TierError> {
        Ok(L2::new(RedisStore::new(config)?, codec, breaker, prefix))
    }

    fn new(store: RedisStore, codec: CodecConfig, breaker: BreakerConfig, prefix: &str) -> L2 {
        let (channel, everything) = if prefix.is_empty() {
            ("__backplane".to_owned(), "*".to_owned())
        } else {
            (format!("{prefix}:__backplane"), format!("{prefix}:*"))
        };
        let (status, _) = watch::channel(BackplaneStatus {
            connected: false,
            subscriptions: 0,
            applied: 0,
        });
        L2 {
            store,
            codec,
            instance: random_id(),
            channel,
            everything,
            status,
            breaker: Breaker::new(breaker),
            pending: Default::default(),
            has_pending: Default::default(),
            pending_added: Arc::new(tokio::sync::Notify::new()),
            receiver: std::sync::Mutex::new(None),
            replay: tokio::sync::Mutex::new(()),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}:")
            },
            sequence: format!("{prefix}:~gen:#seq"),
            waiters: Default::default(),
        }
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Runs one Redis command through the breaker.
    async fn guarded<T>(
        &self,
        command: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, TierError> {
        let Some(permit) = self.breaker.allow() else {
            return Err(TierError::BreakerOpen);
        };
        let result = command.await;
        permit.record(!matches!(&result, Err(e) if e.is_unavailable()));
        Ok(result?)
    }

    /// Queues an invalidation that did not reach Redis.
    fn defer(&self, item: Deferred) {
        let mut p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        self.has_pending
            .store(true, std::sync::atomic::Ordering::SeqCst);
        drop(p);
        self.pending_added.notify_one();
    }

    pub(crate) fn defer_key(&self, key: &str) {
        self.defer(Deferred::Key(key.to_owned()));
    }

    pub(crate) fn defer_pattern(&self, pattern: &str) {
        self.defer(Deferred::Pattern(pattern.to_owned()));
    }

    /// Invalidations queued and not yet replayed (`u64::MAX` after an overflow).
    pub(crate) fn pending(&self) -> u64 {
        let p = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if p.overflow {
            u64::MAX
        } else {
            p.items.len() as u64
        }
    }

    /// Whether a step of the replay must be tried again later: Redis is away.
    /// A command error (e.g. an ACL refusing `PUBLISH`) will not go away by
    /// retrying; it is logged and the step skipped, or the queue would block
    /// every read for good.
    fn must_retry(&self, step: &str, result: Result<(), TierError>) -> bool {
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
    pub(crate) async fn replay_pending(&self) -> bool {
        if !self.has_pending.load(std::sync::atomic::Ordering::SeqCst) {
            return true;
        }
        let _one_at_a_time = self.replay.lock().await;
        loop {
            let next = {
                let mut p = self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if p.overflow {
                    Some((Deferred::Pattern(self.everything.clone()), p.generation))
                } else if let Some(front) = p.items.front() {
                    Some((front.clone(), p.generation))
                } else {
                    // Cleared under the lock, so a concurrent `defer` cannot be lost.
                    self.has_pending
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                    p.generation = 0;
                    None
                }
            };
            let Some((item, generation)) = next else {
                return true;
            };
            let (removed, op) = match &item {
                Deferred::Key(k) => (self.remove(k).await.map(drop), Op::Key(k.clone())),
                Deferred::Pattern(p) => (
                    self.remove_matching(p).await.map(drop),
                    Op::Pattern(p.clone()),
                ),
            };
            if self.must_retry("unlink", removed) {
                return false;
            }
            let payload = self.payload(op);
            let announced = self
                .guarded(self.store.publish(&self.channel, &payload))
                .await;
            if self.must_retry("announce", announced) {
                return false;
            }
            let mut p = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
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
            tracing::debug!(
                ?item,
                "replayed an invalidation queued during a Redis outage"
            );
        }
    }

    /// Reads of Redis wait until the queue is replayed: until then they are
    /// misses (the background task drains it; no caller waits on Redis).
    fn ready(&self) -> Result<(), TierError> {
        if self.has_pending.load(std::sync::atomic::Ordering::SeqCst) {
            self.pending_added.notify_one();
            return Err(TierError::Replaying);
        }
        Ok(())
    }

    pub(crate) fn status(&self) -> watch::Receiver<BackplaneStatus> {
        self.status.subscribe()
    }

    pub(crate) async fn read<V: DeserializeOwned>(
        &self,
        key: &str,
        version: u32,
        want_ttl: bool,
    ) -> Read<V> {
        if let Err(e) = self.ready() {
            return Read::Unavailable(e);
        }
        let fetched = if want_ttl {
            self.guarded(self.store.get_with_ttl(key)).await.map(|o| {
                o.map(|(bytes, ttl)| {
                    let left = match ttl {
                        KeyTtl::Expires(d) => Some(d),
                        KeyTtl::Persistent | KeyTtl::Missing => None,
                    };
                    (bytes, left)
                })
            })
        } else {
            self.guarded(self.store.get(key))
                .await
                .map(|o| o.map(|b| (b, None)))
        };
        match fetched {
            Err(e) => Read::Unavailable(e),
            Ok(None) => Read::Miss,
            Ok(Some((bytes, left))) => self.decoded(key, &bytes, left, version).await,
        }
    }

    /// Decodes what was read under `key`; bytes that are not a value of
    /// type `V` are removed.
    async fn decoded<V: DeserializeOwned>(
        &self,
        key: &str,
        bytes: &[u8],
        left: Option<Duration>,
        version: u32,
    ) -> Read<V> {
        match codec::decode::<V>(bytes, codec::fingerprint::<V>(version), &self.codec) {
            Ok((v, None)) => Read::Hit(
                v,
                Timing {
                    left,
                    ..Timing::default()
                },
            ),
            Ok((v, Some(meta))) => {
                // Fresh while the key has more than its stale window left
                // (Redis's clock, not ours). A read without `PTTL` asks now.
                let left = match left {
                    Some(l) => l,
                    None => match self.guarded(self.store.ttl(key)).await {
                        Ok(KeyTtl::Expires(l)) => l,
                        Ok(KeyTtl::Missing) => return Read::Miss,
                        Ok(KeyTtl::Persistent) => Duration::MAX,
                        Err(e) => return Read::Unavailable(e),
                    },
                };
                let window = Duration::from_millis(meta.stale_ms);
                let fresh = left.saturating_sub(window);
                if fresh.is_zero() {
                    return Read::Stale(v, Some(left));
                }
                Read::Hit(
                    v,
                    Timing {
                        left: Some(fresh),
                        stale: left.min(window),
                        delta: Some(Duration::from_millis(u64::from(meta.delta_ms))),
                    },
                )
            }
            Err(e) => {
                // Only remove what we read: a concurrent valid write is kept.
                let _ = self.guarded(self.store.unlink(&[key])).await;
                Read::Invalid(e)
            }
        }
    }

    /// Tries to take the lock of `key` with `token` and reads `key`, in one
    /// round trip (see [`RedisStore::lock_and_get`]).
    pub(crate) async fn lock_and_read<V: DeserializeOwned>(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
        version: u32,
    ) -> Result<(bool, Read<V>, Observed), TierError> {
        self.ready()?;
        let lock = self.lock_key(key);
        let (held, fetched, observed) = self
            .guarded(
                self.store
                    .lock_and_get(&lock, token, ttl, key, &self.sequence),
            )
            .await?;
        let read = match fetched {
            None => Read::Miss,
            Some((bytes, ttl)) => {
                let left = match ttl {
                    KeyTtl::Expires(d) => Some(d),
                    KeyTtl::Persistent | KeyTtl::Missing => None,
                };
                self.decoded(key, &bytes, left, version).await
            }
        };
        Ok((held, read, observed))
    }

    pub(crate) fn encode<V: Serialize>(
        &self,
        value: &V,
        version: u32,
        format: Option<Format>,
        compression: Option<Compression>,
        meta: Option<codec::Meta>,
    ) -> Result<Vec<u8>, codec::EncodeError> {
        codec::encode(
            value,
            codec::fingerprint::<V>(version),
            format.unwrap_or(self.codec.format),
            compression.unwrap_or(self.codec.compression),
            meta,
            &self.codec,
        )
    }

    // ----- locks (see `crate::lock`) ------------------------------------------

    /// The lock of `key`: `prefix:~lock:rest`. Beside the cache's keys, not
    /// under them, so an invalidation of `user:42:*` never removes a lock.
    fn lock_key(&self, key: &str) -> String {
        let rest = key.strip_prefix(&self.prefix).unwrap_or(key);
        format!("{}~lock:{rest}", self.prefix)
    }

    /// Extends the lock of `key` if `token` still holds it.
    pub(crate) async fn renew_lock(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, TierError> {
        let lock = self.lock_key(key);
        self.guarded(self.store.renew_lock(&lock, token, ttl)).await
    }

    /// Releases the lock of `key` if `token` holds it, and wakes the
    /// processes waiting on it, all in one round trip.
    pub(crate) async fn unlock(&self, key: &str, token: &str) -> Result<bool, TierError> {
        let lock = self.lock_key(key);
        let payload = self.payload(Op::Landed(key.to_owned()));
        self.guarded(self.store.unlock(&lock, token, &self.channel, &payload))
            .await
    }

    /// Registers interest in `key`'s lock being released; dropping the
    /// returned handle withdraws it.
    pub(crate) fn waiter(&self, key: &str) -> Waiter<'_> {
        let mut map = self
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let notify = Arc::clone(map.entry(key.to_owned()).or_default());
        Waiter {
            l2: self,
            key: key.to_owned(),
            notify,
        }
    }

    /// Wakes the calls waiting on `key`'s lock.
    fn wake(&self, key: &str) {
        let map = self
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get(key) {
            n.notify_waiters();
        }
    }

    /// An explicit write: indexed, and bumps the key's marker so that a
    /// computation that started before does not overwrite it.
    pub(crate) async fn write(
        &self,
        key: &str,
        bytes: &[u8],
        ttl: Duration,
    ) -> Result<(), TierError> {
        let indexes = self.indexes(key);
        let marker = self.key_marker(key);
        let guard = WriteGuard::Bump {
            marker: &marker,
            sequence: &self.sequence,
            ttl: MARKER_TTL,
        };
        self.guarded(self.store.write(key, bytes, ttl, &indexes, guard))
            .await
            .map(drop)
    }

    /// A computed value: indexed, and written only if no invalidation that
    /// covers `key` happened since `observed` was read. False if one did.
    pub(crate) async fn write_computed(
        &self,
        key: &str,
        bytes: &[u8],
        ttl: Duration,
        observed: &Observed,
    ) -> Result<bool, TierError> {
        // Invalidations from an outage not replayed yet have not stamped
        // their markers: nothing computed is written before they are.
        self.ready()?;
        let indexes = self.indexes(key);
        let markers = self.markers(key);
        let guard = WriteGuard::Unchanged {
            markers: &markers,
            observed: *observed,
        };
        self.guarded(self.store.write(key, bytes, ttl, &indexes, guard))
            .await
    }

    /// Removes `key` and bumps its marker (see the module docs).
    pub(crate) async fn remove(&self, key: &str) -> Result<u64, TierError> {
        let marker = self.key_marker(key);
        self.guarded(
            self.store
                .invalidate_key(key, &marker, &self.sequence, MARKER_TTL),
        )
        .await
    }

    /// Removes what `pattern` matches: an exact key with one `UNLINK`; a
    /// prefix at a segment boundary (`user:42:*`) from its index set, in
    /// O(matching keys); anything else with `SCAN` + `UNLINK`. Each bumps
    /// the marker of the deepest segment prefix it covers first, so that
    /// computations that started before do not store their results.
    pub(crate) async fn remove_matching(&self, pattern: &str) -> Result<u64, TierError> {
        let glob = Glob::new(pattern);
        if let Some(key) = glob.exact() {
            return self.remove(&key).await;
        }
        if let Some(segment) = glob
            .prefix()
            .and_then(|p| self.rest(&p).map(str::to_owned))
            .filter(|s| s.ends_with(':') && s.matches(':').count() <= MAX_DEPTH)
        {
            let index = self.index_key(&segment);
            let marker = self.marker_key(&segment);
            return self
                .guarded(
                    self.store
                        .drain_index(&index, &marker, &self.sequence, MARKER_TTL),
                )
                .await;
        }
        let literal = glob.leading_literal();
        let covered = self
            .rest(&literal)
            .and_then(|rest| segment_prefixes(rest).last())
            .unwrap_or("");
        let marker = self.marker_key(covered);
        self.guarded(self.store.bump(&marker, &self.sequence, MARKER_TTL))
            .await?;
        self.guarded(self.store.delete_matching(pattern)).await
    }

    // ----- the key layout (see the module docs) ------------------------------

    /// `key` without the cache's prefix, if it has it.
    fn rest<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.prefix)
    }

    fn index_key(&self, segment: &str) -> String {
        format!("{}~idx:{segment}", self.prefix)
    }

    fn marker_key(&self, segment: &str) -> String {
        format!("{}~gen:{segment}", self.prefix)
    }

    fn key_marker(&self, key: &str) -> String {
        let rest = self.rest(key).unwrap_or(key);
        format!("{}~key:{rest}", self.prefix)
    }

    /// The markers a value of `key` depends on: the root, each segment
    /// prefix, the key itself.
    fn markers(&self, key: &str) -> Vec<String> {
        let rest = self.rest(key).unwrap_or(key);
        std::iter::once(self.marker_key(""))
            .chain(segment_prefixes(rest).map(|s| self.marker_key(s)))
            .chain(std::iter::once(self.key_marker(key)))
            .collect()
    }

    /// The index sets `key` belongs to: one per segment prefix.
    fn indexes(&self, key: &str) -> Vec<String> {
        let rest = self.rest(key).unwrap_or(key);
        segment_prefixes(rest).map(|s| self.index_key(s)).collect()
    }

    /// The invalidation sequence now, before a computation starts.
    pub(crate) async fn observe(&self) -> Result<Observed, TierError> {
        self.ready()?;
        self.guarded(self.store.observe(&self.sequence)).await
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool, TierError> {
        self.ready()?;
        self.guarded(self.store.exists(key)).await
    }

    /// `Ok(None)` if the key is absent; a key without expiry reports `Duration::MAX`.
    pub(crate) async fn ttl(&self, key: &str) -> Result<Option<Duration>, TierError> {
        self.ready()?;
        Ok(match self.guarded(self.store.ttl(key)).await? {
            KeyTtl::Missing => None,
            KeyTtl::Persistent => Some(Duration::MAX),
            KeyTtl::Expires(d) => Some(d),
        })
    }

    /// A new TTL for `key`; its index sets are kept alive at least as long.
    pub(crate) async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, TierError> {
        let indexes = self.indexes(key);
        self.guarded(self.store.expire_indexed(key, ttl, &indexes))
            .await
    }

    /// Not through the breaker: health checks want the truth.
    pub(crate) async fn ping(&self) -> Result<Duration, TierError> {
        Ok(self.store.ping().await?)
    }

    /// Used memory and key count.
    pub(crate) async fn info(&self) -> Result<(u64, u64), TierError> {
        let info = self.guarded(self.store.info()).await?;
        Ok((info.used_memory, info.keys))
    }

    /// Logs a warning if Redis may evict keys: an evicted index set or marker
    /// weakens invalidation (see the module docs).
    async fn warn_if_evicting(&self) {
        if let Ok(info) = self.guarded(self.store.info()).await
            && info.may_evict()
        {
            tracing::warn!(
                policy = info.eviction_policy.as_deref().unwrap_or(""),
                maxmemory = info.max_memory,
                "Redis may evict keys: an evicted index set or invalidation marker lets keys \
                 escape prefix invalidation until they expire; use maxmemory-policy noeviction \
                 for the cache's Redis, or keep memory to spare"
            );
        }
    }

    /// Tells the other instances to drop `key`; waits for Redis to take it.
    pub(crate) async fn announce_key(&self, key: &str) -> Result<(), TierError> {
        let payload = self.payload(Op::Key(key.to_owned()));
        self.guarded(self.store.publish(&self.channel, &payload))
            .await
    }

    /// Tells the other instances to apply an invalidation; waits for Redis to take it.
    pub(crate) async fn announce_pattern(&self, pattern: &str) -> Result<(), TierError> {
        let payload = self.payload(Op::Pattern(pattern.to_owned()));
        self.guarded(self.store.publish(&self.channel, &payload))
            .await
    }

    fn payload(&self, op: Op) -> Vec<u8> {
        postcard::to_allocvec(&Message {
            origin: self.instance,
            op,
        })
        .unwrap_or_default()
    }

    /// Starts the backplane receiver for `inner` (which owns this L2).
    pub(crate) fn start_backplane(&self, inner: Weak<Inner>, subscribe: bool) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let inner = inner.clone();
            let notify = Arc::clone(&self.pending_added);
            rt.spawn(async move {
                loop {
                    let added = notify.notified();
                    let mut added = std::pin::pin!(added);
                    added.as_mut().enable();
                    let done = {
                        let Some(strong) = inner.upgrade() else {
                            return;
                        };
                        let Some(l2) = strong.l2() else { return };
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
        if !subscribe {
            return;
        }
        let mut sub = self.store.subscribe(&self.channel);
        let instance = self.instance;
        let status = self.status.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let handle = rt.spawn(async move {
            while let Some(event) = sub.next().await {
                let Some(inner) = inner.upgrade() else { return };
                match event {
                    Event::Subscribed { resumed } => {
                        // Whatever was published while we were not listening is lost:
                        // nothing in the in-process tier can be proven fresh. After a
                        // gap, computations that straddled it do not store either.
                        inner.forget_everything_local();
                        status.send_modify(|s| {
                            s.connected = true;
                            s.subscriptions += 1;
                        });
                        if resumed {
                            tracing::info!("backplane resubscribed; in-process tier cleared");
                        }
                        // Redis answers: check it will keep the bookkeeping keys.
                        let weak = Arc::downgrade(&inner);
                        tokio::spawn(async move {
                            let Some(inner) = weak.upgrade() else { return };
                            if let Some(l2) = inner.l2() {
                                l2.warn_if_evicting().await;
                            }
                        });
                    }
                    Event::Disconnected => status.send_modify(|s| s.connected = false),
                    Event::Message(bytes) => {
                        let Ok(msg) = postcard::from_bytes::<Message>(&bytes) else {
                            tracing::debug!("ignoring a backplane message that does not decode");
                            continue;
                        };
                        if let Op::Landed(key) = &msg.op {
                            // From any instance: a background refresh here may
                            // hold a lock a call here waits on.
                            if let Some(l2) = inner.l2() {
                                l2.wake(key);
                            }
                            continue;
                        }
                        if msg.origin == instance {
                            continue;
                        }
                        match msg.op {
                            Op::Key(key) => inner.apply_remote(&Glob::exact_key(&key)),
                            Op::Pattern(p) => inner.apply_remote(&Glob::new(&p)),
                            Op::Landed(_) => continue,
                        }
                        bump(&inner.counters.backplane_applied);
                        status.send_modify(|s| s.applied += 1);
                    }
                    _ => {}
                }
            }
        });
        *self
            .receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(handle.abort_handle());
    }
}

/// Interest in one key's lock; see [`L2::waiter`].
pub(crate) struct Waiter<'a> {
    l2: &'a L2,
    key: String,
    notify: Arc<tokio::sync::Notify>,
}

impl Waiter<'_> {
    pub(crate) fn notify(&self) -> &tokio::sync::Notify {
        &self.notify
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut map = self
            .l2
            .waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The map's reference and ours: nobody else waits on this key.
        if Arc::strong_count(&self.notify) == 2 {
            map.remove(&self.key);
        }
    }
}

/// How many segments deep keys are indexed and marked (`a:b:c:…`); deeper
/// prefix patterns fall back to `SCAN`.
const MAX_DEPTH: usize = 8;

/// How long a generation marker lives after its last bump. A computation
/// that observed markers longer ago than this does not write its result to
/// Redis (a marker that expired and came back would look unchanged).
pub(crate) const MARKER_TTL: Duration = Duration::from_secs(3600);

/// The segment prefixes of a key (without the cache prefix): `user:` and
/// `user:42:` for `user:42:profile`, at most [`MAX_DEPTH`].
fn segment_prefixes(rest: &str) -> impl Iterator<Item = &str> {
    rest.match_indices(':')
        .take(MAX_DEPTH)
        .map(move |(i, _)| &rest[..=i])
}

pub(crate) fn random_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    RandomState::new().hash_one((
        nanos,
        std::process::id(),
        Arc::as_ptr(&Arc::new(0u8)) as usize,
    ))
}
