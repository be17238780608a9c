//! [`Cache`]: the handle users hold. Each method hands off to the engine
//! ([`crate::engine`]); building a cache is in [`crate::builder`], the
//! default and named caches in [`crate::registry`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, PlainKind, ResultKind};
use crate::error::Error;
use crate::key::{KeyBuilder, manual_key};
use crate::stats::{
    BackplaneStatus, ClusterStats, EntryInfo, Health, NamespaceStats, Removal, Shutdown, Stats,
};
use crate::ttl::Ttl;
use crate::value::CacheValue;

/// A cache: an in-process tier of typed values with per-entry TTLs, per-key
/// single flight, invalidation by key or pattern, and counters.
///
/// Cloning is cheap (an `Arc`). `#[cached]` and `#[invalidates]` use the
/// default cache ([`Cache::global`]) unless they name one (`cache = "reports"`)
/// or run inside [`Cache::scope`].
///
/// ```
/// use cache_core::{Cache, Preset};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
/// let cache = Cache::builder().build().await?;
/// cache.set("employee:42", &"Ada".to_string(), Preset::Medium).await?;
/// assert_eq!(cache.get::<String>("employee:42").await?, Some("Ada".into()));
/// assert_eq!(cache.invalidate("employee:*").await?.removed, 1);
/// assert_eq!(cache.get::<String>("employee:42").await?, None);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    engine: Arc<Engine>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("engine", &self.engine)
            .finish()
    }
}

impl Cache {
    /// The handle over `engine`.
    pub(crate) fn from_engine(engine: Arc<Engine>) -> Cache {
        Cache { engine }
    }

    /// The engine behind the handle, for the macro support.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, shared (for what outlives a call: warmers' schedules).
    pub(crate) fn engine_arc(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// A key (or pattern) of the manual API under the cache's prefix (see
    /// [`manual_key`]).
    fn full_key(&self, key: &str) -> String {
        manual_key(&self.engine.config.key_prefix, key)
    }

    /// A key builder primed with the cache's prefix.
    pub(crate) fn key_builder(&self) -> KeyBuilder {
        KeyBuilder::with_prefix(&self.engine.config.key_prefix, 48)
    }

    /// The backplane's state, if the cache has a shared tier: whether it is
    /// subscribed, how often it (re)subscribed, how many messages from other
    /// instances it applied. A `watch` receiver, so readiness checks and tests
    /// can await a change instead of polling.
    ///
    /// ```
    /// let cache = cache_core::Cache::builder().build_blocking()?;
    /// assert!(cache.backplane().is_none(), "in-process only");
    /// # Ok::<(), cache_core::Error>(())
    /// ```
    pub fn backplane(&self) -> Option<tokio::sync::watch::Receiver<BackplaneStatus>> {
        self.engine.backplane()
    }

    /// The circuit breaker's state, with a shared tier (no I/O, unlike
    /// [`stats`](Self::stats) and [`health`](Self::health)).
    ///
    /// ```
    /// let cache = cache_core::Cache::builder().build_blocking()?;
    /// assert_eq!(cache.breaker(), None, "in-process only");
    /// # Ok::<(), cache_core::Error>(())
    /// ```
    pub fn breaker(&self) -> Option<crate::BreakerState> {
        self.engine.breaker()
    }

    /// Invalidations (and overwrites) that could not reach Redis yet: they
    /// are kept, and replayed before Redis is read again. 0 without Redis;
    /// `u64::MAX` after an overflow (then the whole cache is cleared in
    /// Redis on replay). No I/O.
    ///
    /// ```
    /// let cache = cache_core::Cache::builder().build_blocking()?;
    /// assert_eq!(cache.pending_invalidations(), 0);
    /// # Ok::<(), cache_core::Error>(())
    /// ```
    pub fn pending_invalidations(&self) -> u64 {
        self.engine.pending()
    }

    /// `redis` with a shared tier, else `memory`.
    pub fn backend(&self) -> &'static str {
        self.engine.backend()
    }

    /// The name given at build time, if any.
    pub fn name(&self) -> Option<&str> {
        self.engine.config.name.as_deref()
    }

