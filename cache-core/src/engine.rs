//! The engine: what a cache does, behind the [`Cache`](crate::Cache)
//! handle. It owns the tiers of one cache and runs every operation over
//! them:
//!
//! - [`read`]: the read path (in-process hit, single flight, Redis read,
//!   stampede lock wait);
//! - [`compute`]: the origin call, stale-if-error and background refresh;
//! - [`write`](mod@write): stores, deletes, invalidations, `clear`, `expire`;
//! - [`report`]: the periodic stats snapshot in Redis, the view of every
//!   instance, and the count of entries per namespace.
//!
//! What happens is reported through the cache's [`Observer`] (counters,
//! metrics, tracing); the tiers report what happens on their side through
//! [`TierEvents`], which the engine implements.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::breaker::BreakerState;
use crate::config::Config;
use crate::error::Error;
use crate::glob::Glob;
use crate::invalidation::{InvalidationLog, Matcher};
use crate::observe::{Event, Function, Observer};
use crate::options::Options;
use crate::stats::{self, BackplaneStatus, FnCounters, Health, HealthStatus, Shutdown, Stats};
use crate::tier::flight::Flights;
use crate::tier::memory::{Entry, L1, Lookup, Tags};
use crate::tier::{L2, TierError, TierEvents};
use crate::ttl::Ttl;

mod compute;
mod kind;
mod read;
mod report;
mod warm;
mod write;

pub use kind::{Kind, OptionKind, PlainKind, ResultKind};
pub use warm::{DEFAULT_WARM_WINDOW, WarmReport, Warmer, Warming};
pub(crate) use warm::{WarmRun, Warmers, current as warming, outside as outside_warming};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One cache's tiers, state and counters.
pub(crate) struct Engine {
    /// Tells caches apart in per-site counter caches.
    pub(crate) id: u64,
    pub(crate) config: Config,
    l1: L1,
    l2: Option<Arc<L2>>,
    flights: Flights,
    log: InvalidationLog,
    /// Where every count goes (stats, metrics, tracing).
    pub(crate) observer: Arc<Observer>,
    /// Set by [`Engine::shutdown`]: calls run their function and cache nothing.
    closed: AtomicBool,
    /// The registered warmers.
    warmers: Warmers,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.config.name)
            .field("enabled", &self.config.enabled)
            .field("prefix", &self.config.key_prefix)
            .field("l1", &self.l1)
            .finish_non_exhaustive()
    }
}

/// The settings of one call through the engine: the function's (or manual
/// call's) [`Options`], its counters, and what this call has learnt so far.
#[derive(Clone, Copy)]
pub(crate) struct Spec<'a> {
    pub(crate) opts: &'a Options,
    pub(crate) site: Option<&'a Function>,
    /// When the call started, if its `tracing` event will be emitted.
    pub(crate) started: Option<tokio::time::Instant>,
    /// Set when this call's Redis read just failed: do not wait on Redis
    /// again to write the computed value.
    pub(crate) skip_l2_write: bool,
    /// A background refresh, not a caller's miss.
    pub(crate) background: bool,
    /// The call's tags (`#[cached(tags = [...])]`): its stored value joins
    /// them, and their invalidation removes it.
    pub(crate) tags: &'a [String],
}

impl<'a> Spec<'a> {
    pub(crate) fn new(opts: &'a Options, site: Option<&'a Function>) -> Spec<'a> {
        Spec {
            opts,
            site,
            started: None,
            skip_l2_write: false,
            background: false,
            tags: &[],
        }
    }

    /// The call's tags, shared by the in-process entries it stores.
    pub(crate) fn owned_tags(&self) -> Tags {
        (!self.tags.is_empty()).then(|| Arc::from(self.tags))
    }
}

