//! [`Observer`]: the one point where a cache reports what happened. Every
//! count the engine keeps goes through [`Observer::record`]; from there it
//! reaches the counters behind [`Cache::stats`](crate::Cache::stats), the
//! `metrics` facade (feature `metrics`), and, for calls, one `tracing`
//! event each ([`Observer::call_done`]).
//!
//! Metric handles are registered once: per cache when it is built, per
//! function the first time a call site meets the cache. Recording is then
//! an atomic add per handle, nothing looked up by name on the way.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::stats::{Counters, FnCounters, FunctionKind, bump};

#[cfg(feature = "metrics")]
#[path = "observe/metrics.rs"]
mod metrics;

/// How a call (or a manual lookup) was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// From the in-process tier.
    HitL1,
    /// From Redis.
    HitL2,
    /// The origin was called (or, for a manual lookup, nothing was found).
    Miss,
    /// Waited for a concurrent call of the same key.
    Coalesced,
    /// A stale value, because the origin failed or was too slow.
    Stale,
    /// A background refresh stored a new value.
    Refresh,
}

impl Outcome {
    #[cfg(any(feature = "metrics", test))]
    pub(crate) const ALL: [Outcome; 6] = [
        Outcome::HitL1,
        Outcome::HitL2,
        Outcome::Miss,
        Outcome::Coalesced,
        Outcome::Stale,
        Outcome::Refresh,
    ];

    /// The label value (`outcome="hit_l1"`).
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Outcome::HitL1 => "hit_l1",
            Outcome::HitL2 => "hit_l2",
            Outcome::Miss => "miss",
            Outcome::Coalesced => "coalesced",
            Outcome::Stale => "stale",
            Outcome::Refresh => "refresh",
        }
    }
}

/// Everything a cache counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A call answered so (see [`Outcome`]).
    Call(Outcome),
    /// The origin returned `Err` (`background`: a refresh's origin).
    OriginError { background: bool },
    /// The origin ran for this long.
    OriginTime(Duration),
    /// A value was stored (`background`: by a refresh).
    Set,
    /// `delete`.
    Delete,
    /// An invalidation (pattern, `invalidate`, `clear`) and the entries it removed.
    Invalidation { removed: u64 },
    /// An `#[invalidates]` call succeeded and will apply its patterns.
    InvalidatingCall,
    /// An `#[invalidates]` call applied one pattern, removing so many entries.
    PatternApplied { removed: u64 },
    /// A Redis command failed (`true`) or was not attempted (`false`: breaker
    /// open, outage replay pending).
    Tier { failed: bool },
    /// Bytes under a key did not decode as the expected type.
    DecodeError,
    /// A value could not be encoded for Redis.
    EncodeError,
    /// A single-flight wait reached its bound.
    FlightTimeout,
    /// A computed value was not stored: an invalidation overtook it.
    SkippedStore,
    /// A call waited on another process's lock.
    LockWait,
    /// A waiting call took a lock over.
    LockTakeover,
    /// A wait on another process's lock reached its bound.
    LockTimeout,
    /// `timeout` cut an origin call off.
    OriginTimeout,
    /// A message from another instance was applied.
    BackplaneApplied,
    /// A warmer ran, writing so many entries; `failed`: it ended with an error.
    Warmed { entries: u64, failed: bool },
    /// A scheduled warmer run was left to the instance that claimed its period.
    WarmSkipped,
}

/// One annotated function in one cache: its counters and metric handles.
#[derive(Debug)]
pub(crate) struct Function {
    pub(crate) counters: FnCounters,
    #[cfg(feature = "metrics")]
    metrics: Option<metrics::FnMetrics>,
}

/// The observer of one cache.
#[derive(Debug)]
pub(crate) struct Observer {
    /// The cache's name (`default` for the unnamed one), the `cache` label.
    name: Arc<str>,
    counters: Counters,
    /// Per annotated function, keyed by the call site's address.
    functions: Mutex<HashMap<usize, Arc<Function>>>,
    #[cfg(feature = "metrics")]
    metrics: Option<metrics::CacheMetrics>,
}

