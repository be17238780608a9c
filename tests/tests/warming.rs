//! Warming: a warmed `#[cached]` key is a hit for the attribute, a failing
//! or panicking warmer fails alone, a warmed entry replaces other
//! instances' copies, and instances that start together with an
//! `on_start` warmer make one origin pass between them (the claim in
//! Redis), in one process and as ten processes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, Error, Preset, Warmer, cached};
use tests::redis_server::RedisServer;
use tests::support::{Instance, eventually, redis_connection};

static ORIGIN: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "medium", key = "product:<id>", tags = ["catalog"])]
async fn product(id: u64) -> Result<String, std::io::Error> {
    ORIGIN.fetch_add(1, SeqCst);
    Ok(format!("product {id}"))
}

#[cached(ttl = "medium", key = "skipped:<id>", unless = |v: &u64| *v == 0)]
async fn maybe(id: u64) -> u64 {
    id
}

#[tokio::test]
async fn a_warmed_call_is_a_hit_for_the_attribute() {
    let cache = Cache::builder().key_prefix("wm").build().await.unwrap();
    let c = cache.clone();
    cache
        .scope(async move {
            c.add_warmer(Warmer::new("products", |w| async move {
                for id in [1, 2, 3] {
                    w.call(product(id)).await?;
                }
                w.call(maybe(0)).await; // `unless` refuses it: not written
                w.call(maybe(5)).await;
                Ok::<_, std::io::Error>(())
            }))
            .unwrap();
            let before = ORIGIN.load(SeqCst);
            let report = c.warm("products").await.unwrap();
            assert_eq!((report.written, report.error), (4, None));
            assert_eq!(ORIGIN.load(SeqCst) - before, 3);
            // Warming again computes again (it refreshes, it does not read).
            assert_eq!(c.warm("products").await.unwrap().written, 4);
            assert_eq!(ORIGIN.load(SeqCst) - before, 6);
            let hits = c.stats().await.l1_hits;
            assert_eq!(product(2).await.unwrap(), "product 2");
            assert_eq!(ORIGIN.load(SeqCst) - before, 6, "the attribute hit");
            assert_eq!(c.stats().await.l1_hits, hits + 1);
            // Written with the attribute's tags.
            assert_eq!(c.invalidate_tag("catalog").await.unwrap().removed, 3);
            assert_eq!(c.get::<u64>("skipped:0").await.unwrap(), None);
            let stats = c.stats().await;
            assert_eq!(
                (stats.warm_runs, stats.warmed_entries, stats.warm_errors),
                (2, 8, 0)
            );
        })
        .await;
}

