//! The shared tier: typed reads and writes over `cache-redis`, every command
//! through the circuit breaker, invalidations that reach Redis or wait in a
//! queue for it ([`queue`]), the backplane that keeps every instance's
//! in-process tier in step ([`backplane`]), and the stampede lock ([`lock`]).
//!
//! The names of the keys (values, index sets, generation markers, locks,
//! the backplane channel) come from [`cache_redis::Layout`], whose docs
//! draw the layout. In short: every write is one script that `SET`s the
//! value and adds it to the index set of each of its segment prefixes, so
//! `user:42:*` drains one set (O(matching keys), never a scan of the
//! keyspace); every invalidation stamps a generation marker with the next
//! number of one sequence, and a computed value is written only if none of
//! its key's markers moved since the computation started, so Redis itself
//! refuses a value computed from data an invalidation has replaced, here or
//! in another process. Reads are a plain `GET`: none of this is on the hit
//! path. Markers live [`MARKER_TTL`]; a computation that started longer ago
//! does not write.
//!
//! A Redis that evicts (a memory limit with an evicting policy) may take
//! bookkeeping keys: an evicted index set leaves its keys out of prefix
//! invalidation, an evicted marker lets a value computed before an
//! invalidation be stored after it. Each time the backplane (re)subscribes
//! a warning is logged if Redis may evict. Once Redis reports evicted keys
//! ([`L2::evictions_seen`], asked before prefix invalidations), this
//! instance falls back, for the rest of its life: prefix invalidations
//! also `SCAN` (O(keyspace)), and a computed value is written only if no
//! invalidation at all moved its bucket's sequence since the computation
//! started, and only if the sequence is still there (evicted, it may have
//! taken the record of an invalidation with it; the refused write creates
//! it again): fewer values stored under heavy invalidation, none stale. A
//! sequence that was lost starts again above every number it handed out
//! (Redis's clock in microseconds), so markers stamped after the loss still
//! stop computations that observed it before. Write path cost (the
//! `invalidation` bench): one `EVALSHA` instead of a `SET`, about 1.4× its
//! time for a key three segments deep. The same script records the key's
//! top-level index set in the namespace registry (`P:~idx:#top`; keys
//! without a segment in `P:~idx:#flat`), so entries are counted per
//! namespace from the index sets ([`L2::namespaces`]) without a scan.
//!
//! ## Redis Cluster
//!
//! A script may only touch keys of one hash slot, and a write touches the
//! value, its index sets, its markers and the invalidation sequence. So on a
//! cluster ([`Layout::cluster`]) every key carries one of
//! [`BUCKETS`](cache_redis::BUCKETS) (256) hash tags right after the
//! prefix, chosen by the key's first two segments (`user:42`), and each
//! bucket holds a complete single-node layout of its own:
//! `P:{t}user:42:profile`, `P:{t}~idx:user:42:`, `P:{t}~gen:#seq`, ... The
//! tags are picked so the buckets sit in equal slot ranges, hence spread
//! evenly over masters that own equal ranges (100,000 users × 5 keys plus
//! 10 small namespaces over 3 masters: the most loaded holds at most 1.25×
//! the mean, a unit test of the layout).
//!
//! The trade-off, against a tag per top-level segment (`{user}`): that
//! would put a whole namespace on one shard (all users on one master); a
//! tag per two segments keeps everything under `user:42:` on one shard, so
//! `user:42:*` drains one set on one master in O(matching keys), while a
//! namespace pattern (`user:*`) and the root (`clear()`, `*`) touch every
//! bucket: O(matching keys + buckets), 32 buckets at a time
//! ([`FAN_OUT`]). Patterns that are not prefixes `SCAN` every master. A
//! computation guards itself with its key's bucket's sequence; an
//! invalidation stamps markers in each bucket it spans, so the
//! "refuse a stale write" rule holds per bucket exactly as on one node.
//!
//! One breaker per bucket (and one for commands that concern every
//! master): a master that is down or failing over opens only its buckets'
//! breakers, so only its keys become misses. When one bucket's breaker
//! opens, those of the other buckets of the same master open with it (a
//! background task reads which master serves each bucket every 10 s, from
//! whichever seed node answers first), so a hung master costs a few
//! command timeouts, not a few per bucket. Its slots come back when a
//! replica is promoted (the slot map is read again after a failure, and
//! on every `MOVED`) or the master returns. `health()` probes every master and reports
//! `Degraded` if any fails. With Redis's default
//! `cluster-require-full-coverage yes`, the cluster itself refuses every
//! command while any slot has no master; the cache then serves everything
//! from the origin and the in-process tier until it is covered again.
//!
//! The outage queue keeps each invalidation with the bucket it covers (a
//! key, or a prefix below the top level), and splits a namespace-wide
//! prefix that failed on one master into that master's buckets: while it
//! waits, only reads of those buckets are misses. A pattern that is not a
//! prefix (a `SCAN` over every master) waits as a whole and holds back
//! every read until it is replayed (see [`queue`]).
//!
//! Each keyed command goes straight to its bucket's master on a connection
//! of that master's own (`cache_redis`'s router, in front of redis-rs's
//! cluster client, which handles `MOVED`/`ASK` and keyless commands): a
//! dead master's commands fail at once on its own connection, and a burst
//! of them (the census of `stats()`, 32 buckets at a time; a
//! namespace-wide invalidation) never holds up the live masters. Through
//! redis-rs's client alone, such a burst right after a master died made
//! every master time out for 16-20 s in about half of the runs (the
//! cluster suite's `a_burst_to_a_dead_master_does_not_hold_up_the_live_ones`).
//!
//! ## Sentinel
//!
//! With `redis_sentinel`, the store asks the sentinels for the master and
//! asks again whenever a command fails with an error that says the node
//! cannot serve (refused, timed out, `READONLY`), so a promoted replica is
//! used without a restart. Everything else is the single-node tier.
//!
//! ## What asynchronous replication can lose
//!
//! Redis replicates asynchronously (Cluster and Sentinel alike): a write a
//! master acknowledged can be lost if the master dies before its replica
//! received it, and the replica is promoted without it. For the cache:
//! - a lost value write is a miss later: the value is computed again;
//! - a lost invalidation (its `UNLINK` and marker stamp) leaves the old
//!   value on the promoted replica. Every instance's in-process copy was
//!   dropped (the backplane message went out when the invalidation was
//!   acknowledged), but the next miss can read the old value back from
//!   Redis until its TTL ends. The window is the replication lag at the
//!   moment of the crash (normally well under a millisecond on a healthy
//!   link); an invalidation that failed (the master already gone) is queued
//!   and replayed on the promoted master, so it is not lost.
//!
//! Redis's `WAIT` would close the window at the price of a replica round
//! trip per invalidation; the cache does not issue it. Keep TTLs bounded
//! for data where a stale read after a crash matters.
//!
//! # Failures
//!
//! Every command goes through the [circuit breaker](crate::breaker) and the
//! store's per-command timeout ([`RedisConfig::op_timeout`]). An
//! invalidation that cannot reach Redis is kept and replayed (see [`queue`]):
//! a value invalidated during an outage is never read back.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use cache_redis::variants::{self, Stored};
use cache_redis::{Bucket, KeyTtl, Layout, MARKER_TTL, RedisStore, StoreError, WriteGuard};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Invalidated, Observed, Read, Timing};
use crate::breaker::{Breaker, BreakerConfig, BreakerState, Permit};
use crate::codec::{self, CodecConfig, Compression, Format};
use crate::glob::Glob;
use crate::observe::Observer;
use crate::stats::{BackplaneStatus, EntryInfo, NamespaceStats, Shutdown, StoredValue};

