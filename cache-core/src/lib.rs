//! Caching for async Rust services.
//!
//! Put `#[cached]` on an async function or method that reads, and
//! `#[invalidates]` on one that writes:
//!
//! ```
//! use cache_core::{cached, invalidates};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct Employee { id: u64, name: String }
//!
//! #[derive(Debug)]
//! struct DbError;
//!
//! #[cached(ttl = "medium", key = "employee:<id>")]
//! async fn get_employee(id: u64) -> Result<Employee, DbError> {
//!     Ok(Employee { id, name: "Ada".into() }) // a database query
//! }
//!
//! #[invalidates("employee:<id>")]
//! async fn rename_employee(id: u64, name: String) -> Result<(), DbError> {
//!     Ok(()) // a database update
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), DbError> {
//! let first = get_employee(7).await?;  // runs the query
//! let again = get_employee(7).await?;  // from the cache
//! rename_employee(7, "Grace".into()).await?; // drops employee:7
//! # Ok(()) }
//! ```
//!
//! Without setup the attributes use an in-process cache configured from the
//! environment (see [`CacheBuilder`]). Build and [install](Cache::install)
//! one at startup to configure it in code; use [`Cache`] directly for
//! hand-written cache-aside code.
//!
//! # How a `#[cached]` call runs
//!
//! 1. The key is built from the template (`employee:<id>`), values escaped
//!    (see [`KeyBuilder`]), with the cache's prefix: `cache:employee:7`.
//! 2. A live entry of the function's type is a hit: a clone of the stored
//!    value, no deserialization.
//! 3. On a miss, concurrent callers of the same key share one call of the
//!    body (waiting at most [`single_flight_wait`](CacheBuilder::single_flight_wait)).
//! 4. `Ok`/`Some`/plain values are stored for the TTL; `Err` never is (each
//!    caller gets its own error), `None` only with `cache_none`.
//!
//! With a Redis URL (`REDIS_URL`, [`CacheBuilder::redis_url`]) Redis is the
//! shared tier behind the in-process one: misses read it before computing,
//! computed values are written to it, and invalidations reach every
//! instance's in-process tier through a pub/sub backplane. A failing Redis
//! makes calls misses, never errors.
//!
//! # Features
//!
//! - `macros` (default): re-exports [`cached`], [`invalidates`] and [`cache_put`].
//! - `redis` (default): the Redis tier, through the `cache-redis` crate.
//! - `tls`: `rediss://` URLs.
//! - `bincode`: bincode 2 as a value [`Format`] (unmaintained upstream, RUSTSEC-2025-0141).
//! - `metrics`: counters, histograms and gauges through the `metrics` facade
//!   (`CacheBuilder::metrics` turns it off per cache); the application installs the recorder.
//! - `axum`: `admin::router`, an admin API (stats of this and every instance,
//!   health, invalidate, clear, namespaces) to mount in an axum 0.8 application.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

// The layers, lowest first; a module imports only from its own layer or
// below (ARCHITECTURE.md; checked by the `layering` test).
//
// Leaves: no imports from the crate but other leaves.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
mod breaker;
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
mod codec;
mod config;
mod error;
mod glob;
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
mod id;
mod invalidation;
mod key;
mod observe;
mod options;
mod shape;
mod stats;
mod ttl;
mod value;
// Tiers: the in-process tier, the single flight, the Redis tier.
mod tier;
// The engine: the read path, the origin call, the write side.
mod engine;
// The facade: the handle, its builder, the default and named caches.
mod builder;
mod cache;
mod registry;
mod warming;
// Integrations over the facade.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod admin;
// Macro support: what the attributes expand to.
mod private;
// The fuzz targets' entry points.
#[cfg(feature = "fuzzing")]
mod fuzz;

pub use breaker::{BreakerConfig, BreakerState};
pub use builder::CacheBuilder;
pub use cache::Cache;
pub use codec::{Compression, Format};
pub use config::{
    DEFAULT_FLIGHT_WAIT, DEFAULT_LOCK_TTL, DEFAULT_LOCK_WAIT, DEFAULT_MAX_ENTRIES, DEFAULT_PREFIX,
    DEFAULT_STALE_RETRY, DEFAULT_STATS_INTERVAL,
};
pub use engine::{DEFAULT_WARM_WINDOW, WarmReport, Warmer, Warming};
pub use error::{ConfigError, Error};
pub use key::{KeyArg, KeyBuilder, KeyValue, MAX_KEY_LEN, MAX_VALUE_LEN};
pub use stats::{
    BackplaneStatus, ClusterStats, EntryInfo, FunctionKind, FunctionStats, Health, HealthStatus,
    InstanceStats, NamespaceStats, RedisNodeStats, RedisStats, Removal, Shutdown, Stats,
    StoredValue,
};
pub use value::CacheValue;

/// The Redis tier's own crate, for its connection settings ([`RedisConfig`](cache_redis::RedisConfig)).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use cache_redis;
pub use ttl::{CustomPreset, DurationError, Preset, Refresh, Ttl, parse_duration};

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use cache_macros::{cache_put, cached, invalidates};

/// The workspace README's examples, run as doctests so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

#[doc(hidden)]
pub mod __private {
    pub use crate::private::*;
}

/// The fuzz targets' entry points (feature `fuzzing`; not an API).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::fuzz::*;
}
