//! [`CacheBuilder`]: configuration from code first, environment second.

use std::time::Duration;

use crate::breaker::BreakerConfig;
use crate::cache::Cache;
use crate::codec::{CodecConfig, Compression, Format};
use crate::config::{
    Config, DEFAULT_FLIGHT_WAIT, DEFAULT_LOCK_TTL, DEFAULT_LOCK_WAIT, DEFAULT_MAX_ENTRIES,
    DEFAULT_PREFIX, DEFAULT_STALE_RETRY, LockConfig,
};
use crate::engine::Engine;
use crate::error::{ConfigError, Error};
use crate::tier::{L2, RedisConfig};
use crate::ttl::{Preset, TtlTable, parse_duration};

const MAX_PREFIX_LEN: usize = 64;

#[derive(Debug, Clone, Default)]
struct Settings {
    redis_url: Option<String>,
    enabled: Option<bool>,
    key_prefix: Option<String>,
    default_ttl: Option<Duration>,
    presets: [Option<Duration>; 9],
    max_entries: Option<u64>,
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
/// | `CACHE_ENABLED` | [`enabled`](Self::enabled) | `true` (`false` makes every attribute a pass-through) |
/// | `CACHE_KEY_PREFIX` | [`key_prefix`](Self::key_prefix) | `cache` |
/// | `CACHE_DEFAULT_TTL` | [`default_ttl`](Self::default_ttl) | the `medium` preset |
/// | `CACHE_MAX_SIZE_MEMORY` | [`max_entries`](Self::max_entries) | 10 000 entries |
/// | `CACHE_TTL_<PRESET>` | [`preset_ttl`](Self::preset_ttl) | see [`Preset`] |
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
    redis: Option<RedisConfig>,
    redis_connect_timeout: Option<Duration>,
    redis_op_timeout: Option<Duration>,
    breaker: BreakerConfig,
    strict: bool,
    jitter: Option<f64>,
    lock: Option<bool>,
    lock_ttl: Option<Duration>,
    lock_wait: Option<Duration>,
    stale_retry: Option<Duration>,
    backplane: Option<bool>,
    error: Option<ConfigError>,
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
        self.explicit.redis_url = Some(url.into());
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

