//! Cache warming: named warmers registered on a cache, run on demand
//! ([`Cache::warm`](crate::Cache::warm), `warm_all`), at start and on a
//! schedule. A scheduled run first claims its period in Redis (`SET NX PX`
//! under `P:~warm:<name>`), so among instances started together one runs
//! it; without Redis, or while Redis cannot be reached, each instance runs
//! its own (warming then fills its in-process tier).
//!
//! A warmer writes through [`Warming`]: [`Warming::set`] (like
//! [`Cache::set`](crate::Cache::set)) and [`Warming::call`], which runs a
//! `#[cached]` call that computes and writes its value instead of reading
//! it, under exactly the key, format, TTL and tags the attribute reads. Both
//! write as `set` does: Redis with its markers, the in-process tier, and the
//! backplane's replacement of other instances' copies.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::{Engine, Spec};
use crate::error::Error;
use crate::key::manual_key;
use crate::observe::Event;
use crate::ttl::{Ttl, jittered};
use crate::value::CacheValue;

/// How long a start-only warmer's claim lasts: instances that start within
/// it leave the warmer to the one that ran it.
pub const DEFAULT_WARM_WINDOW: Duration = Duration::from_secs(60);

/// A scheduled run's period varies by this fraction, either way, so
/// instances do not wake together.
const JITTER: f64 = 0.1;

/// A period's claim lasts this fraction of it: less than the shortest
/// jittered period, so the instance that ran a period may claim the next.
const CLAIM_FRACTION: f64 = 0.8;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type WarmFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type WarmFn = Arc<dyn Fn(Warming) -> WarmFuture + Send + Sync>;

/// A named warmer: an async function that writes entries through the
/// [`Warming`] it is given, registered with
/// [`Cache::add_warmer`](crate::Cache::add_warmer).
///
/// ```
/// use std::time::Duration;
/// use cache_core::{Cache, Preset, Warmer};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
/// let cache = Cache::builder().build().await?;
/// cache.add_warmer(
///     Warmer::new("settings", |w| async move {
///         w.set("settings:site", &"dark".to_string(), Preset::Long).await?;
///         Ok::<_, cache_core::Error>(())
///     })
///     .on_start()
///     .every(Duration::from_secs(600)),
/// )?;
/// let report = cache.warm("settings").await?;
/// assert_eq!(report.written, 1);
/// # Ok(()) }
/// ```
#[must_use = "a warmer does nothing until it is added to a cache"]
pub struct Warmer {
    name: String,
    run: WarmFn,
    on_start: bool,
    every: Option<Duration>,
}

impl std::fmt::Debug for Warmer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warmer")
            .field("name", &self.name)
            .field("on_start", &self.on_start)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Warmer {
    /// A warmer named `name` that runs `warm`. Its error (any type that
    /// converts into `Box<dyn Error>`: `anyhow::Error`, a database error,
    /// a `String`) ends the run and is kept in its [`WarmReport`].
    pub fn new<F, Fut, E>(name: impl Into<String>, warm: F) -> Warmer
    where
        F: Fn(Warming) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let run: WarmFn = Arc::new(move |w| {
            let fut = warm(w);
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        Warmer {
            name: name.into(),
            run,
            on_start: false,
            every: None,
        }
    }

    /// The same warmer, each run's future passed through `wrap` (the
    /// facade runs it in the scope it was added in).
    pub(crate) fn within(
        mut self,
        wrap: impl Fn(WarmFuture) -> WarmFuture + Send + Sync + 'static,
    ) -> Warmer {
        let run = self.run;
        self.run = Arc::new(move |w| wrap(run(w)));
        self
    }

    /// Runs once as soon as it is added (in the background). Among
    /// instances that start within [`DEFAULT_WARM_WINDOW`] (or within the
    /// period set with [`every`](Self::every)), one runs it.
    pub fn on_start(mut self) -> Self {
        self.on_start = true;
        self
    }

    /// Runs every `period` (±10 %), in the background; among instances,
    /// one runs it per period.
    pub fn every(mut self, period: Duration) -> Self {
        self.every = Some(period.max(Duration::from_millis(1)));
        self
    }
}

/// What one warmer run did.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct WarmReport {
    /// The warmer's name.
    pub name: String,
    /// Entries it wrote.
    pub written: u64,
    /// Its error, if it failed (or panicked). Entries written before the
    /// error stay.
    pub error: Option<String>,
    /// How long it ran.
    pub duration: Duration,
}

/// What a warmer writes through. Cheap to clone; entries written through
/// any clone count in the run's report.
#[derive(Clone)]
pub struct Warming {
    engine: Arc<Engine>,
    run: Arc<WarmRun>,
}

