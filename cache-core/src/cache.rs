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
use crate::codec::{Compression, Format};
use crate::error::Error;
use crate::flight::{Flights, Join, Leader, Waited};
use crate::glob::Glob;
use crate::invalidation::InvalidationLog;
use crate::key::{KeyBuilder, cap_key};
use crate::l1::{Entry, L1, Lookup, Shared};
use crate::l2::{BackplaneStatus, L2, Observed, Read, Timing};
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
    l1_enabled: bool,
    l1_ttl: Option<Duration>,
    l1: L1,
    l2: Option<L2>,
    strict: bool,
    lock: crate::lock::LockConfig,
    stale_retry: Duration,
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

    /// A cache without a shared tier.
    pub(crate) fn from_config(c: Config) -> Cache {
        Cache::assemble(c, None)
    }

    /// A cache over `l2`, if given; starts its backplane (needs a Tokio runtime).
    pub(crate) fn assemble(c: Config, l2: Option<L2>) -> Cache {
        let cache = Cache {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Relaxed),
                name: c.name,
                enabled: c.enabled,
                prefix: c.key_prefix,
                ttls: c.ttls,
                flight_wait: c.flight_wait,
                l1_enabled: c.l1_enabled,
                l1_ttl: c.l1_ttl,
                l1: L1::new(c.max_entries),
                l2,
                strict: c.strict,
                lock: c.lock,
                stale_retry: c.stale_retry,
                flights: Flights::new(),
                log: InvalidationLog::default(),
                counters: Counters::default(),
                functions: FnRegistry::default(),
            }),
        };
        if let Some(l2) = &cache.inner.l2 {
            l2.start_backplane(Arc::downgrade(&cache.inner), c.backplane);
        }
        cache
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
        self.inner.l2.as_ref().map(L2::status)
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
        self.inner.l2.as_ref().map(L2::breaker_state)
    }

    /// `redis` with a shared tier, else `memory`.
    pub fn backend(&self) -> &'static str {
        if self.inner.l2.is_some() {
            "redis"
        } else {
            "memory"
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

    /// A key (or pattern) of the manual API under the cache's prefix. A `~`
    /// that starts a segment becomes `%7E`: that namespace holds the cache's
    /// locks, indexes and markers, which a key like `~lock:x` would otherwise reach.
    pub(crate) fn full_key(&self, key: &str) -> String {
        let escaped;
        let key = if key.starts_with('~') || key.contains(":~") {
            escaped = key
                .split(':')
                .map(|seg| match seg.strip_prefix('~') {
                    Some(rest) => format!("%7E{rest}"),
                    None => seg.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(":");
            escaped.as_str()
        } else {
            key
        };
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
        if !self.inner.enabled {
            return Ok(None);
        }
        let key = self.full_key(key);
        let inner = &*self.inner;
        let c = &inner.counters;
        if inner.l1_enabled {
            match inner.l1.get::<T>(&key) {
                Lookup::Hit(v) => {
                    bump(&c.l1_hits);
                    return Ok(Some(v));
                }
                Lookup::Miss => {}
                Lookup::WrongType => {
                    tracing::debug!(
                        key,
                        ty = std::any::type_name::<T>(),
                        "cache entry of another type: removed"
                    );
                    inner.l1.remove(&key);
                    if inner.l2.is_none() {
                        bump(&c.misses);
                        return Ok(None);
                    }
                }
            }
        }
        if let Some(l2) = &inner.l2 {
            let start = inner.log.epoch();
            match l2.read::<T>(&key, 0, inner.l1_enabled).await {
                Read::Hit(v, timing) => {
                    bump(&c.l2_hits);
                    self.fill_l1(&key, &v, &timing, &Spec::manual(Ttl::Default), start);
                    return Ok(Some(v));
                }
                // Past its freshness: kept in Redis only as a fallback for its function.
                Read::Stale(..) | Read::Miss => {}
                Read::Invalid(e) => {
                    bump(&c.errors);
                    tracing::debug!(key, error = %e, "cache entry does not decode: removed");
                }
                Read::Unavailable(e) => inner.tier_error("get", &key, &e)?,
            }
        }
        bump(&c.misses);
        Ok(None)
    }

    /// Keeps a copy of a value read from the shared tier, unless an
    /// invalidation since `start` may have removed it. Returns the entry
    /// built for it, or `None` when there is no in-process copy to make.
    fn fill_l1<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        timing: &Timing,
        spec: &Spec<'_>,
        start: u64,
    ) -> Option<Shared> {
        let inner = &*self.inner;
        if !inner.l1_enabled {
            return None;
        }
        let entry = self.entry_for(value, self.resolve_ttl(spec.ttl), timing, spec);
        if entry.expires_at <= Instant::now() {
            return None;
        }
        let kept = Arc::clone(&entry);
        inner
            .log
            .insert_unless_invalidated(start, key, || inner.l1.insert(key.to_owned(), kept));
        Some(entry)
    }

    /// The in-process entry for `value`: fresh for the configured TTL, never
    /// beyond the shared tier's time left (`timing.left`) nor the
    /// in-process cap, then stale for `timing.stale`; with the function's
    /// refresh point, if it has one.
    fn entry_for<T: CacheValue>(
        &self,
        value: &T,
        ttl: Duration,
        timing: &Timing,
        spec: &Spec<'_>,
    ) -> Shared {
        let fresh = self.inner.l1_ttl(ttl, timing.left, spec.l1_ttl);
        let now = Instant::now();
        let refresh_at = spec
            .refresh
            .map(|r| r.point(now, timing.left.unwrap_or(ttl), ttl, timing.delta));
        Entry::timed(
            Arc::new(value.clone()),
            crate::l1::deadline(now, fresh),
            crate::l1::deadline(now, fresh.saturating_add(timing.stale)),
            refresh_at,
        )
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
        if !self.inner.enabled {
            return Ok(());
        }
        let ttl = self.resolve_ttl(ttl.into());
        let key = self.full_key(key);
        self.store(&key, value, ttl, &Spec::manual(Ttl::Fixed(ttl)), None, None)
            .await?;
        Ok(())
    }

    /// Writes both tiers (shared first, so a reader that misses in-process
    /// finds it). With `guard: Some(start)` (a computed value), nothing stays
    /// stored if an invalidation since `start` matched the key; then `None`.
    async fn store<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
        spec: &Spec<'_>,
        computed: Option<(u64, Option<&(Observed, Instant)>)>,
        delta: Option<Duration>,
    ) -> Result<Option<Shared>, Error> {
        let guard = computed.map(|(start, _)| start);
        let inner = &*self.inner;
        let ttl = crate::ttl::jittered(ttl, inner.ttls.jitter);
        let stale = spec.stale.unwrap_or_default();
        // With a stale window or early refresh, the window and the origin's
        // time travel with the value.
        let meta = (spec.stale.is_some() || spec.refresh.is_some()).then(|| crate::codec::Meta {
            stale_ms: u64::try_from(stale.as_millis()).unwrap_or(u64::MAX),
            delta_ms: delta.map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
        });
        let mut written = false;
        // A computed value goes to Redis only against markers observed before
        // its computation, and not long ago (see `MARKER_TTL`).
        let observed = match computed {
            Some((_, Some((seen, at)))) if at.elapsed() < crate::l2::MARKER_TTL => Some(Some(seen)),
            Some(_) => None,
            None => Some(None),
        };
        if let (Some(l2), Some(observed)) =
            (inner.l2.as_ref().filter(|_| !spec.skip_l2_write), observed)
        {
            let physical = ttl.saturating_add(stale);
            match l2.encode(value, spec.version, spec.format, spec.compression, meta) {
                Ok(bytes) => match match observed {
                    Some(seen) => l2.write_computed(key, &bytes, physical, seen).await,
                    None => l2.write(key, &bytes, physical).await.map(|()| true),
                } {
                    Ok(false) => {
                        // An invalidation, here or in another process, came
                        // after the origin read its data: the value is stale.
                        tracing::debug!(key, "computed value refused: invalidated while computing");
                        return Ok(None);
                    }
                    Ok(true) => {
                        written = true;
                        // An explicit overwrite may replace copies other
                        // instances hold. A computed value cannot: it follows a
                        // miss in Redis, and no in-process copy outlives the
                        // Redis key it was read from (see `Inner::l1_ttl`).
                        if guard.is_none() && l2.announce_key(key).await.is_err() {
                            l2.defer_key(key);
                        }
                    }
                    // Strict mode fails a manual `set`; a computed value carries on.
                    Err(e) => {
                        // An overwrite that failed leaves the old value in Redis: queue its removal.
                        if guard.is_none() {
                            l2.defer_key(key);
                        }
                        inner
                            .tier_error("set", key, &e)
                            .or_else(|e| if guard.is_none() { Err(e) } else { Ok(()) })?;
                    }
                },
                Err(e) => {
                    bump(&inner.counters.errors);
                    tracing::warn!(key, error = %e, "value not stored in Redis");
                }
            }
        }
        let entry = self.entry_for(
            value,
            ttl,
            &Timing {
                left: Some(ttl),
                stale,
                delta,
            },
            spec,
        );
        let kept = match (guard, inner.l1_enabled) {
            (None, true) => {
                inner.l1.insert(key.to_owned(), Arc::clone(&entry));
                true
            }
            (None, false) => true,
            (Some(start), true) => {
                let e = Arc::clone(&entry);
                inner
                    .log
                    .insert_unless_invalidated(start, key, || inner.l1.insert(key.to_owned(), e))
            }
            (Some(start), false) => !inner.log.invalidated_since(start, key),
        };
        if !kept {
            // An invalidation overtook this computation after its value went to
            // Redis: undo it as a full invalidation of the key, since another
            // reader may already have copied it.
            if written && let Some(l2) = &inner.l2 {
                let _recording = inner.log.begin(Arc::new(Glob::exact_key(key)));
                inner.l1.remove(key);
                let undone = match l2.remove(key).await {
                    Ok(_) => l2.announce_key(key).await,
                    Err(e) => Err(e),
                };
                if undone.is_err() {
                    l2.defer_key(key);
                }
            }
            return Ok(None);
        }
        bump(&inner.counters.sets);
        Ok(Some(entry))
    }

    /// Removes `key` from both tiers; true if it was there. A computation of
    /// `key` already under way will not store its (now stale) result.
    ///
    /// # Errors
    ///
    /// None in the default mode (see [`get`](Self::get)).
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
        let inner = &*self.inner;
        let key = self.full_key(key);
        let _recording = inner.log.begin(Arc::new(Glob::exact_key(&key)));
        let mut removed = inner.l1.remove(&key);
        if let Some(l2) = &inner.l2 {
            match l2.remove(&key).await {
                Ok(n) => {
                    removed = n > 0;
                    if l2.announce_key(&key).await.is_err() {
                        l2.defer_key(&key);
                    }
                }
                Err(e) => {
                    // Kept and replayed (with its announcement) once Redis answers.
                    l2.defer_key(&key);
                    inner.tier_error("delete", &key, &e)?;
                }
            }
        }
        bump(&inner.counters.deletes);
        Ok(removed)
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
        if !self.inner.enabled {
            return Ok(false);
        }
        let inner = &*self.inner;
        let key = self.full_key(key);
        if inner.l1_enabled && inner.l1.entry(&key).is_some() {
            return Ok(true);
        }
        if let Some(l2) = &inner.l2 {
            match l2.exists(&key).await {
                Ok(found) => return Ok(found),
                Err(e) => inner.tier_error("exists", &key, &e)?,
            }
        }
        Ok(false)
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
        if !self.inner.enabled {
            return Ok(None);
        }
        let inner = &*self.inner;
        let key = self.full_key(key);
        if let Some(l2) = &inner.l2 {
            match l2.ttl(&key).await {
                Ok(left) => return Ok(left),
                Err(e) => inner.tier_error("ttl", &key, &e)?,
            }
        }
        Ok(inner
            .l1
            .entry(&key)
            .and_then(|e| e.remaining(Instant::now())))
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
        if !self.inner.enabled {
            return Ok(false);
        }
        let inner = &*self.inner;
        let ttl = self.resolve_ttl(ttl.into());
        let key = self.full_key(key);
        let start = inner.log.epoch();
        let local = inner.l1.retime(&key, inner.l1_ttl(ttl, None, None));
        // The re-armed copy was read before an invalidation that ran
        // meanwhile may have removed it: it goes again.
        if local && inner.log.invalidated_since(start, &key) {
            inner.l1.remove(&key);
        }
        if let Some(l2) = &inner.l2 {
            match l2.expire(&key, ttl).await {
                Ok(found) => {
                    // Other instances' copies must not outlive the new TTL.
                    if found && l2.announce_key(&key).await.is_err() {
                        l2.defer_key(&key);
                    }
                    return Ok(found);
                }
                Err(e) => inner.tier_error("expire", &key, &e)?,
            }
        }
        Ok(local)
    }

    /// Removes every key matching `pattern` (Redis glob syntax: `*`, `?`,
    /// `[a-z]`, `\x`), within this cache's prefix, from both tiers and from
    /// every other instance's in-process tier; returns how many entries went
    /// (counted in the shared tier when there is one). A pattern without
    /// wildcards removes one key. Computations of matching keys already under
    /// way will not store their results.
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
    /// assert_eq!(cache.invalidate(&pattern).await?, 2);
    /// assert!(cache.exists("user:10:a").await?);
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, pattern: &str) -> Result<u64, Error> {
        if !self.inner.enabled {
            return Ok(0);
        }
        self.invalidate_full(&self.full_key(pattern)).await
    }

    /// Invalidates in both tiers and announces it; what cannot reach Redis is
    /// kept and replayed. `Err` only in strict mode.
    pub(crate) async fn invalidate_full(&self, full_pattern: &str) -> Result<u64, Error> {
        let inner = &*self.inner;
        let glob = Arc::new(Glob::new(full_pattern));
        let _recording = inner.log.begin(Arc::clone(&glob));
        let mut removed;
        let mut failure = None;
        if let Some(l2) = &inner.l2 {
            // Redis first: once its command is on its way, the in-process
            // removal runs while Redis works.
            let mut shared = std::pin::pin!(l2.remove_matching(full_pattern));
            let early = poll_once(shared.as_mut()).await;
            removed = inner.l1.remove_matching(&glob);
            let outcome = match early {
                Some(done) => done,
                None => shared.await,
            };
            let outcome = match outcome {
                Ok(n) => {
                    removed = n;
                    l2.announce_pattern(full_pattern).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                l2.defer_pattern(full_pattern);
                failure = Some(e);
            }
        } else {
            removed = inner.l1.remove_matching(&glob);
        }
        let c = &inner.counters;
        bump(&c.invalidations);
        c.invalidated_entries.fetch_add(removed, Relaxed);
        tracing::debug!(pattern = full_pattern, removed, "cache invalidated");
        if let Some(e) = failure {
            inner.tier_error("invalidate", full_pattern, &e)?;
        }
        Ok(removed)
    }

    /// Removes every entry of this cache, in both tiers (in Redis: the keys
    /// under this cache's prefix, which a cache with Redis always has) and in
    /// other instances' in-process tiers. Computations under way will not store.
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
    pub async fn clear(&self) -> Result<(), Error> {
        if !self.inner.enabled {
            return Ok(());
        }
        let inner = &*self.inner;
        if inner.l2.is_some() && !inner.prefix.is_empty() {
            self.invalidate_full(&format!("{}:*", inner.prefix)).await?;
        } else {
            if inner.l2.is_some() {
                tracing::warn!("clear() with an empty key prefix leaves Redis untouched");
            }
            inner.forget_everything_local();
            bump(&inner.counters.invalidations);
        }
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
        if let Some(v) = key.as_deref().and_then(|k| self.l1_hit::<T>(k)) {
            return Ok(v);
        }
        let spec = Spec::manual(ttl.into());
        let init = std::pin::pin!(init);
        Ok(self
            .get_or_compute::<crate::private::PlainKind, T, _, _>(key, spec, init, |_| false)
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
        if let Some(v) = key.as_deref().and_then(|k| self.l1_hit::<T>(k)) {
            return Ok(v);
        }
        let spec = Spec::manual(ttl.into());
        let init = std::pin::pin!(init);
        self.get_or_compute::<crate::private::ResultKind, _, _, _>(key, spec, init, |_| false)
            .await
    }

    // ----- observability ----------------------------------------------------

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
        let inner = &*self.inner;
        inner.l1.sync();
        let mut stats = stats::snapshot(
            self.backend(),
            inner.enabled,
            &inner.counters,
            &inner.functions,
            inner.l1.entry_count(),
        );
        if let Some(l2) = &inner.l2 {
            stats.backplane = Some(*l2.status().borrow());
            stats.breaker = Some(l2.breaker_state());
            stats.pending_invalidations = l2.pending();
            stats.redis = Some(match l2.info().await {
                Ok((used_memory, keys)) => stats::RedisStats {
                    reachable: true,
                    used_memory,
                    keys,
                },
                Err(_) => stats::RedisStats {
                    reachable: false,
                    used_memory: 0,
                    keys: 0,
                },
            });
        }
        stats
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
        let inner = &*self.inner;
        let started = std::time::Instant::now();
        let mut error = None;
        let breaker = inner.l2.as_ref().map(L2::breaker_state);
        let status = if !inner.enabled {
            HealthStatus::Disabled
        } else if let Some(l2) = &inner.l2 {
            match l2.ping().await {
                Ok(_) if l2.breaker_state() == crate::BreakerState::Closed => HealthStatus::Healthy,
                Ok(_) => HealthStatus::Degraded,
                Err(e) => {
                    error = Some(e.to_string());
                    HealthStatus::Degraded
                }
            }
        } else {
            let key = "\u{0}health-probe".to_owned();
            let probe = Entry::new(Arc::new(started), Duration::from_secs(1));
            inner.l1.insert(key.clone(), probe);
            let ok = inner.l1.get::<std::time::Instant>(&key);
            inner.l1.remove(&key);
            match ok {
                Lookup::Hit(t) if t == started => HealthStatus::Healthy,
                _ => HealthStatus::Degraded,
            }
        };
        Health {
            status,
            backend: self.backend(),
            latency: started.elapsed(),
            entries: inner.l1.entry_count(),
            breaker,
            error,
        }
    }

    // ----- the engine -------------------------------------------------------

    /// A live in-process value of type `V` under `key`, counted as a hit;
    /// `None` otherwise (misses are counted by the slow path that follows).
    #[inline]
    pub(crate) fn l1_hit<V: Clone + 'static>(&self, key: &str) -> Option<V> {
        if !self.inner.l1_enabled {
            return None;
        }
        match self.inner.l1.get::<V>(key) {
            Lookup::Hit(v) => {
                bump(&self.inner.counters.l1_hits);
                Some(v)
            }
            Lookup::Miss | Lookup::WrongType => None,
        }
    }

    /// Like [`l1_hit`](Self::l1_hit), and whether this caller should start
    /// the copy's background refresh (true for one caller per copy).
    #[inline]
    pub(crate) fn l1_hit_refresh<V: Clone + 'static>(&self, key: &str) -> Option<(V, bool)> {
        if !self.inner.l1_enabled {
            return None;
        }
        let e = self.inner.l1.entry(key)?;
        let v = e.value.downcast_ref::<V>()?.clone();
        bump(&self.inner.counters.l1_hits);
        Some((v, e.claim_refresh(Instant::now())))
    }

    /// Get-or-compute for the attributes and the manual API. `key: None`
    /// means the cache is disabled: just run `fut`.
    pub(crate) async fn get_or_compute<K, R, F, U>(
        &self,
        key: Option<String>,
        mut spec: Spec<'_>,
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
        // The miss paths (the lock wait, the origin call and its store) are
        // boxed where they start: inline, they made this future four times
        // larger, and an L2 hit paid for allocating and moving all of it.
        let inner = &*self.inner;
        let fns = spec.site;
        let hit = |v: K::Value| {
            if let Some(f) = fns {
                bump(&f.hits);
            }
            K::rebuild(v)
        };
        // The caller has just looked in the in-process tier (the expansion's
        // hit path, or `get_or_set`): go straight to the single flight.
        let deadline = crate::l1::deadline(Instant::now(), inner.flight_wait);
        loop {
            match inner.flights.join(&key) {
                Join::Leader(leader) => {
                    let mut start = inner.log.epoch();
                    // A leader that finished between our read and our join may have stored it.
                    if let Some(e) = inner.l1_enabled.then(|| inner.l1.entry(&key)).flatten()
                        && let Some(v) = e.value.downcast_ref::<K::Value>()
                    {
                        let v = v.clone();
                        leader.complete(e, start);
                        bump(&inner.counters.l1_hits);
                        return hit(v);
                    }
                    let mut fallback = None;
                    let mut lock = None;
                    let mut observed = None;
                    let mut reachable = true;
                    if let Some(l2) = &inner.l2 {
                        let read = l2
                            .read::<K::Value>(&key, spec.version, inner.l1_enabled)
                            .await;
                        let missed = match read {
                            Read::Hit(v, timing) => Some((v, timing)),
                            Read::Stale(v, left) => {
                                fallback = spec.stale.map(|_| (v, left));
                                None
                            }
                            Read::Miss => None,
                            Read::Invalid(e) => {
                                bump(&inner.counters.errors);
                                tracing::debug!(key, error = %e, "cache entry does not decode: removed, recomputing");
                                None
                            }
                            Read::Unavailable(e) => {
                                spec.skip_l2_write = e.is_failure();
                                reachable = false;
                                let _ = inner.tier_error("get", &key, &e);
                                None
                            }
                        };
                        let found = match missed {
                            Some(found) => Some(found),
                            None if reachable && spec.lock.unwrap_or(inner.lock.enabled) => {
                                // With `timeout`, a stale value beats waiting on another process.
                                let stale_now = spec.timeout.is_some() && fallback.is_some();
                                let locked = Box::pin(
                                    self.lock_or_wait::<K::Value>(l2, &key, &spec, stale_now),
                                )
                                .await;
                                // An invalidation while we waited makes the
                                // stale value we read before it unusable.
                                if inner.log.invalidated_since(start, &key) {
                                    fallback = None;
                                }
                                match locked {
                                    Locked::Value(v, timing, epoch) => {
                                        start = epoch;
                                        Some((v, timing))
                                    }
                                    Locked::Held(held, seen, epoch) => {
                                        start = epoch;
                                        lock = Some(held);
                                        observed = Some(seen);
                                        None
                                    }
                                    Locked::Busy => match fallback.take() {
                                        Some((v, left)) => {
                                            return K::rebuild(self.serve_stale(
                                                &key,
                                                v,
                                                left,
                                                &spec,
                                                start,
                                                Some(leader),
                                            ));
                                        }
                                        // Invalidated while we looked: compute.
                                        None => None,
                                    },
                                    Locked::Proceed => None,
                                }
                            }
                            None => None,
                        };
                        if let Some((v, timing)) = found {
                            bump(&inner.counters.l2_hits);
                            match self.fill_l1(&key, &v, &timing, &spec, start) {
                                Some(entry) => leader.complete(entry, start),
                                None => leader.complete_with(
                                    || {
                                        self.entry_for(
                                            &v,
                                            self.resolve_ttl(spec.ttl),
                                            &timing,
                                            &spec,
                                        )
                                    },
                                    start,
                                ),
                            }
                            return hit(v);
                        }
                    }
                    let origin = Origin {
                        start,
                        leader: Some(leader),
                        fallback,
                        lock,
                        observed,
                    };
                    return Box::pin(self.compute::<K, R, F, U>(key, spec, origin, fut, unless))
                        .await;
                }
                Join::Follower(follower) => match follower.wait(deadline).await {
                    Waited::Done(shared, leader_start) => {
                        if inner.log.invalidated_since(leader_start, &key) {
                            // Computed from data read before an invalidation we
                            // may have seen return: not ours to take.
                            continue;
                        }
                        if let Some(v) = shared.value.downcast_ref::<K::Value>() {
                            bump(&inner.counters.coalesced);
                            if let Some(f) = fns {
                                bump(&f.coalesced);
                            }
                            return K::rebuild(v.clone());
                        }
                        // Another type under the same key: compute our own.
                        let origin = Origin::alone(inner.log.epoch());
                        return Box::pin(
                            self.compute::<K, R, F, U>(key, spec, origin, fut, unless),
                        )
                        .await;
                    }
                    Waited::Retry => {
                        if let Some(v) = self.l1_hit::<K::Value>(&key) {
                            return hit(v);
                        }
                    }
                    Waited::TimedOut => {
                        bump(&inner.counters.flight_timeouts);
                        tracing::debug!(key, "single-flight wait reached its bound; computing");
                        let origin = Origin::alone(inner.log.epoch());
                        return Box::pin(
                            self.compute::<K, R, F, U>(key, spec, origin, fut, unless),
                        )
                        .await;
                    }
                },
            }
        }
    }

    /// After a Redis miss: takes the key's stampede lock, or waits for the
    /// process holding it to store the value (see [`crate::lock`]).
    // Without the `redis` feature the tier is uninhabited and all of this is dead code.
    #[cfg_attr(
        not(feature = "redis"),
        allow(unused_mut, unused_variables, unreachable_code)
    )]
    async fn lock_or_wait<V: CacheValue>(
        &self,
        l2: &L2,
        key: &str,
        spec: &Spec<'_>,
        stale_now: bool,
    ) -> Locked<V> {
        let inner = &*self.inner;
        let config = inner.lock;
        let token = crate::lock::token();
        let give_up = crate::l1::deadline(Instant::now(), config.wait);
        let mut poll = crate::lock::FIRST_POLL;
        let mut waited = false;
        // Registered before the first attempt, so a release between our
        // attempt and our wait still wakes us.
        let waiter = l2.waiter(key);
        loop {
            let landed = waiter.notify().notified();
            let mut landed = std::pin::pin!(landed);
            landed.as_mut().enable();
            // Whatever this attempt finds or computes comes after every
            // invalidation recorded so far.
            let epoch = inner.log.epoch();
            // Armed before the attempt: a timed-out or cancelled attempt that
            // Redis ran anyway does not leave a lock behind.
            let guard = crate::lock::Held::new(Arc::clone(&self.inner), key, token.clone());
            let asked = Instant::now();
            let (held, read, observed) = match l2
                .lock_and_read::<V>(key, guard.token(), config.ttl, spec.version)
                .await
            {
                Ok(step) => step,
                Err(e) => {
                    // Never wait on a failing Redis: compute, single flight still holds.
                    let _ = inner.tier_error("lock", key, &e);
                    return Locked::Proceed;
                }
            };
            let held = if held {
                Some(guard)
            } else {
                guard.disarm();
                None
            };
            match read {
                Read::Hit(v, timing) => {
                    if let Some(h) = held {
                        h.release().await;
                    }
                    return Locked::Value(v, timing, epoch);
                }
                Read::Invalid(e) => {
                    bump(&inner.counters.errors);
                    tracing::debug!(key, error = %e, "cache entry does not decode: removed");
                }
                Read::Stale(..) | Read::Miss | Read::Unavailable(_) => {}
            }
            if let Some(held) = held {
                if waited {
                    bump(&inner.counters.lock_takeovers);
                    tracing::debug!(key, "stampede lock taken over");
                }
                return Locked::Held(held, (observed, asked), epoch);
            }
            if stale_now {
                // Another process is computing it, and this call may answer
                // with a stale value rather than wait.
                return Locked::Busy;
            }
            if !waited {
                waited = true;
                bump(&inner.counters.lock_waits);
            }
            let now = Instant::now();
            if now >= give_up {
                bump(&inner.counters.lock_timeouts);
                tracing::debug!(key, "waited for another process's computation to its bound");
                return Locked::Proceed;
            }
            let wake = (now + poll).min(give_up);
            tokio::select! {
                () = landed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
            poll = (poll * 2).min(crate::lock::MAX_POLL);
        }
    }

    /// Runs the origin and stores what it returned, unless an invalidation
    /// since `origin.start` (the epoch before anything was read) says it is
    /// stale. A failed or (with `timeout`) slow origin is answered with the
    /// stale fallback, if the function keeps one.
    async fn compute<K, R, F, U>(
        &self,
        key: String,
        spec: Spec<'_>,
        mut origin: Origin<'_, K::Value>,
        fut: F,
        unless: U,
    ) -> R
    where
        K: crate::private::Kind<R>,
        K::Value: CacheValue,
        F: Future<Output = R>,
        U: Fn(&K::Value) -> bool,
    {
        let lock = origin.lock.take();
        let result = self
            .compute_holding::<K, R, F, U>(key, spec, origin, lock.as_ref(), fut, unless)
            .await;
        // Stored, or given up: other processes waiting on our lock go on now.
        if let Some(held) = lock {
            held.release().await;
        }
        result
    }

    async fn compute_holding<K, R, F, U>(
        &self,
        key: String,
        mut spec: Spec<'_>,
        origin: Origin<'_, K::Value>,
        lock: Option<&crate::lock::Held>,
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
        let Origin {
            start,
            leader,
            fallback,
            lock: _,
            mut observed,
        } = origin;
        // What Redis's markers say before the origin runs: the write of its
        // result is refused if an invalidation anywhere changes them meanwhile.
        if let Some(l2) = &inner.l2
            && !spec.skip_l2_write
            && observed.is_none()
        {
            let asked = Instant::now();
            match l2.observe().await {
                Ok(seen) => observed = Some((seen, asked)),
                Err(e) => {
                    // Unobserved, the result cannot be written safely: in-process only.
                    let _ = inner.tier_error("observe", &key, &e);
                    spec.skip_l2_write = true;
                }
            }
        }
        if !spec.background {
            bump(&inner.counters.misses);
            if let Some(f) = fns {
                bump(&f.misses);
            }
        }
        // A stale value to fall back on: read from Redis by this call, or an
        // in-process copy still inside its stale window.
        let mut fallback = match fallback {
            Some(f) => Some(f),
            // A failed background refresh leaves the current copy as it is.
            None if spec.stale.is_some() && inner.l1_enabled && !spec.background => {
                let now = Instant::now();
                inner
                    .l1
                    .stale::<K::Value>(&key)
                    .map(|(v, until)| (v, Some(until.saturating_duration_since(now))))
            }
            None => None,
        };
        let started = Instant::now();
        let result = {
            let run = async {
                match lock {
                    Some(held) => held.run(fut).await,
                    None => fut.await,
                }
            };
            let mut run = std::pin::pin!(run);
            match (spec.timeout, fallback.take()) {
                (Some(limit), Some((v, left))) => match tokio::time::timeout(limit, &mut run).await
                {
                    Ok(r) => {
                        fallback = Some((v, left));
                        r
                    }
                    // Cut off only while there is a stale value we may serve.
                    Err(_) if !inner.log.invalidated_since(start, &key) => {
                        bump(&inner.counters.origin_timeouts);
                        return K::rebuild(self.serve_stale(&key, v, left, &spec, start, leader));
                    }
                    Err(_) => run.await,
                },
                (_, f) => {
                    fallback = f;
                    run.await
                }
            }
        };
        let delta = started.elapsed();
        if let Some(f) = fns {
            f.add_origin_time(delta);
        }
        if K::value(&result).is_none() {
            if spec.background {
                bump(&inner.counters.refresh_failures);
            } else {
                bump(&inner.counters.origin_errors);
                if let Some(f) = fns {
                    bump(&f.origin_errors);
                }
            }
            if let Some((v, left)) = fallback
                && !inner.log.invalidated_since(start, &key)
            {
                return K::rebuild(self.serve_stale(&key, v, left, &spec, start, leader));
            }
            drop(leader); // followers retry with their own calls
            return result;
        }
        let Some(value) = K::value(&result) else {
            return result;
        };
        if inner.log.invalidated_since(start, &key) {
            // Computed from data an invalidation has since replaced.
            bump(&inner.counters.skipped_stores);
            return result;
        }
        let store = (spec.cache_none || !K::is_none(&result)) && !unless(value);
        let entry = if store {
            let Ok(Some(entry)) = self
                .store(
                    &key,
                    value,
                    self.resolve_ttl(spec.ttl),
                    &spec,
                    Some((start, observed.as_ref())),
                    Some(delta),
                )
                .await
            else {
                bump(&inner.counters.skipped_stores);
                return result;
            };
            if let Some(f) = fns {
                bump(&f.sets);
                if spec.background {
                    bump(&f.refreshes);
                }
            }
            if spec.background {
                bump(&inner.counters.refreshes);
            }
            entry
        } else {
            Entry::new(Arc::new(value.clone()), Duration::ZERO)
        };
        if let Some(l) = leader {
            l.complete(entry, start);
        }
        result
    }

    /// Answers a failed or slow origin call with a stale value, and keeps
    /// serving it for `stale_retry_after` (within its stale window) before
    /// the origin is tried again.
    fn serve_stale<V: CacheValue>(
        &self,
        key: &str,
        value: V,
        left: Option<Duration>,
        spec: &Spec<'_>,
        start: u64,
        leader: Option<Leader<'_>>,
    ) -> V {
        let inner = &*self.inner;
        bump(&inner.counters.stale_served);
        if let Some(f) = spec.site {
            bump(&f.stale_served);
        }
        tracing::warn!(key, "origin failed; serving a stale value");
        let now = Instant::now();
        let retry = crate::l1::deadline(now, inner.stale_retry);
        let stale_until = left.map_or(retry, |l| crate::l1::deadline(now, l));
        let entry = Entry::timed(
            Arc::new(value.clone()),
            retry.min(stale_until),
            stale_until,
            None,
        );
        if inner.l1_enabled {
            let kept = Arc::clone(&entry);
            inner
                .log
                .insert_unless_invalidated(start, key, || inner.l1.insert(key.to_owned(), kept));
        }
        if let Some(l) = leader {
            l.complete(entry, start);
        }
        value
    }

    /// A background refresh (`refresh`): one per key across processes (the
    /// stampede lock, taken without waiting), then the normal compute-and-store.
    pub(crate) async fn refresh<K, R, F, U>(&self, key: String, spec: Spec<'_>, fut: F, unless: U)
    where
        K: crate::private::Kind<R>,
        K::Value: CacheValue,
        F: Future<Output = R>,
        U: Fn(&K::Value) -> bool,
    {
        let inner = &*self.inner;
        let start = inner.log.epoch();
        let mut lock = None;
        let mut observed = None;
        if let Some(l2) = &inner.l2
            && spec.lock.unwrap_or(inner.lock.enabled)
        {
            let guard = crate::lock::Held::new(Arc::clone(&self.inner), &key, crate::lock::token());
            let asked = Instant::now();
            match l2
                .lock_and_read::<K::Value>(&key, guard.token(), inner.lock.ttl, spec.version)
                .await
            {
                Ok((held, read, seen)) => {
                    observed = Some((seen, asked));
                    let held = if held {
                        Some(guard)
                    } else {
                        guard.disarm();
                        None
                    };
                    if let Read::Hit(v, timing) = read {
                        // Another process refreshed it since our copy was made: take theirs.
                        let ttl = self.resolve_ttl(spec.ttl);
                        let now = Instant::now();
                        let point = spec
                            .refresh
                            .map(|r| r.point(now, timing.left.unwrap_or(ttl), ttl, timing.delta));
                        if point.is_some_and(|p| p > now) {
                            self.fill_l1(&key, &v, &timing, &spec, start);
                            if let Some(h) = held {
                                h.release().await;
                            }
                            return;
                        }
                    }
                    match held {
                        Some(h) => lock = Some(h),
                        // Another process is computing this key.
                        None => return,
                    }
                }
                Err(e) => {
                    let _ = inner.tier_error("lock", &key, &e);
                }
            }
        }
        let origin = Origin {
            start,
            leader: None,
            fallback: None,
            lock,
            observed,
        };
        let _ = self
            .compute::<K, R, F, U>(key, spec, origin, fut, unless)
            .await;
    }
}

/// Polls `fut` once: its output if it is already done, else `None` (it has
/// started, and can be awaited later).
async fn poll_once<F: Future + Unpin>(mut fut: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// What a call brings to the origin call: the invalidation epoch it started
/// at, its flight (to hand the value to), a stale fallback, a held lock.
struct Origin<'a, V> {
    start: u64,
    leader: Option<Leader<'a>>,
    fallback: Option<(V, Option<Duration>)>,
    lock: Option<crate::lock::Held>,
    /// The key's generation markers in Redis, read before the origin call
    /// (and when): its result is written only if they have not changed.
    observed: Option<(Observed, Instant)>,
}

impl<V> Origin<'_, V> {
    fn alone(start: u64) -> Self {
        Origin {
            start,
            leader: None,
            fallback: None,
            lock: None,
            observed: None,
        }
    }
}

