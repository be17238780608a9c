//! Counters and the serializable snapshot [`Stats`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) l1_hits: AtomicU64,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) backplane_applied: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) sets: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) invalidated_entries: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) redis_skipped: AtomicU64,
    pub(crate) origin_errors: AtomicU64,
    pub(crate) flight_timeouts: AtomicU64,
    pub(crate) skipped_stores: AtomicU64,
    pub(crate) lock_waits: AtomicU64,
    pub(crate) lock_takeovers: AtomicU64,
    pub(crate) lock_timeouts: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) origin_timeouts: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) warm_runs: AtomicU64,
    pub(crate) warm_skipped: AtomicU64,
    pub(crate) warmed_entries: AtomicU64,
    pub(crate) warm_errors: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// Counters of one annotated function within one cache.
#[derive(Debug)]
pub(crate) struct FnCounters {
    pub(crate) function: &'static str,
    pub(crate) label: &'static str,
    pub(crate) kind: FunctionKind,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) sets: AtomicU64,
    pub(crate) origin_errors: AtomicU64,
    pub(crate) origin_nanos: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) patterns: AtomicU64,
    pub(crate) invalidated_entries: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
}

impl FnCounters {
    pub(crate) fn new(function: &'static str, label: &'static str, kind: FunctionKind) -> Self {
        FnCounters {
            function,
            label,
            kind,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            sets: AtomicU64::new(0),
            origin_errors: AtomicU64::new(0),
            origin_nanos: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            patterns: AtomicU64::new(0),
            invalidated_entries: AtomicU64::new(0),
            stale_served: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
        }
    }

    pub(crate) fn add_origin_time(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.origin_nanos.fetch_add(nanos, Relaxed);
    }
}

/// Whether a function reads through the cache, invalidates it, or writes its result to it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionKind {
    /// `#[cached]`.
    #[default]
    Cached,
    /// `#[invalidates]`.
    Invalidates,
    /// `#[cache_put]`: writes its result under its key.
    Puts,
}

/// State of the backplane subscription, from [`Cache::backplane`](crate::Cache::backplane).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BackplaneStatus {
    /// The subscription is active.
    pub connected: bool,
    /// Times the subscription was (re)established; each cleared the in-process tier.
    pub subscriptions: u64,
    /// Messages from other instances applied so far.
    pub applied: u64,
}

