//! Errors.

/// Errors from building, installing or using a cache.
///
/// With the default (non-strict) behaviour, cache operations degrade instead
/// of failing: these errors come from configuration and installation.
///
/// `Debug` prints the same one line as `Display`, so that a `main` that
/// returns the error shows a readable message, not a struct dump.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value was refused; the message names the variable or setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `install` was called for a name that already has a cache (the default cache
    /// is created on first use if nothing was installed before).
    #[error(
        "a cache named {0:?} is already installed (install caches at startup, before the first cached call)"
    )]
    AlreadyInstalled(String),
    /// [`Cache::add_warmer`](crate::Cache::add_warmer): a warmer of that name is already registered.
    #[error("a warmer named {0:?} is already registered on this cache")]
    DuplicateWarmer(String),
    /// [`Cache::warm`](crate::Cache::warm): no warmer of that name.
    #[error("no warmer named {name:?} (known: {})", known.join(", "))]
    UnknownWarmer {
        /// The name asked for.
        name: String,
        /// The registered warmers' names.
        known: Vec<String>,
    },
    /// Strict mode only: Redis failed, timed out, or the circuit breaker is open.
    #[error("cache {op} failed: Redis unavailable ({reason})")]
    Unavailable {
        /// The operation (`get`, `set`, ...).
        op: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// A refused configuration value, naming where it came from.
///
/// ```
/// let err = cache_core::Cache::builder()
///     .from_env_with(|name| (name == "CACHE_DEFAULT_TTL").then(|| "5 minutes".to_owned()))
///     .build_blocking()
///     .unwrap_err();
/// assert!(err.to_string().starts_with("invalid CACHE_DEFAULT_TTL=\"5 minutes\""));
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {source_name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable (`CACHE_DEFAULT_TTL`) or builder setting (`builder.key_prefix`).
    pub source_name: String,
    /// The value that was refused.
    pub value: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