/// What [`Cache::lock_or_wait`] came to.
enum Locked<V> {
    /// The value, stored by another process (or found on the second read),
    /// and the invalidation epoch of that read.
    Value(V, Timing, u64),
    /// This call holds the lock: compute. With the markers read with it and
    /// the epoch of that attempt (the computation starts after it).
    Held(crate::lock::Held, (Observed, Instant), u64),
    /// Another process holds the lock, and the caller asked not to wait.
    Busy,
    /// Compute without the lock (Redis failing, or the wait reached its bound).
    Proceed,
}

impl Inner {
    /// Drops everything in the in-process tier and makes racing computations
    /// discard their results (after a backplane gap).
    pub(crate) fn forget_everything_local(&self) {
        let _recording = self.log.begin(Arc::new(Glob::new("*")));
        self.l1.clear();
    }

    /// Applies another instance's write or invalidation to the in-process tier.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn apply_remote(&self, glob: &Glob) {
        let _recording = self.log.begin(Arc::new(glob.clone()));
        self.l1.remove_matching(glob);
    }

    /// The TTL of an in-process copy: never beyond the shared tier's time left
    /// (`left`) nor the configured in-process cap.
    fn l1_ttl(&self, ttl: Duration, left: Option<Duration>, cap: Option<Duration>) -> Duration {
        let mut t = left.map_or(ttl, |l| l.min(ttl));
        if let Some(c) = cap.or(self.l1_ttl) {
            t = t.min(c);
        }
        t
    }

    /// Counts and logs a failure of the shared tier; in strict mode, the
    /// error the manual API returns (callers on the attribute path ignore it).
    fn tier_error(
        &self,
        op: &'static str,
        key: &str,
        error: &crate::l2::TierError,
    ) -> Result<(), Error> {
        if error.is_failure() {
            bump(&self.counters.errors);
            tracing::warn!(op, key, %error, "Redis failed; continuing with the in-process tier");
        } else {
            bump(&self.counters.redis_skipped);
            tracing::debug!(op, key, %error, "Redis skipped");
        }
        if self.strict {
            return Err(Error::Unavailable {
                op,
                reason: error.to_string(),
            });
        }
        Ok(())
    }

    /// How this cache uses stampede locks.
    pub(crate) fn lock_config(&self) -> crate::lock::LockConfig {
        self.lock
    }

    /// The shared tier, if any.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn l2(&self) -> Option<&L2> {
        self.l2.as_ref()
    }
}

