//! Time-to-live presets and duration strings.
//!
//! The nine presets are the vocabulary of `#[cached(ttl = "...")]`; their
//! values can be changed at run time (builder, `CACHE_TTL_<PRESET>`) so
//! operators tune TTLs without recompiling. The attribute checks names and
//! duration strings at compile time; this module is the run-time side of the
//! same grammar (kept in step with `cache-macros/src/ttl.rs` by the `tests`
//! crate, which compares both on the same strings).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// A named TTL preset.
///
/// ```
/// use cache_core::Preset;
/// use std::time::Duration;
///
/// assert_eq!(Preset::Medium.default_duration(), Duration::from_secs(300));
/// assert_eq!(Preset::from_name("user_context"), Some(Preset::UserContext));
/// assert_eq!(Preset::VeryLong.env_var(), "CACHE_TTL_VERY_LONG");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// 60 s.
    Short,
    /// 300 s; also the default TTL.
    Medium,
    /// 3600 s.
    Long,
    /// 86400 s.
    VeryLong,
    /// 900 s.
    UserContext,
    /// 120 s.
    Dashboard,
    /// 1800 s.
    Report,
    /// 600 s.
    Search,
    /// 300 s.
    List,
}

impl Preset {
    /// Every preset, in documentation order.
    pub const ALL: [Preset; 9] = [
        Preset::Short,
        Preset::Medium,
        Preset::Long,
        Preset::VeryLong,
        Preset::UserContext,
        Preset::Dashboard,
        Preset::Report,
        Preset::Search,
        Preset::List,
    ];

    /// The name used in `#[cached(ttl = "...")]`.
    ///
    /// ```
    /// assert_eq!(cache_core::Preset::VeryLong.name(), "very_long");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Preset::Short => "short",
            Preset::Medium => "medium",
            Preset::Long => "long",
            Preset::VeryLong => "very_long",
            Preset::UserContext => "user_context",
            Preset::Dashboard => "dashboard",
            Preset::Report => "report",
            Preset::Search => "search",
            Preset::List => "list",
        }
    }

    /// The built-in value, before any run-time override.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(cache_core::Preset::Dashboard.default_duration(), Duration::from_secs(120));
    /// ```
    pub const fn default_duration(self) -> Duration {
        Duration::from_secs(match self {
            Preset::Short => 60,
            Preset::Medium => 300,
            Preset::Long => 3600,
            Preset::VeryLong => 86_400,
            Preset::UserContext => 900,
            Preset::Dashboard => 120,
            Preset::Report => 1800,
            Preset::Search => 600,
            Preset::List => 300,
        })
    }

    /// Looks a preset up by its attribute name, in any case (`USER_CONTEXT`
    /// is the constant name services ported from Python have).
    ///
    /// ```
    /// use cache_core::Preset;
    /// assert_eq!(Preset::from_name("long"), Some(Preset::Long));
    /// assert_eq!(Preset::from_name("USER_CONTEXT"), Some(Preset::UserContext));
    /// assert_eq!(Preset::from_name("user-context"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// The environment variable that overrides this preset, e.g. `CACHE_TTL_MEDIUM`.
    ///
    /// ```
    /// assert_eq!(cache_core::Preset::Search.env_var(), "CACHE_TTL_SEARCH");
    /// ```
    pub const fn env_var(self) -> &'static str {
        match self {
            Preset::Short => "CACHE_TTL_SHORT",
            Preset::Medium => "CACHE_TTL_MEDIUM",
            Preset::Long => "CACHE_TTL_LONG",
            Preset::VeryLong => "CACHE_TTL_VERY_LONG",
            Preset::UserContext => "CACHE_TTL_USER_CONTEXT",
            Preset::Dashboard => "CACHE_TTL_DASHBOARD",
            Preset::Report => "CACHE_TTL_REPORT",
            Preset::Search => "CACHE_TTL_SEARCH",
            Preset::List => "CACHE_TTL_LIST",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A TTL preset an application declares with [`ttl_presets!`](crate::ttl_presets),
/// next to the built-in [`Preset`]s: `#[cached(ttl = COMPANY)]` names it
/// (a typo is a compile error with a suggestion, from the compiler), its
/// duration is checked at compile time, and `CACHE_TTL_<NAME>` or
/// [`CacheBuilder::custom_preset_ttl`](crate::CacheBuilder::custom_preset_ttl)
/// overrides it at run time, as for the built-in ones.
///
/// ```
/// use cache_core::{cached, ttl_presets};
/// use std::time::Duration;
///
/// ttl_presets! {
///     /// Company records: they change a few times a year.
///     pub COMPANY = "6h";
///     /// Card transactions: fresh within a minute.
///     pub TRANSACTIONS = "45s";
/// }
///
/// #[cached(ttl = COMPANY, key = "company:<id>")]
/// async fn company(id: u64) -> String {
///     format!("company {id}")
/// }
///
/// assert_eq!(COMPANY.name(), "COMPANY");
/// assert_eq!(COMPANY.env_var(), "CACHE_TTL_COMPANY");
/// assert_eq!(TRANSACTIONS.default_duration(), Duration::from_secs(45));
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CustomPreset {
    name: &'static str,
    env_var: &'static str,
    default: Duration,
}

impl CustomPreset {
    /// Used by [`ttl_presets!`](crate::ttl_presets); not an API. Panics,
    /// which in a `static` is a compile error, on a name that is not an
    /// upper-case identifier, a built-in preset's name, or a bad duration.
    #[doc(hidden)]
    pub const fn __new(name: &'static str, env_var: &'static str, ttl: &'static str) -> Self {
        let b = name.as_bytes();
        let mut i = 0;
        while i < b.len() {
            assert!(
                b[i].is_ascii_uppercase() || b[i] == b'_' || (i > 0 && b[i].is_ascii_digit()),
                "a TTL preset is named in upper case, as a constant (`COMPANY`, `USER_ORDERS`): its variable is CACHE_TTL_<NAME>"
            );
            i += 1;
        }
        let mut p = 0;
        while p < Preset::ALL.len() {
            assert!(
                !eq_ignore_case(Preset::ALL[p].name(), name),
                "this name is a built-in TTL preset's: use the built-in one (`ttl = \"medium\"`) or choose another name"
            );
            p += 1;
        }
        CustomPreset {
            name,
            env_var,
            default: Duration::from_millis(const_duration_ms(ttl)),
        }
    }

    /// The name, as declared (`COMPANY`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The environment variable that overrides it: `CACHE_TTL_<NAME>`.
    pub const fn env_var(&self) -> &'static str {
        self.env_var
    }

    /// The declared duration, before any run-time override.
    pub const fn default_duration(&self) -> Duration {
        self.default
    }

    /// Every preset the program declares (in any crate), in no set order.
    pub fn all() -> impl Iterator<Item = &'static CustomPreset> {
        inventory::iter::<Registered>.into_iter().map(|r| r.0)
    }
}

