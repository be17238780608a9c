//! Resolving a [`CacheBuilder`] into a [`Config`]: code wins over the
//! environment, defaults fill the rest, and every value is checked, so a
//! bad one is a startup error that names its variable or setting.

use std::time::Duration;

use super::{CacheBuilder, Target};
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
    /// The Redis settings named in code, else in the environment, and
    /// where they came from.
    fn redis_target(&self) -> Option<(&'static str, &Target)> {
        let named = |from_code: bool, t: &Target| -> &'static str {
            match (from_code, t) {
                (true, Target::Url(_)) => "builder.redis_url",
                (true, Target::Cluster(_)) => "builder.redis_cluster",
                (true, Target::Sentinel { .. }) => "builder.redis_sentinel",
                (false, Target::Url(_)) => "REDIS_URL",
                (_, Target::Parts(_)) => "REDIS_HOST",
                (false, Target::Cluster(_)) => "REDIS_CLUSTER_URLS",
                (false, Target::Sentinel { .. }) => "REDIS_SENTINEL_URLS",
            }
        };
        match (&self.explicit.redis, &self.env.redis) {
            (Some(t), _) => Some((named(true, t), t)),
            (None, Some(t)) => Some((named(false, t), t)),
            (None, None) => None,
        }
    }

    /// The Redis settings, if any, and where they came from.
    #[cfg(feature = "redis")]
    pub(super) fn redis_settings(&self) -> Result<Option<(&'static str, RedisConfig)>, Error> {
        let (source, mut config) = if let Some(c) = &self.redis {
            ("builder.redis", c.clone())
        } else {
            let Some((source, target)) = self.redis_target() else {
                return Ok(None);
            };
            let config = match target {
                Target::Url(url) | Target::Parts(url) => {
                    check_scheme(source, url)?;
                    RedisConfig::new(url.clone())
                }
                Target::Cluster(nodes) if nodes.is_empty() => {
                    return Err(config_error(
                        source,
                        "",
                        "name at least one seed node of the cluster, e.g. redis://10.0.0.1:7000",
                    ));
                }
                Target::Cluster(nodes) => {
                    for node in nodes {
                        check_scheme(source, node)?;
                    }
                    RedisConfig::cluster(nodes.iter().cloned())
                }
                Target::Sentinel { sentinels, .. } if sentinels.is_empty() => {
                    return Err(config_error(
                        source,
                        "",
                        "name at least one sentinel, e.g. redis://10.0.0.1:26379",
                    ));
                }
                Target::Sentinel { master, .. } if master.trim().is_empty() => {
                    return Err(config_error(
                        source,
                        "",
                        "name the master as the sentinels know it, e.g. mymaster",
                    ));
                }
                Target::Sentinel { sentinels, master } => {
                    for node in sentinels {
                        check_scheme(source, node)?;
                    }
                    RedisConfig::sentinel(sentinels.iter().cloned(), master.clone())
                }
            };
            (source, config)
        };
        // Code over the environment; a `redis(config)` given in code keeps
        // its own settings over the environment's.
        let env = Some(&self.env).filter(|_| self.redis.is_none());
        if let Some(t) = self
            .redis_op_timeout
            .or(env.and_then(|e| e.redis_op_timeout))
        {
            config.op_timeout = t;
        }
        if let Some(t) = self
            .redis_connect_timeout
            .or(env.and_then(|e| e.redis_connect_timeout))
        {
            config.connect_timeout = t;
        }
        if let Some(on) = self
            .redis_batch_reads
            .or(env.and_then(|e| e.redis_batch_reads))
        {
            config.batch_reads = on;
        }
        if let Some(pem) = &self.redis_tls_roots {
            config.tls_roots = Some(pem.clone());
        } else if let Some(path) = &self.env.redis_tls_ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                config_error(
                    "REDIS_TLS_CA_FILE",
                    path,
                    &format!("cannot read the CA certificates: {e}"),
                )
            })?;
            config.tls_roots = Some(pem);
        }
        Ok(Some((source, config)))
    }

    #[cfg(not(feature = "redis"))]
    pub(super) fn redis_settings(&self) -> Result<Option<(&'static str, RedisConfig)>, Error> {
        match self.redis_target() {
            Some((source, _)) => Err(config_error(
                source,
                "...",
                "cache-core was built without its `redis` feature",
            )),
            None => Ok(None),
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
        // Code wins over the environment: environment first, code over it.
        for (name, d) in env.custom_presets.iter().chain(&ex.custom_presets) {
            if d.is_zero() {
                return Err(config_error(
                    "builder.custom_preset_ttl",
                    "0",
                    "a TTL must be longer than zero",
                ));
            }
            ttls.custom.insert(name, *d);
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

/// A Redis URL without its scheme (`127.0.0.1:6390`) is refused with the
/// form expected, rather than with the client's parse error.
#[cfg(feature = "redis")]
fn check_scheme(source: &str, url: &str) -> Result<(), Error> {
    let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
    if schemes.iter().any(|s| url.starts_with(s)) {
        return Ok(());
    }
    // Whatever precedes an `@` may be a password.
    let (shown, host) = match url.rsplit_once('@') {
        Some((_, host)) => (format!("***@{host}"), host),
        None => (url.to_owned(), url),
    };
    let host = host.split('/').next().unwrap_or(host);
    Err(config_error(
        source,
        &shown,
        &format!(
            "a Redis URL starts with its scheme: redis://{host}/0 (rediss:// for TLS, redis+unix:///path/to/socket for a Unix socket)"
        ),
    ))
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

    #[cfg(feature = "redis")]
    fn redis_url(b: &CacheBuilder) -> Result<Option<(&'static str, String)>, String> {
        b.redis_settings()
            .map(|r| r.map(|(source, c)| (source, c.redacted_url())))
            .map_err(|e| e.to_string())
    }

    #[test]
    #[cfg(feature = "redis")]
    fn redis_host_port_db_and_password_make_a_url_when_redis_url_is_absent() {
        let b = env(&[
            ("REDIS_HOST", "redis.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_DB", "2"),
            ("REDIS_PASSWORD", "p@ss:w/rd"),
        ]);
        assert_eq!(
            redis_url(&b),
            Ok(Some((
                "REDIS_HOST",
                "redis://:***@redis.internal:6380/2".to_owned()
            )))
        );
        let Ok(Some((_, config))) = b.redis_settings() else {
            panic!("a config");
        };
        assert!(
            format!("{config:?}").contains("p%40ss%3Aw%2Frd")
                || !format!("{config:?}").contains("p@ss")
        );
        // Defaults for what is not set.
        assert_eq!(
            redis_url(&env(&[("REDIS_PORT", "7000")])),
            Ok(Some(("REDIS_HOST", "redis://127.0.0.1:7000/0".to_owned())))
        );
        assert_eq!(
            redis_url(&env(&[("REDIS_HOST", "::1")])),
            Ok(Some(("REDIS_HOST", "redis://[::1]:6379/0".to_owned())))
        );
        // REDIS_URL wins.
        assert_eq!(
            redis_url(&env(&[("REDIS_URL", "redis://a:1/0"), ("REDIS_HOST", "b")])),
            Ok(Some(("REDIS_URL", "redis://a:1/0".to_owned())))
        );
        assert_eq!(redis_url(&env(&[])), Ok(None));
        for (name, value, says) in [
            ("REDIS_PORT", "http", "expected a port number"),
            ("REDIS_PORT", "0", "expected a port number"),
            ("REDIS_DB", "-1", "expected a database number"),
            ("REDIS_HOST", "redis://x", "a URL goes in REDIS_URL"),
        ] {
            let e = err(env(&[(name, value)]));
            assert!(
                e.starts_with(&format!("invalid {name}=")) && e.contains(says),
                "{e}"
            );
        }
    }

    #[test]
    #[cfg(feature = "redis")]
    fn a_url_without_its_scheme_gets_the_form_expected_in_one_line() {
        let e = redis_url(&env(&[("REDIS_URL", "127.0.0.1:6390")])).unwrap_err();
        assert_eq!(
            e,
            "invalid REDIS_URL=\"127.0.0.1:6390\": a Redis URL starts with its scheme: \
             redis://127.0.0.1:6390/0 (rediss:// for TLS, redis+unix:///path/to/socket for a Unix socket)"
        );
        let e = redis_url(&env(&[("REDIS_URL", "user:secret@10.0.0.5:6379/3")])).unwrap_err();
        assert!(
            !e.contains("secret") && e.contains("redis://10.0.0.5:6379/0"),
            "{e}"
        );
        let e = redis_url(&env(&[("REDIS_CLUSTER_URLS", "redis://a:1,b:2")])).unwrap_err();
        assert!(e.starts_with("invalid REDIS_CLUSTER_URLS=\"b:2\""), "{e}");
        // And `Debug`, which `main` returning an error prints, reads the same.
        let debug = format!(
            "{:?}",
            CacheBuilder::new()
                .redis_url("127.0.0.1:6390")
                .build_blocking()
                .unwrap_err()
        );
        assert!(
            !debug.contains('{') && debug.contains("redis://127.0.0.1:6390/0"),
            "{debug}"
        );
    }

    crate::ttl_presets! {
        /// A preset of the application's, for the tests below.
        pub(crate) TRANSACTIONS = "45s";
    }

    #[test]
    fn a_misspelt_cache_variable_is_named_with_the_one_meant() {
        let names = [
            "CACHE_TTL_MEDUIM",
            "CACHE_KEY_PREFX",
            "CACHE_ADMIN_TOKEN",
            "CACHE_TTL_MEDIUM",
            "PATH",
            "CACHE_ENABLE",
            "CACHE_TTL_TRANSACTION",
            "CACHE_TTL_TRANSACTIONS",
        ]
        .map(String::from);
        assert_eq!(
            crate::builder::misspelt_vars(names.into_iter()),
            vec![
                ("CACHE_TTL_MEDUIM".to_owned(), "CACHE_TTL_MEDIUM"),
                ("CACHE_KEY_PREFX".to_owned(), "CACHE_KEY_PREFIX"),
                ("CACHE_ENABLE".to_owned(), "CACHE_ENABLED"),
                ("CACHE_TTL_TRANSACTION".to_owned(), "CACHE_TTL_TRANSACTIONS"),
            ]
        );
    }

    #[test]
    fn declared_presets_resolve_from_env_and_code() -> Result<(), Error> {
        let c = env(&[("CACHE_TTL_TRANSACTIONS", "2m")]).resolve()?;
        assert_eq!(
            c.ttls.resolve((&TRANSACTIONS).into()),
            Duration::from_secs(120)
        );
        let c = CacheBuilder::new()
            .custom_preset_ttl(&TRANSACTIONS, Duration::from_secs(5))
            .resolve()?;
        assert_eq!(
            c.ttls.resolve((&TRANSACTIONS).into()),
            Duration::from_secs(5)
        );
        assert_eq!(
            CacheBuilder::new()
                .resolve()?
                .ttls
                .resolve((&TRANSACTIONS).into()),
            Duration::from_secs(45)
        );
        Ok(())
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
    #[cfg(feature = "redis")]
    fn redis_timeouts_and_batching_from_the_environment_code_wins() -> Result<(), Error> {
        let vars = [
            ("REDIS_URL", "redis://127.0.0.1:6390/0"),
            ("CACHE_REDIS_OP_TIMEOUT", "250ms"),
            ("CACHE_REDIS_CONNECT_TIMEOUT", "3s"),
            ("CACHE_REDIS_BATCH_READS", "off"),
        ];
        let (_, config) = env(&vars).redis_settings()?.expect("redis");
        assert_eq!(config.op_timeout, Duration::from_millis(250));
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert!(!config.batch_reads);
        let (_, config) = env(&vars)
            .redis_op_timeout(Duration::from_millis(40))
            .redis_batch_reads(true)
            .redis_settings()?
            .expect("redis");
        assert_eq!(config.op_timeout, Duration::from_millis(40));
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert!(config.batch_reads);
        // Full settings given in code keep their own.
        let own = RedisConfig::new("redis://127.0.0.1:6391/0").op_timeout(Duration::from_secs(9));
        let (_, config) = env(&vars).redis(own).redis_settings()?.expect("redis");
        assert_eq!(config.op_timeout, Duration::from_secs(9));
        assert!(config.batch_reads);
        for (var, value, reason) in [
            ("CACHE_REDIS_OP_TIMEOUT", "soon", "not a duration"),
            ("CACHE_REDIS_CONNECT_TIMEOUT", "0s", "longer than zero"),
            ("CACHE_REDIS_BATCH_READS", "maybe", "expected true/false"),
        ] {
            let e = err(env(&[(var, value)]));
            assert!(e.contains(var) && e.contains(reason), "{e}");
        }
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

    #[cfg(feature = "redis")]
    #[test]
    fn one_kind_of_redis_from_the_environment() -> Result<(), Error> {
        let settings = |b: CacheBuilder| b.redis_settings();
        let (source, c) = settings(env(&[(
            "REDIS_CLUSTER_URLS",
            "redis://a:7000, redis://b:7000,",
        )]))?
        .ok_or_else(|| config_error("test", "", "no settings"))?;
        assert_eq!(source, "REDIS_CLUSTER_URLS");
        assert_eq!(c.cluster_nodes, ["redis://a:7000", "redis://b:7000"]);
        let (source, c) = settings(env(&[
            ("REDIS_SENTINEL_URLS", "redis://s1:26379,redis://s2:26379"),
            ("REDIS_SENTINEL_MASTER", "redis://:pw@mymaster/2"),
        ]))?
        .ok_or_else(|| config_error("test", "", "no settings"))?;
        assert_eq!(source, "REDIS_SENTINEL_URLS");
        assert_eq!(
            c.redacted_url(),
            "redis://:***@mymaster/2 via redis://s1:26379,redis://s2:26379"
        );
        // Code wins, whichever kind each names.
        let (source, c) = settings(
            CacheBuilder::new()
                .redis_sentinel(["redis://s:26379"], "m")
                .from_env_with(|k| (k == "REDIS_URL").then(|| "redis://h:1/0".to_owned())),
        )?
        .ok_or_else(|| config_error("test", "", "no settings"))?;
        assert_eq!((source, c.is_sentinel()), ("builder.redis_sentinel", true));
        Ok(())
    }

    #[test]
    fn two_kinds_of_redis_or_half_a_sentinel_setting_are_refused() {
        assert_eq!(
            err(env(&[
                ("REDIS_URL", "redis://h:1/0"),
                ("REDIS_CLUSTER_URLS", "redis://a:7000")
            ])),
            "invalid REDIS_CLUSTER_URLS=\"...\": REDIS_URL is set too: set one of REDIS_URL (one server), \
             REDIS_CLUSTER_URLS (a cluster's seed nodes) or REDIS_SENTINEL_URLS (sentinels)"
        );
        assert!(
            err(env(&[("REDIS_SENTINEL_URLS", "redis://s:26379")])).starts_with(
                "invalid REDIS_SENTINEL_MASTER=\"\": REDIS_SENTINEL_URLS needs the master's name"
            )
        );
        assert!(
            err(env(&[("REDIS_SENTINEL_MASTER", "mymaster")]))
                .starts_with("invalid REDIS_SENTINEL_URLS=\"\": REDIS_SENTINEL_MASTER=mymaster needs the sentinels' URLs")
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn empty_node_lists_are_refused() {
        let refused = |b: CacheBuilder| match b.redis_settings() {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        assert!(
            refused(CacheBuilder::new().redis_cluster(Vec::<String>::new()))
                .starts_with("invalid builder.redis_cluster=\"\": name at least one seed node")
        );
        assert!(
            refused(env(&[("REDIS_CLUSTER_URLS", " , ")]))
                .starts_with("invalid REDIS_CLUSTER_URLS=\"\": name at least one seed node")
        );
        assert!(
            refused(CacheBuilder::new().redis_sentinel(["redis://s:26379"], " "))
                .starts_with("invalid builder.redis_sentinel=\"\": name the master")
        );
    }
}