/// A namespace with up to this many index entries is counted exactly; a
/// larger one from a random sample of this many (one script, a few
/// hundred microseconds of Redis time).
const CENSUS_EXACT: u32 = 200;
/// The namespaces themselves (the set of top-level index sets) are checked
/// one by one up to this many.
const CENSUS_TOP: u32 = 10_000;

/// A removal that did not reach Redis, whole or in part.
#[derive(Debug)]
pub(crate) struct Unfinished {
    pub(crate) error: TierError,
    /// On a cluster, the buckets of a prefix that failed when others
    /// succeeded; `None`: redo it whole.
    pub(crate) buckets: Option<Vec<usize>>,
}

impl Unfinished {
    fn whole(error: TierError) -> Unfinished {
        Unfinished {
            error,
            buckets: None,
        }
    }

    /// The total removed, or which buckets failed (all of them, or a single
    /// node: whole).
    fn sum(results: Vec<(Bucket, Result<u64, TierError>)>) -> Result<u64, Unfinished> {
        let total = results.len();
        let mut removed = 0;
        let mut failed = Vec::new();
        let mut error = None;
        for (bucket, result) in results {
            match result {
                Ok(n) => removed += n,
                Err(e) => {
                    failed.push(bucket);
                    error.get_or_insert(e);
                }
            }
        }
        let Some(error) = error else {
            return Ok(removed);
        };
        let buckets: Option<Vec<usize>> = failed.into_iter().collect();
        Err(Unfinished {
            error,
            buckets: buckets.filter(|b| b.len() < total),
        })
    }
}

/// Commands in flight at once when an invalidation or a count spans a
/// cluster's buckets (256): enough to hide the round trips, few enough not
/// to crowd out the callers' commands on the same connections.
const FAN_OUT: usize = 32;

/// A namespace's entries in one bucket: prefix, count, exact.
type Census = (String, u64, bool);

mod backplane;
mod deferred;
mod journal;
mod lock;
mod queue;

pub(crate) use cache_redis::RedisConfig;
pub(crate) use lock::Held;

/// Why the shared tier was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TierError {
    #[error("circuit breaker open")]
    BreakerOpen,
    #[error("invalidations from an outage are still being replayed")]
    Replaying,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("outage journal: {0}")]
    Journal(#[from] journal::JournalError),
}

impl TierError {
    /// A failed command, as opposed to one not attempted (breaker open, replay pending).
    pub(crate) fn is_failure(&self) -> bool {
        matches!(self, TierError::Store(_))
    }
}

/// The Redis tier of one cache. Shared as an `Arc` with its background
/// tasks (which hold it weakly) and the lock guards of calls under way.
pub(crate) struct L2 {
    store: RedisStore,
    codec: CodecConfig,
    layout: Layout,
    /// One breaker on a single node. On a cluster, one per bucket (a
    /// bucket is one slot, so one master: a failing master opens only its
    /// buckets' breakers), and a last one for commands that concern every
    /// master.
    breakers: Vec<Breaker>,
    /// On a cluster, each bucket's master as last read from the slot map
    /// (`usize::MAX`: unknown): when one bucket's breaker opens, those of
    /// the other buckets of its master open with it.
    masters: Box<[AtomicUsize]>,
    /// A bucket whose breaker opened while `masters` was unknown.
    trip_after_refresh: AtomicUsize,
    /// Wakes the topology task before its interval.
    topology_wanted: Arc<tokio::sync::Notify>,
    /// This instance on the backplane: its own messages are ignored.
    instance: u64,
    status: watch::Sender<BackplaneStatus>,
    queue: queue::Queue,
    /// The backplane receiver, stopped with the cache (a quiet channel would
    /// otherwise keep it, and its connection, waiting forever).
    receiver: Mutex<Option<tokio::task::AbortHandle>>,
    /// Calls in this process waiting on another holder's lock, by key.
    waiters: lock::Waiters,
    /// Stampede locks this process holds (or is taking): token → key, so
    /// that a shutdown can release them.
    held: lock::HeldLocks,
    /// Given by the engine: times Redis commands for the metrics.
    observer: Arc<Observer>,
    /// What this instance knows of Redis evicting keys.
    evictions: Evictions,
}

/// See [`L2::evictions_seen`].
#[derive(Debug, Default)]
struct Evictions {
    seen: std::sync::atomic::AtomicBool,
    cannot_evict_until: Mutex<Option<Instant>>,
}

/// How long a Redis found not to evict is taken at its word.
const EVICTION_RECHECK: Duration = Duration::from_secs(60);

impl Drop for L2 {
    fn drop(&mut self) {
        // Wakes the replay task, which then finds the tier gone and ends.
        self.queue.wake();
        self.stop_receiver();
    }
}

impl std::fmt::Debug for L2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2")
            .field("store", &self.store)
            .field("channel", &self.layout.channel())
            .finish_non_exhaustive()
    }
}

impl L2 {
    /// The tier over `config` (no I/O: the connection is made on first use).
    pub(crate) fn connect(
        config: RedisConfig,
        codec: CodecConfig,
        breaker: BreakerConfig,
        prefix: &str,
        observer: Arc<Observer>,
    ) -> Result<L2, TierError> {
        Ok(L2::new(
            RedisStore::new(config)?,
            codec,
            breaker,
            prefix,
            observer,
        ))
    }

