//! What a cache reports beyond its own counters: a snapshot of them written
//! to Redis every [`stats_interval`](crate::CacheBuilder::stats_interval) by
//! a background task, so that any instance can show every live instance and
//! their sum ([`Engine::stats_all`]); the entries per namespace
//! ([`Engine::namespaces`]). The same task keeps the metrics gauges current.
//!
//! Nothing here is on the path of a call: the task reads the counters the
//! calls already keep, and writes one key per period.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Engine, redis_stats};
use crate::breaker::BreakerState;
use crate::error::Error;
use crate::stats::{ClusterStats, InstanceStats, NamespaceStats, Stats};

/// A snapshot lives this many periods: an instance that stops drops out of
/// [`Engine::stats_all`] within that time, and one slow write does not.
const SNAPSHOT_PERIODS: u32 = 3;

impl Engine {
    /// Starts the reporting task, if there is something to report (a shared
    /// tier, or metrics gauges) and a Tokio runtime to run it. It holds the
    /// engine weakly and ends with it.
    pub(super) fn start_reporting(self: &Arc<Self>) {
        let interval = self.config.stats_interval;
        if interval.is_zero() || (self.l2.is_none() && !self.observer.has_metrics()) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let engine = Arc::downgrade(self);
        rt.spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(engine) = engine.upgrade().filter(|e| !e.is_closed()) else {
                    return;
                };
                engine.report(interval).await;
            }
        });
    }

    /// One period's report: the gauges, and this instance's snapshot in Redis.
    async fn report(&self, interval: Duration) {
        let mut stats = self.local_stats();
        let Some(l2) = &self.l2 else {
            self.observer.gauges(&stats);
            return;
        };
        // While Redis fails, the breaker's probes belong to calls, and a
        // report every period would only add failures.
        if l2.breaker_state() != BreakerState::Closed {
            self.observer.gauges(&stats);
            return;
        }
        if self.observer.has_metrics() {
            stats.redis = Some(redis_stats(l2, false).await.0);
        }
        self.observer.gauges(&stats);
        stats.redis = None;
        let snapshot = self.instance_stats(stats);
        let Ok(bytes) = serde_json::to_vec(&snapshot) else {
            return;
        };
        if let Err(error) = l2
            .put_snapshot(&bytes, interval.saturating_mul(SNAPSHOT_PERIODS))
            .await
        {
            tracing::debug!(%error, "stats snapshot not written");
        }
    }

    /// `stats` as this instance's snapshot.
    fn instance_stats(&self, stats: Stats) -> InstanceStats {
        let written_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        InstanceStats {
            instance: self
                .l2
                .as_ref()
                .map_or_else(String::new, |l2| l2.instance()),
            host: std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()),
            pid: std::process::id(),
            written_at_ms,
            stats,
        }
    }

    /// See [`Cache::stats_all`](crate::Cache::stats_all).
    pub(crate) async fn stats_all(&self) -> Result<ClusterStats, Error> {
        let own = self.instance_stats(self.local_stats());
        let Some(l2) = &self.l2 else {
            return Ok(ClusterStats::sum(vec![own], None));
        };
        let snapshots = l2.snapshots().await.map_err(|e| Error::Unavailable {
            op: "stats_all",
            reason: e.to_string(),
        })?;
        let mut others: Vec<InstanceStats> = snapshots
            .iter()
            .filter_map(
                |bytes| match serde_json::from_slice::<InstanceStats>(bytes) {
                    Ok(s) => Some(s),
                    Err(error) => {
                        tracing::debug!(%error, "ignoring a stats snapshot that does not decode");
                        None
                    }
                },
            )
            .filter(|s| s.instance != own.instance)
            .collect();
        others.sort_by(|a, b| (&a.host, a.pid, &a.instance).cmp(&(&b.host, b.pid, &b.instance)));
        let mut instances = Vec::with_capacity(others.len() + 1);
        instances.push(own);
        instances.extend(others);
        Ok(ClusterStats::sum(
            instances,
            Some(redis_stats(l2, true).await),
        ))
    }

    /// See [`Cache::namespaces`](crate::Cache::namespaces).
    /// See [`Cache::inspect`](crate::Cache::inspect).
    pub(crate) async fn inspect(
        &self,
        key: &str,
    ) -> Result<Option<crate::stats::EntryInfo>, Error> {
        let Some(l2) = &self.l2 else {
            return Ok(None);
        };
        l2.inspect(key).await.map_err(|e| Error::Unavailable {
            op: "inspect",
            reason: e.to_string(),
        })
    }

    pub(crate) async fn namespaces(&self, depth: usize) -> Result<Vec<NamespaceStats>, Error> {
        if let Some(l2) = &self.l2 {
            return l2
                .namespaces_at(depth)
                .await
                .map_err(|e| Error::Unavailable {
                    op: "namespaces",
                    reason: e.to_string(),
                });
        }
        let head = if self.config.key_prefix.is_empty() {
            String::new()
        } else {
            format!("{}:", self.config.key_prefix)
        };
        self.l1.sync();
        Ok(NamespaceStats::largest_first(
            self.l1
                .namespaces(&head, depth)
                .into_iter()
                .map(|(prefix, entries)| (prefix, entries, true)),
        ))
    }
}