#[tokio::test]
async fn a_failing_warmer_fails_alone() {
    let cache = Cache::builder().build().await.unwrap();
    cache
        .warmer("fails", |w| async move {
            w.set("partial", &1u8, Preset::Short).await?;
            Err::<(), _>(Box::<dyn std::error::Error + Send + Sync>::from(
                "database down",
            ))
        })
        .unwrap();
    cache
        .warmer("panics", |_| async move {
            if ORIGIN.load(SeqCst) < usize::MAX {
                panic!("warmer bug");
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    cache
        .warmer("works", |w| async move {
            w.set("fine", &2u8, Preset::Short).await
        })
        .unwrap();
    assert!(matches!(
        cache.warmer("works", |_| async { Ok::<_, Error>(()) }),
        Err(Error::DuplicateWarmer(_))
    ));
    let reports = cache.warm_all().await;
    let summary: Vec<(&str, u64, Option<&str>)> = reports
        .iter()
        .map(|r| (r.name.as_str(), r.written, r.error.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("fails", 1, Some("database down")),
            ("panics", 0, Some("the warmer panicked")),
            ("works", 1, None),
        ]
    );
    assert_eq!(cache.get::<u8>("fine").await.unwrap(), Some(2));
    let e = cache.warm("nope").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "no warmer named \"nope\" (known: fails, panics, works)"
    );
    let stats = cache.stats().await;
    assert_eq!((stats.warm_runs, stats.warm_errors), (3, 2));
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn instances_starting_together_warm_once() {
    let server = RedisServer::start();
    let passes = Arc::new(AtomicUsize::new(0));
    let mut caches = Vec::new();
    for _ in 0..10 {
        caches.push(Instance::on(&server).prefix("w10").connected().await);
    }
    for cache in &caches {
        let passes = Arc::clone(&passes);
        cache
            .add_warmer(
                Warmer::new("catalog", move |w| {
                    let passes = Arc::clone(&passes);
                    async move {
                        passes.fetch_add(1, SeqCst);
                        w.set("catalog:all", &7u32, Preset::Long).await
                    }
                })
                .on_start()
                .every(Duration::from_secs(3600)),
            )
            .unwrap();
    }
    for cache in &caches {
        eventually("each instance ran or skipped its start run", async || {
            let s = cache.stats().await;
            s.warm_runs + s.warm_skipped == 1
        })
        .await;
    }
    assert_eq!(
        passes.load(SeqCst),
        1,
        "one origin pass among ten instances"
    );
    let runs: u64 = {
        let mut n = 0;
        for c in &caches {
            n += c.stats().await.warm_runs;
        }
        n
    };
    assert_eq!(runs, 1);
    // Every instance reads the warmed entry.
    for cache in &caches {
        assert_eq!(cache.get::<u32>("catalog:all").await.unwrap(), Some(7));
    }
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_warmed_entry_replaces_other_instances_copies() {
    let server = RedisServer::start();
    let (a, b) = Instance::on(&server).prefix("wrep").connected_pair().await;
    a.set("price", &1u32, Preset::Long).await.unwrap();
    assert_eq!(b.get::<u32>("price").await.unwrap(), Some(1)); // b keeps a copy
    a.warmer("prices", |w| async move {
        w.set("price", &2u32, Preset::Long).await
    })
    .unwrap();
    assert_eq!(a.warm("prices").await.unwrap().written, 1);
    eventually("b drops its old copy", async || {
        b.get::<u32>("price").await.unwrap() == Some(2)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn ten_processes_starting_together_warm_once() {
    let server = RedisServer::start();
    // A common start instant, late enough for every process to be up.
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    let workers: Vec<std::process::Child> = (0..10)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_warm_worker"))
                .args([server.url(), "wp".to_owned(), start_at.to_string()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut said = Vec::new();
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        said.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    said.sort();
    let mut expected = vec!["skipped".to_owned(); 9];
    expected.insert(0, "ran".to_owned());
    assert_eq!(said, expected);
    let mut con = redis_connection(&server).await;
    let passes: u64 = redis::cmd("GET")
        .arg("wp:origin")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(passes, 1, "one origin pass among ten processes");
}

/// Signals when the last clone of it is dropped.
struct DropSignal(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn a_scheduled_warmer_added_in_a_scope_does_not_keep_its_cache_alive() {
    let (tx, dropped) = tokio::sync::oneshot::channel();
    let signal = Arc::new(DropSignal(Some(tx)));
    let runs = Arc::new(AtomicUsize::new(0));
    {
        let cache = Cache::builder().build().await.unwrap();
        let c = cache.clone();
        let (signal, counted) = (Arc::clone(&signal), Arc::clone(&runs));
        cache
            .scope(async move {
                c.add_warmer(
                    Warmer::new("ticks", move |_| {
                        let _held = Arc::clone(&signal);
                        counted.fetch_add(1, SeqCst);
                        async { Ok::<_, Error>(()) }
                    })
                    .on_start()
                    .every(Duration::from_millis(20)),
                )
                .unwrap();
            })
            .await;
        eventually("the schedule runs", async || runs.load(SeqCst) >= 2).await;
    }
    drop(signal);
    // Every handle is gone: the engine, its warmers and their schedule end.
    tokio::time::timeout(Duration::from_secs(20), dropped)
        .await
        .expect("the warmer (and its cache) was dropped")
        .unwrap();
}
