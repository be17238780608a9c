//! `Cache::shutdown` on real `redis-server` processes: invalidations queued
//! during an outage are flushed when Redis is back before the deadline,
//! reported when it is not, held stampede locks are released so that other
//! instances go on at once, and afterwards calls run their function and
//! cache nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{BreakerConfig, Cache, Preset, cached};
use tests::redis_server::{RedisServer, ServerConfig};
use tests::support::{Instance, connected, redis_store};
use tokio::sync::watch;

/// An instance whose breaker opens at the first failure and would not
/// probe Redis again for a minute: only the shutdown's flush brings queued
/// invalidations back within a test.
fn slow_to_recover(server: &RedisServer) -> Cache {
    Instance::on(server)
        .configure(|b| {
            b.redis_op_timeout(Duration::from_secs(2)).breaker(
                BreakerConfig::default()
                    .consecutive_failures(1)
                    .cool_down(Duration::from_secs(60)),
            )
        })
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_shutdown_flushes_what_was_queued_once_redis_is_back() {
    let mut server = RedisServer::start_with(ServerConfig::durable());
    let a = slow_to_recover(&server);
    connected(&a).await;
    a.set("employee:1", &1u8, Preset::Long).await.unwrap();
    let store = redis_store(&server);

    server.kill();
    let done = a.delete("employee:1").await.unwrap();
    assert!(done.queued, "{done:?}");
    server.restart();
    // At once, before the replay's next probe: the shutdown flushes it.
    let report = a.shutdown(Duration::from_secs(20)).await;
    assert_eq!(report.unflushed, Vec::<String>::new());
    assert!(!store.exists("cache:employee:1").await.unwrap(), "flushed");
    assert_eq!(a.pending_invalidations(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_shutdown_while_redis_is_away_reports_what_it_could_not_flush() {
    let mut server = RedisServer::start();
    let a = slow_to_recover(&server);
    connected(&a).await;
    server.kill();
    assert!(a.invalidate("user:42:*").await.unwrap().queued);
    assert!(a.delete("employee:7").await.unwrap().queued);
    let report = a.shutdown(Duration::from_millis(300)).await;
    assert_eq!(
        report.unflushed,
        vec!["cache:user:42:*".to_owned(), "cache:employee:7".to_owned()]
    );
    assert!(!report.journaled, "no journal configured");
}

/// A function whose origin waits at a gate, counting its calls.
struct Held {
    calls: AtomicUsize,
    gate: watch::Sender<bool>,
}

impl Held {
    #[cached(ttl = "long", key = "report:<id>")]
    async fn report(&self, id: u32) -> u32 {
        self.calls.fetch_add(1, SeqCst);
        let _ = self.gate.subscribe().wait_for(|open| *open).await;
        id
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_shutdown_releases_held_locks_so_the_other_instance_goes_on() {
    let server = RedisServer::start();
    // Locks that would hold the other instance for a minute.
    let instance = || {
        Instance::on(&server).configure(|b| {
            b.redis_op_timeout(Duration::from_secs(2))
                .lock_ttl(Duration::from_secs(60))
                .lock_wait(Duration::from_secs(60))
                .single_flight_wait(Duration::from_secs(90))
                .stats_interval(Duration::from_millis(100))
        })
    };
    let (a, b) = (instance().connected().await, instance().connected().await);
    let held = Arc::new(Held {
        calls: AtomicUsize::new(0),
        gate: watch::channel(false).0,
    });
    let holder = {
        let (a, held) = (a.clone(), Arc::clone(&held));
        tokio::spawn(async move { a.scope(held.report(1)).await })
    };
    tests::support::eventually("A holds the lock", async || held.calls.load(SeqCst) == 1).await;
    let waiter = {
        let (b, held) = (b.clone(), Arc::clone(&held));
        tokio::spawn(async move { b.scope(held.report(1)).await })
    };
    tests::support::eventually("B waits on A's lock", async || {
        b.stats().await.lock_waits == 1
    })
    .await;

    tests::support::eventually("both instances report", async || {
        b.stats_all()
            .await
            .is_ok_and(|all| all.instances.len() == 2)
    })
    .await;

    let report = a.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.locks_released, 1);
    // B takes over at once: its own origin call, well before the lock's TTL.
    tests::support::eventually("B computes", async || held.calls.load(SeqCst) == 2).await;
    held.gate.send_replace(true);
    assert_eq!(waiter.await.unwrap(), 1);
    assert_eq!(holder.await.unwrap(), 1);

    // After the shutdown, A runs the function every time and caches nothing.
    let before = held.calls.load(SeqCst);
    assert_eq!(a.scope(held.report(2)).await, 2);
    assert_eq!(a.scope(held.report(2)).await, 2);
    assert_eq!(held.calls.load(SeqCst), before + 2);
    assert_eq!(a.get::<u32>("report:2").await.unwrap(), None);
    // And it left the live instances.
    let all = b.stats_all().await.unwrap();
    assert_eq!(all.instances.len(), 1, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn with_a_journal_an_instance_killed_during_an_outage_loses_no_invalidation() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let mut server = RedisServer::start_with(ServerConfig::durable());
    let dir = tempfile::tempdir().unwrap();
    let writer = Instance::on(&server).prefix("jr").connected().await;
    writer.set("employee:1", &1u8, Preset::Long).await.unwrap();
    let store = redis_store(&server);
    store
        .set("control", b"kept", Duration::from_secs(600))
        .await
        .unwrap();

    server.kill();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_journal_worker"))
        .args([
            &server.url(),
            &dir.path().display().to_string(),
            "jr",
            "employee:1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(worker.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "queued");
    worker.kill().unwrap(); // SIGKILL: no shutdown, no replay
    worker.wait().unwrap();

    server.restart();
    tests::support::eventually("Redis back with its data", async || {
        store.get("control").await.is_ok_and(|v| v.is_some())
    })
    .await;
    assert!(
        store.exists("jr:employee:1").await.unwrap(),
        "the killed instance never replayed its invalidation"
    );

    // The next instance with the same directory replays it.
    let next = Instance::on(&server)
        .prefix("jr")
        .configure(|b| b.outage_journal(dir.path()))
        .build();
    tests::support::eventually("the invalidation replayed", async || {
        !store.exists("jr:employee:1").await.unwrap_or(true)
    })
    .await;
    tests::support::eventually("the journal emptied", async || {
        next.pending_invalidations() == 0
            && std::fs::read_dir(dir.path())
                .unwrap()
                .all(|f| f.unwrap().metadata().unwrap().len() == 0)
    })
    .await;
}
