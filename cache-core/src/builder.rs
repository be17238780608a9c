//! [`CacheBuilder`]: configuration from code first, environment second.

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::BreakerConfig;
use crate::cache::Cache;
use crate::codec::{CodecConfig, Compression, Format};
use crate::engine::Engine;
use crate::error::{ConfigError, Error};
use crate::observe::Observer;
use crate::tier::L2;
use crate::ttl::{CustomPreset, Preset, parse_duration};

mod resolve;

use resolve::{config_error, parse_bool, redacted, redis_is_cluster};

/// Which Redis a setting names.
#[derive(Debug, Clone)]
// Without the `redis` feature only the kind is read (to name it in the error).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
enum Target {
    Url(String),
    /// A URL built from `REDIS_HOST`, `REDIS_PORT`, `REDIS_DB`,
    /// `REDIS_USERNAME` and `REDIS_PASSWORD`.
    Parts(String),
    Cluster(Vec<String>),
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

#[derive(Debug, Clone, Default)]
struct Settings {
    redis: Option<Target>,
    enabled: Option<bool>,
    key_prefix: Option<String>,
    default_ttl: Option<Duration>,
    presets: [Option<Duration>; 9],
    /// Overrides of presets the application declares, by name.
    custom_presets: Vec<(&'static str, Duration)>,
    max_entries: Option<u64>,
    outage_journal: Option<std::path::PathBuf>,
    redis_tls_ca_file: Option<String>,
    redis_op_timeout: Option<Duration>,
    redis_connect_timeout: Option<Duration>,
    redis_batch_reads: Option<bool>,
}

impl Cache {
    /// A builder; see [`CacheBuilder`] for the settings and their variables.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::new()
    }
}

/// Builds a [`Cache`]. Settings made in code win over the environment,
/// whatever the order of the calls.
///
/// | variable | setting | default |
/// |---|---|---|
/// | `REDIS_URL` | [`redis_url`](Self::redis_url) | none: in-process only |
/// | `REDIS_CLUSTER_URLS` | [`redis_cluster`](Self::redis_cluster) (comma-separated seed nodes) | none |
/// | `REDIS_SENTINEL_URLS`, `REDIS_SENTINEL_MASTER` | [`redis_sentinel`](Self::redis_sentinel) (comma-separated sentinels; the master's name or URL) | none |
/// | `REDIS_HOST`, `REDIS_PORT`, `REDIS_DB`, `REDIS_USERNAME`, `REDIS_PASSWORD` | a URL made of them, when none of the three above is set | `127.0.0.1`, `6379`, `0` |
/// | `REDIS_TLS_CA_FILE` | [`redis_tls_root_certificates`](Self::redis_tls_root_certificates) (a path to PEM certificates) | the platform's roots |
/// | `CACHE_ENABLED` | [`enabled`](Self::enabled) | `true` (`false` makes every attribute a pass-through) |
/// | `CACHE_KEY_PREFIX` | [`key_prefix`](Self::key_prefix) | `cache` |
/// | `CACHE_DEFAULT_TTL` | [`default_ttl`](Self::default_ttl) | the `medium` preset |
/// | `CACHE_MAX_SIZE_MEMORY` | [`max_entries`](Self::max_entries) | 10 000 entries |
/// | `CACHE_TTL_<PRESET>` | [`preset_ttl`](Self::preset_ttl) | see [`Preset`] |
/// | `CACHE_TTL_<NAME>` of a preset declared with [`ttl_presets!`](crate::ttl_presets) | [`custom_preset_ttl`](Self::custom_preset_ttl) | as declared |
/// | `CACHE_OUTAGE_JOURNAL` | [`outage_journal`](Self::outage_journal) | none: queued invalidations live in memory |
/// | `CACHE_REDIS_OP_TIMEOUT`, `CACHE_REDIS_CONNECT_TIMEOUT` | [`redis_op_timeout`](Self::redis_op_timeout), [`redis_connect_timeout`](Self::redis_connect_timeout) | 100 ms, 1 s |
/// | `CACHE_REDIS_BATCH_READS` | [`redis_batch_reads`](Self::redis_batch_reads) | `true` |
///
/// Durations are `90s`, `15m`, `2h`, `1d`, `1h30m`, `250ms` or whole seconds.
/// An empty variable counts as unset.
///
/// ```
/// use cache_core::{Cache, Preset};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
/// let cache = Cache::builder()
///     .from_env()
///     .key_prefix("billing")
///     .preset_ttl(Preset::Short, Duration::from_secs(30))
///     .max_entries(50_000)
///     .build()
///     .await?;
/// assert_eq!(cache.key_prefix(), "billing");
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct CacheBuilder {
    name: Option<String>,
    explicit: Settings,
    env: Settings,
    flight_wait: Option<Duration>,
    l1_enabled: Option<bool>,
    l1_ttl: Option<Duration>,
    codec: CodecConfig,
    #[cfg(feature = "redis")]
    redis: Option<cache_redis::RedisConfig>,
    redis_connect_timeout: Option<Duration>,
    redis_op_timeout: Option<Duration>,
    redis_batch_reads: Option<bool>,
    redis_tls_roots: Option<Vec<u8>>,
    breaker: BreakerConfig,
    strict: bool,
    jitter: Option<f64>,
    lock: Option<bool>,
    lock_ttl: Option<Duration>,
    lock_wait: Option<Duration>,
    stale_retry: Option<Duration>,
    backplane: Option<bool>,
    metrics: Option<bool>,
    stats_interval: Option<Duration>,
    outage_journal: Option<std::path::PathBuf>,
    error: Option<ConfigError>,
}

/// The `CACHE_*` variables this crate reads (`CACHE_REQUIRE_REDIS` is the
/// test suites').
fn known_vars() -> impl Iterator<Item = &'static str> {
    CustomPreset::all()
        .map(CustomPreset::env_var)
        .chain([
            "CACHE_ENABLED",
            "CACHE_KEY_PREFIX",
            "CACHE_DEFAULT_TTL",
            "CACHE_MAX_SIZE_MEMORY",
            "CACHE_OUTAGE_JOURNAL",
            "CACHE_REQUIRE_REDIS",
            "CACHE_REDIS_OP_TIMEOUT",
            "CACHE_REDIS_CONNECT_TIMEOUT",
            "CACHE_REDIS_BATCH_READS",
        ])
        .chain(Preset::ALL.iter().map(|p| p.env_var()))
}