impl Observer {
    /// The observer of the cache `name`; with `metrics` (and the feature),
    /// it registers the cache's metric handles now.
    pub(crate) fn new(name: Option<&str>, metrics: bool) -> Observer {
        let name: Arc<str> = Arc::from(name.unwrap_or("default"));
        #[cfg(not(feature = "metrics"))]
        let _ = metrics;
        Observer {
            #[cfg(feature = "metrics")]
            metrics: metrics.then(|| metrics::CacheMetrics::new(&name)),
            name,
            counters: Counters::default(),
            functions: Mutex::default(),
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Every function seen so far.
    pub(crate) fn functions(&self) -> Vec<Arc<Function>> {
        let map = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.values().cloned().collect()
    }

    /// The counters of the function at call site `site` (its address),
    /// made (and its metric handles registered) on first use.
    pub(crate) fn function(
        &self,
        site: usize,
        function: &'static str,
        label: &'static str,
        kind: FunctionKind,
    ) -> Arc<Function> {
        let mut map = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let f = map.entry(site).or_insert_with(|| {
            Arc::new(Function {
                counters: FnCounters::new(function, label, kind),
                // `#[invalidates]` functions make no calls to count: no
                // series that would stay at zero.
                #[cfg(feature = "metrics")]
                metrics: self
                    .metrics
                    .as_ref()
                    .filter(|_| kind == FunctionKind::Cached)
                    .map(|_| metrics::FnMetrics::new(&self.name, label)),
            })
        });
        Arc::clone(f)
    }

    /// Counts `event`, for the function `site` if the call has one.
    #[inline]
    pub(crate) fn record(&self, site: Option<&Function>, event: Event) {
        let c = &self.counters;
        match event {
            Event::Call(outcome) => {
                bump(match outcome {
                    Outcome::HitL1 => &c.l1_hits,
                    Outcome::HitL2 => &c.l2_hits,
                    Outcome::Miss => &c.misses,
                    Outcome::Coalesced => &c.coalesced,
                    Outcome::Stale => &c.stale_served,
                    Outcome::Refresh => &c.refreshes,
                });
                match site {
                    Some(fun) => {
                        let f = &fun.counters;
                        bump(match outcome {
                            Outcome::HitL1 | Outcome::HitL2 => &f.hits,
                            Outcome::Miss => &f.misses,
                            Outcome::Coalesced => &f.coalesced,
                            Outcome::Stale => &f.stale_served,
                            Outcome::Refresh => &f.refreshes,
                        });
                        #[cfg(feature = "metrics")]
                        if let Some(m) = &fun.metrics {
                            m.call(outcome);
                        }
                    }
                    // A lookup of the manual API.
                    #[cfg(feature = "metrics")]
                    None => {
                        if let Some(m) = &self.metrics {
                            m.manual_call(outcome);
                        }
                    }
                    #[cfg(not(feature = "metrics"))]
                    None => {}
                }
            }
            Event::OriginError { background } => {
                if background {
                    bump(&c.refresh_failures);
                } else {
                    bump(&c.origin_errors);
                    if let Some(f) = site {
                        bump(&f.counters.origin_errors);
                    }
                }
            }
            Event::OriginTime(took) => {
                if let Some(f) = site {
                    f.counters.add_origin_time(took);
                    #[cfg(feature = "metrics")]
                    if let Some(m) = &f.metrics {
                        m.origin(took);
                    }
                }
            }
            Event::Set => {
                bump(&c.sets);
                if let Some(f) = site {
                    bump(&f.counters.sets);
                }
            }
            Event::Delete => bump(&c.deletes),
            Event::Invalidation { removed } => {
                bump(&c.invalidations);
                c.invalidated_entries.fetch_add(removed, Relaxed);
            }
            Event::InvalidatingCall => {
                if let Some(f) = site {
                    bump(&f.counters.invalidations);
                }
            }
            Event::PatternApplied { removed } => {
                if let Some(f) = site {
                    bump(&f.counters.patterns);
                    f.counters.invalidated_entries.fetch_add(removed, Relaxed);
                }
            }
            Event::Tier { failed: true } | Event::DecodeError | Event::EncodeError => {
                bump(&c.errors);
            }
            Event::Tier { failed: false } => bump(&c.redis_skipped),
            Event::FlightTimeout => bump(&c.flight_timeouts),
            Event::SkippedStore => bump(&c.skipped_stores),
            Event::LockWait => bump(&c.lock_waits),
            Event::LockTakeover => bump(&c.lock_takeovers),
            Event::LockTimeout => bump(&c.lock_timeouts),
            Event::OriginTimeout => bump(&c.origin_timeouts),
            Event::BackplaneApplied => bump(&c.backplane_applied),
            Event::Warmed { entries, failed } => {
                bump(&c.warm_runs);
                c.warmed_entries.fetch_add(entries, Relaxed);
                if failed {
                    bump(&c.warm_errors);
                }
            }
            Event::WarmSkipped => bump(&c.warm_skipped),
        }
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.record(event);
        }
    }

    /// When a call that may be traced starts: `Some(now)` if its event
    /// would be emitted, so an untraced call does not read the clock.
    #[inline]
    pub(crate) fn call_start() -> Option<Instant> {
        tracing::enabled!(target: CALLS, tracing::Level::DEBUG).then(Instant::now)
    }

    /// The one `tracing` event of a call (target `cache_core::call`): at
    /// `debug` with the function, its key template, the outcome and the
    /// duration; at `trace`, with the key too. `started` is `None` when no
    /// subscriber wants the event: then this is one branch.
    #[inline]
    pub(crate) fn call_done(
        &self,
        site: Option<&Function>,
        key: &str,
        outcome: Outcome,
        started: Option<Instant>,
    ) {
        if let Some(started) = started {
            self.emit_call(site, key, outcome, started);
        }
    }

    #[cold]
    fn emit_call(&self, site: Option<&Function>, key: &str, outcome: Outcome, started: Instant) {
        let took = started.elapsed();
        let (function, template) =
            site.map_or(("", ""), |f| (f.counters.function, f.counters.label));
        let outcome = outcome.as_str();
        if tracing::enabled!(target: CALLS, tracing::Level::TRACE) {
            tracing::trace!(target: CALLS, cache = &*self.name, function, template, outcome, ?took, key, "cache call");
        } else {
            tracing::debug!(target: CALLS, cache = &*self.name, function, template, outcome, ?took, "cache call");
        }
    }

    /// Whether this cache records metrics (feature `metrics`, not turned off).
    pub(crate) fn has_metrics(&self) -> bool {
        #[cfg(feature = "metrics")]
        return self.metrics.is_some();
        #[cfg(not(feature = "metrics"))]
        false
    }

    /// Sets the gauges (breaker state, pending invalidations, entries, Redis
    /// memory) from a snapshot; called when stats are taken.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn gauges(&self, stats: &crate::stats::Stats) {
        #[cfg(feature = "metrics")]
        if let Some(m) = &self.metrics {
            m.gauges(stats);
        }
    }