/// A point-in-time snapshot of a cache's counters, from [`Cache::stats`](crate::Cache::stats).
///
/// A field missing from serialized stats (written by another version of the
/// library, in a rolling deploy) reads as zero.
///
/// Serializes with serde (for a `/cache/stats` endpoint), deserializes (as
/// the snapshots of other instances are read, see
/// [`Cache::stats_all`](crate::Cache::stats_all)), and prints as a table.
///
/// `hit_rate` is the share of lookups that did not call the origin: hits plus
/// callers that waited for a concurrent caller's computation (`coalesced`),
/// over all lookups. It is `0.0` before the first lookup.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
/// let cache = cache_core::Cache::builder().build().await?;
/// cache.set("a", &1u32, cache_core::Preset::Short).await?;
/// let _: Option<u32> = cache.get("a").await?;
/// let _: Option<u32> = cache.get("b").await?;
/// let stats = cache.stats().await;
/// assert_eq!((stats.hits, stats.misses, stats.sets), (1, 1, 1));
/// assert_eq!(stats.hit_rate, 0.5);
/// # Ok(()) }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// `memory` (in-process only) or `redis`.
    pub backend: String,
    /// False when the cache is a pass-through (`CACHE_ENABLED=false`).
    pub enabled: bool,
    /// Lookups answered from the cache (all tiers).
    pub hits: u64,
    /// Lookups answered from the in-process tier.
    pub l1_hits: u64,
    /// Lookups answered from the shared tier (Redis); 0 for `memory`.
    pub l2_hits: u64,
    /// Lookups that found nothing (for attributes: origin calls).
    pub misses: u64,
    /// Callers that waited for a concurrent caller's computation instead of calling the origin.
    pub coalesced: u64,
    /// Values written.
    pub sets: u64,
    /// Keys deleted with `delete`.
    pub deletes: u64,
    /// Invalidation requests (`#[invalidates]` patterns, `invalidate`, `clear`).
    pub invalidations: u64,
    /// Entries those invalidations removed.
    pub invalidated_entries: u64,
    /// Cache-side failures (decoding, a Redis command that failed); never origin errors.
    pub errors: u64,
    /// Redis commands not attempted: the circuit breaker was open, or
    /// invalidations from an outage were still being replayed.
    pub redis_skipped: u64,
    /// Origin calls that returned `Err` (never stored).
    pub origin_errors: u64,
    /// Waits for a concurrent computation that hit the bound, after which the caller computed itself.
    pub single_flight_timeouts: u64,
    /// Values not stored because an invalidation raced their computation.
    pub skipped_stores: u64,
    /// Calls that found another process computing the value (its Redis lock
    /// held) and waited for it instead of calling the origin.
    pub lock_waits: u64,
    /// Waiting calls that took the lock over after its holder gave it up
    /// without a value (it failed, or died and the lock expired), then computed.
    pub lock_takeovers: u64,
    /// Waits for another process's lock that reached the bound, after which the caller computed.
    pub lock_timeouts: u64,
    /// Calls answered with a value past its TTL, kept by `stale_if_error`,
    /// because the origin failed or was too slow.
    pub stale_served: u64,
    /// Origin calls cut off by `timeout` (a stale value was served instead).
    pub origin_timeouts: u64,
    /// Background refreshes (`refresh`) that stored a new value.
    pub refreshes: u64,
    /// Background refreshes whose origin failed (the current value stays until it expires).
    pub refresh_failures: u64,
    /// Warmer runs ([`Cache::warm`](crate::Cache::warm), `warm_all`, and scheduled runs).
    pub warm_runs: u64,
    /// Scheduled warmer runs left to another instance, which claimed the period first.
    pub warm_skipped: u64,
    /// Entries warmers wrote.
    pub warmed_entries: u64,
    /// Warmer runs that ended with an error.
    pub warm_errors: u64,
    /// See the type docs.
    pub hit_rate: f64,
    /// Entries in the in-process tier (approximate: moka counts lazily).
    pub entries: u64,
    /// Messages from other instances applied to the in-process tier.
    pub backplane_applied: u64,
    /// The backplane subscription, with a shared tier.
    pub backplane: Option<BackplaneStatus>,
    /// Redis's own figures, with a shared tier.
    pub redis: Option<RedisStats>,
    /// Each Redis master's own figures (one on a single server, every
    /// master of a cluster), with a shared tier; empty in instances'
    /// snapshots.
    pub redis_nodes: Vec<RedisNodeStats>,
    /// The circuit breaker in front of Redis, with a shared tier.
    pub breaker: Option<crate::BreakerState>,
    /// Invalidations that could not reach Redis yet and will be replayed
    /// before Redis is read again (`u64::MAX`: too many, the whole prefix will go).
    pub pending_invalidations: u64,
    /// Per annotated function, labelled by key template or pattern, sorted by function.
    pub functions: Vec<FunctionStats>,
}

/// What Redis holds for this cache, in [`Stats::redis`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisStats {
    /// Whether Redis answered (the figures are 0 otherwise).
    pub reachable: bool,
    /// `used_memory`, in bytes.
    pub used_memory: u64,
    /// This cache's entries (values, without the bookkeeping keys beside
    /// them), counted from its index sets without a scan; see
    /// [`Cache::namespaces`](crate::Cache::namespaces).
    pub entries: u64,
    /// False when a large namespace was counted from a sample (then
    /// `entries` is an estimate).
    pub entries_exact: bool,
    /// Keys in the database: every key, the bookkeeping and other
    /// applications' keys included (`DBSIZE`).
    pub db_keys: u64,
}

/// One Redis master in [`Stats::redis_nodes`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisNodeStats {
    /// `host:port` on a cluster; the server's URL (password redacted) otherwise.
    pub address: String,
    /// Whether it answered (the figures are 0 otherwise).
    pub reachable: bool,
    /// `used_memory`, in bytes.
    pub used_memory: u64,
    /// Keys in its database (`DBSIZE`).
    pub db_keys: u64,
}