impl fmt::Display for CustomPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A declared preset, collected at link time so the builder can read its
/// variable at start. Not an API: [`ttl_presets!`](crate::ttl_presets) submits it.
#[doc(hidden)]
#[derive(Debug)]
pub struct Registered(pub &'static CustomPreset);

inventory::collect!(Registered);

const fn eq_ignore_case(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if !a[i].eq_ignore_ascii_case(&b[i]) {
            return false;
        }
        i += 1;
    }
    true
}

/// [`parse_duration`]'s grammar at compile time, in milliseconds: panics
/// (a compile error in a `static`) where that returns an error.
const fn const_duration_ms(text: &str) -> u64 {
    const SYNTAX: &str = "a TTL preset's duration is e.g. \"90s\", \"15m\", \"2h\", \"1d\", \"1h30m\", \"250ms\" or whole seconds";
    let b = text.as_bytes();
    assert!(!b.is_empty(), "{}", SYNTAX);
    let mut all_digits = true;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            all_digits = false;
        }
        i += 1;
    }
    let mut total: u64 = 0;
    i = 0;
    while i < b.len() {
        let start = i;
        let mut n: u64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            n = match n.checked_mul(10) {
                Some(m) => match m.checked_add((b[i] - b'0') as u64) {
                    Some(v) => v,
                    None => panic!("a TTL preset's duration is too long"),
                },
                None => panic!("a TTL preset's duration is too long"),
            };
            i += 1;
        }
        assert!(start != i, "{}", SYNTAX);
        let per: u64 = if all_digits {
            1000
        } else if i + 1 < b.len() && b[i] == b'm' && b[i + 1] == b's' {
            i += 2;
            1
        } else if i < b.len() && (i + 1 == b.len() || b[i + 1].is_ascii_digit()) {
            let unit = b[i];
            i += 1;
            match unit {
                b's' => 1000,
                b'm' => 60_000,
                b'h' => 3_600_000,
                b'd' => 86_400_000,
                _ => panic!("{}", SYNTAX),
            }
        } else {
            panic!("{}", SYNTAX)
        };
        total = match n.checked_mul(per) {
            Some(p) => match total.checked_add(p) {
                Some(t) => t,
                None => panic!("a TTL preset's duration is too long"),
            },
            None => panic!("a TTL preset's duration is too long"),
        };
    }
    assert!(total > 0, "a TTL must be longer than zero");
    total
}

