//! The metric handles of a cache and of its functions (feature `metrics`),
//! registered through the `metrics` facade once and recorded through
//! directly. The library never installs a recorder: handles made while
//! none is installed do nothing.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `cache_calls_total` | counter | `cache`, `function` (key template; `(manual)` for the manual API), `outcome` (`hit_l1`, `hit_l2`, `miss`, `coalesced`, `stale`, `refresh`) |
//! | `cache_origin_duration_seconds` | histogram | `cache`, `function` |
//! | `cache_sets_total`, `cache_deletes_total` | counter | `cache` |
//! | `cache_invalidations_total`, `cache_invalidated_entries_total` | counter | `cache` |
//! | `cache_redis_errors_total`, `cache_redis_skipped_total` | counter | `cache` |
//! | `cache_decode_errors_total`, `cache_encode_errors_total` | counter | `cache` |
//! | `cache_lock_waits_total`, `cache_lock_takeovers_total` | counter | `cache` |
//! | `cache_warm_runs_total`, `cache_warmed_entries_total`, `cache_warm_errors_total` | counter | `cache` |
//! | `cache_redis_command_duration_seconds` | histogram | `cache` |
//! | `cache_breaker_state` (0 closed, 1 half-open, 2 open) | gauge | `cache` |
//! | `cache_pending_invalidations`, `cache_entries`, `cache_redis_used_memory_bytes` | gauge | `cache` |

use std::sync::Once;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};

use super::{Event, Outcome};
use crate::breaker::BreakerState;
use crate::stats::Stats;

const CALLS: &str = "cache_calls_total";
const ORIGIN: &str = "cache_origin_duration_seconds";

/// Call counters by outcome, in [`Outcome::ALL`]'s order.
#[derive(Debug)]
struct Calls([Counter; 6]);

impl Calls {
    fn new(cache: &str, function: &str) -> Calls {
        Calls(Outcome::ALL.map(|o| {
            metrics::counter!(CALLS, "cache" => cache.to_owned(), "function" => function.to_owned(), "outcome" => o.as_str())
        }))
    }

    #[inline]
    fn add(&self, outcome: Outcome) {
        // `ALL` lists the outcomes in declaration order.
        if let Some(c) = self.0.get(outcome as usize) {
            c.increment(1);
        }
    }
}

/// The handles of one function in one cache.
#[derive(Debug)]
pub(crate) struct FnMetrics {
    calls: Calls,
    origin: Histogram,
}

impl FnMetrics {
    pub(crate) fn new(cache: &str, function: &str) -> FnMetrics {
        FnMetrics {
            calls: Calls::new(cache, function),
            origin: metrics::histogram!(ORIGIN, "cache" => cache.to_owned(), "function" => function.to_owned()),
        }
    }

    #[inline]
    pub(crate) fn call(&self, outcome: Outcome) {
        self.calls.add(outcome);
    }

    pub(crate) fn origin(&self, took: Duration) {
        self.origin.record(took.as_secs_f64());
    }
}

/// The handles of one cache.
#[derive(Debug)]
pub(crate) struct CacheMetrics {
    manual: Calls,
    sets: Counter,
    deletes: Counter,
    invalidations: Counter,
    invalidated_entries: Counter,
    redis_errors: Counter,
    redis_skipped: Counter,
    decode_errors: Counter,
    encode_errors: Counter,
    lock_waits: Counter,
    lock_takeovers: Counter,
    warm_runs: Counter,
    warmed_entries: Counter,
    warm_errors: Counter,
    redis_command: Histogram,
    breaker: Gauge,
    pending: Gauge,
    entries: Gauge,
    redis_memory: Gauge,
}

impl CacheMetrics {
    pub(crate) fn new(cache: &str) -> CacheMetrics {
        describe();
        let c = |name: &'static str| metrics::counter!(name, "cache" => cache.to_owned());
        let g = |name: &'static str| metrics::gauge!(name, "cache" => cache.to_owned());
        CacheMetrics {
            manual: Calls::new(cache, "(manual)"),
            sets: c("cache_sets_total"),
            deletes: c("cache_deletes_total"),
            invalidations: c("cache_invalidations_total"),
            invalidated_entries: c("cache_invalidated_entries_total"),
            redis_errors: c("cache_redis_errors_total"),
            redis_skipped: c("cache_redis_skipped_total"),
            decode_errors: c("cache_decode_errors_total"),
            encode_errors: c("cache_encode_errors_total"),
            lock_waits: c("cache_lock_waits_total"),
            lock_takeovers: c("cache_lock_takeovers_total"),
            warm_runs: c("cache_warm_runs_total"),
            warmed_entries: c("cache_warmed_entries_total"),
            warm_errors: c("cache_warm_errors_total"),
            redis_command: metrics::histogram!("cache_redis_command_duration_seconds", "cache" => cache.to_owned()),
            breaker: g("cache_breaker_state"),
            pending: g("cache_pending_invalidations"),
            entries: g("cache_entries"),
            redis_memory: g("cache_redis_used_memory_bytes"),
        }
    }

