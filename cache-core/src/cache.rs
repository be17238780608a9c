//! [`Cache`]: the handle users hold, the manual API, and the engine behind the attributes.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::builder::{CacheBuilder, Config};
use crate::error::Error;
use crate::flight::{Flights, Join, Leader, Waited};
use crate::glob::Glob;
use crate::invalidation::InvalidationLog;
use crate::key::{KeyBuilder, cap_key};
use crate::l1::{Entry, L1, Lookup, Shared};
use crate::registry;
use crate::stats::{self, Counters, FnCounters, FnRegistry, Health, HealthStatus, Stats, bump};
use crate::ttl::{Ttl, TtlTable};

/// What a cache can hold: owned, cloneable, thread-safe, and serializable
/// (so the same values work once a shared tier such as Redis is behind the cache).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "cached values must be `Clone + Send + Sync + 'static` and implement `Serialize` and `DeserializeOwned`",
    note = "derive `Clone`, `serde::Serialize` and `serde::Deserialize` for `{Self}`"
)]
pub trait CacheValue: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}

impl<T> CacheValue for T where T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Inner {
    pub(crate) id: u64,
    name: Option<String>,
    enabled: bool,
    prefix: String,
    ttls: TtlTable,
    flight_wait: Duration,
    l1: L1,
    flights: Flights,
    log: InvalidationLog,
    pub(crate) counters: Counters,
    pub(crate) functions: FnRegistry,
}

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
/// assert_eq!(cache.invalidate("employee:*").await?, 1);
/// assert_eq!(cache.get::<String>("employee:42").await?, None);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.inner.name)
            .field("enabled", &self.inner.enabled)
            .field("prefix", &self.inner.prefix)
            .field("l1", &self.inner.l1)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A builder; see [`CacheBuilder`] for the settings and their variables.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::new()
    }

    pub(crate) fn from_config(c: Config) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Relaxed),
                name: c.name,
                enabled: c.enabled,
                prefix: c.key_prefix,
                ttls: c.ttls,
                flight_wait: c.flight_wait,
                l1: L1::new(c.max_entries),
                flights: Flights::new(),
                log: InvalidationLog::default(),
                counters: Counters::default(),
                functions: FnRegistry::default(),
            }),
        }
    }

    /// The default cache: the one [installed](Cache::install), else one built
    /// from the environment on first use (in-process; an invalid environment
    /// is logged and makes it a pass-through).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let stats = cache_core::Cache::global().stats().await;
    /// assert_eq!(stats.backend, "memory");
    /// # }
    /// ```
    pub fn global() -> &'static Cache {
        registry::default_cache()
    }

    /// The cache installed under `name`, else one built from the environment
    /// on first use (as `#[cached(cache = "name")]` does).
    ///
    /// ```
    /// let reports = cache_core::Cache::named("reports-doc");
    /// assert_eq!(reports.name(), Some("reports-doc"));
    /// ```
    pub fn named(name: &str) -> Cache {
        registry::named(name)
    }

    /// Makes this the default cache, or, if it was built with a
    /// [`name`](CacheBuilder::name), the cache of that name. Do it at startup.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyInstalled`] if that name already has a cache (for the
    /// default: one was installed, or a cached call already created it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// cache_core::Cache::builder().name("sessions-doc").build().await?.install()?;
    /// assert!(cache_core::Cache::builder().name("sessions-doc").build().await?.install().is_err());
    /// # Ok(()) }
    /// ```
    pub fn install(self) -> Result<(), Error> {
        registry::install(self)
    }

    /// Runs `fut` with every attribute inside it (default and named caches
    /// alike) using this cache: isolation for tests that run in parallel.
    /// Tasks spawned inside do not inherit it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// let n = cache.scope(async { 1 + 1 }).await;
    /// assert_eq!(n, 2);
    /// // The future owns its cache handle, so it can be spawned:
    /// let task = tokio::spawn(cache.scope(async { 3 }));
    /// assert_eq!(task.await.unwrap(), 3);
    /// # Ok(()) }
    /// ```
    pub fn scope<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> + use<F> {
        registry::scope(self.clone(), fut)
    }

    /// The name given at build time, if any.
    pub fn name(&self) -> Option<&str> {
        self.inner.name.as_deref()
    }

    /// False for a pass-through cache (`CACHE_ENABLED=false`).
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
    }

    /// The prefix of every key (empty for none).
    pub fn key_prefix(&self) -> &str {
        &self.inner.prefix
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
        self.inner.ttls.resolve(ttl)
    }

    pub(crate) fn full_key(&self, key: &str) -> String {
        let p = &self.inner.prefix;
        let full = if p.is_empty() {
            key.to_owned()
        } else {
            let mut s = String::with_capacity(p.len() + 1 + key.len());
            s.push_str(p);
            s.push(':');
            s.push_str(key);
            s
        };
        cap_key(full)
    }

    pub(crate) fn key_builder(&self) -> KeyBuilder {
        KeyBuilder::with_prefix(&self.inner.prefix, 48)
    }

    // ----- manual API -------------------------------------------------------

    /// The value under `key`, if present, live and of type `T`.
    ///
    /// An entry of another type is treated as absent and removed.
    ///
    /// # Errors
    ///
    /// None from the in-process tier; the `Result` is for tiers that can fail
    /// in strict mode.
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
        if !self.inner.enabled {
            return Ok(None);
        }
        let key = self.full_key(key);
        let c = &self.inner.counters;
        match self.inner.l1.get::<T>(&key) {
            Lookup::Hit(v) => {
                bump(&c.l1_hits);
                Ok(Some(v))
            }
            Lookup::Miss => {
                bump(&c.misses);
                Ok(None)
            }
            Lookup::WrongType => {
                bump(&c.misses);
                tracing::debug!(
                    key,
                    ty = std::any::type_name::<T>(),
                    "cache entry of another type: removed"
                );
                self.inner.l1.remove(&key);
                Ok(None)
            }
        }
    }

    /// Stores `value` under `key` for `ttl` (a [`Preset`](crate::Preset), a
    /// `Duration`, or [`Ttl::Default`]).
    ///
    /// # Errors
    ///
    /// None from the in-process tier (see [`get`](Self::get)).
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
        if !self.inner.enabled {
            return Ok(());
        }
        let ttl = self.resolve_ttl(ttl.into());
        let entry = Entry::new(Arc::new(value.clone()), ttl);
        self.inner.l1.insert(self.full_key(key), entry);
        bump(&self.inner.counters.sets);
        Ok(())
    }

    /// Removes `key`; true if a live entry was there. A computation of `key`
    /// already under way will not store its (now stale) result.
    ///
    /// # Errors
    ///
    /// None from the in-process tier (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.set("k", &1u8, cache_core::Preset::Short).await?;
    /// assert!(cache.delete("k").await?);
    /// assert!(!cache.delete("k").await?);
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        if !self.inner.enabled {
            return Ok(false);
        }
        let key = self.full_key(key);
        self.inner.log.record(Arc::new(Glob::exact_key(&key)));
        let removed = self.inner.l1.remove(&key);
        bump(&self.inner.counters.deletes);
        Ok(removed)
    }

    /// Whether a live entry is under `key` (of any type).
    ///
    /// # Errors
    ///
    /// None from the in-process tier (see [`get`](Self::get)).
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
        if !self.inner.enabled {
            return Ok(false);
        }
        Ok(self.inner.l1.entry(&self.full_key(key)).is_some())
    }

    /// The time `key` has left, or `None` if it is absent.
    ///
    /// # Errors
    ///
    /// None from the in-process tier (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// assert_eq!(cache.ttl("k").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn ttl(&self, key: &str) -> Result<Option<Duration>, Error> {
        if !self.inner.enabled {
            return Ok(None);
        }
        let entry = self.inner.l1.entry(&self.full_key(key));
        Ok(entry.and_then(|e| e.remaining(Instant::now())))
    }

    /// Gives `key` a new TTL from now; false if it is absent.
    ///
    /// # Errors
    ///
    /// None from the in-process tier (see [`get`](Self::get)).
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
        if !self.inner.enabled {
            return Ok(false);
        }
        let ttl = self.resolve_ttl(ttl.into());
        Ok(self.inner.l1.retime(&self.full_key(key), ttl))
    }

    /// Removes every key matching `pattern` (Redis glob syntax: `*`, `?`,
    /// `[a-z]`, `\x`), within this cache's prefix; returns how many entries
    /// went. A pattern without wildcards removes one key. Computations of
    /// matching keys already under way will not store their results.
    ///
    /// Build patterns from user input with [`KeyBuilder`], which escapes
    /// values so they cannot widen the pattern.
    ///
    /// # Errors
    ///
    /// None from the in-process tier (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// use cache_core::{KeyBuilder, Preset};
    /// let cache = cache_core::Cache::builder().build().await?;
    /// for k in ["user:1:a", "user:1:b", "user:10:a"] {
    ///     cache.set(k, &0u8, Preset::Short).await?;
    /// }
    /// let pattern = KeyBuilder::new().lit("user:").value(&1).lit(":*").build();
    /// assert_eq!(cache.invalidate(&pattern).await?, 2);
    /// assert!(cache.exists("user:10:a").await?);
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, pattern: &str) -> Result<u64, Error> {
        if !self.inner.enabled {
            return Ok(0);
        }
        Ok(self.invalidate_full(&self.full_key(pattern)).await)
    }

    pub(crate) async fn invalidate_full(&self, full_pattern: &str) -> u64 {
        let glob = Arc::new(Glob::new(full_pattern));
        self.inner.log.record(Arc::clone(&glob));
        let removed = self.inner.l1.remove_matching(&glob);
        let c = &self.inner.counters;
        bump(&c.invalidations);
        c.invalidated_entries.fetch_add(removed, Relaxed);
        tracing::debug!(pattern = full_pattern, removed, "cache invalidated");
        removed
    }

    /// Removes every entry of this cache. Computations under way will not store.
    ///
    /// # Errors
    ///
    /// None from the in-process tier (see [`get`](Self::get)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// cache.set("k", &1u8, cache_core::Preset::Short).await?;
    /// cache.clear().await?;
    /// assert!(!cache.exists("k").await?);
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<(), Error> {
        if !self.inner.enabled {
            return Ok(());
        }
        self.inner.log.record(Arc::new(Glob::new("*")));
        self.inner.l1.clear();
        bump(&self.inner.counters.invalidations);
        Ok(())
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
        let key = self.inner.enabled.then(|| self.full_key(key));
        let spec = Spec {
            ttl: ttl.into(),
            cache_none: false,
            site: None,
        };
        Ok(self
            .get_or_compute::<crate::private::PlainKind, T, F, _>(key, spec, init, |_| false)
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
        let key = self.inner.enabled.then(|| self.full_key(key));
        let spec = Spec {
            ttl: ttl.into(),
            cache_none: false,
            site: None,
        };
        self.get_or_compute::<crate::private::ResultKind, _, F, _>(key, spec, init, |_| false)
            .await
    }

    // ----- observability ----------------------------------------------------

    /// A snapshot of the counters, overall and per annotated function.
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
        self.inner.l1.sync();
        stats::snapshot(
            "memory",
            self.inner.enabled,
            &self.inner.counters,
            &self.inner.functions,
            self.inner.l1.entry_count(),
        )
    }

    /// Probes the backend with a write and a read of a private key, timing it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().build().await?;
    /// let health = cache.health().await;
    /// assert_eq!(health.status, cache_core::HealthStatus::Healthy);
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Health {
        let started = std::time::Instant::now();
        let status = if self.inner.enabled {
            let key = "\u{0}health-probe".to_owned();
            let probe = Entry::new(Arc::new(started), Duration::from_secs(1));
            self.inner.l1.insert(key.clone(), probe);
            let ok = self.inner.l1.get::<std::time::Instant>(&key);
            self.inner.l1.remove(&key);
            match ok {
                Lookup::Hit(t) if t == started => HealthStatus::Healthy,
                _ => HealthStatus::Degraded,
            }
        } else {
            HealthStatus::Disabled
        };
        Health {
            status,
            backend: "memory",
            latency: started.elapsed(),
            entries: self.inner.l1.entry_count(),
        }
    }

    // ----- the engine -------------------------------------------------------

    /// A live value of type `V` under `key`, counted as a hit; `None` otherwise
    /// (misses are counted by the slow path that follows).
    #[inline]
    pub(crate) fn l1_hit<V: Clone + 'static>(&self, key: &str) -> Option<V> {
        match self.inner.l1.get::<V>(key) {
            Lookup::Hit(v) => {
                bump(&self.inner.counters.l1_hits);
                Some(v)
            }
            Lookup::Miss | Lookup::WrongType => None,
        }
    }

    /// Get-or-compute for the attributes and the manual API. `key: None`
    /// means the cache is disabled: just run `fut`.
    pub(crate) async fn get_or_compute<K, R, F, U>(
        &self,
        key: Option<String>,
        spec: Spec<'_>,
        fut: F,
        unless: U,
    ) -> R
    where
        K: crate::private::Kind<R>,
        K::Value: CacheValue,
        F: Future<Output = R>,
        U: Fn(&K::Value) -> bool,
    {
        let Some(key) = key else {
            return fut.await;
        };
        let inner = &*self.inner;
        let fns = spec.site;
        match inner.l1.get::<K::Value>(&key) {
            Lookup::Hit(v) => {
                bump(&inner.counters.l1_hits);
                if let Some(f) = fns {
                    bump(&f.hits);
                }
                return K::rebuild(v);
            }
            Lookup::WrongType => {
                tracing::debug!(
                    key,
                    ty = std::any::type_name::<K::Value>(),
                    "cache entry of another type: recomputing"
                );
            }
            Lookup::Miss => {}
        }
        let deadline = Instant::now() + inner.flight_wait;
        loop {
            match inner.flights.join(&key) {
                Join::Leader(leader) => {
                    // A leader that finished between our read and our join may have stored it.
                    if let Some(e) = inner.l1.entry(&key) {
                        if let Some(v) = e.value.downcast_ref::<K::Value>() {
                            let v = v.clone();
                            leader.complete(e);
                            bump(&inner.counters.l1_hits);
                            if let Some(f) = fns {
                                bump(&f.hits);
                            }
                            return K::rebuild(v);
                        }
                    }
                    return self
                        .compute::<K, R, F, U>(key, spec, Some(leader), fut, unless)
                        .await;
                }
                Join::Follower(follower) => match follower.wait(deadline).await {
                    Waited::Done(shared) => {
                        if let Some(v) = shared.value.downcast_ref::<K::Value>() {
                            bump(&inner.counters.coalesced);
                            if let Some(f) = fns {
                                bump(&f.coalesced);
                            }
                            return K::rebuild(v.clone());
                        }
                        // Another type under the same key: compute our own.
                        return self
                            .compute::<K, R, F, U>(key, spec, None, fut, unless)
                            .await;
                    }
                    Waited::Retry => {
                        if let Lookup::Hit(v) = inner.l1.get::<K::Value>(&key) {
                            bump(&inner.counters.l1_hits);
                            if let Some(f) = fns {
                                bump(&f.hits);
                            }
                            return K::rebuild(v);
                        }
                    }
                    Waited::TimedOut => {
                        bump(&inner.counters.flight_timeouts);
                        tracing::debug!(key, "single-flight wait reached its bound; computing");
                        return self
                            .compute::<K, R, F, U>(key, spec, None, fut, unless)
                            .await;
                    }
                },
            }
        }
    }

    async fn compute<K, R, F, U>(
        &self,
        key: String,
        spec: Spec<'_>,
        leader: Option<Leader<'_>>,
        fut: F,
        unless: U,
    ) -> R
    where
        K: crate::private::Kind<R>,
        K::Value: CacheValue,
        F: Future<Output = R>,
        U: Fn(&K::Value) -> bool,
    {
        let inner = &*self.inner;
        let fns = spec.site;
        bump(&inner.counters.misses);
        if let Some(f) = fns {
            bump(&f.misses);
        }
        let start_epoch = inner.log.epoch();
        let started = Instant::now();
        let result = fut.await;
        if let Some(f) = fns {
            f.add_origin_time(started.elapsed());
        }
        let Some(value) = K::value(&result) else {
            bump(&inner.counters.origin_errors);
            if let Some(f) = fns {
                bump(&f.origin_errors);
            }
            drop(leader); // followers retry with their own calls
            return result;
        };
        if inner.log.invalidated_since(start_epoch, &key) {
            // Computed from data an invalidation has since replaced.
            bump(&inner.counters.skipped_stores);
            return result;
        }
        let store = (spec.cache_none || !K::is_none(&result)) && !unless(value);
        let entry = Entry::new(Arc::new(value.clone()), self.resolve_ttl(spec.ttl));
        if store {
            inner.l1.insert(key.clone(), Arc::clone(&entry));
            if inner.log.invalidated_since(start_epoch, &key) {
                inner.l1.remove(&key);
                bump(&inner.counters.skipped_stores);
                return result;
            }
            bump(&inner.counters.sets);
            if let Some(f) = fns {
                bump(&f.sets);
            }
        }
        if let Some(l) = leader {
            l.complete(entry);
        }
        result
    }
}

/// Per-call settings of the engine.
#[derive(Clone, Copy)]
pub(crate) struct Spec<'a> {
    pub(crate) ttl: Ttl,
    pub(crate) cache_none: bool,
    pub(crate) site: Option<&'a FnCounters>,
}

impl L1 {
    /// Re-arms `key` with a new TTL, keeping its value. Atomic with respect to
    /// concurrent writes of the same key.
    pub(crate) fn retime(&self, key: &str, ttl: Duration) -> bool {
        self.update_live(key, |e: &Shared| Entry::new(Arc::clone(&e.value), ttl))
    }
}
