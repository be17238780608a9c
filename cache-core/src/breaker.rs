//! The circuit breaker in front of Redis.
//!
//! Hand-written rather than `recloser` (evaluated, 1.4): the cache must show
//! the breaker's state in `stats()` and `health()` and log its transitions,
//! and `recloser` exposes neither; it also opens only on a failure rate over
//! a full ring buffer, while a dead Redis should open the breaker after a few
//! consecutive failures, before a window fills.
//!
//! - **Closed:** commands run. It opens after `failures` consecutive
//!   failures, or when at least half of the last `window` commands failed.
//! - **Open:** commands are refused at once (no caller waits on Redis) until
//!   the cool-down has passed.
//! - **Half-open:** one command (the probe) runs; success closes the breaker,
//!   failure reopens it for another cool-down. Others are refused meanwhile.
//!
//! Only unavailability counts as failure (timeouts, refused or dropped
//! connections): a command error means Redis answered. Time is
//! `tokio::time::Instant`, so tests can pause it.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Where the breaker stands, in [`Stats::breaker`](crate::Stats::breaker) and health.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Redis is used.
    Closed,
    /// Redis is skipped until the cool-down ends; the in-process tier serves.
    Open,
    /// One probe command decides.
    HalfOpen,
}

/// Breaker settings, from [`CacheBuilder::breaker`](crate::CacheBuilder::breaker).
///
/// ```
/// use cache_core::BreakerConfig;
/// use std::time::Duration;
///
/// let c = BreakerConfig::default().cool_down(Duration::from_secs(2)).consecutive_failures(3);
/// assert_eq!(c.failures, 3);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (default 5).
    pub failures: u32,
    /// Commands in the failure-rate window (default 20); half failing opens it.
    pub window: u32,
    /// How long it stays open before a probe (default 1 s).
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            window: 20,
            cool_down: Duration::from_secs(1),
        }
    }
}

impl BreakerConfig {
    /// Sets the consecutive failures that open the breaker.
    #[must_use]
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.failures = n.max(1);
        self
    }

    /// Sets the failure-rate window.
    #[must_use]
    pub fn window(mut self, n: u32) -> Self {
        self.window = n.max(2);
        self
    }

    /// Sets the cool-down.
    #[must_use]
    pub fn cool_down(mut self, d: Duration) -> Self {
        self.cool_down = d;
        self
    }
}

enum State {
    Closed {
        consecutive: u32,
        recent: VecDeque<bool>,
    },
    Open {
        until: Instant,
    },
    HalfOpen,
}

pub(crate) struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("state", &self.state())
            .finish()
    }
}

/// Leave to run one command; report how it went with [`Permit::record`].
/// A permit dropped unrecorded (the caller was cancelled) counts as a failure
/// if it was the half-open probe, so the breaker cannot stay half-open.
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    recorded: bool,
}

impl Permit<'_> {
    pub(crate) fn record(mut self, ok: bool) {
        self.recorded = true;
        self.breaker.record(ok, self.probe);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.record(false, true);
        }
    }
}

impl Breaker {
    pub(crate) fn new(mut config: BreakerConfig) -> Breaker {
        // The fields are public: clamp what would wedge or overflow.
        config.failures = config.failures.max(1);
        config.window = config.window.max(2);
        config.cool_down = config.cool_down.min(Duration::from_secs(86_400));
        Breaker {
            config,
            state: Mutex::new(Self::closed()),
        }
    }

    fn closed() -> State {
        State::Closed {
            consecutive: 0,
            recent: VecDeque::new(),
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        match &*self.state.lock().unwrap_or_else(PoisonError::into_inner) {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// A permit, or `None` if the command must not run.
    pub(crate) fn allow(&self) -> Option<Permit<'_>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let probe = match &*state {
            State::Closed { .. } => false,
            State::Open { until } if Instant::now() >= *until => {
                *state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => return None,
        };
        Some(Permit {
            breaker: self,
            probe,
            recorded: false,
        })
    }

    /// A probe before the cool-down has ended, for a caller that must know
    /// soon whether Redis answers again (queued invalidations wait for it).
    /// Like the half-open probe, its outcome closes or reopens the breaker;
    /// `None` unless the breaker is open.
    pub(crate) fn probe_early(&self) -> Option<Permit<'_>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(*state, State::Open { .. }) {
            return None;
        }
        *state = State::HalfOpen;
        Some(Permit {
            breaker: self,
            probe: true,
            recorded: false,
        })
    }

    /// Opens a closed breaker for a cool-down without a failure of its own:
    /// another breaker in front of the same server opened (on a cluster, a
    /// bucket of the same master). True if it was closed.
    pub(crate) fn trip(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(*state, State::Closed { .. }) {
            return false;
        }
        *state = State::Open {
            until: Instant::now() + self.config.cool_down,
        };
        true
    }

    fn record(&self, ok: bool, probe: bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if probe {
            if ok {
                *state = Self::closed();
                tracing::info!("Redis answered again: circuit breaker closed");
            } else {
                *state = State::Open {
                    until: Instant::now() + self.config.cool_down,
                };
                tracing::debug!("Redis probe failed: circuit breaker stays open");
            }
            return;
        }
        let State::Closed {
            consecutive,
            recent,
        } = &mut *state
        else {
            return; // a command started before the breaker opened
        };
        *consecutive = if ok { 0 } else { *consecutive + 1 };
        recent.push_back(ok);
        if recent.len() > self.config.window as usize {
            recent.pop_front();
        }
        let failed = recent.iter().filter(|ok| !**ok).count();
        let rate_open = recent.len() == self.config.window as usize && failed * 2 >= recent.len();
        if *consecutive >= self.config.failures || rate_open {
            tracing::warn!(
                consecutive = *consecutive,
                failed_in_window = failed,
                cool_down = ?self.config.cool_down,
                "Redis is failing: circuit breaker open, serving from the in-process tier"
            );
            *state = State::Open {
                until: Instant::now() + self.config.cool_down,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(b: &Breaker, ok: bool) -> bool {
        match b.allow() {
            Some(p) => {
                p.record(ok);
                true
            }
            None => false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_probes_after_cool_down() {
        let b = Breaker::new(BreakerConfig::default());
        for _ in 0..4 {
            assert!(run(&b, false));
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(run(&b, false));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!run(&b, true), "refused while open");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = b.allow().expect("the probe");
        assert!(b.allow().is_none(), "one probe at a time");
        probe.record(false);
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(run(&b, true));
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_a_failure_rate_and_a_dropped_probe_reopens() {
        let b = Breaker::new(BreakerConfig::default().window(10));
        for i in 0..10 {
            assert!(run(&b, i % 2 == 0));
        }
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(b.allow());
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn successes_reset_the_count() {
        let b = Breaker::new(BreakerConfig::default());
        for _ in 0..10 {
            run(&b, false);
            run(&b, false);
            run(&b, true);
            run(&b, true);
            run(&b, true);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trip_opens_a_closed_breaker_for_a_cool_down_and_leaves_others_alone() {
        let b = Breaker::new(BreakerConfig::default());
        assert!(b.trip(), "closed: opened");
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!run(&b, true), "no command while open");
        assert!(!b.trip(), "already open: untouched");
        tokio::time::advance(Duration::from_millis(1_001)).await;
        assert!(run(&b, true), "the probe after the cool-down");
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
