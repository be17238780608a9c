//! [`Config`]: a cache's resolved settings, and their defaults. The
//! builder resolves code and environment into one; the engine reads it.

use std::time::Duration;

use crate::codec::CodecConfig;
use crate::ttl::TtlTable;

/// Default number of in-process entries (`CACHE_MAX_SIZE_MEMORY`).
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
/// Default key prefix (`CACHE_KEY_PREFIX`).
pub const DEFAULT_PREFIX: &str = "cache";
/// Default bound on how long a caller waits for another caller's computation
/// of the same key before computing itself.
pub const DEFAULT_FLIGHT_WAIT: Duration = Duration::from_secs(10);
/// Default time to live of a Redis stampede lock. The holder renews it every
/// third of this while its computation runs, so it only runs out when the
/// holder is gone: then another process takes over within this time.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(5);
/// Default bound on how long a call waits for another process's computation
/// (its Redis lock) before computing itself. Below the single-flight wait, so
/// callers queued behind a waiting call in this process do not give up first.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(5);
/// Default time a stale value served after an origin failure is used before
/// the origin is tried again.
pub const DEFAULT_STALE_RETRY: Duration = Duration::from_secs(10);
/// Default period at which an instance with Redis writes its stats snapshot
/// there (see [`Cache::stats_all`](crate::Cache::stats_all)); a snapshot lives three periods.
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(5);
/// How a cache uses stampede locks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockConfig {
    pub(crate) enabled: bool,
    pub(crate) ttl: Duration,
    pub(crate) wait: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            enabled: true,
            ttl: DEFAULT_LOCK_TTL,
            wait: DEFAULT_LOCK_WAIT,
        }
    }
}

/// A resolved configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) key_prefix: String,
    pub(crate) ttls: TtlTable,
    pub(crate) max_entries: u64,
    pub(crate) flight_wait: Duration,
    pub(crate) l1_enabled: bool,
    pub(crate) l1_ttl: Option<Duration>,
    pub(crate) codec: CodecConfig,
    pub(crate) strict: bool,
    pub(crate) lock: LockConfig,
    pub(crate) stale_retry: Duration,
    pub(crate) backplane: bool,
    /// Record through the `metrics` facade (feature `metrics`).
    pub(crate) metrics: bool,
    /// How often the stats snapshot is written to Redis and the gauges set
    /// (zero: never).
    pub(crate) stats_interval: Duration,
}

impl Default for Config {
    /// Every default, as the builder documents them.
    fn default() -> Self {
        Config {
            name: None,
            enabled: true,
            key_prefix: DEFAULT_PREFIX.to_owned(),
            ttls: TtlTable::default(),
            max_entries: DEFAULT_MAX_ENTRIES,
            flight_wait: DEFAULT_FLIGHT_WAIT,
            l1_enabled: true,
            l1_ttl: None,
            codec: CodecConfig::default(),
            strict: false,
            lock: LockConfig::default(),
            stale_retry: DEFAULT_STALE_RETRY,
            backplane: true,
            metrics: cfg!(feature = "metrics"),
            stats_interval: DEFAULT_STATS_INTERVAL,
        }
    }
}

impl Config {
    /// The TTL of an in-process copy: never beyond the shared tier's time
    /// left (`left`) nor the in-process cap (the function's, else the cache's).
    pub(crate) fn l1_ttl(
        &self,
        ttl: Duration,
        left: Option<Duration>,
        cap: Option<Duration>,
    ) -> Duration {
        let mut t = left.map_or(ttl, |l| l.min(ttl));
        if let Some(c) = cap.or(self.l1_ttl) {
            t = t.min(c);
        }
        t
    }
}