    pub(crate) fn manual_call(&self, outcome: Outcome) {
        self.manual.add(outcome);
    }

    pub(crate) fn record(&self, event: Event) {
        match event {
            Event::Set => self.sets.increment(1),
            Event::Delete => self.deletes.increment(1),
            Event::Invalidation { removed } => {
                self.invalidations.increment(1);
                self.invalidated_entries.increment(removed);
            }
            Event::Tier { failed: true } => self.redis_errors.increment(1),
            Event::Tier { failed: false } => self.redis_skipped.increment(1),
            Event::DecodeError => self.decode_errors.increment(1),
            Event::EncodeError => self.encode_errors.increment(1),
            Event::LockWait => self.lock_waits.increment(1),
            Event::LockTakeover => self.lock_takeovers.increment(1),
            Event::Warmed { entries, failed } => {
                self.warm_runs.increment(1);
                self.warmed_entries.increment(entries);
                if failed {
                    self.warm_errors.increment(1);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn redis_command(&self, took: Duration) {
        self.redis_command.record(took.as_secs_f64());
    }

    pub(crate) fn gauges(&self, stats: &Stats) {
        self.entries.set(stats.entries as f64);
        self.pending.set(stats.pending_invalidations as f64);
        if let Some(state) = stats.breaker {
            self.breaker.set(match state {
                BreakerState::Closed => 0.0,
                BreakerState::HalfOpen => 1.0,
                BreakerState::Open => 2.0,
            });
        }
        if let Some(redis) = stats.redis.filter(|r| r.reachable) {
            self.redis_memory.set(redis.used_memory as f64);
        }
    }
}

/// Descriptions and units, given to the recorder once per process.
fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!(
            CALLS,
            "Cached calls and manual lookups, by how they were answered"
        );
        metrics::describe_histogram!(
            ORIGIN,
            Unit::Seconds,
            "Duration of origin calls (the cached function's body)"
        );
        metrics::describe_counter!("cache_sets_total", "Values stored");
        metrics::describe_counter!("cache_deletes_total", "Keys deleted with delete()");
        metrics::describe_counter!(
            "cache_invalidations_total",
            "Invalidations (patterns, invalidate(), clear())"
        );
        metrics::describe_counter!(
            "cache_invalidated_entries_total",
            "Entries removed by invalidations"
        );
        metrics::describe_counter!(
            "cache_redis_errors_total",
            "Redis operations that failed (the cache went on without Redis)"
        );
        metrics::describe_counter!(
            "cache_redis_skipped_total",
            "Redis operations not attempted: breaker open or outage replay pending"
        );
        metrics::describe_counter!(
            "cache_decode_errors_total",
            "Stored entries that did not decode (treated as misses and removed)"
        );
        metrics::describe_counter!(
            "cache_encode_errors_total",
            "Values that could not be encoded for Redis (kept in-process only)"
        );
        metrics::describe_counter!(
            "cache_lock_waits_total",
            "Calls that waited for another process's computation"
        );
        metrics::describe_counter!(
            "cache_lock_takeovers_total",
            "Waiting calls that took over a lock given up by its holder"
        );
        metrics::describe_counter!("cache_warm_runs_total", "Warmer runs");
        metrics::describe_counter!("cache_warmed_entries_total", "Entries written by warmers");
        metrics::describe_counter!(
            "cache_warm_errors_total",
            "Warmer runs that ended with an error"
        );
        metrics::describe_histogram!(
            "cache_redis_command_duration_seconds",
            Unit::Seconds,
            "Duration of Redis commands"
        );
        metrics::describe_gauge!(
            "cache_breaker_state",
            "Circuit breaker in front of Redis: 0 closed, 1 half-open, 2 open"
        );
        metrics::describe_gauge!(
            "cache_pending_invalidations",
            "Invalidations waiting for Redis to come back"
        );
        metrics::describe_gauge!("cache_entries", "Entries in the in-process tier");
        metrics::describe_gauge!(
            "cache_redis_used_memory_bytes",
            Unit::Bytes,
            "Memory Redis reports in use"
        );
    });
}