/// What [`Cache::delete`](crate::Cache::delete),
/// [`Cache::invalidate`](crate::Cache::invalidate) and
/// [`Cache::clear`](crate::Cache::clear) did: removed now, or queued for
/// replay because Redis could not be reached.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
/// let cache = cache_core::Cache::builder().build().await?;
/// cache.set("k", &1u8, cache_core::Preset::Short).await?;
/// let done = cache.delete("k").await?;
/// assert_eq!((done.removed, done.queued), (1, false));
/// assert!(done.is_done());
/// # Ok(()) }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// Entries removed: counted in Redis when the cache has Redis and it
    /// answered, else in this process's tier.
    pub removed: u64,
    /// Redis could not be reached (or could not take the announcement to
    /// the other instances): this instance's copies are gone, and the rest
    /// is queued and replayed as soon as Redis answers (counted in
    /// [`Stats::pending_invalidations`] until then). Other instances may
    /// serve their in-process copies until the replay reaches them.
    pub queued: bool,
}

impl Removal {
    /// Everything is done: nothing waits for Redis.
    pub fn is_done(&self) -> bool {
        !self.queued
    }
}

/// What [`Cache::shutdown`](crate::Cache::shutdown) did, and what it
/// could not do before its deadline.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
/// use std::time::Duration;
/// let cache = cache_core::Cache::builder().build().await?;
/// let report = cache.shutdown(Duration::from_secs(5)).await;
/// assert!(report.unflushed.is_empty());
/// # Ok(()) }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shutdown {
    /// Invalidations that did not reach Redis before the deadline (full
    /// keys and patterns, with the cache's prefix). Without an outage
    /// journal they are lost: the values they cover live in Redis until
    /// their TTL.
    pub unflushed: Vec<String>,
    /// Whether the unflushed invalidations are in the outage journal, to be
    /// replayed by the next instance that opens it.
    pub journaled: bool,
    /// Stampede locks this process held and released, so that other
    /// processes waiting on them go on at once.
    pub locks_released: usize,
}

/// What Redis holds under one key, from [`Cache::inspect`](crate::Cache::inspect).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryInfo {
    /// The key, without the cache's prefix.
    pub key: String,
    /// Time the key has left in Redis, in milliseconds (`None`: no expiry).
    pub ttl_ms: Option<u64>,
    /// Bytes stored under the key.
    pub stored_bytes: usize,
    /// The values it holds: one, or one per build during a rolling deploy.
    pub values: Vec<StoredValue>,
    /// Why the bytes are not a valid entry (then `values` is empty).
    pub problem: Option<String>,
}

/// One value under a key, in [`EntryInfo::values`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredValue {
    /// `postcard`, `json`, `message_pack` or `bincode`.
    pub format: String,
    /// `none` or `zstd`.
    pub compression: String,
    /// The type fingerprint (the type's shape and the function's `version`), hex.
    pub fingerprint: String,
    /// How long the value stays fresh, in milliseconds (`None`: the key does not expire).
    pub fresh_ms: Option<u64>,
    /// How long it may be served stale after that (`stale_if_error`), in milliseconds.
    pub stale_window_ms: u64,
    /// How long its computation took, when stored with it (early refresh, stale window).
    pub compute_ms: Option<u32>,
    /// Bytes of the serialized value (after decompression).
    pub payload_bytes: usize,
    /// The value, for JSON and MessagePack entries.
    pub payload: Option<serde_json::Value>,
    /// Up to its first 32 bytes, hex.
    pub hex_head: String,
    /// Why this value does not decode, if it does not.
    pub problem: Option<String>,
}

/// The entries under one top-level prefix, from [`Cache::namespaces`](crate::Cache::namespaces).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceStats {
    /// The top-level segment with its separator (`user:` for the keys
    /// `user:42:profile`, `user:7`), or `""` for keys without a segment.
    pub prefix: String,
    /// How many live entries it holds.
    pub entries: u64,
    /// False when counted from a random sample (a namespace with more
    /// entries than are checked one by one).
    pub exact: bool,
}

impl NamespaceStats {
    /// Rows of (prefix, entries, exact), those with entries, largest first
    /// (then by prefix).
    pub(crate) fn largest_first(
        rows: impl IntoIterator<Item = (String, u64, bool)>,
    ) -> Vec<NamespaceStats> {
        let mut out: Vec<NamespaceStats> = rows
            .into_iter()
            .filter(|(_, entries, _)| *entries > 0)
            .map(|(prefix, entries, exact)| NamespaceStats {
                prefix,
                entries,
                exact,
            })
            .collect();
        out.sort_by(|a, b| {
            b.entries
                .cmp(&a.entries)
                .then_with(|| a.prefix.cmp(&b.prefix))
        });
        out
    }
}

