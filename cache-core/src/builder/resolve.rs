//! Resolving a [`CacheBuilder`] into a [`Config`]: code wins over the
//! environment, defaults fill the rest, and every value is checked, so a
//! bad one is a startup error that names its variable or setting.

use std::time::Duration;

use super::CacheBuilder;
use crate::config::{
    Config, DEFAULT_FLIGHT_WAIT, DEFAULT_LOCK_TTL, DEFAULT_LOCK_WAIT, DEFAULT_MAX_ENTRIES,
    DEFAULT_PREFIX, DEFAULT_STALE_RETRY, DEFAULT_STATS_INTERVAL, LockConfig,
};
use crate::error::{ConfigError, Error};
use crate::tier::RedisConfig;
use crate::ttl::{Preset, TtlTable};

/// A key prefix is at most this long.
const MAX_PREFIX_LEN: usize = 64;

impl CacheBuilder {
    /// The Redis settings, if any, and where they came from.
    #[cfg(feature = "redis")]
    pub(super) fn redis_settings(&self) -> Result<Option<(&'static str, RedisConfig)>, Error> {
        let cluster = |source: &'static str, nodes: &[String]| {
            if nodes.is_empty() {
                return Err(config_error(
                    source,
                    "",
                    "name at least one seed node of the cluster, e.g. redis://10.0.0.1:7000",
                ));
            }
            Ok((source, RedisConfig::cluster(nodes.iter().cloned())))
        };
        let (source, mut config) = if let Some(c) = &self.redis {
            ("builder.redis", c.clone())
        } else if let Some(nodes) = &self.explicit.redis_cluster {
            cluster("builder.redis_cluster", nodes)?
        } else if let Some(url) = &self.explicit.redis_url {
            ("builder.redis_url", RedisConfig::new(url.clone()))
        } else if let (Some(_), Some(url)) = (&self.env.redis_cluster, &self.env.redis_url) {
            return Err(config_error(
                "REDIS_URL",
                &RedisConfig::new(url.clone()).redacted_url(),
                "REDIS_CLUSTER_URLS is set too: set one of them (a single server, or a cluster's seed nodes)",
            ));
        } else if let Some(nodes) = &self.env.redis_cluster {
            cluster("REDIS_CLUSTER_URLS", nodes)?
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
    pub(super) fn redis_settings(&self) -> Result<Option<(&'static str, RedisConfig)>, Error> {
        if self.explicit.redis_cluster.is_some() || self.env.redis_cluster.is_some() {
            return Err(config_error(
                "REDIS_CLUSTER_URLS",
                "...",
                "cache-core was built without its `redis` feature",
            ));
        }
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
            metrics: self.metrics.unwrap_or(cfg!(feature = "metrics")),
            stats_interval: self.stats_interval.unwrap_or(DEFAULT_STATS_INTERVAL),
        })
    }
}

#[cfg(feature = "redis")]
pub(super) fn redis_is_cluster(c: &RedisConfig) -> bool {
    c.is_cluster()
}

#[cfg(not(feature = "redis"))]
pub(super) fn redis_is_cluster(_: &RedisConfig) -> bool {
    false
}

#[cfg(feature = "redis")]
pub(super) fn redacted(c: &RedisConfig) -> String {
    c.redacted_url()
}

#[cfg(not(feature = "redis"))]
pub(super) fn redacted(_: &RedisConfig) -> String {
    String::new()
}

pub(super) fn config_error(source: &str, value: &str, reason: &str) -> Error {
    Error::Config(ConfigError {
        source_name: source.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    })
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
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