/// Declares TTL presets of the application's own, used as
/// `#[cached(ttl = NAME)]` and overridden at run time with
/// `CACHE_TTL_<NAME>` or [`CacheBuilder::custom_preset_ttl`](crate::CacheBuilder::custom_preset_ttl).
///
/// Each line declares a `static` [`CustomPreset`] with a duration string
/// (`"90s"`, `"15m"`, `"2h"`, `"1d"`, `"1h30m"`, `"250ms"`, whole seconds),
/// checked at compile time:
///
/// ```compile_fail
/// cache_core::ttl_presets! {
///     pub COMPANY = "6 hours"; // error: a TTL preset's duration is e.g. "90s", ...
/// }
/// ```
///
/// ```compile_fail
/// cache_core::ttl_presets! {
///     pub MEDIUM = "1h"; // error: this name is a built-in TTL preset's
/// }
/// ```
///
/// See [`CustomPreset`] for an example.
#[macro_export]
macro_rules! ttl_presets {
    ($($(#[$meta:meta])* $vis:vis $name:ident = $ttl:literal;)+) => {
        $(
            $(#[$meta])*
            $vis static $name: $crate::CustomPreset = $crate::CustomPreset::__new(
                ::core::stringify!($name),
                ::core::concat!("CACHE_TTL_", ::core::stringify!($name)),
                $ttl,
            );
            $crate::__private::inventory::submit! {
                $crate::__private::RegisteredPreset(&$name)
            }
        )+
    };
}

/// How long an entry lives: the cache's default, a preset, or a fixed duration.
///
/// Presets and the default are resolved against the cache's configuration
/// when the entry is written, so run-time overrides apply.
///
/// ```
/// use cache_core::{Preset, Ttl};
/// use std::time::Duration;
///
/// let a: Ttl = Preset::Short.into();
/// let b: Ttl = Duration::from_secs(90).into();
/// assert_eq!(a, Ttl::Preset(Preset::Short));
/// assert_eq!(b, Ttl::Fixed(Duration::from_secs(90)));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ttl {
    /// The cache's default TTL (`CACHE_DEFAULT_TTL`, else the `medium` preset).
    #[default]
    Default,
    /// A named preset.
    Preset(Preset),
    /// A fixed duration.
    Fixed(Duration),
    /// A preset the application declares ([`ttl_presets!`](crate::ttl_presets)).
    Custom(&'static CustomPreset),
}

impl From<&'static CustomPreset> for Ttl {
    fn from(p: &'static CustomPreset) -> Self {
        Ttl::Custom(p)
    }
}

impl From<Preset> for Ttl {
    fn from(p: Preset) -> Self {
        Ttl::Preset(p)
    }
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Ttl::Fixed(d)
    }
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Nothing to parse.
    #[error("empty duration")]
    Empty,
    /// Not of the form `90s`, `15m`, `2h`, `1d`, `1h30m`, `250ms` or whole seconds.
    #[error(
        "`{0}` is not a duration: expected e.g. 90s, 15m, 2h, 1d, 1h30m, 250ms or whole seconds"
    )]
    Syntax(String),
    /// The duration is zero.
    #[error("a TTL must be longer than zero")]
    Zero,
    /// The duration does not fit.
    #[error("`{0}` is too long")]
    Overflow(String),
}