/// Of `names`, the `CACHE_*` ones this crate does not read that are within
/// three edits of one it does, with that one. Others are the application's
/// own (`CACHE_ADMIN_TOKEN`) and are left alone.
fn misspelt_vars(names: impl Iterator<Item = String>) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    for name in names.filter(|n| n.starts_with("CACHE_")) {
        if known_vars().any(|k| k == name) {
            continue;
        }
        if let Some((d, meant)) = known_vars()
            .map(|k| (strsim::levenshtein(&name, k), k))
            .min()
            .filter(|(d, _)| *d <= 3)
        {
            let _ = d;
            out.push((name, meant));
        }
    }
    out
}

impl CacheBuilder {
    pub(crate) fn new() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// Names the cache, for `#[cached(cache = "name")]` once [installed](Cache::install).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// `false` turns every attribute into a pass-through and the manual API into no-ops.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.explicit.enabled = Some(enabled);
        self
    }

    /// The prefix of every key (`prefix:...`); empty for none. Glob
    /// metacharacters, whitespace and more than 64 bytes are refused at `build`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.explicit.key_prefix = Some(prefix.into());
        self
    }

    /// The TTL of functions and entries that do not name one.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.explicit.default_ttl = Some(ttl);
        self
    }

    /// Overrides one preset's duration.
    pub fn preset_ttl(mut self, preset: Preset, ttl: Duration) -> Self {
        self.explicit.presets[preset.index()] = Some(ttl);
        self
    }

    /// Overrides the duration of a preset the application declares with
    /// [`ttl_presets!`](crate::ttl_presets) (its variable is `CACHE_TTL_<NAME>`).
    ///
    /// ```
    /// use cache_core::{Cache, ttl_presets};
    /// use std::time::Duration;
    ///
    /// ttl_presets! { pub COMPANY = "6h"; }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = Cache::builder()
    ///     .custom_preset_ttl(&COMPANY, Duration::from_secs(60))
    ///     .build()
    ///     .await?;
    /// assert_eq!(cache.resolve_ttl((&COMPANY).into()), Duration::from_secs(60));
    /// # Ok(()) }
    /// ```
    pub fn custom_preset_ttl(mut self, preset: &'static CustomPreset, ttl: Duration) -> Self {
        self.explicit
            .custom_presets
            .retain(|(n, _)| *n != preset.name());
        self.explicit.custom_presets.push((preset.name(), ttl));
        self
    }

    /// Capacity of the in-process cache, in entries (least useful evicted first).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.explicit.max_entries = Some(entries);
        self
    }

    /// How long a caller waits for a concurrent caller's computation of the
    /// same key before computing itself (default 10 s).
    pub fn single_flight_wait(mut self, wait: Duration) -> Self {
        self.flight_wait = Some(wait);
        self
    }

    /// Puts Redis behind the in-process tier as the shared tier (L2):
    /// `redis://[user:password@]host:port/db`, or `rediss://` with feature `tls`.
    /// Nothing is connected until first use, so a cache can start while Redis is down.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder().redis_url("redis://127.0.0.1:6379/0").build().await?;
    /// assert_eq!(cache.backend(), "redis");
    /// # Ok(()) }
    /// ```
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.explicit.redis = Some(Target::Url(url.into()));
        self
    }

    /// Puts a Redis Cluster behind the in-process tier as the shared tier,
    /// reached through its seed nodes (`redis://host:port`; one reachable
    /// node is enough, give several). `rediss://` and passwords work as for
    /// [`redis_url`](Self::redis_url). Every feature works as on one server:
    /// keys are spread over the masters by bucket hash tags (see
    /// [`cache_redis::Layout::cluster`]), a failing master makes only its
    /// keys misses, and the cache follows failovers. The cache starts while
    /// the cluster is down: it connects in the background and on first use.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder()
    ///     .redis_cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000", "redis://10.0.0.3:7000"])
    ///     .build()
    ///     .await?;
    /// assert_eq!(cache.backend(), "redis");
    /// # Ok(()) }
    /// ```
    pub fn redis_cluster<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Self {
        self.explicit.redis = Some(Target::Cluster(nodes.into_iter().map(Into::into).collect()));
        self
    }

    /// Puts the master of a Redis Sentinel deployment behind the
    /// in-process tier as the shared tier: the sentinels' URLs
    /// (`redis://host:26379`, with the sentinels' own password if they
    /// have one) and the master's name as they know it. The master's own
    /// password, database and TLS go in a URL whose host is that name:
    /// `redis://:secret@mymaster/2`, `rediss://mymaster`. The cache asks
    /// the sentinels for the master on first use and again whenever the
    /// node it uses stops serving, so it follows a failover without a
    /// restart. Nothing is connected until first use.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder()
    ///     .redis_sentinel(
    ///         ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"],
    ///         "mymaster",
    ///     )
    ///     .build()
    ///     .await?;
    /// assert_eq!(cache.backend(), "redis");
    /// # Ok(()) }
    /// ```
    pub fn redis_sentinel<S: Into<String>>(
        mut self,
        sentinels: impl IntoIterator<Item = S>,
        master: impl Into<String>,
    ) -> Self {
        self.explicit.redis = Some(Target::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master: master.into(),
        });
        self
    }

    /// Full Redis connection settings (timeouts, `SCAN` batch size).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(mut self, config: cache_redis::RedisConfig) -> Self {
        self.redis = Some(config);
        self
    }

    /// How long one Redis command may take before the call goes on without it
    /// (default 100 ms).
    pub fn redis_op_timeout(mut self, timeout: Duration) -> Self {
        self.redis_op_timeout = Some(timeout);
        self
    }

    /// Whether reads of different keys that wait at the same moment go to
    /// Redis together (default: on). A read is sent at once while the
    /// connection is not busy, so a lone read never waits; reads that
    /// arrive while it is busy go out as one `MGET` as soon as a read in
    /// flight lands (one `MGET` per hash slot on a cluster). Each read
    /// keeps its own timeout and result: a corrupt or missing entry is a
    /// miss for its key only.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), cache_core::Error> {
    /// let cache = cache_core::Cache::builder()
    ///     .redis_url("redis://10.0.0.5:6379/0")
    ///     .redis_batch_reads(false) // one `GET` per read, as before
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn redis_batch_reads(mut self, on: bool) -> Self {
        self.redis_batch_reads = Some(on);
        self
    }

    /// Trusts the certificate authorities in `pem` (PEM certificates)
    /// instead of the platform's roots, for a `rediss://` server or
    /// cluster whose certificates a private CA signed (feature `tls`). From
    /// the environment: `REDIS_TLS_CA_FILE`, a path to the PEM file.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cache_core::Cache::builder()
    ///     .redis_url("rediss://redis.internal:6380/0")
    ///     .redis_tls_root_certificates(std::fs::read("/etc/redis/ca.pem")?)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn redis_tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.redis_tls_roots = Some(pem.into());
        self
    }

    /// How long connecting to Redis may take (default 1 s).
    pub fn redis_connect_timeout(mut self, timeout: Duration) -> Self {
        self.redis_connect_timeout = Some(timeout);
        self
    }

    /// The circuit breaker in front of Redis (default: open after 5
    /// consecutive failures or half of the last 20 commands failing, probe
    /// after 1 s).
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Spreads every written TTL uniformly over ±`fraction` (0.1 = ±10 %,
    /// capped at 1.0), so entries written together do not expire together.
    /// Default 0 (exact TTLs).
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.jitter = Some(fraction);
        self
    }

    /// Whether a call that misses in Redis takes a per-key Redis lock before
    /// calling the origin, so that across all processes sharing the Redis one
    /// origin call runs per key and the others wait for its value (default
    /// `true`; `#[cached(lock = false)]` turns it off per function).
    ///
    /// The lock costs two round trips per Redis miss (take, release), small
    /// beside an origin call worth caching, and turns N instances' origin
    /// calls for an expired hot key into one. Waiters are woken by the
    /// release message and poll as a fallback; they wait at most
    /// [`lock_wait`](Self::lock_wait), then compute anyway. Lock commands go
    /// through the circuit breaker: with Redis away, calls skip the lock and
    /// the in-process single flight still coalesces each process's callers.
    pub fn distributed_lock(mut self, enabled: bool) -> Self {
        self.lock = Some(enabled);
        self
    }

    /// Time to live of a stampede lock (default 5 s); the holder renews it
    /// while it computes, so this is how long a crashed holder blocks others.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = Some(ttl);
        self
    }

    /// How long a call waits for another process's computation before
    /// computing itself (default 5 s, or half of
    /// [`single_flight_wait`](Self::single_flight_wait) if that is shorter).
    /// Must be shorter than `single_flight_wait`, since callers in this
    /// process wait behind this call.
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = Some(wait);
        self
    }

    /// After a function with `stale_if_error` served a stale value because
    /// its origin failed, how long that value is served before the origin is
    /// tried again (default 10 s): a failing origin is not called on every request.
    pub fn stale_retry_after(mut self, interval: Duration) -> Self {
        self.stale_retry = Some(interval);
        self
    }

    /// Whether this instance subscribes to the backplane, the pub/sub channel
    /// on which instances announce writes and invalidations so that each
    /// drops its in-process copies (default `true`). It always publishes.
    ///
    /// Without it, another instance's invalidation reaches this one's
    /// in-process copies only when they expire: cap them with
    /// [`l1_ttl`](Self::l1_ttl), or turn the in-process tier off. Redis itself
    /// is kept right either way: invalidations delete there, and a value
    /// computed from data an invalidation replaced is refused by Redis.
    /// For Redis deployments that forbid `SUBSCRIBE`, or single instances.
    pub fn backplane(mut self, subscribe: bool) -> Self {
        self.backplane = Some(subscribe);
        self
    }

    /// How often an instance with Redis writes its stats snapshot there, for
    /// [`Cache::stats_all`] (default 5 s; a snapshot lives three periods, so
    /// an instance that stops drops out within 15 s), and sets the metrics
    /// gauges (feature `metrics`). `Duration::ZERO` turns both off. The
    /// snapshot is written by a background task: nothing of it is on the
    /// path of a call.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let cache = cache_core::Cache::builder()
    ///     .stats_interval(Duration::from_secs(10))
    ///     .build_blocking()?;
    /// # Ok::<(), cache_core::Error>(())
    /// ```
    pub fn stats_interval(mut self, interval: Duration) -> Self {
        self.stats_interval = Some(interval);
        self
    }

    /// Keeps invalidations that could not reach Redis in a small
    /// append-only file in `dir` as well as in memory, so that an instance
    /// killed during an outage loses none of them: the next instance that
    /// starts with the same directory (and key prefix) replays them as soon
    /// as Redis answers. Each queued invalidation is `fdatasync`ed before
    /// the call that made it returns; outside outages the file is empty and
    /// nothing is written. Instances sharing the directory each hold a file
    /// of their own (up to 64), locked while they live. Without it, a crash
    /// during an outage leaves the queued invalidations unapplied: the
    /// values they cover live in Redis until their TTL.
    ///
    /// A directory that cannot be used is an error at build time.
    ///
    /// ```no_run
    /// let cache = cache_core::Cache::builder()
    ///     .redis_url("redis://127.0.0.1:6379/0")
    ///     .outage_journal("/var/lib/my-service/cache")
    ///     .build_blocking()?;
    /// # Ok::<(), cache_core::Error>(())
    /// ```
    pub fn outage_journal(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.outage_journal = Some(dir.into());
        self
    }

    /// `true` makes the manual API (`get`, `set`, `delete`, `exists`, `ttl`,
    /// `expire`, `invalidate`, `clear`) return [`Error::Unavailable`] when
    /// Redis fails or the breaker is open, instead of carrying on with the
    /// in-process tier. Invalidations are still kept and replayed. The
    /// attributes and `get_or_set` always degrade. Default `false`.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The default format of values in the shared tier (default postcard);
    /// `#[cached(format = "...")]` overrides it per function.
    pub fn format(mut self, format: Format) -> Self {
        self.codec.format = format;
        self
    }

    /// When values are compressed with zstd (default: above the threshold).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.codec.compression = compression;
        self
    }

    /// Serialized size above which `Compression::Auto` compresses (default 1 KiB).
    pub fn compression_threshold(mut self, bytes: usize) -> Self {
        self.codec.threshold = bytes;
        self
    }

    /// zstd level (default 3).
    pub fn compression_level(mut self, level: i32) -> Self {
        self.codec.level = level;
        self
    }

    /// Largest serialized value stored in, or accepted from, the shared tier
    /// (default 8 MiB). Larger values stay in-process only; larger entries, and
    /// compressed frames declaring more, are refused as corrupt.
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.codec.max_size = bytes;
        self
    }

    /// `false` keeps no in-process copies: every lookup goes to the shared
    /// tier (default `true`).
    pub fn l1_enabled(mut self, enabled: bool) -> Self {
        self.l1_enabled = Some(enabled);
        self
    }

    /// Caps how long in-process copies live (default: as long as the entry).
    /// Shorter caps bound how stale an instance can be if a backplane message is lost.
    pub fn l1_ttl(mut self, ttl: Duration) -> Self {
        self.l1_ttl = Some(ttl);
        self
    }

    /// Whether this cache records through the `metrics` facade (feature
    /// `metrics`; default `true`: nothing is recorded until the application
    /// installs a recorder, such as `metrics-exporter-prometheus`).
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = Some(enabled);
        self
    }

    /// Reads the `CACHE_*` and `REDIS_*` variables from the process
    /// environment. A `CACHE_*` variable this crate does not read but that
    /// is close to one it does (`CACHE_TTL_MEDUIM`) is logged as a warning
    /// that names the one meant.
    pub fn from_env(self) -> Self {
        let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
        for (name, meant) in misspelt_vars(names) {
            tracing::warn!(
                variable = name,
                meant,
                "{name} is not a variable the cache reads: did you mean {meant}?"
            );
        }
        self.from_env_with(|name| std::env::var(name).ok())
    }

    /// `REDIS_URL`, `REDIS_CLUSTER_URLS`, or `REDIS_SENTINEL_URLS` with
    /// `REDIS_SENTINEL_MASTER`: at most one kind.
    fn redis_from_env(&mut self, get: &impl Fn(&str) -> Option<String>) {
        let list = |v: String| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let url = get("REDIS_URL");
        let cluster = get("REDIS_CLUSTER_URLS");
        let sentinels = get("REDIS_SENTINEL_URLS");
        let master = get("REDIS_SENTINEL_MASTER");
        let set: Vec<&str> = [
            ("REDIS_URL", url.is_some()),
            ("REDIS_CLUSTER_URLS", cluster.is_some()),
            ("REDIS_SENTINEL_URLS", sentinels.is_some()),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect();
        if set.len() > 1 {
            self.fail(
                set[1],
                "...",
                &format!(
                    "{} is set too: set one of REDIS_URL (one server), REDIS_CLUSTER_URLS (a cluster's seed nodes) or REDIS_SENTINEL_URLS (sentinels)",
                    set[0]
                ),
            );
            return;
        }
        self.env.redis = match (url, cluster, sentinels, master) {
            (Some(url), ..) => Some(Target::Url(url.trim().to_owned())),
            (_, Some(nodes), ..) => Some(Target::Cluster(list(nodes))),
            (_, _, Some(sentinels), Some(master)) => Some(Target::Sentinel {
                sentinels: list(sentinels),
                master: master.trim().to_owned(),
            }),
            (_, _, Some(_), None) => {
                self.fail(
                    "REDIS_SENTINEL_MASTER",
                    "",
                    "REDIS_SENTINEL_URLS needs the master's name as the sentinels know it, e.g. mymaster",
                );
                None
            }
            (None, None, None, Some(master)) => {
                self.fail(
                    "REDIS_SENTINEL_URLS",
                    "",
                    &format!("REDIS_SENTINEL_MASTER={master} needs the sentinels' URLs, e.g. redis://10.0.0.1:26379,redis://10.0.0.2:26379"),
                );
                None
            }
            (None, None, None, None) => self.redis_from_parts(get),
        };
    }

    /// `REDIS_HOST`, `REDIS_PORT`, `REDIS_DB`, `REDIS_USERNAME` and
    /// `REDIS_PASSWORD`, as the services this library replaces configure
    /// Redis, when no URL is set: a URL made of them (host `127.0.0.1`,
    /// port 6379 and database 0 unless set).
    fn redis_from_parts(&mut self, get: &impl Fn(&str) -> Option<String>) -> Option<Target> {
        let [host, port, db, user, password] = [
            "REDIS_HOST",
            "REDIS_PORT",
            "REDIS_DB",
            "REDIS_USERNAME",
            "REDIS_PASSWORD",
        ]
        .map(get);
        if host.is_none() && port.is_none() && db.is_none() && password.is_none() {
            return None;
        }
        let host = host.map_or_else(|| "127.0.0.1".to_owned(), |h| h.trim().to_owned());
        if host.contains("://") || host.contains(['/', '@', ' ']) {
            self.fail(
                "REDIS_HOST",
                &host,
                "expected a host name or address, e.g. redis.internal or 10.0.0.5 (a URL goes in REDIS_URL)",
            );
            return None;
        }
        let port = match port.map(|p| p.trim().parse::<u16>()) {
            None => 6379,
            Some(Ok(p)) if p > 0 => p,
            Some(_) => {
                self.fail(
                    "REDIS_PORT",
                    &get("REDIS_PORT").unwrap_or_default(),
                    "expected a port number, 1 to 65535",
                );
                return None;
            }
        };
        let db = match db.map(|d| d.trim().parse::<u32>()) {
            None => 0,
            Some(Ok(d)) => d,
            Some(Err(_)) => {
                self.fail(
                    "REDIS_DB",
                    &get("REDIS_DB").unwrap_or_default(),
                    "expected a database number, e.g. 0",
                );
                return None;
            }
        };
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let auth = match (user, password) {
            (None, None) => String::new(),
            (user, password) => format!(
                "{}:{}@",
                user.as_deref().map(enc).unwrap_or_default(),
                password.as_deref().map(enc).unwrap_or_default()
            ),
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]") // IPv6
        } else {
            host
        };
        Some(Target::Parts(format!("redis://{auth}{host}:{port}/{db}")))
    }

    /// Reads the `CACHE_*` variables through `lookup` (a config system, or a test's map).
    ///
    /// ```
    /// let cache = cache_core::Cache::builder()
    ///     .from_env_with(|name| (name == "CACHE_KEY_PREFIX").then(|| "tenant7".to_owned()))
    ///     .build_blocking()?;
    /// assert_eq!(cache.key_prefix(), "tenant7");
    /// # Ok::<(), cache_core::Error>(())
    /// ```
    pub fn from_env_with(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        self.redis_from_env(&get);
        if let Some(v) = get("CACHE_ENABLED") {
            match parse_bool(&v) {
                Some(b) => self.env.enabled = Some(b),
                None => self.fail(
                    "CACHE_ENABLED",
                    &v,
                    "expected true/false, 1/0, yes/no or on/off",
                ),
            }
        }
        if let Some(v) = get("CACHE_KEY_PREFIX") {
            self.env.key_prefix = Some(v);
        }
        if let Some(v) = get("REDIS_TLS_CA_FILE") {
            self.env.redis_tls_ca_file = Some(v.trim().to_owned());
        }
        if let Some(v) = get("CACHE_OUTAGE_JOURNAL") {
            self.env.outage_journal = Some(v.trim().into());
        }
        for (name, slot) in [
            ("CACHE_REDIS_OP_TIMEOUT", &mut self.env.redis_op_timeout),
            (
                "CACHE_REDIS_CONNECT_TIMEOUT",
                &mut self.env.redis_connect_timeout,
            ),
        ] {
            if let Some(v) = get(name) {
                match parse_duration(&v) {
                    Ok(d) => *slot = Some(d),
                    // `fail`, on the field: `slot` holds `self.env`.
                    Err(e) => {
                        self.error.get_or_insert_with(|| ConfigError {
                            source_name: name.to_owned(),
                            value: v.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
        if let Some(v) = get("CACHE_REDIS_BATCH_READS") {
            match parse_bool(&v) {
                Some(b) => self.env.redis_batch_reads = Some(b),
                None => self.fail(
                    "CACHE_REDIS_BATCH_READS",
                    &v,
                    "expected true/false, 1/0, yes/no or on/off",
                ),
            }
        }
        if let Some(v) = get("CACHE_DEFAULT_TTL") {
            match parse_duration(&v) {
                Ok(d) => self.env.default_ttl = Some(d),
                Err(e) => self.fail("CACHE_DEFAULT_TTL", &v, &e.to_string()),
            }
        }
        if let Some(v) = get("CACHE_MAX_SIZE_MEMORY") {
            match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => self.env.max_entries = Some(n),
                _ => self.fail(
                    "CACHE_MAX_SIZE_MEMORY",
                    &v,
                    "expected a positive number of entries",
                ),
            }
        }
        for preset in Preset::ALL {
            if let Some(v) = get(preset.env_var()) {
                match parse_duration(&v) {
                    Ok(d) => self.env.presets[preset.index()] = Some(d),
                    Err(e) => self.fail(preset.env_var(), &v, &e.to_string()),
                }
            }
        }
        for preset in CustomPreset::all() {
            if let Some(v) = get(preset.env_var()) {
                match parse_duration(&v) {
                    Ok(d) => self.env.custom_presets.push((preset.name(), d)),
                    Err(e) => self.fail(preset.env_var(), &v, &e.to_string()),
                }
            }
        }
        self
    }

    fn fail(&mut self, source: &str, value: &str, reason: &str) {
        self.error.get_or_insert_with(|| ConfigError {
            source_name: source.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        });
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first variable or setting that was refused.
    pub async fn build(self) -> Result<Cache, Error> {
        self.build_blocking()
    }

    /// Builds the cache without `.await` (for the in-process tier, which
    /// needs no I/O). Same errors as [`build`](Self::build).
    ///
    /// A cache with Redis must be built inside a Tokio runtime (its backplane
    /// runs as a task).
    pub fn build_blocking(self) -> Result<Cache, Error> {
        let redis = self.redis_settings()?;
        let self_breaker = self.breaker;
        let journal = self
            .outage_journal
            .clone()
            .or_else(|| self.env.outage_journal.clone());
        let config = self.resolve()?;
        let Some((source, redis)) = redis else {
            if journal.is_some() {
                tracing::warn!(
                    "outage_journal is set but the cache has no Redis: there is nothing to journal"
                );
            }
            let observer = Arc::new(Observer::new(config.name.as_deref(), config.metrics));
            return Ok(Cache::from_engine(Engine::start(config, observer, None)));
        };
        let url = redacted(&redis);
        if config.key_prefix.is_empty() {
            return Err(config_error(
                source,
                &url,
                "a cache with Redis needs a key prefix: its keys, invalidations and clear() must not reach other data",
            ));
        }
        if redis_is_cluster(&redis) && config.key_prefix.contains(['{', '}']) {
            return Err(config_error(
                "builder.key_prefix",
                &config.key_prefix,
                "on a Redis Cluster the prefix cannot hold `{` or `}`: the keys' hash tags follow it",
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(config_error(
                source,
                &url,
                "a cache with Redis must be built inside a Tokio runtime",
            ));
        }
        let observer = Arc::new(Observer::new(config.name.as_deref(), config.metrics));
        let l2 = L2::connect(
            redis,
            config.codec,
            self_breaker,
            &config.key_prefix,
            Arc::clone(&observer),
        )
        .map_err(|e| config_error(source, &url, &e.to_string()))?;
        if let Some(dir) = journal {
            l2.open_journal(&dir, &config.key_prefix).map_err(|e| {
                config_error(
                    "builder.outage_journal",
                    &dir.display().to_string(),
                    &e.to_string(),
                )
            })?;
        }
        Ok(Cache::from_engine(Engine::start(
            config,
            observer,
            Some(l2),
        )))
    }
}
