//! Concurrent callers of a cold key share one origin call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, cached};
use tokio::sync::{Barrier, Notify};

/// Not `Clone`: each caller must get its own error.
#[derive(Debug, PartialEq)]
struct OriginError(usize);

struct Origin {
    calls: AtomicUsize,
    gate: Notify,
    /// Calls with a number below this fail.
    fail_below: usize,
}

impl Origin {
    fn new(fail_below: usize) -> Arc<Origin> {
        Arc::new(Origin {
            calls: AtomicUsize::new(0),
            gate: Notify::new(),
            fail_below,
        })
    }

    #[cached(key = "hot:<id>")]
    async fn load(&self, id: u32) -> Result<String, OriginError> {
        let n = self.calls.fetch_add(1, SeqCst);
        self.gate.notified().await;
        if n < self.fail_below {
            return Err(OriginError(n));
        }
        Ok(format!("value {id}"))
    }
}

fn spawn_load(
    cache: &Cache,
    origin: &Arc<Origin>,
) -> tokio::task::JoinHandle<Result<String, OriginError>> {
    let origin = Arc::clone(origin);
    tokio::spawn(cache.scope(async move { origin.load(1).await }))
}

async fn run_callers(
    cache: &Cache,
    origin: &Arc<Origin>,
    callers: usize,
) -> Vec<Result<String, OriginError>> {
    let barrier = Arc::new(Barrier::new(callers + 1));
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (origin, barrier) = (Arc::clone(origin), Arc::clone(&barrier));
            tokio::spawn(cache.scope(async move {
                barrier.wait().await;
                origin.load(1).await
            }))
        })
        .collect();
    barrier.wait().await;
    // Open the gate for every origin call that happens, until all callers are done.
    let opener = {
        let origin = Arc::clone(origin);
        tokio::spawn(async move {
            loop {
                origin.gate.notify_one();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut results = Vec::with_capacity(callers);
    for t in tasks {
        results.push(t.await.expect("caller task"));
    }
    opener.abort();
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_cold_callers_one_origin_call() {
    let cache = Cache::builder().build_blocking().unwrap();
    let origin = Origin::new(0);
    let results = run_callers(&cache, &origin, 1000).await;
    assert!(results.iter().all(|r| r.as_deref() == Ok("value 1")));
    assert_eq!(origin.calls.load(SeqCst), 1);
    let stats = cache.stats().await;
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.hits + stats.coalesced, 999);
    assert_eq!(stats.sets, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_a_failed_leader_retry_with_their_own_call() {
    let cache = Cache::builder().build_blocking().unwrap();
    let origin = Origin::new(1); // the first call fails, later ones succeed
    let results = run_callers(&cache, &origin, 50).await;
    let errors: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(
        errors,
        vec![&OriginError(0)],
        "only the failed leader's caller sees its error"
    );
    assert_eq!(origin.calls.load(SeqCst), 2, "one retry for all followers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_gets_its_own_error_when_the_origin_keeps_failing() {
    let cache = Cache::builder().build_blocking().unwrap();
    let origin = Origin::new(usize::MAX);
    let results = run_callers(&cache, &origin, 20).await;
    assert!(results.iter().all(Result::is_err));
    let mut seen: Vec<usize> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.0))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 20, "no error value was shared between callers");
    assert_eq!(cache.stats().await.sets, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_does_not_strand_followers() {
    let cache = Cache::builder().build_blocking().unwrap();
    let origin = Origin::new(0);
    let leader = spawn_load(&cache, &origin);
    while origin.calls.load(SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let follower = spawn_load(&cache, &origin);
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // The follower takes over: it becomes the leader and calls the origin.
    while origin.calls.load(SeqCst) < 2 {
        origin.gate.notify_one();
        tokio::task::yield_now().await;
    }
    origin.gate.notify_one();
    assert_eq!(follower.await.unwrap().unwrap(), "value 1");
}

#[tokio::test(start_paused = true)]
async fn waiting_is_bounded() {
    let cache = Cache::builder()
        .single_flight_wait(Duration::from_secs(2))
        .build_blocking()
        .unwrap();
    let origin = Origin::new(0);
    let stuck = spawn_load(&cache, &origin);
    while origin.calls.load(SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // The leader never finishes; after the bound the follower computes itself.
    let follower = spawn_load(&cache, &origin);
    while origin.calls.load(SeqCst) < 2 {
        tokio::time::advance(Duration::from_millis(500)).await;
    }
    // Both origin calls are parked on the gate now: open it for both.
    origin.gate.notify_waiters();
    assert_eq!(follower.await.unwrap().unwrap(), "value 1");
    assert_eq!(stuck.await.unwrap().unwrap(), "value 1");
    assert_eq!(cache.stats().await.single_flight_timeouts, 1);
}