    /// Times one Redis command, if a histogram wants it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    #[inline]
    pub(crate) fn redis_timer(&self) -> Option<Instant> {
        #[cfg(feature = "metrics")]
        if self.metrics.is_some() {
            return Some(Instant::now());
        }
        None
    }

    /// A Redis command started at `started` ended.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn redis_command(&self, started: Option<Instant>) {
        #[cfg(feature = "metrics")]
        if let (Some(m), Some(started)) = (&self.metrics, started) {
            m.redis_command(started.elapsed());
        }
    }
}

/// The `tracing` target of per-call events.
pub(crate) const CALLS: &str = "cache_core::call";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_counts_for_the_cache_and_its_function() {
        let o = Observer::new(None, false);
        let f = o.function(1, "app::get", "item:<id>", FunctionKind::Cached);
        for outcome in Outcome::ALL {
            o.record(Some(&f), Event::Call(outcome));
        }
        o.record(None, Event::Call(Outcome::HitL1));
        let c = o.counters();
        assert_eq!(c.l1_hits.load(Relaxed), 2);
        let f = &f.counters;
        assert_eq!(
            (
                f.hits.load(Relaxed),
                f.misses.load(Relaxed),
                f.coalesced.load(Relaxed)
            ),
            (2, 1, 1),
            "a manual lookup counts for the cache only"
        );
        assert_eq!(
            (f.stale_served.load(Relaxed), f.refreshes.load(Relaxed)),
            (1, 1)
        );
        assert_eq!(o.functions().len(), 1);
        let again = o.function(1, "app::get", "item:<id>", FunctionKind::Cached);
        assert!(std::ptr::eq(&again.counters, f), "one entry per site");
    }

    #[test]
    fn failures_and_skips_are_counted_apart() {
        let o = Observer::new(Some("reports"), false);
        o.record(None, Event::Tier { failed: true });
        o.record(None, Event::DecodeError);
        o.record(None, Event::Tier { failed: false });
        let c = o.counters();
        assert_eq!(
            (c.errors.load(Relaxed), c.redis_skipped.load(Relaxed)),
            (2, 1)
        );
        o.record(None, Event::Invalidation { removed: 7 });
        assert_eq!(
            (
                c.invalidations.load(Relaxed),
                c.invalidated_entries.load(Relaxed)
            ),
            (1, 7)
        );
    }
}