/// Per-call settings of the engine.
#[derive(Clone, Copy)]
pub(crate) struct Spec<'a> {
    pub(crate) ttl: Ttl,
    pub(crate) cache_none: bool,
    pub(crate) site: Option<&'a FnCounters>,
    pub(crate) format: Option<Format>,
    pub(crate) compression: Option<Compression>,
    pub(crate) version: u32,
    pub(crate) l1_ttl: Option<Duration>,
    /// Set when this call's Redis read just failed: do not wait on Redis
    /// again to write the computed value.
    pub(crate) skip_l2_write: bool,
    /// The stampede lock, if the function says (else the cache's setting).
    pub(crate) lock: Option<bool>,
    /// `stale_if_error`: how long an expired value is kept as a fallback.
    pub(crate) stale: Option<Duration>,
    /// `timeout`: how long the origin may take while a stale value is at hand.
    pub(crate) timeout: Option<Duration>,
    /// `refresh`: when values are refreshed in the background.
    pub(crate) refresh: Option<crate::ttl::Refresh>,
    /// A background refresh, not a caller's miss.
    pub(crate) background: bool,
}

impl Spec<'_> {
    pub(crate) fn manual(ttl: Ttl) -> Spec<'static> {
        Spec {
            ttl,
            cache_none: false,
            site: None,
            format: None,
            compression: None,
            version: 0,
            l1_ttl: None,
            skip_l2_write: false,
            lock: None,
            stale: None,
            timeout: None,
            refresh: None,
            background: false,
        }
    }
}

impl L1 {
    /// Re-arms `key` with a new TTL, keeping its value. Atomic with respect to
    /// concurrent writes of the same key.
    pub(crate) fn retime(&self, key: &str, ttl: Duration) -> bool {
        self.update_live(key, |e: &Shared| Entry::new(Arc::clone(&e.value), ttl))
    }
}