    fn new(
        store: RedisStore,
        codec: CodecConfig,
        breaker: BreakerConfig,
        prefix: &str,
        observer: Arc<Observer>,
    ) -> L2 {
        let (status, _) = watch::channel(BackplaneStatus {
            connected: false,
            subscriptions: 0,
            applied: 0,
        });
        let layout = if store.is_cluster() {
            Layout::cluster(prefix)
        } else {
            Layout::new(prefix)
        };
        let queue = queue::Queue::new(if layout.is_cluster() {
            cache_redis::BUCKETS
        } else {
            0
        });
        let breakers = (0..layout.buckets().count().max(1) + usize::from(layout.is_cluster()))
            .map(|_| Breaker::new(breaker))
            .collect();
        let masters = (0..if layout.is_cluster() {
            cache_redis::BUCKETS
        } else {
            0
        })
            .map(|_| AtomicUsize::new(usize::MAX))
            .collect();
        L2 {
            store,
            codec,
            layout,
            breakers,
            masters,
            trip_after_refresh: AtomicUsize::new(usize::MAX),
            topology_wanted: Arc::default(),
            instance: crate::id::random_id(),
            status,
            queue,
            receiver: Mutex::new(None),
            waiters: lock::Waiters::default(),
            held: lock::HeldLocks::default(),
            observer,
            evictions: Evictions::default(),
        }
    }

    /// The worst state of the breakers: open if any is open (on a cluster,
    /// a master's buckets), else half-open if any is, else closed.
    pub(crate) fn breaker_state(&self) -> BreakerState {
        let mut worst = BreakerState::Closed;
        for b in &self.breakers {
            match b.state() {
                BreakerState::Open => return BreakerState::Open,
                BreakerState::HalfOpen => worst = BreakerState::HalfOpen,
                _ => {}
            }
        }
        worst
    }

    /// The breaker in front of a bucket's commands (`None`: commands that
    /// concern every master, or the one breaker of a single node).
    fn breaker(&self, bucket: Bucket) -> Option<&Breaker> {
        let last = self.breakers.len().checked_sub(1)?;
        self.breakers.get(bucket.unwrap_or(last))
    }