    /// False for a pass-through cache (`CACHE_ENABLED=false`).
    pub fn is_enabled(&self) -> bool {
        self.engine.config.enabled
    }

    /// The prefix of every key (empty for none).
    pub fn key_prefix(&self) -> &str {
        &self.engine.config.key_prefix
    }

    /// The duration a [`Ttl`] resolves to in this cache (presets and default
    /// include run-time overrides).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let cache = cache_core::Cache::builder()
    ///     .preset_ttl(cache_core::Preset::Short, Duration::from_secs(5))
    ///     .build_blocking()?;
    /// assert_eq!(cache.resolve_ttl(cache_core::Preset::Short.into()), Duration::from_secs(5));
    /// assert_eq!(cache.resolve_ttl(cache_core::Ttl::Default), Duration::from_secs(300));
    /// # Ok::<(), cache_core::Error>(())
    /// ```
    pub fn resolve_ttl(&self, ttl: Ttl) -> Duration {
        self.engine.resolve_ttl(ttl)
    }

    /// The value under `key`, if present, live and of type `T`: from the
    /// in-process tier, else from the shared tier (then kept in-process for
    /// no longer than it has left there).
    ///
    /// An entry of another type, or bytes that do not decode, count as absent
    /// and are removed.
    ///
    /// # Errors
    ///
    /// None in the default mode: a failing shared tier is a miss (counted in
    /// `errors`). The `Result` is for strict mode.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.set("n", &5u64, cache_core::Preset::Short).await?;
    /// assert_eq!(cache.get::<u64>("n").await?, Some(5));
    /// assert_eq!(cache.get::<String>("n").await?, None, "another type is a miss");
    /// assert_eq!(cache.get::<u64>("n").await?, None, "and was removed");
    /// # Ok(()) }
    /// ```
    pub async fn get<T: CacheValue>(&self, key: &str) -> Result<Option<T>, Error> {
        self.engine.get(&self.full_key(key)).await
    }

    /// Stores `value` under `key` for `ttl` (a [`Preset`](crate::Preset), a
    /// `Duration`, or [`Ttl::Default`]), in both tiers; other instances drop
    /// their in-process copies.
    ///
    /// # Errors
    ///
    /// None in the default mode (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), cache_core::Error> {
    /// use std::time::Duration;
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.set("k", &vec![1, 2, 3], Duration::from_secs(30)).await?;
    /// assert_eq!(cache.ttl("k").await?, Some(Duration::from_secs(30)));
    /// # Ok(()) }
    /// ```
    pub async fn set<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<(), Error> {
        self.engine
            .set(&self.full_key(key), value, ttl.into())
            .await
    }

    /// Removes `key` from both tiers and from other instances' in-process
    /// tiers; [`Removal::removed`] is 1 if it was there. A computation of
    /// `key` already under way will not store its (now stale) result. When
    /// Redis cannot be reached, [`Removal::queued`] says so: this instance's
    /// copy is gone and the rest is replayed once Redis answers.
    ///
    /// # Errors
    ///
    /// None in the default mode (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.set("k", &1u8, cache_core::Preset::Short).await?;
    /// assert_eq!(cache.delete("k").await?.removed, 1);
    /// assert_eq!(cache.delete("k").await?.removed, 0);
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<Removal, Error> {
        self.engine.delete(&self.full_key(key)).await
    }

    /// Whether a live entry is under `key` (of any type), in either tier.
    ///
    /// # Errors
    ///
    /// None in the default mode (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// assert!(!cache.exists("k").await?);
    /// cache.set("k", &1u8, cache_core::Preset::Short).await?;
    /// assert!(cache.exists("k").await?);
    /// # Ok(()) }
    /// ```
    pub async fn exists(&self, key: &str) -> Result<bool, Error> {
        self.engine.exists(&self.full_key(key)).await
    }