/// Counters of one annotated function.
#[non_exhaustive]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FunctionStats {
    /// The function's path with its `impl` type, e.g.
    /// `app::service::EmployeeService::profile`.
    pub function: String,
    /// The key template (`employee:<id>`), or the patterns of `#[invalidates]`.
    pub label: String,
    /// `cached` or `invalidates`.
    pub kind: FunctionKind,
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls that ran the function body.
    pub misses: u64,
    /// Calls that waited for a concurrent call's result.
    pub coalesced: u64,
    /// Results stored.
    pub sets: u64,
    /// Calls whose body returned `Err`.
    pub origin_errors: u64,
    /// Mean duration of the body over `misses`, in microseconds.
    pub mean_origin_us: f64,
    /// Calls that invalidated (for `#[invalidates]`: calls that returned
    /// successfully and applied their patterns).
    pub invalidations: u64,
    /// Patterns those calls applied.
    pub patterns: u64,
    /// Entries those patterns removed (counted in Redis, when there is one).
    pub invalidated_entries: u64,
    /// Calls answered with a stale value (`stale_if_error`).
    pub stale_served: u64,
    /// Background refreshes that stored a new value (`refresh`).
    pub refreshes: u64,
}

pub(crate) fn snapshot(
    backend: &str,
    enabled: bool,
    c: &Counters,
    fns: &[&FnCounters],
    entries: u64,
) -> Stats {
    let l1_hits = c.l1_hits.load(Relaxed);
    let l2_hits = c.l2_hits.load(Relaxed);
    let misses = c.misses.load(Relaxed);
    let coalesced = c.coalesced.load(Relaxed);
    let hits = l1_hits + l2_hits;
    let lookups = hits + misses + coalesced;
    let mut functions: Vec<FunctionStats> = fns
        .iter()
        .map(|f| {
            let misses = f.misses.load(Relaxed);
            let nanos = f.origin_nanos.load(Relaxed);
            FunctionStats {
                function: f.function.to_owned(),
                label: f.label.to_owned(),
                kind: f.kind,
                hits: f.hits.load(Relaxed),
                misses,
                coalesced: f.coalesced.load(Relaxed),
                sets: f.sets.load(Relaxed),
                origin_errors: f.origin_errors.load(Relaxed),
                mean_origin_us: if misses == 0 {
                    0.0
                } else {
                    nanos as f64 / misses as f64 / 1000.0
                },
                invalidations: f.invalidations.load(Relaxed),
                patterns: f.patterns.load(Relaxed),
                invalidated_entries: f.invalidated_entries.load(Relaxed),
                stale_served: f.stale_served.load(Relaxed),
                refreshes: f.refreshes.load(Relaxed),
            }
        })
        .collect();
    functions.sort_by(|a, b| (&a.function, &a.label).cmp(&(&b.function, &b.label)));
    Stats {
        backend: backend.to_owned(),
        enabled,
        hits,
        l1_hits,
        l2_hits,
        misses,
        coalesced,
        sets: c.sets.load(Relaxed),
        deletes: c.deletes.load(Relaxed),
        invalidations: c.invalidations.load(Relaxed),
        invalidated_entries: c.invalidated_entries.load(Relaxed),
        errors: c.errors.load(Relaxed),
        redis_skipped: c.redis_skipped.load(Relaxed),
        origin_errors: c.origin_errors.load(Relaxed),
        single_flight_timeouts: c.flight_timeouts.load(Relaxed),
        skipped_stores: c.skipped_stores.load(Relaxed),
        lock_waits: c.lock_waits.load(Relaxed),
        lock_takeovers: c.lock_takeovers.load(Relaxed),
        lock_timeouts: c.lock_timeouts.load(Relaxed),
        stale_served: c.stale_served.load(Relaxed),
        origin_timeouts: c.origin_timeouts.load(Relaxed),
        refreshes: c.refreshes.load(Relaxed),
        refresh_failures: c.refresh_failures.load(Relaxed),
        warm_runs: c.warm_runs.load(Relaxed),
        warm_skipped: c.warm_skipped.load(Relaxed),
        warmed_entries: c.warmed_entries.load(Relaxed),
        warm_errors: c.warm_errors.load(Relaxed),
        hit_rate: if lookups == 0 {
            0.0
        } else {
            (hits + coalesced) as f64 / lookups as f64
        },
        entries,
        backplane_applied: c.backplane_applied.load(Relaxed),
        backplane: None,
        redis: None,
        redis_nodes: Vec::new(),
        breaker: None,
        pending_invalidations: 0,
        functions,
    }
}

