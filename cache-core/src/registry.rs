//! The default cache, named caches, and the scoped override.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::Cache;
use crate::builder::CacheBuilder;
use crate::error::Error;

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
    Cache::from_config(crate::builder::Config {
        name: None,
        enabled: false,
        key_prefix: String::new(),
        ttls: Default::default(),
        max_entries: 1,
        flight_wait: crate::builder::DEFAULT_FLIGHT_WAIT,
        l1_enabled: true,
        l1_ttl: None,
        codec: Default::default(),
        strict: false,
        lock: crate::lock::LockConfig {
            enabled: false,
            ttl: crate::builder::DEFAULT_LOCK_TTL,
            wait: crate::builder::DEFAULT_LOCK_WAIT,
        },
        stale_retry: crate::builder::DEFAULT_STALE_RETRY,
        backplane: false,
    })
}

pub(crate) fn default_cache() -> &'static Cache {
    DEFAULT.get_or_init(|| lazy(None))
}

pub(crate) fn named(name: &str) -> Cache {
    named_map()
        .entry(name.to_owned())
        .or_insert_with(|| lazy(Some(name)))
        .clone()
}

pub(crate) fn install(cache: Cache) -> Result<(), Error> {
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

pub(crate) fn scope<F: std::future::Future>(
    cache: Cache,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<Cache, F> {
    SCOPED.scope(cache, fut)
}