    /// The time `key` has left, or `None` if it is absent. With a shared tier,
    /// that tier's answer (the source of truth) when it is reachable.
    ///
    /// # Errors
    ///
    /// None in the default mode (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// assert_eq!(cache.ttl("k").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>, Error> {
        self.engine.ttl(&self.full_key(key)).await
    }

    /// Gives `key` a new TTL from now; false if it is absent.
    ///
    /// # Errors
    ///
    /// None in the default mode (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), cache_core::Error> {
    /// use std::time::Duration;
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.set("k", &1u8, Duration::from_secs(10)).await?;
    /// assert!(cache.expire("k", Duration::from_secs(60)).await?);
    /// assert_eq!(cache.ttl("k").await?, Some(Duration::from_secs(60)));
    /// assert!(!cache.expire("absent", Duration::from_secs(60)).await?);
    /// # Ok(()) }
    /// ```
    pub async fn expire(&self, key: &str, ttl: impl Into<Ttl>) -> Result<bool, Error> {
        self.engine.expire(&self.full_key(key), ttl.into()).await
    }

    /// Removes every key matching `pattern` (Redis glob syntax: `*`, `?`,
    /// `[a-z]`, `\x`), within this cache's prefix, from both tiers and from
    /// every other instance's in-process tier; [`Removal::removed`] is how
    /// many entries went (counted in the shared tier when there is one), and
    /// [`Removal::queued`] says whether part of it waits for Redis to answer
    /// again. A pattern without wildcards removes one key. Computations of
    /// matching keys already under way will not store their results.
    ///
    /// Patterns are relative to the prefix: `employee:*`, not
    /// `hr:employee:*` (a key as `redis-cli` shows it). A pattern that
    /// starts with the prefix and matches nothing is logged as a warning
    /// that names the pattern meant.
    ///
    /// Build patterns from user input with [`KeyBuilder`], which escapes
    /// values so they cannot widen the pattern.
    ///
    /// # Errors
    ///
    /// None in the default mode (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// use cache_core::{KeyBuilder, Preset};
    /// let cache = cache_core::Cache::builder().build().await?;
    /// for k in ["user:1:a", "user:1:b", "user:10:a"] {
    ///     cache.set(k, &0u8, Preset::Short).await?;
    /// }
    /// let pattern = KeyBuilder::new().lit("user:").value(&1).lit(":*").build();
    /// assert_eq!(cache.invalidate(&pattern).await?.removed, 2);
    /// assert!(cache.exists("user:10:a").await?);
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, pattern: &str) -> Result<Removal, Error> {
        let done = self.engine.invalidate(&self.full_key(pattern)).await?;
        if done.removed == 0 && !done.queued {
            let prefix = self.key_prefix();
            if let Some(meant) = pattern
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix(':'))
                .filter(|_| !prefix.is_empty())
            {
                tracing::warn!(
                    pattern,
                    meant,
                    "invalidate({pattern:?}) matched nothing: patterns are relative to the \
                     cache's prefix {prefix:?}, so this one looked for {prefix}:{pattern}; \
                     did you mean {meant:?}?"
                );
            }
        }
        Ok(done)
    }

    /// Removes every entry tagged `tag` (`#[cached(tags = ["tenant:<tenant>"])]`),
    /// from both tiers and from every other instance's in-process tier, in
    /// O(entries under the tag) whatever the size of the keyspace; as
    /// [`invalidate`](Self::invalidate) otherwise: computations of tagged
    /// entries already under way will not store their results, and what
    /// Redis does not take now is queued and replayed once it answers.
    ///
    /// A tag is built like a key, values escaped: with [`KeyBuilder`] from
    /// user input, without the cache's prefix.
    ///
    /// # Errors
    ///
    /// None in the default mode (see [`get`](Self::get)).
    ///
    /// ```
    /// use cache_core::{KeyBuilder, cached};
    ///
    /// #[cached(key = "report:<tenant>:<id>", tags = ["tenant:<tenant>"])]
    /// async fn report(tenant: u32, id: u32) -> String {
    ///     format!("report {id} of tenant {tenant}")
    /// }
    ///
    /// #[cached(key = "dashboard:<tenant>", tags = ["tenant:<tenant>"])]
    /// async fn dashboard(tenant: u32) -> String {
    ///     format!("dashboard of tenant {tenant}")
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.scope(async {
    ///     report(7, 1).await;
    ///     report(8, 2).await;
    ///     dashboard(7).await;
    /// }).await;
    /// let tag = KeyBuilder::new().lit("tenant:").value(&7).build();
    /// assert_eq!(cache.invalidate_tag(&tag).await?.removed, 2);
    /// assert!(cache.exists("report:8:2").await?);
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_tag(&self, tag: &str) -> Result<Removal, Error> {
        self.engine.invalidate_tag(tag).await
    }

    /// Removes every entry of this cache, in both tiers (in Redis: the keys
    /// under this cache's prefix, which a cache with Redis always has) and in
    /// other instances' in-process tiers. Computations under way will not
    /// store. The [`Removal`] says how many entries went, and whether part of
    /// it waits for Redis to answer again.
    ///
    /// # Errors
    ///
    /// None in the default mode (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.set("k", &1u8, cache_core::Preset::Short).await?;
    /// cache.clear().await?;
    /// assert!(!cache.exists("k").await?);
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<Removal, Error> {
        self.engine.clear().await
    }

    /// Stops this cache for a graceful exit (call it on `SIGTERM`, once the
    /// server has stopped taking requests): stops background refreshes, the
    /// stats reports and the backplane subscription, releases the stampede
    /// locks this process holds (other processes waiting on them go on at
    /// once), removes this instance from [`stats_all`](Self::stats_all), and
    /// replays invalidations queued during an outage if Redis answers
    /// before `within` has passed. Returns what it could not flush.
    ///
    /// Afterwards every handle to this cache runs the function of each call
    /// and caches nothing; `get` finds nothing. `set`, `delete`,
    /// `invalidate` and `clear` still reach Redis.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// use std::time::Duration;
    /// let cache = cache_core::Cache::builder().build().await?;
    /// let report = cache.shutdown(Duration::from_secs(5)).await;
    /// assert!(report.unflushed.is_empty());
    /// assert_eq!(cache.get_or_set("k", cache_core::Preset::Short, async { 1u8 }).await?, 1);
    /// assert_eq!(cache.get::<u8>("k").await?, None, "nothing is cached");
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self, within: Duration) -> Shutdown {
        self.engine.shutdown(within).await
    }

    /// The value under `key`, else the output of `init`, stored for `ttl`.
    /// Concurrent callers for the same key share one `init`.
    ///
    /// # Errors
    ///
    /// None from the in-process tier (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// let v = cache.get_or_set("answer", cache_core::Preset::Long, async { 42u32 }).await?;
    /// let w = cache.get_or_set("answer", cache_core::Preset::Long, async { 0u32 }).await?;
    /// assert_eq!((v, w), (42, 42));
    /// # Ok(()) }
    /// ```
    pub async fn get_or_set<T, F>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        init: F,
    ) -> Result<T, Error>
    where
        T: CacheValue,
        F: Future<Output = T>,
    {
        let key = self.is_enabled().then(|| self.full_key(key));
        Ok(self
            .engine
            .get_or_init::<PlainKind, T, F>(key, ttl.into(), init)
            .await)
    }

    /// Like [`get_or_set`](Self::get_or_set) for a fallible `init`: `Err` is
    /// returned to this caller and never stored (concurrent callers waiting
    /// on it run their own `init`).
    ///
    /// # Errors
    ///
    /// `init`'s error (and, in strict mode on tiers that can fail, the cache's error).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = cache_core::Cache::builder().build().await.unwrap();
    /// let r: Result<u32, cache_core::Error> =
    ///     cache.try_get_or_set("k", cache_core::Preset::Short, async { Ok(1) }).await;
    /// assert_eq!(r.unwrap(), 1);
    /// # }
    /// ```
    pub async fn try_get_or_set<T, E, F>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        init: F,
    ) -> Result<T, E>
    where
        T: CacheValue,
        E: From<Error>,
        F: Future<Output = Result<T, E>>,
    {
        let key = self.is_enabled().then(|| self.full_key(key));
        self.engine
            .get_or_init::<ResultKind, Result<T, E>, F>(key, ttl.into(), init)
            .await
    }

    /// A snapshot of the counters, overall and per annotated function, with
    /// Redis's used memory and key count when it is reachable.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// let json = serde_json::to_string(&cache.stats().await).unwrap();
    /// assert!(json.contains("\"hit_rate\""));
    /// println!("{}", cache.stats().await); // a readable table
    /// # Ok(()) }
    /// ```
    pub async fn stats(&self) -> Stats {
        self.engine.stats().await
    }

    /// Every live instance of this cache and their sum: each instance with
    /// Redis writes a snapshot of its counters there every
    /// [`stats_interval`](crate::CacheBuilder::stats_interval) (5 s), living
    /// three periods, so an instance that stops drops out within 15 s. This
    /// instance comes first, with its counters as of now; the total carries
    /// Redis's own figures. Without Redis, this instance alone.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when Redis cannot be read (the other
    /// instances' snapshots are there); [`stats`](Self::stats) still answers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.set("a", &1u8, cache_core::Preset::Short).await?;
    /// let all = cache.stats_all().await?;
    /// assert_eq!(all.instances.len(), 1, "in-process only: this instance");
    /// assert_eq!(all.total.sets, 1);
    /// # Ok(()) }
    /// ```
    pub async fn stats_all(&self) -> Result<ClusterStats, Error> {
        self.engine.stats_all().await
    }

    /// The cache's entries per top-level prefix (`user:` for `user:42:profile`,
    /// `""` for keys without a `:`), largest first. With Redis, counted from
    /// its index sets, never by scanning the keyspace: a namespace of up to
    /// 200 entries is counted exactly, a larger one from a random sample of
    /// 200 (`exact: false`). Without Redis, the in-process entries.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when Redis cannot be read.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// use cache_core::Preset;
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.set("user:1:profile", &1u8, Preset::Short).await?;
    /// cache.set("user:2:profile", &2u8, Preset::Short).await?;
    /// cache.set("answer", &42u8, Preset::Short).await?;
    /// let ns = cache.namespaces().await?;
    /// assert_eq!((ns[0].prefix.as_str(), ns[0].entries), ("user:", 2));
    /// assert_eq!((ns[1].prefix.as_str(), ns[1].entries), ("", 1));
    /// # Ok(()) }
    /// ```
    pub async fn namespaces(&self) -> Result<Vec<NamespaceStats>, Error> {
        self.engine.namespaces(1).await
    }

    /// Like [`namespaces`](Self::namespaces), for prefixes `depth` segments
    /// deep (`user:42:` is 2 deep; a key with fewer segments counts under
    /// its deepest). With Redis, beyond the first level, every key of the
    /// index sets is read (`SSCAN`): O(entries), for operators' tools.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// for key in ["user:1:profile", "user:1:roles", "user:2:profile", "user"] {
    ///     cache.set(key, &1u8, cache_core::Preset::Short).await?;
    /// }
    /// let ns = cache.namespaces_at(2).await?;
    /// let counts: Vec<(&str, u64)> = ns.iter().map(|n| (n.prefix.as_str(), n.entries)).collect();
    /// assert_eq!(counts, [("user:1:", 2), ("", 1), ("user:2:", 1)]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`namespaces`](Self::namespaces).
    pub async fn namespaces_at(&self, depth: usize) -> Result<Vec<NamespaceStats>, Error> {
        self.engine.namespaces(depth).await
    }

    /// What Redis holds under `key`, described without knowing its type:
    /// time left, stored size, and per value (one, or one per build during a
    /// rolling deploy) its format, compression, type fingerprint, freshness
    /// window, and the value itself as JSON when it is JSON or MessagePack
    /// (a hex head otherwise). Bytes that are not a cache entry are
    /// described as such ([`EntryInfo::problem`]). `None`: no such key, or
    /// no shared tier.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.set("k", &1u8, cache_core::Preset::Short).await?;
    /// // In-process only: no stored bytes to describe.
    /// assert!(cache.inspect("k").await?.is_none());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when Redis cannot be read.
    pub async fn inspect(&self, key: &str) -> Result<Option<EntryInfo>, Error> {
        self.engine.inspect(&self.full_key(key)).await
    }

    /// Probes the backend and times it: with Redis, a `PING` (`Degraded` if it
    /// fails: calls are then served from the in-process tier); without, a write
    /// and read of a private in-process key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// let health = cache.health().await;
    /// assert_eq!(health.status, cache_core::HealthStatus::Healthy);
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Health {
        self.engine.health().await
    }
}