impl Stats {
    /// Adds `other`'s counts to these (another instance's snapshot of the
    /// same cache): counters and entries add up, per-function rows of the
    /// same function and label merge (the mean origin time weighted by
    /// misses), the hit rate is recomputed, and the breaker shows the worst.
    fn absorb(&mut self, other: &Stats) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.hits, other.hits);
        add(&mut self.l1_hits, other.l1_hits);
        add(&mut self.l2_hits, other.l2_hits);
        add(&mut self.misses, other.misses);
        add(&mut self.coalesced, other.coalesced);
        add(&mut self.sets, other.sets);
        add(&mut self.deletes, other.deletes);
        add(&mut self.invalidations, other.invalidations);
        add(&mut self.invalidated_entries, other.invalidated_entries);
        add(&mut self.errors, other.errors);
        add(&mut self.redis_skipped, other.redis_skipped);
        add(&mut self.origin_errors, other.origin_errors);
        add(
            &mut self.single_flight_timeouts,
            other.single_flight_timeouts,
        );
        add(&mut self.skipped_stores, other.skipped_stores);
        add(&mut self.lock_waits, other.lock_waits);
        add(&mut self.lock_takeovers, other.lock_takeovers);
        add(&mut self.lock_timeouts, other.lock_timeouts);
        add(&mut self.stale_served, other.stale_served);
        add(&mut self.origin_timeouts, other.origin_timeouts);
        add(&mut self.refreshes, other.refreshes);
        add(&mut self.refresh_failures, other.refresh_failures);
        add(&mut self.warm_runs, other.warm_runs);
        add(&mut self.warm_skipped, other.warm_skipped);
        add(&mut self.warmed_entries, other.warmed_entries);
        add(&mut self.warm_errors, other.warm_errors);
        add(&mut self.entries, other.entries);
        add(&mut self.backplane_applied, other.backplane_applied);
        add(&mut self.pending_invalidations, other.pending_invalidations);
        self.enabled |= other.enabled;
        self.breaker = match (self.breaker, other.breaker) {
            (Some(a), Some(b)) => Some(if severity(b) > severity(a) { b } else { a }),
            (a, b) => a.or(b),
        };
        for f in &other.functions {
            match self
                .functions
                .iter_mut()
                .find(|g| g.function == f.function && g.label == f.label)
            {
                Some(g) => {
                    let misses = g.misses + f.misses;
                    if misses > 0 {
                        g.mean_origin_us = (g.mean_origin_us * g.misses as f64
                            + f.mean_origin_us * f.misses as f64)
                            / misses as f64;
                    }
                    g.misses = misses;
                    add(&mut g.hits, f.hits);
                    add(&mut g.coalesced, f.coalesced);
                    add(&mut g.sets, f.sets);
                    add(&mut g.origin_errors, f.origin_errors);
                    add(&mut g.invalidations, f.invalidations);
                    add(&mut g.patterns, f.patterns);
                    add(&mut g.invalidated_entries, f.invalidated_entries);
                    add(&mut g.stale_served, f.stale_served);
                    add(&mut g.refreshes, f.refreshes);
                }
                None => self.functions.push(f.clone()),
            }
        }
        self.functions
            .sort_by(|a, b| (&a.function, &a.label).cmp(&(&b.function, &b.label)));
        let lookups = self.hits + self.misses + self.coalesced;
        self.hit_rate = if lookups == 0 {
            0.0
        } else {
            (self.hits + self.coalesced) as f64 / lookups as f64
        };
    }
}

/// Closed, then half-open, then open.
fn severity(state: crate::BreakerState) -> u8 {
    match state {
        crate::BreakerState::Closed => 0,
        crate::BreakerState::HalfOpen => 1,
        crate::BreakerState::Open => 2,
    }
}