    /// Runs one Redis command through the breaker of `bucket` (see
    /// [`breaker`](Self::breaker)). (The command's timeout is the store's:
    /// every `RedisStore` command is bounded by it.)
    fn guarded<T, F>(&self, bucket: Bucket, command: F) -> Guarded<'_, F>
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        Guarded {
            tier: self,
            bucket,
            permit: None,
            timer: None,
            started: false,
            command,
        }
    }

    /// What [`guarded`](Self::guarded) does once its command has answered.
    fn command_done(&self, bucket: Bucket, permit: Option<Permit<'_>>, ok: bool) {
        if let Some(permit) = permit {
            permit.record(ok);
        }
        if !ok
            && let Some(b) = bucket
            && self.breaker(bucket).map(Breaker::state) == Some(BreakerState::Open)
        {
            self.trip_master_of(b);
            // A failover may be under way: read the slot map again soon.
            self.topology_wanted.notify_one();
        }
    }

    /// Bucket `failed`'s breaker opened: open those of the other buckets
    /// its master serves, so that each does not have to see its own
    /// failures (on a hung master, a command timeout each) first.
    fn trip_master_of(&self, failed: usize) {
        let Some(master) = self
            .masters
            .get(failed)
            .map(|m| m.load(Relaxed))
            .filter(|m| *m != usize::MAX)
        else {
            // Not known yet: the topology task reads the map now and trips
            // them then.
            self.trip_after_refresh.store(failed, Relaxed);
            self.topology_wanted.notify_one();
            return;
        };
        let mut tripped = 0;
        for (bucket, m) in self.masters.iter().enumerate() {
            if bucket != failed
                && m.load(Relaxed) == master
                && self.breakers.get(bucket).is_some_and(Breaker::trip)
            {
                tripped += 1;
            }
        }
        if tripped > 0 {
            tracing::warn!(
                buckets = tripped + 1,
                "a Redis Cluster master is failing: its keys are served from the in-process tier and the origin"
            );
        }
    }

    /// What wakes the topology task (held by it, beside a weak tier).
    pub(crate) fn topology_wanted(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.topology_wanted)
    }

    /// Reads which master serves each bucket (a cluster's slot map), for
    /// [`trip_master_of`](Self::trip_master_of). A failover keeps a
    /// master's buckets together; a resharding moves them, and the next
    /// refresh follows.
    pub(crate) async fn refresh_masters(&self) {
        if self.masters.is_empty() {
            return;
        }
        match self.store.bucket_masters().await {
            Ok(found) => {
                for (slot, m) in self.masters.iter().zip(found) {
                    slot.store(m, Relaxed);
                }
                // A breaker that opened while the map was unknown.
                let waiting = self.trip_after_refresh.swap(usize::MAX, Relaxed);
                if self.breaker(Some(waiting)).map(Breaker::state) == Some(BreakerState::Open) {
                    self.trip_master_of(waiting);
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not read the cluster's slot map"),
        }
    }

    pub(crate) fn status(&self) -> watch::Receiver<BackplaneStatus> {
        self.status.subscribe()
    }

    pub(crate) async fn read<V: DeserializeOwned + 'static>(
        &self,
        key: &str,
        version: u32,
        want_ttl: bool,
    ) -> Read<V> {
        let bucket = self.layout.key_bucket(key);
        if let Err(e) = self.ready(bucket) {
            return Read::Unavailable(e);
        }
        let name = self.layout.physical(key);
        let fetched = if want_ttl {
            self.guarded(bucket, self.store.get_with_ttl(&name))
                .await
                .map(|o| o.map(|(bytes, ttl)| (bytes, time_left(ttl))))
        } else {
            self.guarded(bucket, self.store.get(&name))
                .await
                .map(|o| o.map(|b| (b, None)))
        };
        match fetched {
            Err(e) => Read::Unavailable(e),
            Ok(None) => Read::Miss,
            Ok(Some((bytes, left))) => self.decoded(key, &bytes, left, version).await,
        }
    }

    /// Decodes what was read under `key`: this build's entry among those the
    /// key holds (see `cache_redis::variants`). Nothing is removed: an entry
    /// of another build is a miss for this one and stays for its own, and
    /// one that does not decode is replaced by the next write.
    async fn decoded<V: DeserializeOwned + 'static>(
        &self,
        key: &str,
        bytes: &[u8],
        left: Option<Duration>,
        version: u32,
    ) -> Read<V> {
        let fingerprint = codec::fingerprint::<V>(version);
        let (bytes, ends_before) = match variants::select(bytes, fingerprint) {
            Stored::Single(b) => (b, Duration::ZERO),
            Stored::Shared { value, ends_before } => (value, ends_before),
            Stored::Absent => return Read::Miss,
            Stored::Malformed => return Read::Invalid(codec::DecodeError::Shared),
            _ => return Read::Miss,
        };
        let decoded = match codec::decode::<V>(bytes, fingerprint, &self.codec) {
            Ok(d) => d,
            Err(codec::DecodeError::OtherType) => return Read::Miss,
            Err(e) => return Read::Invalid(e),
        };
        let meta = decoded.1;
        if meta.is_none() && ends_before.is_zero() {
            return Read::Hit(
                decoded.0,
                Timing {
                    left,
                    ..Timing::default()
                },
            );
        }
        // The entry's own time left is the key's `PTTL` less `ends_before`
        // (Redis's clock, not ours). A read without `PTTL` asks now.
        let left = match left {
            Some(l) => l,
            // Boxed: rare (an entry with a stale window or shared with
            // other builds, read by a cache without L1), and inline it made
            // every read's state larger.
            None => match Box::pin(self.guarded(
                self.layout.key_bucket(key),
                self.store.ttl(&self.layout.physical(key)),
            ))
            .await
            {
                Ok(KeyTtl::Expires(l)) => l,
                Ok(KeyTtl::Missing) => return Read::Miss,
                Ok(KeyTtl::Persistent) => Duration::MAX,
                Err(e) => return Read::Unavailable(e),
            },
        };
        let Some(left) = left.checked_sub(ends_before).filter(|l| !l.is_zero()) else {
            return Read::Miss;
        };
        let (v, meta) = decoded;
        let Some(meta) = meta else {
            return Read::Hit(
                v,
                Timing {
                    left: Some(left),
                    ..Timing::default()
                },
            );
        };
        // Fresh while the entry has more than its stale window left.
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

    pub(crate) fn encode<V: Serialize + DeserializeOwned + 'static>(
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

    /// Whether markers read at `at` may still guard a write: they live
    /// [`MARKER_TTL`], and one that expired and came back would look unchanged.
    pub(crate) fn observation_usable(&self, at: Instant) -> bool {
        at.elapsed() < MARKER_TTL
    }

    /// An explicit write: indexed, and bumps the key's marker so that a
    /// computation that started before does not overwrite it.
    pub(crate) async fn write(
        &self,
        key: &str,
        bytes: &[u8],
        ttl: Duration,
        tags: &[String],
    ) -> Result<(), TierError> {
        let mut indexes = self.layout.indexes(key);
        indexes.extend(self.layout.tag_indexes(key, tags));
        let marker = self.layout.key_marker(key);
        let sequence = self.layout.sequence_for(key);
        let guard = WriteGuard::Bump {
            marker: &marker,
            sequence: &sequence,
            ttl: MARKER_TTL,
        };
        let registry = self.layout.registry(key);
        let name = self.layout.physical(key);
        self.guarded(
            self.layout.key_bucket(key),
            self.store
                .write(&name, bytes, ttl, &indexes, &registry, guard),
        )
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
        tags: &[String],
    ) -> Result<bool, TierError> {
        // Invalidations from an outage not replayed yet have not stamped
        // their markers: nothing computed is written before they are.
        self.ready(self.layout.key_bucket(key))?;
        let mut indexes = self.layout.indexes(key);
        indexes.extend(self.layout.tag_indexes(key, tags));
        let mut markers = self.layout.markers(key);
        markers.extend(self.layout.tag_markers(key, tags));
        let sequence;
        let guard = if self.evictions.seen.load(Relaxed) {
            // A marker may have been evicted: then any invalidation since
            // the computation started (the sequence moved, or went with
            // the marker) refuses it.
            sequence = self.layout.sequence_for(key);
            WriteGuard::UnmovedSequence {
                markers: &markers,
                sequence: &sequence,
                observed: *observed,
            }
        } else {
            WriteGuard::Unchanged {
                markers: &markers,
                observed: *observed,
            }
        };
        let registry = self.layout.registry(key);
        let name = self.layout.physical(key);
        self.guarded(
            self.layout.key_bucket(key),
            self.store
                .write(&name, bytes, ttl, &indexes, &registry, guard),
        )
        .await
    }

    /// Removes `key` and bumps its marker.
    async fn remove(&self, key: &str) -> Result<u64, TierError> {
        let marker = self.layout.key_marker(key);
        let sequence = self.layout.sequence_for(key);
        let name = self.layout.physical(key);
        self.guarded(
            self.layout.key_bucket(key),
            self.store
                .invalidate_key(&name, &marker, &sequence, MARKER_TTL),
        )
        .await
    }

    /// Removes what `pattern` matches: an exact key with one `UNLINK`; a
    /// prefix at a segment boundary (`user:42:*`) from its index set, in
    /// O(matching keys); anything else with `SCAN` + `UNLINK`. Each bumps
    /// the marker of the deepest segment prefix it covers first, so that
    /// computations that started before do not store their results. On a
    /// cluster, a prefix or marker that spans buckets (`user:*`, the root)
    /// is drained or bumped in each of them, and `SCAN` runs on every master;
    /// a prefix that failed in only some buckets says which.
    async fn remove_matching(&self, pattern: &str) -> Result<u64, Unfinished> {
        let glob = Glob::new(pattern);
        if let Some(key) = glob.exact() {
            return self.remove(&key).await.map_err(Unfinished::whole);
        }
        let prefix = glob.prefix();
        if let Some(segment) = prefix
            .as_deref()
            .and_then(|p| self.layout.indexed_segment(p))
        {
            let results = self
                .each_bucket(segment, |bucket| self.drain(bucket, segment))
                .await;
            let drained = Unfinished::sum(results)?;
            if !self.evictions_seen().await {
                return Ok(drained);
            }
            // An evicted index set left keys that only a scan finds.
            let scanned = self
                .scan_delete(pattern, &glob)
                .await
                .map_err(Unfinished::whole)?;
            return Ok(drained + scanned);
        }
        let literal = glob.leading_literal();
        let covering = self.layout.covering_segment(&literal);
        let bumped = self
            .each_bucket(covering, |bucket| async move {
                let marker = self.layout.marker_in(bucket, covering);
                let sequence = self.layout.sequence_in(bucket);
                self.guarded(bucket, self.store.bump(&marker, &sequence, MARKER_TTL))
                    .await
            })
            .await;
        if let Some((_, Err(e))) = bumped.into_iter().find(|(_, r)| r.is_err()) {
            return Err(Unfinished::whole(e));
        }
        self.scan_delete(pattern, &glob)
            .await
            .map_err(Unfinished::whole)
    }

    /// Removes the keys `pattern` matches by scanning the keyspace.
    async fn scan_delete(&self, pattern: &str, glob: &Glob) -> Result<u64, TierError> {
        if !self.layout.is_cluster() {
            return self
                .guarded(None, self.store.delete_matching(pattern))
                .await;
        }
        // Bucket-tagged names: `SCAN` for a wider pattern, and keep the names
        // whose key (tag removed) the pattern matches.
        let scan = self.layout.scan_pattern(pattern);
        let layout = &self.layout;
        self.guarded(
            None,
            self.store.delete_matching_where(&scan, |name| {
                layout.logical(name).is_some_and(|key| glob.matches(&key))
            }),
        )
        .await
    }

    /// Whether Redis has evicted keys under a policy that may take the
    /// cache's bookkeeping (`evicted_keys` above 0 with a memory limit and
    /// an evicting policy): an index set may have gone, and its keys with
    /// it from prefix invalidation, so prefix invalidations also scan. Once
    /// seen it holds for this instance's life (keys an evicted set left
    /// behind live until their TTL). Until then, Redis is asked before each
    /// prefix invalidation, except within a minute of finding no memory
    /// limit or a `noeviction` policy.
    async fn evictions_seen(&self) -> bool {
        if self.evictions.seen.load(Relaxed) {
            return true;
        }
        if self
            .evictions
            .cannot_evict_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
        {
            return false;
        }
        let Ok(info) = self.guarded(None, self.store.info()).await else {
            // Unknown: scanning too is the safe side.
            return true;
        };
        if !info.may_evict() {
            *self
                .evictions
                .cannot_evict_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + EVICTION_RECHECK);
            return false;
        }
        self.note_evictions(&info)
    }

    /// Drains `segment`'s index set in `bucket` (stamping its marker).
    async fn drain(&self, bucket: Bucket, segment: &str) -> Result<u64, TierError> {
        let index = self.layout.index_in(bucket, segment);
        let marker = self.layout.marker_in(bucket, segment);
        self.drain_set(bucket, &index, &marker).await
    }

    /// Stamps `tag`'s marker and removes the keys of its set, in one
    /// bucket (the whole of it on a single node).
    async fn drain_tag(&self, bucket: Bucket, tag: &str) -> Result<u64, TierError> {
        let index = self.layout.tag_index_in(bucket, tag);
        let marker = self.layout.tag_marker_in(bucket, tag);
        self.drain_set(bucket, &index, &marker).await
    }

    /// Stamps `marker`, then removes the keys listed in the set `index`.
    async fn drain_set(&self, bucket: Bucket, index: &str, marker: &str) -> Result<u64, TierError> {
        let sequence = self.layout.sequence_in(bucket);
        self.guarded(
            bucket,
            self.store.drain_index(index, marker, &sequence, MARKER_TTL),
        )
        .await
    }

    /// Removes the keys tagged `tag` in every bucket: O(tagged keys +
    /// buckets), whatever the size of the keyspace.
    async fn remove_tag(&self, tag: &str) -> Result<u64, Unfinished> {
        use futures_util::StreamExt;
        let steps = self
            .layout
            .buckets()
            .map(|bucket| async move { (bucket, self.drain_tag(bucket, tag).await) });
        let results: Vec<_> = futures_util::stream::iter(steps)
            .buffer_unordered(FAN_OUT)
            .collect()
            .await;
        Unfinished::sum(results)
    }

    /// Removes the keys tagged `tag` in Redis and tells the other
    /// instances; what fails is queued (per failed bucket on a cluster)
    /// and replayed once Redis answers.
    pub(crate) async fn invalidate_tag(&self, tag: &str) -> Invalidated {
        let removal = self.remove_tag(tag).await;
        if removal.is_ok() && self.evictions.seen.load(Relaxed) {
            tracing::warn!(
                tag,
                "Redis evicts keys: a tag's set may have been evicted with some of its \
                 members listed, and those keys were not removed; use a policy that \
                 does not evict (`noeviction`) or `volatile-*` with room to spare"
            );
        }
        self.settle(
            removal,
            || backplane::Op::Tag(tag.to_owned()),
            |b| queue::Deferred::TagIn(b, tag.to_owned()),
            || self.defer_tag(tag),
        )
        .await
    }

    /// Ends an invalidation whose removal in Redis came to `removal`:
    /// announces it (`op`); queues what failed, per failed bucket
    /// (`share`, and the whole is announced now: the rest of it is gone)
    /// or whole (`defer`, also when the announcement fails).
    async fn settle(
        &self,
        removal: Result<u64, Unfinished>,
        op: impl Fn() -> backplane::Op,
        share: impl Fn(usize) -> queue::Deferred,
        defer: impl Fn(),
    ) -> Invalidated {
        let removed = match removal {
            Ok(n) => n,
            Err(Unfinished {
                error,
                buckets: Some(buckets),
            }) => {
                for b in buckets {
                    self.queue.defer(share(b), queue::Scope::Bucket(b));
                }
                // Best effort: the failed shares announce again when replayed.
                let _ = self.announce(op()).await;
                return Invalidated {
                    removed: None,
                    error: Some(error),
                };
            }
            Err(Unfinished {
                error,
                buckets: None,
            }) => {
                defer();
                return Invalidated {
                    removed: None,
                    error: Some(error),
                };
            }
        };
        let error = match self.announce(op()).await {
            Ok(()) => None,
            Err(e) => {
                defer();
                Some(e)
            }
        };
        Invalidated {
            removed: Some(removed),
            error,
        }
    }

    /// Queues `tag`'s invalidation for replay, whole: it spans every
    /// bucket, so it holds back every read (one item, not one per bucket,
    /// so a cluster-wide outage does not fill the queue).
    fn defer_tag(&self, tag: &str) {
        self.queue
            .defer(queue::Deferred::Tag(tag.to_owned()), queue::Scope::All);
    }

    /// The share of the prefix `pattern` in one cluster bucket (a replay of
    /// [`Deferred::PatternIn`](queue::Deferred::PatternIn)).
    async fn remove_prefix_in(&self, bucket: usize, pattern: &str) -> Result<u64, TierError> {
        let glob = Glob::new(pattern);
        match glob
            .prefix()
            .as_deref()
            .and_then(|p| self.layout.indexed_segment(p))
        {
            Some(segment) => self.drain(Some(bucket), segment).await,
            // Only prefixes are split by bucket; anything else goes whole.
            None => self.remove_matching(pattern).await.map_err(|u| u.error),
        }
    }

    /// Runs `step` in every bucket `segment` spans (once on a single node;
    /// on a cluster, every bucket for a namespace or the root, one for a
    /// deeper prefix), [`FAN_OUT`] at a time; every step is attempted and
    /// its result returned with its bucket, in no particular order.
    async fn each_bucket<'a, T, F, Fut>(
        &'a self,
        segment: &'a str,
        step: F,
    ) -> Vec<(Bucket, Result<T, TierError>)>
    where
        F: Fn(Bucket) -> Fut,
        Fut: std::future::Future<Output = Result<T, TierError>> + 'a,
    {
        use futures_util::StreamExt;
        let steps = self
            .layout
            .segment_buckets(segment)
            .into_iter()
            .map(|bucket| {
                let run = step(bucket);
                async move { (bucket, run.await) }
            });
        futures_util::stream::iter(steps)
            .buffer_unordered(FAN_OUT)
            .collect()
            .await
    }

    /// Removes `key` in Redis and tells the other instances; what fails is
    /// queued (removal and announcement) and replayed once Redis answers.
    pub(crate) async fn invalidate_key(&self, key: &str) -> Invalidated {
        match self.remove(key).await {
            Ok(n) => Invalidated {
                removed: Some(n),
                error: self.announce_key(key).await.err(),
            },
            Err(e) => {
                self.defer_key(key);
                Invalidated {
                    removed: None,
                    error: Some(e),
                }
            }
        }
    }

    /// Removes what `pattern` matches in Redis and tells the other
    /// instances; what fails is queued and replayed once Redis answers.
    /// On a cluster, a prefix that failed in only some buckets (one master
    /// down) is queued per failed bucket, and announced now: the rest of
    /// it is gone.
    pub(crate) async fn invalidate_pattern(&self, pattern: &str) -> Invalidated {
        let removal = self.remove_matching(pattern).await;
        self.settle(
            removal,
            || backplane::Op::Pattern(pattern.to_owned()),
            |b| queue::Deferred::PatternIn(b, pattern.to_owned()),
            || self.defer_pattern(pattern),
        )
        .await
    }

    /// Tells the other instances to drop their copies of `key` (it was
    /// overwritten, or given a new TTL); queued for replay if Redis does
    /// not take the message.
    pub(crate) async fn announce_key(&self, key: &str) -> Result<(), TierError> {
        let sent = self.announce(backplane::Op::Key(key.to_owned())).await;
        if sent.is_err() {
            self.defer_key(key);
        }
        sent
    }

    /// An overwrite of `key` that did not reach Redis left the old value
    /// there: queue its removal (and announcement) for replay. It holds
    /// back reads of the key's bucket (on one server, every read).
    pub(crate) fn defer_key(&self, key: &str) {
        let scope = self.scope(self.layout.key_bucket(key));
        self.queue
            .defer(queue::Deferred::Key(key.to_owned()), scope);
    }

    /// Queues `pattern` for replay: it holds back reads of its one bucket
    /// if it has one (a key, or a prefix below the top level on a
    /// cluster), else every read.
    fn defer_pattern(&self, pattern: &str) {
        let glob = Glob::new(pattern);
        let bucket = if let Some(key) = glob.exact() {
            self.layout.key_bucket(&key)
        } else {
            match glob
                .prefix()
                .as_deref()
                .and_then(|p| self.layout.indexed_segment(p))
                .map(|segment| self.layout.segment_buckets(segment))
                .as_deref()
            {
                Some([one]) => *one,
                _ => None,
            }
        };
        let scope = self.scope(bucket);
        self.queue
            .defer(queue::Deferred::Pattern(pattern.to_owned()), scope);
    }

    fn scope(&self, bucket: Bucket) -> queue::Scope {
        bucket.map_or(queue::Scope::All, queue::Scope::Bucket)
    }

    /// Invalidations queued and not yet replayed (`u64::MAX` after an overflow).
    pub(crate) fn pending(&self) -> u64 {
        self.queue.len()
    }

    /// The invalidation sequence that guards `key` now, before a
    /// computation of it starts.
    pub(crate) async fn observe(&self, key: &str) -> Result<Observed, TierError> {
        self.ready(self.layout.key_bucket(key))?;
        let sequence = self.layout.sequence_for(key);
        self.guarded(self.layout.key_bucket(key), self.store.observe(&sequence))
            .await
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool, TierError> {
        self.ready(self.layout.key_bucket(key))?;
        let name = self.layout.physical(key);
        self.guarded(self.layout.key_bucket(key), self.store.exists(&name))
            .await
    }

    /// `Ok(None)` if the key is absent; a key without expiry reports `Duration::MAX`.
    pub(crate) async fn ttl(&self, key: &str) -> Result<Option<Duration>, TierError> {
        self.ready(self.layout.key_bucket(key))?;
        let name = self.layout.physical(key);
        Ok(
            match self
                .guarded(self.layout.key_bucket(key), self.store.ttl(&name))
                .await?
            {
                KeyTtl::Missing => None,
                KeyTtl::Persistent => Some(Duration::MAX),
                KeyTtl::Expires(d) => Some(d),
            },
        )
    }

    /// A new TTL for `key`; its index sets (and the set that counts it) are
    /// kept alive at least as long.
    pub(crate) async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, TierError> {
        let mut indexes = self.layout.indexes(key);
        indexes.push(self.layout.registry(key));
        let name = self.layout.physical(key);
        self.guarded(
            self.layout.key_bucket(key),
            self.store.expire_indexed(&name, ttl, &indexes),
        )
        .await
    }

    /// Claims this period of the warmer `name` (for `period`, under
    /// [`Layout::warm_claim`]): true when this instance is the one to run it.
    pub(crate) async fn claim_warm(
        &self,
        name: &str,
        token: &str,
        period: Duration,
    ) -> Result<bool, TierError> {
        let key = self.layout.warm_claim(name);
        let bucket = self.layout.is_cluster().then_some(0);
        self.guarded(bucket, self.store.claim(&key, token, period))
            .await
    }

    /// What Redis holds under `key` (a full key), described without
    /// knowing its type: `None` when there is no such key.
    pub(crate) async fn inspect(&self, key: &str) -> Result<Option<EntryInfo>, TierError> {
        let bucket = self.layout.key_bucket(key);
        let name = self.layout.physical(key);
        let Some((bytes, ttl)) = self.guarded(bucket, self.store.get_with_ttl(&name)).await? else {
            return Ok(None);
        };
        let left = time_left(ttl);
        let logical = self.layout.rest(key).unwrap_or(key);
        let logical = logical.strip_prefix(':').unwrap_or(logical).to_owned();
        let mut info = EntryInfo {
            key: logical,
            ttl_ms: left.map(|l| u64::try_from(l.as_millis()).unwrap_or(u64::MAX)),
            stored_bytes: bytes.len(),
            values: Vec::new(),
            problem: None,
        };
        let Some(entries) = variants::entries(&bytes) else {
            info.problem = Some("entries of several builds that do not parse".to_owned());
            return Ok(Some(info));
        };
        for (_, ends_before, value) in entries {
            match codec::open(value) {
                Ok(opened) => info
                    .values
                    .push(self.describe(&opened, value, left, ends_before)),
                Err(e) => {
                    info.problem = Some(format!("not a cache entry: {e}"));
                    info.values.clear();
                    break;
                }
            }
        }
        Ok(Some(info))
    }

    /// One value's facts, for [`inspect`](Self::inspect).
    fn describe(
        &self,
        opened: &codec::Opened<'_>,
        bytes: &[u8],
        left: Option<Duration>,
        ends_before: Duration,
    ) -> StoredValue {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let stale_ms = opened.meta.map_or(0, |m| m.stale_ms);
        let fresh = left.map(|l| {
            l.saturating_sub(ends_before)
                .saturating_sub(Duration::from_millis(stale_ms))
        });
        let max = self.codec.max_size;
        let (payload_bytes, head, mut problem) = match opened.payload(max) {
            Ok(p) => (
                p.len(),
                p.iter().take(32).map(|b| format!("{b:02x}")).collect(),
                None,
            ),
            Err(e) => (
                0,
                bytes.iter().take(32).map(|b| format!("{b:02x}")).collect(),
                Some(e.to_string()),
            ),
        };
        let payload = match problem {
            Some(_) => None,
            None => opened.as_json(max).unwrap_or_else(|e| {
                problem = Some(e.to_string());
                None
            }),
        };
        StoredValue {
            format: opened.format.name().to_owned(),
            compression: match opened.compression {
                0 => "none".to_owned(),
                1 => "zstd".to_owned(),
                other => format!("unknown ({other})"),
            },
            fingerprint: format!("{:016x}", opened.fingerprint),
            fresh_ms: fresh.map(ms),
            stale_window_ms: stale_ms,
            compute_ms: opened.meta.map(|m| m.delta_ms),
            payload_bytes,
            payload,
            hex_head: head,
            problem,
        }
    }

    /// Not through the breaker: health checks want the truth.
    pub(crate) async fn ping(&self) -> Result<Duration, TierError> {
        Ok(self.store.ping().await?)
    }

    /// Used memory and the database's key count, summed and per master.
    pub(crate) async fn info(&self) -> Result<cache_redis::ServerInfo, TierError> {
        let info = self.guarded(None, self.store.info()).await?;
        self.note_evictions(&info);
        Ok(info)
    }

    /// Records what `info` says of evictions (see [`evictions_seen`](Self::evictions_seen)).
    fn note_evictions(&self, info: &cache_redis::ServerInfo) -> bool {
        if !info.may_evict() || info.evicted_keys == 0 {
            return false;
        }
        if !self.evictions.seen.swap(true, Relaxed) {
            tracing::warn!(
                policy = info.eviction_policy.as_deref().unwrap_or(""),
                evicted_keys = info.evicted_keys,
                "Redis evicts keys: prefix invalidations now also scan the keyspace, so that keys \
                 whose index set was evicted are removed too (O(keyspace) instead of O(matching \
                 keys)), and computed values are stored only if no invalidation ran meanwhile"
            );
        }
        true
    }

    /// The cache's entries per prefix `depth` segments deep (see
    /// [`Layout::segment_at`]; 1 is [`namespaces`](Self::namespaces)): each
    /// top-level index set is counted (and pruned) as there, then walked
    /// with `SSCAN` and its keys grouped. A prefix's count is exact when its
    /// top-level set's was.
    pub(crate) async fn namespaces_at(
        &self,
        depth: usize,
    ) -> Result<Vec<NamespaceStats>, TierError> {
        if depth <= 1 {
            return self.namespaces().await;
        }
        let mut counts: std::collections::BTreeMap<String, (u64, bool)> = Default::default();
        for bucket in self.layout.buckets() {
            let top = self.layout.top_indexes_in(bucket);
            self.guarded(bucket, self.store.census(&top, CENSUS_TOP))
                .await?;
            let indexes = self.guarded(bucket, self.store.members(&top)).await?;
            for index in &indexes {
                let (_, exact) = self
                    .guarded(bucket, self.store.census(index, CENSUS_EXACT))
                    .await?;
                let mut cursor = 0;
                loop {
                    let (next, members) = self
                        .guarded(bucket, self.store.scan_members(index, cursor, 1000))
                        .await?;
                    for physical in &members {
                        let Some(key) = self.layout.logical(physical) else {
                            continue;
                        };
                        let rest = self.layout.rest(&key).unwrap_or(&key);
                        let c = counts
                            .entry(Layout::segment_at(rest, depth).to_owned())
                            .or_insert((0, true));
                        c.0 += 1;
                        c.1 &= exact;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            let flat = self.layout.flat_keys_in(bucket);
            let (entries, exact) = self
                .guarded(bucket, self.store.census(&flat, CENSUS_EXACT))
                .await?;
            let c = counts.entry(String::new()).or_insert((0, true));
            c.0 += entries;
            c.1 &= exact;
        }
        Ok(NamespaceStats::largest_first(counts.into_iter().map(
            |(prefix, (entries, exact))| (prefix, entries, exact),
        )))
    }

    /// The cache's entries per top-level prefix, from its index sets: the
    /// set of top-level index sets (pruned of those gone), then a census of
    /// each (exact up to [`CENSUS_EXACT`] members, sampled beyond), then
    /// the keys without a segment. Largest first.
    pub(crate) async fn namespaces(&self) -> Result<Vec<NamespaceStats>, TierError> {
        use futures_util::StreamExt;
        // One bucket's namespaces (the only one on a single node).
        let bucket_counts = |bucket: Bucket| async move {
            let mut found = Vec::new();
            let top = self.layout.top_indexes_in(bucket);
            self.guarded(bucket, self.store.census(&top, CENSUS_TOP))
                .await?;
            let indexes = self.guarded(bucket, self.store.members(&top)).await?;
            for index in &indexes {
                let Some(segment) = self.layout.segment_of_index(index) else {
                    continue;
                };
                let (entries, exact) = self
                    .guarded(bucket, self.store.census(index, CENSUS_EXACT))
                    .await?;
                found.push((segment.to_owned(), entries, exact));
            }
            let flat = self.layout.flat_keys_in(bucket);
            let (entries, exact) = self
                .guarded(bucket, self.store.census(&flat, CENSUS_EXACT))
                .await?;
            found.push((String::new(), entries, exact));
            Ok::<_, TierError>(found)
        };
        let per_bucket: Vec<Result<Vec<Census>, TierError>> =
            futures_util::stream::iter(self.layout.buckets().map(bucket_counts))
                .buffer_unordered(FAN_OUT)
                .collect()
                .await;
        let mut counts: std::collections::BTreeMap<String, (u64, bool)> = Default::default();
        for found in per_bucket {
            for (prefix, entries, exact) in found? {
                let c = counts.entry(prefix).or_insert((0, true));
                c.0 += entries;
                c.1 &= exact;
            }
        }
        Ok(NamespaceStats::largest_first(counts.into_iter().map(
            |(prefix, (entries, exact))| (prefix, entries, exact),
        )))
    }

    /// This instance's id on the backplane, in hex.
    pub(crate) fn instance(&self) -> String {
        format!("{:016x}", self.instance)
    }

    /// Stops the backplane receiver (a quiet channel would otherwise keep
    /// it, and its connection, waiting forever).
    fn stop_receiver(&self) {
        if let Some(task) = self
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }

    /// Keeps queued invalidations in a journal in `dir` from now on, and
    /// queues what dead instances left there (replayed once Redis answers).
    pub(crate) fn open_journal(
        &self,
        dir: &std::path::Path,
        prefix: &str,
    ) -> Result<(), TierError> {
        let (journal, left) = journal::Journal::open(dir, prefix)?;
        self.queue
            .open_journal(journal, left, self.layout.is_cluster());
        Ok(())
    }

    /// The shutdown's share of the tier: stops the backplane receiver,
    /// releases the stampede locks this process holds (waiters elsewhere
    /// take over at once instead of after the lock's TTL), removes this
    /// instance's stats snapshot, and replays queued invalidations until
    /// none is left or `deadline`. Returns the invalidations still queued.
    pub(crate) async fn shutdown(&self, deadline: tokio::time::Instant) -> Shutdown {
        self.stop_receiver();
        let mut report = Shutdown::default();
        for (key, token) in self.held.take() {
            let released = tokio::time::timeout_at(deadline, self.unlock(&key, &token)).await;
            if matches!(released, Ok(Ok(true))) {
                report.locks_released += 1;
            }
        }
        let snapshot = self.layout.stats_key(&self.instance());
        let names = [snapshot.as_str()];
        let removed = self.guarded(None, self.store.unlink(&names));
        let _ = tokio::time::timeout_at(deadline, removed).await;
        let flushed = tokio::time::timeout_at(deadline, async {
            while !self.replay_pending().await {
                tokio::time::sleep(queue::PROBE_EVERY).await;
                self.probe_early().await;
            }
        })
        .await;
        if flushed.is_err() {
            report.unflushed = self.queue.describe(self.layout.everything());
            report.journaled = self.queue.journaled();
        }
        report
    }

    /// Writes this instance's stats snapshot, to live `ttl`.
    pub(crate) async fn put_snapshot(&self, bytes: &[u8], ttl: Duration) -> Result<(), TierError> {
        let key = self.layout.stats_key(&self.instance());
        self.guarded(
            None,
            self.store
                .put_snapshot(&self.layout.stats_live(), &key, bytes, ttl),
        )
        .await
    }

    /// The snapshots of every live instance (this one's included, once written).
    pub(crate) async fn snapshots(&self) -> Result<Vec<Vec<u8>>, TierError> {
        self.guarded(None, self.store.snapshots(&self.layout.stats_live()))
            .await
    }

    /// Logs a warning if Redis may evict keys: an evicted index set or marker
    /// weakens invalidation (see the module docs).
    async fn warn_if_evicting(&self) {
        if let Ok(info) = self.guarded(None, self.store.info()).await
            && info.may_evict()
            && !self.note_evictions(&info)
        {
            tracing::warn!(
                policy = info.eviction_policy.as_deref().unwrap_or(""),
                maxmemory = info.max_memory,
                "Redis may evict keys: once it does, prefix invalidations also scan the keyspace \
                 and computed values are stored only if no invalidation ran meanwhile; use \
                 maxmemory-policy noeviction for the cache's Redis, or keep memory to spare"
            );
        }
    }
}

/// A key's time left, if it expires.
fn time_left(ttl: KeyTtl) -> Option<Duration> {
    match ttl {
        KeyTtl::Expires(d) => Some(d),
        KeyTtl::Persistent | KeyTtl::Missing => None,
    }
}

pin_project_lite::pin_project! {
    /// [`L2::guarded`]'s future. Hand-written rather than an `async fn`: an
    /// `async fn` keeps its argument and, while awaiting it, a second copy
    /// of it, which doubled the read path's state (and the bytes every
    /// Redis hit allocates and moves).
    pub(crate) struct Guarded<'a, F> {
        tier: &'a L2,
        bucket: Bucket,
        permit: Option<Permit<'a>>,
        timer: Option<Instant>,
        started: bool,
        #[pin]
        command: F,
    }
}

impl<T, F> Future for Guarded<'_, F>
where
    F: Future<Output = Result<T, StoreError>>,
{
    type Output = Result<T, TierError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if !*this.started {
            *this.started = true;
            let Some(permit) = this.tier.breaker(*this.bucket).and_then(Breaker::allow) else {
                return Poll::Ready(Err(TierError::BreakerOpen));
            };
            *this.permit = Some(permit);
            *this.timer = this.tier.observer.redis_timer();
        }
        let result = std::task::ready!(this.command.poll(cx));
        this.tier.observer.redis_command(this.timer.take());
        let ok = !matches!(&result, Err(e) if e.is_unavailable());
        this.tier.command_done(*this.bucket, this.permit.take(), ok);
        Poll::Ready(result.map_err(TierError::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tier over a port nothing listens on: every command fails at once.
    pub(super) fn unreachable() -> Arc<L2> {
        let mut config = RedisConfig::new("redis://127.0.0.1:1/0");
        config.connect_timeout = Duration::from_millis(200);
        Arc::new(
            L2::connect(
                config,
                CodecConfig::default(),
                BreakerConfig::default(),
                "t",
                Arc::new(Observer::new(None, false)),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    #[tokio::test]
    async fn an_invalidation_that_cannot_reach_redis_is_queued_once() {
        let l2 = unreachable();
        let out = l2.invalidate_key("t:a").await;
        assert!(out.removed.is_none());
        assert!(out.error.is_some_and(|e| e.is_failure()));
        assert_eq!(l2.pending(), 1);
        let out = l2.invalidate_pattern("t:user:*").await;
        assert!(out.removed.is_none() && out.error.is_some());
        assert_eq!(
            l2.pending(),
            2,
            "a failed removal is queued, not also its announcement"
        );
    }

    #[tokio::test]
    async fn an_announcement_that_fails_is_queued() {
        let l2 = unreachable();
        assert!(l2.announce_key("t:k").await.is_err());
        assert_eq!(l2.pending(), 1);
    }

    #[tokio::test]
    async fn reads_wait_for_the_replay_and_never_fail_the_caller() {
        let l2 = unreachable();
        l2.defer_key("t:k");
        assert!(matches!(
            l2.read::<u32>("t:k", 0, false).await,
            Read::Unavailable(TierError::Replaying)
        ));
        assert!(matches!(l2.observe("k").await, Err(TierError::Replaying)));
    }
}