impl std::fmt::Debug for Warming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warming")
            .field("written", &self.run.written.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// One run's count of entries written.
#[derive(Debug, Default)]
pub(crate) struct WarmRun {
    written: AtomicU64,
}

impl WarmRun {
    pub(crate) fn wrote(&self) {
        self.written.fetch_add(1, Relaxed);
    }
}

tokio::task_local! {
    /// Set inside [`Warming::call`]: the `#[cached]` call computes and writes.
    static WARMING: Option<Arc<WarmRun>>;
}

/// Calls inside [`Warming::call`] anywhere in the process, so that other
/// calls skip the task-local lookup.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The warming run a `#[cached]` call is made for, if any.
#[inline]
pub(crate) fn current() -> Option<Arc<WarmRun>> {
    if ACTIVE.load(Relaxed) == 0 {
        return None;
    }
    WARMING.try_with(Clone::clone).ok().flatten()
}

/// Runs `fut` (a warmed call's own body) as an ordinary call: the cached
/// calls it makes read the cache as usual.
pub(crate) async fn outside<F: Future>(fut: F) -> F::Output {
    WARMING.scope(None, fut).await
}

struct Active;

impl Active {
    fn enter() -> Active {
        ACTIVE.fetch_add(1, Relaxed);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Relaxed);
    }
}

impl Warming {
    /// Writes `value` under `key` as [`Cache::set`](crate::Cache::set) does,
    /// counted in the run's report.
    ///
    /// # Errors
    ///
    /// As `set`: none in the default mode.
    pub async fn set<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<(), Error> {
        let key = manual_key(&self.engine.config.key_prefix, key);
        self.engine.set(&key, value, ttl.into()).await?;
        self.run.wrote();
        Ok(())
    }

    /// Runs a `#[cached]` call so that it computes its value (the cache is
    /// not read) and writes it under the attribute's key, format, TTL and
    /// tags, as `#[cache_put]` does; a value the attribute would not store
    /// (`Err`, `None` without `cache_none`, `unless`) is not written. The
    /// call's own result is returned. Cached calls made by the function's
    /// body read the cache as usual.
    ///
    /// ```
    /// use cache_core::{Cache, Warmer, cached};
    ///
    /// #[cached(ttl = "medium", key = "product:<id>")]
    /// async fn product(id: u64) -> String {
    ///     format!("product {id}")
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = Cache::builder().build().await?;
    /// // In a scope (as tests do), so the attribute uses `cache`.
    /// cache.scope(async {
    ///     cache.add_warmer(Warmer::new("products", |w| async move {
    ///         for id in [1, 2, 3] {
    ///             w.call(product(id)).await;
    ///         }
    ///         Ok::<_, cache_core::Error>(())
    ///     }))?;
    ///     assert_eq!(cache.warm("products").await?.written, 3);
    ///     assert_eq!(cache.stats().await.l1_hits, 0);
    ///     product(2).await; // a hit
    ///     assert_eq!(cache.stats().await.l1_hits, 1);
    ///     Ok(())
    /// }).await
    /// # }
    /// ```
    pub async fn call<F: Future>(&self, call: F) -> F::Output {
        let _active = Active::enter();
        WARMING.scope(Some(Arc::clone(&self.run)), call).await
    }
}

/// A registered warmer.
struct Registered {
    name: String,
    run: WarmFn,
}

/// The warmers of one cache.
#[derive(Default)]
pub(crate) struct Warmers {
    list: Mutex<Vec<Arc<Registered>>>,
}