/// Parses a duration: `"90s"`, `"15m"`, `"2h"`, `"1d"`, `"250ms"`, combinations
/// such as `"1h30m"`, or bare whole seconds (`"300"`). Zero is refused.
///
/// ```
/// use cache_core::parse_duration;
/// use std::time::Duration;
///
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
/// assert!(parse_duration("5 minutes").is_err());
/// assert!(parse_duration("0s").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let syntax = || DurationError::Syntax(text.to_owned());
    let overflow = || DurationError::Overflow(text.to_owned());
    let total_ms: u64 = if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>()
            .ok()
            .and_then(|secs| secs.checked_mul(1000))
            .ok_or_else(overflow)?
    } else {
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut total: u64 = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(syntax());
            }
            let n: u64 = s[start..i].parse().map_err(|_| overflow())?;
            let unit_start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit_ms: u64 = match &s[unit_start..i] {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(syntax()),
            };
            let part = n.checked_mul(unit_ms).ok_or_else(overflow)?;
            total = total.checked_add(part).ok_or_else(overflow)?;
        }
        total
    };
    if total_ms == 0 {
        return Err(DurationError::Zero);
    }
    Ok(Duration::from_millis(total_ms))
}

/// TTLs are capped at ten years, so deadlines never overflow `Instant`.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 86_400);

/// `now + d`, saturating at `now + MAX_TTL`.
pub(crate) fn deadline(now: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    now.checked_add(d.min(MAX_TTL)).unwrap_or(now)
}

/// Resolved TTL values for one cache.
#[derive(Debug, Clone)]
pub(crate) struct TtlTable {
    pub(crate) presets: [Duration; 9],
    /// Declared presets whose duration is overridden (variable or builder),
    /// by name; the others keep their declared duration.
    pub(crate) custom: std::collections::HashMap<&'static str, Duration>,
    pub(crate) default: Duration,
    /// Fraction of spread applied at write time: 0.1 is ±10 %.
    pub(crate) jitter: f64,
}

/// A uniform sample in `[0, 1)` from a per-thread xorshift: jitter and
/// early-refresh points must be uneven, not unpredictable, so no RNG
/// dependency is needed.
pub(crate) fn uniform() -> f64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, RandomState};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(0u8) | 1);
    }
    let r = STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    });
    (r >> 11) as f64 / (1u64 << 53) as f64
}

/// `ttl` spread uniformly over ±`fraction` (at least 1 ms), so entries
/// written together do not all expire together.
pub(crate) fn jittered(ttl: Duration, fraction: f64) -> Duration {
    if fraction <= 0.0 {
        return ttl;
    }
    // Uniform in [-1, 1).
    let u = uniform() * 2.0 - 1.0;
    let factor = 1.0 + u * fraction.min(1.0);
    Duration::from_secs_f64((ttl.as_secs_f64() * factor).max(0.001))
}

/// When a `#[cached]` value is refreshed in the background, before it
/// expires (`refresh = 0.8` or `refresh = "xfetch"`). Callers keep getting
/// the current value meanwhile; one process refreshes each key.
///
/// The refresh runs the function's own future in a task, so a function with
/// `refresh` takes its arguments by value (`self: Arc<Self>`, `String`, ...).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
/// use cache_core::cached;
///
/// struct Rates { version: AtomicU64 }
///
/// impl Rates {
///     // Refreshed in the background once 80 % of its minute has passed.
///     #[cached(ttl = "60s", key = "rates:<currency>", refresh = 0.8)]
///     async fn rate(self: Arc<Self>, currency: String) -> u64 {
///         self.version.fetch_add(1, SeqCst)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let rates = Arc::new(Rates { version: AtomicU64::new(0) });
/// let cache = cache_core::Cache::builder().build().await.unwrap();
/// cache.scope(async {
///     assert_eq!(rates.clone().rate("EUR".into()).await, 0);
///     tokio::time::advance(std::time::Duration::from_secs(50)).await;
///     // Due: this call gets the current value at once and starts the refresh.
///     assert_eq!(rates.clone().rate("EUR".into()).await, 0);
///     while cache.stats().await.refreshes == 0 {
///         tokio::task::yield_now().await;
///     }
///     assert_eq!(rates.clone().rate("EUR".into()).await, 1);
/// }).await;
/// # }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refresh {
    /// Once this fraction of the TTL has passed (between 0 and 1).
    After(f64),
    /// Probabilistic early expiration (XFetch, β = 1): each in-process copy
    /// draws its refresh point at `expiry − δ·ln(1/u)`, δ being the measured
    /// time of the origin call that produced the value, `u` uniform in (0, 1].
    /// Slow origins refresh earlier; fast ones barely before expiry.
    XFetch,
}