impl Engine {
    /// An engine over `config` and, if given, the Redis tier (made with the
    /// same `observer`), whose background work (replay, backplane) starts
    /// now, reporting to the engine (needs a Tokio runtime).
    pub(crate) fn start(config: Config, observer: Arc<Observer>, l2: Option<L2>) -> Arc<Engine> {
        let subscribe = config.backplane;
        let engine = Arc::new(Engine {
            id: NEXT_ID.fetch_add(1, Relaxed),
            l1: L1::new(config.max_entries),
            config,
            l2: l2.map(Arc::new),
            flights: Flights::new(),
            log: InvalidationLog::default(),
            observer,
            closed: AtomicBool::new(false),
            warmers: Warmers::default(),
        });
        if let Some(l2) = &engine.l2 {
            let events: Weak<dyn TierEvents> = Arc::downgrade(&engine) as Weak<Engine>;
            l2.start(events, subscribe);
        }
        engine.start_reporting();
        engine
    }

    /// Whether [`shutdown`](Self::shutdown) has run.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// See [`Cache::shutdown`](crate::Cache::shutdown).
    pub(crate) async fn shutdown(&self, within: Duration) -> Shutdown {
        let deadline = tokio::time::Instant::now() + within;
        self.closed.store(true, Relaxed);
        let report = match &self.l2 {
            Some(l2) => l2.shutdown(deadline).await,
            None => Shutdown::default(),
        };
        // Nothing tells this instance about other instances' invalidations
        // any more: its copies go.
        self.forget_everything_local();
        if report.unflushed.is_empty() {
            tracing::info!(locks_released = report.locks_released, "cache shut down");
        } else {
            tracing::warn!(
                unflushed = ?report.unflushed,
                journaled = report.journaled,
                "cache shut down with invalidations that did not reach Redis"
            );
        }
        report
    }

    pub(crate) fn backplane(&self) -> Option<tokio::sync::watch::Receiver<BackplaneStatus>> {
        self.l2.as_deref().map(L2::status)
    }

    pub(crate) fn breaker(&self) -> Option<BreakerState> {
        self.l2.as_deref().map(L2::breaker_state)
    }

    /// Invalidations waiting for Redis (0 without it).
    pub(crate) fn pending(&self) -> u64 {
        self.l2.as_deref().map_or(0, L2::pending)
    }

    pub(crate) fn resolve_ttl(&self, ttl: Ttl) -> Duration {
        self.config.ttls.resolve(ttl)
    }

    /// Drops everything in the in-process tier and makes racing computations
    /// discard their results.
    fn forget_everything_local(&self) {
        let _recording = self.log.begin(Arc::new(Glob::new("*")));
        self.l1.clear();
    }

    /// Reports `event` for the call's function, if any.
    #[inline]
    fn record(&self, site: Option<&Function>, event: Event) {
        self.observer.record(site, event);
    }

    /// Counts and logs a failure of the shared tier; in strict mode, the
    /// error the manual API returns (callers on the attribute path ignore it).
    fn tier_error(&self, op: &'static str, key: &str, error: &TierError) -> Result<(), Error> {
        let failed = error.is_failure();
        self.record(None, Event::Tier { failed });
        if failed {
            tracing::warn!(op, key, %error, "Redis failed; continuing with the in-process tier");
        } else {
            tracing::debug!(op, key, %error, "Redis skipped");
        }
        if self.config.strict {
            return Err(Error::Unavailable {
                op,
                reason: error.to_string(),
            });
        }
        Ok(())
    }

