//! How each case is measured. Every library runs the same loop in the same
//! process and runtime; hit cases alternate the libraries round by round and
//! keep medians, so drift on this VM falls on all of them alike.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::time::{Duration, Instant};

use examples::{median, quantile};

use crate::data::origin_calls;

/// What a row is: who, how configured, in which format.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) library: String,
    pub(crate) setup: String,
    pub(crate) format: String,
    pub(crate) kind: Kind,
}

/// Whose row it is (the chart colours them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// cache-rs.
    Ours,
    /// The raw building block (moka, redis-rs): the baseline of ratios.
    Raw,
    /// Another caching library.
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    Peer,
}

impl Spec {
    pub(crate) fn new(library: impl Into<String>, setup: &str, format: &str, kind: Kind) -> Spec {
        Spec {
            library: library.into(),
            setup: setup.to_owned(),
            format: format.to_owned(),
            kind,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Runs `n` operations and returns the time they took.
pub(crate) type Job = Box<dyn FnMut(u32) -> BoxFuture<Duration>>;

/// One call on key `id`: `Ok` when the caller got its value.
pub(crate) type Call = Box<dyn Fn(u64) -> BoxFuture<Result<(), String>>>;

/// A row of a hit case: its spec and its loop.
pub(crate) struct Entrant {
    pub(crate) spec: Spec,
    pub(crate) job: Job,
}

impl std::fmt::Debug for Entrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entrant").field("spec", &self.spec).finish()
    }
}

/// A loop of `n` calls of `f` over keys `0..keys` (the call is monomorphic
/// inside the loop: the boxing is per batch, not per call).
pub(crate) fn job<F, Fut, T>(keys: u64, f: F) -> Job
where
    F: Fn(u64) -> Fut + Clone + 'static,
    Fut: Future<Output = T> + 'static,
    T: 'static,
{
    Box::new(move |n| {
        let f = f.clone();
        Box::pin(async move {
            let t = Instant::now();
            for i in 0..u64::from(n) {
                black_box(f(black_box(i % keys)).await);
            }
            t.elapsed()
        })
    })
}

/// A [`Call`] from an async function returning anything.
pub(crate) fn call<F, Fut, T, E>(f: F) -> Call
where
    F: Fn(u64) -> Fut + 'static,
    Fut: Future<Output = Result<T, E>> + 'static,
    E: std::fmt::Display,
{
    Box::new(move |id| {
        let fut = f(id);
        Box::pin(async move {
            fut.await
                .map(|v| {
                    black_box(v);
                })
                .map_err(|e| e.to_string())
        })
    })
}

/// Median time per operation of each entrant, and the origin calls made
/// while it was measured (0 when every call was a hit).
#[derive(Debug)]
pub(crate) struct HitFigures {
    pub(crate) per_op: Vec<Duration>,
    pub(crate) origin_calls: Vec<u64>,
}

/// `rounds` rounds of `iters` operations of every entrant, after one warm-up
/// batch each; the order rotates every round.
pub(crate) async fn interleaved(rounds: usize, iters: u32, entrants: &mut [Entrant]) -> HitFigures {
    for e in entrants.iter_mut() {
        (e.job)(iters).await;
    }
    let n = entrants.len();
    let mut times = vec![Vec::with_capacity(rounds); n];
    let mut calls = vec![0; n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let before = origin_calls();
            let d = (entrants[i].job)(iters).await;
            calls[i] += origin_calls() - before;
            times[i].push(d / iters);
        }
    }
    HitFigures {
        per_op: times.into_iter().map(median).collect(),
        origin_calls: calls,
    }
}

/// What `callers` concurrent callers of one cold key cost.
#[derive(Debug)]
pub(crate) struct Stampede {
    pub(crate) origin_calls: u64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) failed: usize,
}

/// `callers` concurrent calls of `call(id)`, released together and polled
/// from one task by `join_all` (each with its own waker), so the libraries'
/// futures need not be `'static` or `Send`.
pub(crate) async fn stampede(call: &Call, id: u64, callers: usize) -> Stampede {
    let before = origin_calls();
    let calls = (0..callers).map(|_| {
        let fut = call(id);
        async move {
            let t = Instant::now();
            let r = fut.await;
            (t.elapsed(), r.is_ok())
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    let mut times: Vec<Duration> = results.into_iter().map(|(d, _)| d).collect();
    times.sort_unstable();
    Stampede {
        origin_calls: origin_calls() - before,
        p50: quantile(&times, 0.5),
        p99: quantile(&times, 0.99),
        failed,
    }
}

/// What an L1-miss call costs with Redis gone.
#[derive(Debug)]
pub(crate) struct Outage {
    /// Each call's time (the bound for calls that did not finish).
    pub(crate) times: Vec<Duration>,
    pub(crate) values: usize,
    pub(crate) errors: Vec<String>,
    pub(crate) timed_out: usize,
}

/// Up to `calls` calls on fresh keys from `first_id`, each abandoned after
/// `bound`; stops after two abandoned calls so the run ends.
pub(crate) async fn outage(call: &Call, first_id: u64, calls: usize, bound: Duration) -> Outage {
    let mut o = Outage {
        times: Vec::new(),
        values: 0,
        errors: Vec::new(),
        timed_out: 0,
    };
    for k in 0..calls as u64 {
        let t = Instant::now();
        match tokio::time::timeout(bound, call(first_id + k)).await {
            Ok(Ok(())) => {
                o.values += 1;
                o.times.push(t.elapsed());
            }
            Ok(Err(e)) => {
                o.errors.push(e);
                o.times.push(t.elapsed());
            }
            Err(_) => {
                o.timed_out += 1;
                o.times.push(bound);
                if o.timed_out == 2 {
                    break;
                }
            }
        }
    }
    o
}