/// One live instance's snapshot, in [`ClusterStats`].
#[non_exhaustive]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceStats {
    /// The instance's id on the backplane (random per cache, per process start).
    pub instance: String,
    /// The host it runs on (`HOSTNAME`), if known.
    pub host: Option<String>,
    /// Its process id.
    pub pid: u32,
    /// When it wrote this snapshot, in milliseconds since the Unix epoch.
    pub written_at_ms: u64,
    /// Its counters. Redis figures (`redis`) are left out: they are the
    /// same for every instance, and [`ClusterStats::total`] has them.
    pub stats: Stats,
}

/// Every live instance of a cache and their sum, from
/// [`Cache::stats_all`](crate::Cache::stats_all).
#[non_exhaustive]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStats {
    /// Each instance that wrote a snapshot within its lifetime (three
    /// reporting periods), this one first; sorted by host and pid after it.
    pub instances: Vec<InstanceStats>,
    /// The instances' counters added up, with Redis's own figures as this
    /// instance reads them now.
    pub total: Stats,
}

impl ClusterStats {
    /// The sum of `instances` (the first one's settings, everyone's counts).
    pub(crate) fn sum(
        instances: Vec<InstanceStats>,
        redis: Option<(RedisStats, Vec<RedisNodeStats>)>,
    ) -> ClusterStats {
        let mut total: Option<Stats> = None;
        for i in &instances {
            match &mut total {
                Some(t) => t.absorb(&i.stats),
                None => total = Some(i.stats.clone()),
            }
        }
        let mut total = total.unwrap_or_default();
        if let Some((redis, nodes)) = redis {
            total.redis = Some(redis);
            total.redis_nodes = nodes;
        }
        ClusterStats { instances, total }
    }
}

impl fmt::Display for Stats {
    /// A readable table: totals, then one row per function.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "backend {}{} | hits {} (l1 {}, l2 {}) | misses {} | coalesced {} | hit rate {:.1}%",
            self.backend,
            if self.enabled { "" } else { " (disabled)" },
            self.hits,
            self.l1_hits,
            self.l2_hits,
            self.misses,
            self.coalesced,
            self.hit_rate * 100.0
        )?;
        writeln!(
            f,
            "sets {} | deletes {} | invalidations {} ({} entries) | errors {} | origin errors {} | entries {}",
            self.sets,
            self.deletes,
            self.invalidations,
            self.invalidated_entries,
            self.errors,
            self.origin_errors,
            self.entries
        )?;
        if self.lock_waits
            + self.lock_timeouts
            + self.stale_served
            + self.refreshes
            + self.refresh_failures
            > 0
        {
            writeln!(
                f,
                "lock waits {} (takeovers {}, timeouts {}) | stale served {} (origin timeouts {}) | refreshes {} (failed {})",
                self.lock_waits,
                self.lock_takeovers,
                self.lock_timeouts,
                self.stale_served,
                self.origin_timeouts,
                self.refreshes,
                self.refresh_failures
            )?;
        }
        if self.warm_runs + self.warm_skipped > 0 {
            writeln!(
                f,
                "warmer runs {} ({} entries, {} failed) | left to another instance {}",
                self.warm_runs, self.warmed_entries, self.warm_errors, self.warm_skipped
            )?;
        }
        if let Some(r) = &self.redis {
            let bp = self.backplane.map_or("off", |b| {
                if b.connected {
                    "connected"
                } else {
                    "disconnected"
                }
            });
            let breaker = match self.breaker {
                Some(crate::BreakerState::Open) => "open",
                Some(crate::BreakerState::HalfOpen) => "half-open",
                _ => "closed",
            };
            writeln!(
                f,
                "breaker {breaker} | Redis commands skipped {} | invalidations waiting for Redis {}",
                self.redis_skipped, self.pending_invalidations
            )?;
            if r.reachable {
                writeln!(
                    f,
                    "redis: {}{} entries ({} keys in the database), {:.1} MiB used | backplane {bp}, {} messages applied",
                    if r.entries_exact { "" } else { "~" },
                    r.entries,
                    r.db_keys,
                    r.used_memory as f64 / (1024.0 * 1024.0),
                    self.backplane_applied
                )?;
            } else {
                writeln!(
                    f,
                    "redis: unreachable (serving from memory) | backplane {bp}"
                )?;
            }
            if self.redis_nodes.len() > 1 {
                for n in &self.redis_nodes {
                    if n.reachable {
                        writeln!(
                            f,
                            "  master {}: {} keys, {:.1} MiB used",
                            n.address,
                            n.db_keys,
                            n.used_memory as f64 / (1024.0 * 1024.0)
                        )?;
                    } else {
                        writeln!(f, "  master {}: unreachable", n.address)?;
                    }
                }
            }
        }
        if self.functions.is_empty() {
            return Ok(());
        }
        let fw = self
            .functions
            .iter()
            .map(|r| r.function.len())
            .max()
            .unwrap_or(8)
            .max(8);
        let lw = self
            .functions
            .iter()
            .map(|r| r.label.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<fw$}  {:<lw$}  {:>6} {:>6} {:>9} {:>6} {:>7} {:>10} {:>6}",
            "function",
            "label",
            "hits",
            "misses",
            "coalesced",
            "sets",
            "errors",
            "origin µs",
            "inval."
        )?;
        for r in &self.functions {
            writeln!(
                f,
                "{:<fw$}  {:<lw$}  {:>6} {:>6} {:>9} {:>6} {:>7} {:>10.1} {:>6}",
                r.function,
                r.label,
                r.hits,
                r.misses,
                r.coalesced,
                r.sets,
                r.origin_errors,
                r.mean_origin_us,
                r.invalidations
            )?;
        }
        Ok(())
    }
}

