//! The default cache, named caches, and the scoped override.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::builder::CacheBuilder;
use crate::cache::Cache;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::Error;
use crate::observe::Observer;

static DEFAULT: OnceLock<Cache> = OnceLock::new();
static NAMED: OnceLock<Mutex<HashMap<String, Cache>>> = OnceLock::new();

tokio::task_local! {
    static SCOPED: Cache;
}

fn named_map() -> std::sync::MutexGuard<'static, HashMap<String, Cache>> {
    NAMED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A cache built from the environment on first use. An invalid environment
/// cannot be reported to the caller of an annotated function, so it is logged
/// at error level and the cache is a pass-through: correct, only uncached.
fn lazy(name: Option<&str>) -> Cache {
    let mut builder = CacheBuilder::new().from_env();
    if let Some(n) = name {
        builder = builder.name(n);
    }
    match builder.build_blocking() {
        Ok(cache) => cache,
        Err(error) => {
            tracing::error!(%error, cache = name.unwrap_or("default"),
                "cache configuration from the environment is invalid; caching is disabled until it is fixed");
            let mut off = CacheBuilder::new().enabled(false);
            if let Some(n) = name {
                off = off.name(n);
            }
            match off.build_blocking() {
                Ok(cache) => cache,
                Err(_) => unreachable_config(),
            }
        }
    }
}

/// Built-in defaults always resolve; this exists so no path panics.
#[cold]
fn unreachable_config() -> Cache {
    Cache::from_engine(Engine::start(
        Config {
            enabled: false,
            ..Config::default()
        },
        Arc::new(Observer::new(None, false)),
        None,
    ))
}

fn default_cache() -> &'static Cache {
    DEFAULT.get_or_init(|| lazy(None))
}

fn named(name: &str) -> Cache {
    named_map()
        .entry(name.to_owned())
        .or_insert_with(|| lazy(Some(name)))
        .clone()
}

fn install(cache: Cache) -> Result<(), Error> {
    match cache.name().map(str::to_owned) {
        None => DEFAULT
            .set(cache)
            .map_err(|_| Error::AlreadyInstalled("default".to_owned())),
        Some(name) => {
            let mut map = named_map();
            if map.contains_key(&name) {
                return Err(Error::AlreadyInstalled(name));
            }
            map.insert(name, cache);
            Ok(())
        }
    }
}

pub(crate) fn scoped() -> Option<Cache> {
    SCOPED.try_with(Cache::clone).ok()
}

fn scope<F: std::future::Future>(
    cache: Cache,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<Cache, F> {
    SCOPED.scope(cache, fut)
}

impl Cache {
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
        default_cache()
    }

    /// The cache installed under `name`, else one built from the environment
    /// on first use (as `#[cached(cache = "name")]` does).
    ///
    /// ```
    /// let reports = cache_core::Cache::named("reports-doc");
    /// assert_eq!(reports.name(), Some("reports-doc"));
    /// ```
    pub fn named(name: &str) -> Cache {
        named(name)
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
        install(self)
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
        scope(self.clone(), fut)
    }
}