    /// `memory`, or `redis` with a shared tier.
    pub(crate) fn backend(&self) -> &'static str {
        if self.l2.is_some() { "redis" } else { "memory" }
    }

    /// See [`Cache::stats`](crate::Cache::stats).
    pub(crate) async fn stats(&self) -> Stats {
        let mut stats = self.local_stats();
        if let Some(l2) = &self.l2 {
            let (redis, nodes) = redis_stats(l2, true).await;
            stats.redis = Some(redis);
            stats.redis_nodes = nodes;
        }
        self.observer.gauges(&stats);
        stats
    }

    /// This instance's counters and state, without asking Redis anything.
    pub(crate) fn local_stats(&self) -> Stats {
        self.l1.sync();
        let functions = self.observer.functions();
        let counters: Vec<&FnCounters> = functions.iter().map(|f| &f.counters).collect();
        let mut stats = stats::snapshot(
            self.backend(),
            self.config.enabled,
            self.observer.counters(),
            &counters,
            self.l1.entry_count(),
        );
        if let Some(l2) = &self.l2 {
            stats.backplane = Some(*l2.status().borrow());
            stats.breaker = Some(l2.breaker_state());
            stats.pending_invalidations = l2.pending();
        }
        stats
    }

    /// See [`Cache::health`](crate::Cache::health).
    pub(crate) async fn health(&self) -> Health {
        let backend = self.backend();
        let started = std::time::Instant::now();
        let mut error = None;
        let breaker = self.breaker();
        let status = if !self.config.enabled {
            HealthStatus::Disabled
        } else if let Some(l2) = &self.l2 {
            match l2.ping().await {
                Ok(_) if l2.breaker_state() == BreakerState::Closed => HealthStatus::Healthy,
                Ok(_) => HealthStatus::Degraded,
                Err(e) => {
                    error = Some(e.to_string());
                    HealthStatus::Degraded
                }
            }
        } else {
            let key = "\u{0}health-probe".to_owned();
            let probe = Entry::new(Arc::new(started), Duration::from_secs(1));
            self.l1.insert(key.clone(), probe);
            let ok = self.l1.get::<std::time::Instant>(&key);
            self.l1.remove(&key);
            match ok {
                Lookup::Hit(t) if t == started => HealthStatus::Healthy,
                _ => HealthStatus::Degraded,
            }
        };
        Health {
            status,
            backend,
            latency: started.elapsed(),
            entries: self.l1.entry_count(),
            breaker,
            error,
        }
    }
}

/// What Redis holds for the cache: memory and key count (`INFO`, `DBSIZE`),
/// summed and per master, and (with `entries`) the entries counted from the
/// index sets.
pub(crate) async fn redis_stats(
    l2: &L2,
    entries: bool,
) -> (stats::RedisStats, Vec<stats::RedisNodeStats>) {
    let Ok(info) = l2.info().await else {
        return (
            stats::RedisStats {
                reachable: false,
                used_memory: 0,
                entries: 0,
                entries_exact: false,
                db_keys: 0,
            },
            Vec::new(),
        );
    };
    let (entries, entries_exact) = if entries {
        match l2.namespaces().await {
            Ok(ns) => (
                ns.iter().map(|n| n.entries).sum(),
                ns.iter().all(|n| n.exact),
            ),
            Err(_) => (0, false),
        }
    } else {
        (0, false)
    };
    let nodes = info
        .nodes
        .iter()
        .map(|n| stats::RedisNodeStats {
            address: n.address.clone(),
            reachable: n.reachable,
            used_memory: n.used_memory,
            db_keys: n.keys,
        })
        .collect();
    (
        stats::RedisStats {
            reachable: true,
            used_memory: info.used_memory,
            entries,
            entries_exact,
            db_keys: info.keys,
        },
        nodes,
    )
}

impl TierEvents for Engine {
    fn subscribed(&self) {
        // Whatever was published while we were not listening is lost:
        // nothing in the in-process tier can be proven fresh. After a gap,
        // computations that straddled it do not store either.
        self.forget_everything_local();
    }

    fn remote_change(&self, glob: &Glob) {
        let _recording = self.log.begin(Arc::new(glob.clone()));
        self.l1.remove_matching(glob);
        self.record(None, Event::BackplaneApplied);
    }

    fn remote_tag(&self, tag: &str) {
        let _recording = self.log.begin(Matcher::Tag(tag.into()));
        self.l1.remove_tagged(tag);
        self.record(None, Event::BackplaneApplied);
    }
}