impl Refresh {
    /// The instant a copy with `left` time to live, of a `ttl` value whose
    /// origin took `delta`, should be refreshed.
    pub(crate) fn point(
        self,
        now: tokio::time::Instant,
        left: Duration,
        ttl: Duration,
        delta: Option<Duration>,
    ) -> tokio::time::Instant {
        let early = match self {
            Refresh::After(f) => ttl.mul_f64((1.0 - f).clamp(0.0, 1.0)),
            Refresh::XFetch => {
                let d = delta.unwrap_or_default().as_secs_f64();
                // 1 - uniform() is in (0, 1]: ln is finite.
                Duration::from_secs_f64((d * -(1.0 - uniform()).ln()).min(left.as_secs_f64()))
            }
        };
        deadline(now, left.saturating_sub(early))
    }
}

impl TtlTable {
    /// The duration, capped at ten years.
    pub(crate) fn resolve(&self, ttl: Ttl) -> Duration {
        let d = match ttl {
            Ttl::Default => self.default,
            Ttl::Preset(p) => self.presets[p.index()],
            Ttl::Fixed(d) => d,
            Ttl::Custom(p) => self.custom.get(p.name).copied().unwrap_or(p.default),
        };
        d.min(MAX_TTL)
    }
}

impl Default for TtlTable {
    fn default() -> Self {
        TtlTable {
            presets: Preset::ALL.map(Preset::default_duration),
            custom: std::collections::HashMap::new(),
            default: Preset::Medium.default_duration(),
            jitter: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn const_durations_agree_with_parse_duration() {
        for text in [
            "90s",
            "15m",
            "2h",
            "1d",
            "1h30m",
            "250ms",
            "300",
            "1d2h3m4s5ms",
            "7",
        ] {
            assert_eq!(
                Duration::from_millis(super::const_duration_ms(text)),
                parse_duration(text).unwrap(),
                "{text}"
            );
        }
        for bad in [
            "",
            "5 minutes",
            "0s",
            "1x",
            "h",
            "1hm",
            "ms",
            "1.5h",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
            assert!(
                std::panic::catch_unwind(|| super::const_duration_ms(bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn refresh_points() {
        let now = tokio::time::Instant::now();
        let ttl = Duration::from_secs(100);
        let at = |r: Refresh, left: u64, delta: u64| {
            r.point(
                now,
                Duration::from_secs(left),
                ttl,
                Some(Duration::from_secs(delta)),
            )
            .duration_since(now)
        };
        // After 80 % of the TTL: 20 s before expiry, whatever time is left.
        assert_eq!(at(Refresh::After(0.8), 100, 0), Duration::from_secs(80));
        assert_eq!(at(Refresh::After(0.8), 50, 0), Duration::from_secs(30));
        assert_eq!(
            at(Refresh::After(0.8), 10, 0),
            Duration::ZERO,
            "already due"
        );
        // XFetch: never after expiry, earlier by δ·ln(1/u) (mean δ), none for δ = 0.
        assert_eq!(at(Refresh::XFetch, 100, 0), Duration::from_secs(100));
        let n = 20_000;
        let early: f64 = (0..n)
            .map(|_| 100.0 - at(Refresh::XFetch, 100, 5).as_secs_f64())
            .inspect(|e| assert!((0.0..=100.0).contains(e)))
            .sum::<f64>()
            / f64::from(n);
        assert!(
            (4.7..5.3).contains(&early),
            "mean {early} s before expiry, expected ~5 s"
        );
    }

    use super::*;

    #[test]
    fn preset_indices_follow_all() {
        for (i, p) in Preset::ALL.into_iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(Preset::from_name(p.name()), Some(p));
        }
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        let base = Duration::from_secs(100);
        let spread: Vec<Duration> = (0..1000).map(|_| jittered(base, 0.2)).collect();
        assert!(
            spread
                .iter()
                .all(|d| *d >= Duration::from_secs(80) && *d <= Duration::from_secs(120))
        );
        let (lo, hi) = (spread.iter().min().unwrap(), spread.iter().max().unwrap());
        assert!(*hi - *lo > Duration::from_secs(30), "spread {lo:?}..{hi:?}");
        assert_eq!(jittered(base, 0.0), base);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 1h1s "), Ok(Duration::from_secs(3601)));
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("0"), Err(DurationError::Zero));
        assert!(matches!(
            parse_duration("1x"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(parse_duration("m"), Err(DurationError::Syntax(_))));
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
    }
}