    /// Reads the `CACHE_*` variables from the process environment.
    pub fn from_env(self) -> Self {
        self.from_env_with(|name| std::env::var(name).ok())
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
        if let Some(v) = get("REDIS_URL") {
            self.env.redis_url = Some(v.trim().to_owned());
        }
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
        let config = self.resolve()?;
        let Some((source, redis)) = redis else {
            return Ok(Cache::from_engine(Engine::start(config, None)));
        };
        let url = redacted(&redis);
        if config.key_prefix.is_empty() {
            return Err(config_error(
                source,
                &url,
                "a cache with Redis needs a key prefix: its keys, invalidations and clear() must not reach other data",
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(config_error(
                source,
                &url,
                "a cache with Redis must be built inside a Tokio runtime",
            ));
        }
        let l2 = L2::connect(redis, config.codec, self_breaker, &config.key_prefix)
            .map_err(|e| config_error(source, &url, &e.to_string()))?;
        Ok(Cache::from_engine(Engine::start(config, Some(l2))))
    }

    /// The Redis settings, if any, and where they came from.
    #[cfg(feature = "redis")]
    fn redis_settings(&self) -> Result<Option<(&'static str, RedisConfig)>, Error> {
        let (source, mut config) = if let Some(c) = &self.redis {
            ("builder.redis", c.clone())
        } else if let Some(url) = &self.explicit.redis_url {
            ("builder.redis_url", RedisConfig::new(url.clone()))
        } else if let Some(url) = &self.env.redis_url {
            ("REDIS_URL", RedisConfig::new(url.clone()))
        } else {
            return Ok(None);
        };
        if let Some(t) = self.redis_op_timeout {
            config.op_timeout = t;
        }
        if let Some(t) = self.redis_connect_timeout {
            config.connect_timeout = t;
        }
        Ok(Some((source, config)))
    }

    #[cfg(not(feature = "redis"))]
    fn redis_settings(&self) -> Result<Option<(&'static str, RedisConfig)>, Error> {
        match (&self.explicit.redis_url, &self.env.redis_url) {
            (Some(_), _) => Err(config_error(
                "builder.redis_url",
                "...",
                "cache-core was built without its `redis` feature",
            )),
            (None, Some(_)) => Err(config_error(
                "REDIS_URL",
                "...",
                "cache-core was built without its `redis` feature",
            )),
            (None, None) => Ok(None),
        }
    }

    pub(crate) fn resolve(mut self) -> Result<Config, Error> {
        if let Some(e) = self.error.take() {
            return Err(e.into());
        }
        let (ex, env) = (&self.explicit, &self.env);
        let prefix_from_env = ex.key_prefix.is_none() && env.key_prefix.is_some();
        let key_prefix = ex
            .key_prefix
            .clone()
            .or_else(|| env.key_prefix.clone())
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
        if let Err(reason) = check_prefix(&key_prefix) {
            let source = if prefix_from_env {
                "CACHE_KEY_PREFIX"
            } else {
                "builder.key_prefix"
            };
            return Err(config_error(source, &key_prefix, reason));
        }
        let mut ttls = TtlTable::default();
        for preset in Preset::ALL {
            let i = preset.index();
            if let Some(d) = ex.presets[i].or(env.presets[i]) {
                if d.is_zero() {
                    return Err(config_error(
                        "builder.preset_ttl",
                        "0",
                        "a TTL must be longer than zero",
                    ));
                }
                ttls.presets[i] = d;
            }
        }
        match self.jitter {
            Some(j) if !(0.0..=1.0).contains(&j) || j.is_nan() => {
                return Err(config_error(
                    "builder.ttl_jitter",
                    &j.to_string(),
                    "expected a fraction from 0.0 to 1.0",
                ));
            }
            Some(j) => ttls.jitter = j,
            None => {}
        }
        ttls.default = ex
            .default_ttl
            .or(env.default_ttl)
            .unwrap_or(ttls.presets[Preset::Medium.index()]);
        if ttls.default.is_zero() {
            return Err(config_error(
                "builder.default_ttl",
                "0",
                "a TTL must be longer than zero",
            ));
        }
        let max_entries = ex
            .max_entries
            .or(env.max_entries)
            .unwrap_or(DEFAULT_MAX_ENTRIES);
        if max_entries == 0 {
            return Err(config_error(
                "builder.max_entries",
                "0",
                "expected a positive number of entries",
            ));
        }
        if self.codec.max_size == 0 {
            return Err(config_error(
                "builder.max_value_size",
                "0",
                "expected a positive number of bytes",
            ));
        }
        let lock_ttl = self.lock_ttl.unwrap_or(DEFAULT_LOCK_TTL);
        if lock_ttl < Duration::from_millis(30) {
            return Err(config_error(
                "builder.lock_ttl",
                &format!("{lock_ttl:?}"),
                "a lock must live at least 30 ms (it is renewed every third of its TTL)",
            ));
        }
        let flight_wait = self.flight_wait.unwrap_or(DEFAULT_FLIGHT_WAIT);
        // Unset, it stays below a shortened single-flight wait too.
        let lock_wait = self
            .lock_wait
            .unwrap_or_else(|| DEFAULT_LOCK_WAIT.min(flight_wait / 2));
        if lock_wait >= flight_wait {
            return Err(config_error(
                "builder.lock_wait",
                &format!("{lock_wait:?}"),
                &format!(
                    "must be shorter than single_flight_wait ({flight_wait:?}): callers waiting \
                     in this process for a call that waits on another process would give up first"
                ),
            ));
        }
        let stale_retry = self.stale_retry.unwrap_or(DEFAULT_STALE_RETRY);
        if stale_retry.is_zero() {
            return Err(config_error(
                "builder.stale_retry_after",
                "0",
                "expected a positive duration",
            ));
        }
        if !(1..=22).contains(&self.codec.level) {
            return Err(config_error(
                "builder.compression_level",
                &self.codec.level.to_string(),
                "zstd levels run from 1 to 22",
            ));
        }
        Ok(Config {
            name: self.name,
            enabled: ex.enabled.or(env.enabled).unwrap_or(true),
            key_prefix,
            ttls,
            max_entries,
            flight_wait,
            l1_enabled: self.l1_enabled.unwrap_or(true),
            l1_ttl: self.l1_ttl,
            codec: self.codec,
            strict: self.strict,
            lock: LockConfig {
                enabled: self.lock.unwrap_or(true),
                ttl: lock_ttl,
                wait: lock_wait,
            },
            stale_retry,
            backplane: self.backplane.unwrap_or(true),
        })
    }
}

#[cfg(feature = "redis")]
fn redacted(c: &RedisConfig) -> String {
    c.redacted_url()
}

#[cfg(not(feature = "redis"))]
fn redacted(_: &RedisConfig) -> String {
    String::new()
}

fn config_error(source: &str, value: &str, reason: &str) -> Error {
    Error::Config(ConfigError {
        source_name: source.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.len() > MAX_PREFIX_LEN {
        return Err("a key prefix is at most 64 bytes");
    }
    if prefix
        .chars()
        .any(|c| matches!(c, '*' | '?' | '[' | ']' | '\\') || c.is_whitespace() || c.is_control())
    {
        return Err(
            "a key prefix cannot contain glob metacharacters (* ? [ ] \\), whitespace or control characters",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> CacheBuilder {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        CacheBuilder::new().from_env_with(move |k| map.get(k).cloned())
    }

    fn err(b: CacheBuilder) -> String {
        match b.resolve() {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn env_values_apply() -> Result<(), Error> {
        let c = env(&[
            ("CACHE_ENABLED", "off"),
            ("CACHE_KEY_PREFIX", "app"),
            ("CACHE_DEFAULT_TTL", "2m"),
            ("CACHE_MAX_SIZE_MEMORY", "77"),
            ("CACHE_TTL_MEDIUM", "600"),
            ("CACHE_TTL_VERY_LONG", "2d"),
        ])
        .resolve()?;
        assert!(!c.enabled);
        assert_eq!(c.key_prefix, "app");
        assert_eq!(c.ttls.default, Duration::from_secs(120));
        assert_eq!(c.max_entries, 77);
        assert_eq!(
            c.ttls.presets[Preset::Medium.index()],
            Duration::from_secs(600)
        );
        assert_eq!(
            c.ttls.presets[Preset::VeryLong.index()],
            Duration::from_secs(172_800)
        );
        assert_eq!(
            c.ttls.presets[Preset::Short.index()],
            Duration::from_secs(60)
        );
        Ok(())
    }

    #[test]
    fn default_ttl_follows_medium_override() -> Result<(), Error> {
        let c = env(&[("CACHE_TTL_MEDIUM", "10m")]).resolve()?;
        assert_eq!(c.ttls.default, Duration::from_secs(600));
        Ok(())
    }

    #[test]
    fn code_wins_over_env_in_any_order() -> Result<(), Error> {
        let c = CacheBuilder::new()
            .key_prefix("code")
            .preset_ttl(Preset::Short, Duration::from_secs(5))
            .from_env_with(|k| match k {
                "CACHE_KEY_PREFIX" => Some("env".into()),
                "CACHE_TTL_SHORT" => Some("99".into()),
                _ => None,
            })
            .resolve()?;
        assert_eq!(c.key_prefix, "code");
        assert_eq!(
            c.ttls.presets[Preset::Short.index()],
            Duration::from_secs(5)
        );
        Ok(())
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert!(
            err(env(&[("CACHE_ENABLED", "maybe")])).starts_with("invalid CACHE_ENABLED=\"maybe\"")
        );
        assert!(
            err(env(&[("CACHE_DEFAULT_TTL", "5x")]))
                .starts_with("invalid CACHE_DEFAULT_TTL=\"5x\"")
        );
        assert!(
            err(env(&[("CACHE_MAX_SIZE_MEMORY", "-1")]))
                .starts_with("invalid CACHE_MAX_SIZE_MEMORY")
        );
        assert!(err(env(&[("CACHE_TTL_REPORT", "0s")])).starts_with("invalid CACHE_TTL_REPORT"));
        assert!(
            err(env(&[("CACHE_KEY_PREFIX", "a*b")]))
                .starts_with("invalid CACHE_KEY_PREFIX=\"a*b\"")
        );
        assert!(
            err(CacheBuilder::new().key_prefix("a b")).starts_with("invalid builder.key_prefix")
        );
        assert!(err(CacheBuilder::new().max_entries(0)).starts_with("invalid builder.max_entries"));
    }

    #[test]
    fn empty_variables_are_unset() -> Result<(), Error> {
        let c = env(&[("CACHE_DEFAULT_TTL", " "), ("CACHE_KEY_PREFIX", "")]).resolve()?;
        assert_eq!(c.key_prefix, DEFAULT_PREFIX);
        assert_eq!(c.ttls.default, Duration::from_secs(300));
        Ok(())
    }
}