impl std::fmt::Debug for Warmers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Warmers {
    fn names(&self) -> Vec<String> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    fn find(&self, name: &str) -> Option<Arc<Registered>> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|r| r.name == name)
            .cloned()
    }

    fn all(&self) -> Vec<Arc<Registered>> {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Whether a scheduled run goes ahead here.
enum Claim {
    Run,
    Skip,
}

impl Engine {
    /// See [`Cache::add_warmer`](crate::Cache::add_warmer).
    pub(crate) fn add_warmer(self: &Arc<Self>, warmer: Warmer) -> Result<(), Error> {
        let Warmer {
            name,
            run,
            on_start,
            every,
        } = warmer;
        let registered = Arc::new(Registered { name, run });
        {
            let mut list = self
                .warmers
                .list
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if list.iter().any(|r| r.name == registered.name) {
                return Err(Error::DuplicateWarmer(registered.name.clone()));
            }
            list.push(Arc::clone(&registered));
        }
        if on_start || every.is_some() {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                tracing::warn!(
                    warmer = registered.name,
                    "no Tokio runtime: the warmer runs only when asked (warm, warm_all)"
                );
                return Ok(());
            };
            runtime.spawn(schedule(Arc::downgrade(self), registered, on_start, every));
        }
        Ok(())
    }

    /// The names of the registered warmers, in registration order.
    pub(crate) fn warmer_names(&self) -> Vec<String> {
        self.warmers.names()
    }

    /// See [`Cache::warm`](crate::Cache::warm).
    pub(crate) async fn warm(self: &Arc<Self>, name: &str) -> Result<WarmReport, Error> {
        match self.warmers.find(name) {
            Some(r) => Ok(self.run_warmer(&r).await),
            None => Err(Error::UnknownWarmer {
                name: name.to_owned(),
                known: self.warmers.names(),
            }),
        }
    }

    /// See [`Cache::warm_all`](crate::Cache::warm_all).
    pub(crate) async fn warm_all(self: &Arc<Self>) -> Vec<WarmReport> {
        let mut reports = Vec::new();
        for r in self.warmers.all() {
            reports.push(self.run_warmer(&r).await);
        }
        reports
    }

    /// Runs one warmer in a task of its own, so that a panic in it fails
    /// that run alone.
    async fn run_warmer(self: &Arc<Self>, warmer: &Registered) -> WarmReport {
        let run = Arc::new(WarmRun::default());
        let warming = Warming {
            engine: Arc::clone(self),
            run: Arc::clone(&run),
        };
        let started = Instant::now();
        let fut = (warmer.run)(warming);
        let outcome = match tokio::runtime::Handle::try_current() {
            Ok(rt) => match rt.spawn(fut).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(e) if e.is_panic() => Err("the warmer panicked".to_owned()),
                Err(_) => Err("the warmer was cancelled".to_owned()),
            },
            Err(_) => fut.await.map_err(|e| e.to_string()),
        };
        let written = run.written.load(Relaxed);
        let duration = started.elapsed();
        self.record(
            None,
            Event::Warmed {
                entries: written,
                failed: outcome.is_err(),
            },
        );
        match &outcome {
            Ok(()) => tracing::info!(warmer = warmer.name, written, ?duration, "warmed"),
            Err(error) => {
                tracing::warn!(warmer = warmer.name, written, error, "warmer failed")
            }
        }
        WarmReport {
            name: warmer.name.clone(),
            written,
            error: outcome.err(),
            duration,
        }
    }

    /// Claims a scheduled run's period (see the module docs).
    async fn claim_warm(&self, name: &str, period: Duration) -> Claim {
        let Some(l2) = &self.l2 else {
            return Claim::Run;
        };
        match l2.claim_warm(name, &crate::id::token(), period).await {
            Ok(true) => Claim::Run,
            Ok(false) => Claim::Skip,
            Err(e) => {
                tracing::warn!(
                    warmer = name,
                    error = %e,
                    "cannot claim the warmer's period in Redis: running it here"
                );
                Claim::Run
            }
        }
    }

    /// Writes a warmed `#[cached]` call's value (see [`Warming::call`]).
    pub(crate) async fn put_warmed<T: CacheValue>(
        &self,
        run: &WarmRun,
        key: &str,
        value: &T,
        ttl: Duration,
        spec: &Spec<'_>,
    ) {
        match self.put_for(key, value, ttl, spec).await {
            Ok(()) => run.wrote(),
            Err(e) => tracing::warn!(key, error = %e, "a warmed call could not write its value"),
        }
    }
}

/// A warmer's background runs: at start if asked, then every period.
/// Holds the engine weakly: the task ends once the cache is dropped or shut
/// down.
async fn schedule(
    engine: Weak<Engine>,
    warmer: Arc<Registered>,
    on_start: bool,
    every: Option<Duration>,
) {
    if !on_start {
        let Some(every) = every else { return };
        tokio::time::sleep(jittered(every, JITTER)).await;
    }
    let claim_for = every.map_or(DEFAULT_WARM_WINDOW, |p| p.mul_f64(CLAIM_FRACTION));
    loop {
        {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            if engine.is_closed() {
                return;
            }
            match engine.claim_warm(&warmer.name, claim_for).await {
                Claim::Run => {
                    engine.run_warmer(&warmer).await;
                }
                Claim::Skip => {
                    engine.record(None, Event::WarmSkipped);
                    tracing::debug!(warmer = warmer.name, "another instance claimed this period");
                }
            }
        }
        let Some(every) = every else { return };
        tokio::time::sleep(jittered(every, JITTER)).await;
    }
}