/// Overall state reported by [`Cache::health`](crate::Cache::health).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// The cache answers.
    Healthy,
    /// The cache answers from a fallback tier.
    Degraded,
    /// The cache is switched off (`CACHE_ENABLED=false`): calls pass through.
    Disabled,
}

/// The result of [`Cache::health`](crate::Cache::health): a probe of the backend.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// See [`HealthStatus`].
    pub status: HealthStatus,
    /// `memory` or `redis`.
    pub backend: &'static str,
    /// How long the probe (a write and read of a private key) took;
    /// serialized as `latency_us`.
    #[serde(rename = "latency_us", serialize_with = "micros")]
    pub latency: Duration,
    /// Entries in the in-process tier.
    pub entries: u64,
    /// The circuit breaker in front of Redis, with a shared tier.
    pub breaker: Option<crate::BreakerState>,
    /// Why the probe failed, if it did.
    pub error: Option<String>,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(hits: u64, misses: u64, fn_misses: u64, fn_mean_us: f64) -> InstanceStats {
        let mut stats = Stats {
            backend: "redis".into(),
            enabled: true,
            hits,
            l1_hits: hits,
            misses,
            breaker: Some(crate::BreakerState::Closed),
            ..Stats::default()
        };
        stats.functions.push(FunctionStats {
            function: "app::Repo::employee".into(),
            label: "employee:<id>".into(),
            misses: fn_misses,
            hits,
            mean_origin_us: fn_mean_us,
            ..FunctionStats::default()
        });
        InstanceStats {
            instance: format!("{hits}"),
            host: None,
            pid: 1,
            written_at_ms: 0,
            stats,
        }
    }

    #[test]
    fn the_sum_adds_counts_merges_functions_and_recomputes_rates() {
        let mut b = instance(1, 3, 3, 30.0);
        b.stats.breaker = Some(crate::BreakerState::HalfOpen);
        b.stats.functions.push(FunctionStats {
            function: "app::other".into(),
            label: "other".into(),
            hits: 5,
            ..FunctionStats::default()
        });
        let all = ClusterStats::sum(vec![instance(3, 1, 1, 10.0), b], None);
        let t = &all.total;
        assert_eq!((t.hits, t.l1_hits, t.misses), (4, 4, 4));
        assert_eq!(t.hit_rate, 0.5);
        assert_eq!(
            t.breaker,
            Some(crate::BreakerState::HalfOpen),
            "the worst state"
        );
        assert_eq!(t.functions.len(), 2);
        let f = &t.functions[0];
        assert_eq!(
            (f.label.as_str(), f.hits, f.misses),
            ("employee:<id>", 4, 4)
        );
        assert_eq!(f.mean_origin_us, 25.0, "weighted by misses");
        assert_eq!(all.instances.len(), 2);
    }

    #[test]
    fn stats_written_by_another_version_read_with_zeros_for_what_is_missing() {
        let s: Stats =
            serde_json::from_str(r#"{"hits": 3, "a_field_from_the_future": 1}"#).unwrap();
        assert_eq!((s.hits, s.misses, s.functions.len()), (3, 0, 0));
    }
}
