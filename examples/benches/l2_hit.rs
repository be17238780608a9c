//! The shared tier, against raw redis-rs on the same private `redis-server`,
//! in one run:
//!
//! 1. sequential L2 hits (in-process tier off) through a `#[cached]` function
//!    vs a raw `GET` of the same key plus a postcard decode of the same ~1 KB
//!    value;
//! 2. 64 concurrent tasks on one multiplexed connection: `#[cached]` L2 hits
//!    vs raw `GET` + decode, as throughput.
//!
//! `cargo bench -p examples --bench l2_hit` (`BENCH_QUICK=1` for a short run).
//! Starts its own `redis-server`; skipped with a message if there is none.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cache_core::{Cache, cached};
use cache_redis::redis::AsyncCommands;
use examples::{Employee, compare, median};
use tests::redis_server::RedisServer;

const KEYS: u64 = 256;
const TASKS: usize = 64;

#[cached(ttl = "long", key = "employee:<id>")]
async fn get_employee(id: u64) -> Result<Employee, std::io::Error> {
    Ok(Employee::sample(id))
}

fn main() {
    let Some(server) = RedisServer::start_or_skip() else {
        return;
    };
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (rounds, iters, tput_rounds, per_task) = if quick {
        (5, 1000, 3, 100)
    } else {
        (21, 4000, 21, 400)
    };
    // One client thread: on this 2-core machine the other core is Redis's, so
    // the figures measure per-call cost, not contention between runtime workers.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let (cache, raw) = rt.block_on(async {
        let cache = Cache::builder()
            .redis_url(server.url())
            .l1_enabled(false)
            .redis_op_timeout(Duration::from_secs(2))
            .build()
            .await
            .expect("cache");
        cache.clone().install().expect("first install");
        let mut bp = cache.backplane().expect("backplane");
        bp.wait_for(|s| s.connected).await.expect("subscribed");
        for id in 0..KEYS {
            get_employee(id).await.expect("origin");
        }
        // The raw building block: redis-rs's multiplexed connection, its defaults.
        let raw = cache_redis::redis::Client::open(server.url())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        (cache, raw)
    });
    let stored = rt
        .block_on(async {
            let store = cache_redis::RedisStore::new(cache_redis::RedisConfig::new(server.url()))
                .expect("store");
            store.get("cache:employee:1").await
        })
        .expect("get")
        .expect("stored");
    let before = rt.block_on(cache.stats());

    // Raw: GET, then decode the same postcard payload (after the 13-byte envelope header).
    let raw_get = |con: &mut cache_redis::redis::aio::MultiplexedConnection, id: u64| {
        let mut con = con.clone();
        async move {
            let bytes: Vec<u8> = con.get(format!("cache:employee:{id}")).await.expect("GET");
            postcard::from_bytes::<Employee>(&bytes[13..]).expect("decode")
        }
    };

    let seq = compare(
        rounds,
        iters,
        |n| {
            rt.block_on(async {
                let t = Instant::now();
                for i in 0..n {
                    black_box(get_employee(u64::from(i) % KEYS).await.ok());
                }
                t.elapsed()
            })
        },
        |n| {
            let mut con = raw.clone();
            rt.block_on(async {
                let t = Instant::now();
                for i in 0..n {
                    black_box(raw_get(&mut con, u64::from(i) % KEYS).await);
                }
                t.elapsed()
            })
        },
    );

    // `hot`: tasks read the same keys at the same time (ours coalesces them);
    // otherwise each task reads its own 4 keys, so every call is a Redis GET.
    let throughput = |ours: bool, hot: bool| -> f64 {
        rt.block_on(async {
            let t = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for task in 0..TASKS {
                let con = raw.clone();
                set.spawn(async move {
                    let mut con = con;
                    for i in 0..per_task {
                        let id = if hot {
                            (i as u64) % 8
                        } else {
                            (task * 4 + i % 4) as u64 % KEYS
                        };
                        if ours {
                            black_box(get_employee(id).await.ok());
                        } else {
                            black_box(raw_get(&mut con, id).await);
                        }
                    }
                });
            }
            set.join_all().await;
            (TASKS * per_task) as f64 / t.elapsed().as_secs_f64()
        })
    };
    let measure = |hot: bool| {
        throughput(true, hot);
        throughput(false, hot);
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for round in 0..tput_rounds {
            if round % 2 == 0 {
                ours.push(throughput(true, hot));
                raw.push(throughput(false, hot));
            } else {
                raw.push(throughput(false, hot));
                ours.push(throughput(true, hot));
            }
        }
        (median(ours), median(raw))
    };
    let (ours_tp, raw_tp) = measure(false);
    let (ours_hot, raw_hot) = measure(true);

    let after = rt.block_on(cache.stats());
    assert_eq!(
        after.misses, before.misses,
        "every measured call was an L2 hit: {after:?}"
    );
    assert_eq!(after.l1_hits, 0, "the in-process tier was off");

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "l2_hit: value {} B in Redis (envelope + postcard), in-process tier off, medians",
        stored.len()
    );
    println!("  sequential ({rounds} rounds x {iters} calls)");
    println!(
        "    #[cached] L2 hit                 {:>8.1} µs",
        us(seq.ours)
    );
    println!(
        "    raw GET + postcard decode        {:>8.1} µs",
        us(seq.raw)
    );
    println!(
        "    ratio                            {:>8.2}x (target <= 1.10x)",
        seq.ratio()
    );
    println!(
        "  {TASKS} tasks on one connection, each on its own keys ({tput_rounds} rounds x {} calls)",
        TASKS * per_task
    );
    println!("    #[cached] L2 hits                {:>8.0} /s", ours_tp);
    println!("    raw GET + decode                 {:>8.0} /s", raw_tp);
    println!(
        "    ratio                            {:>8.2}x (target >= 0.90x)",
        ours_tp / raw_tp
    );
    println!(
        "  same, all tasks reading the same 8 hot keys (concurrent reads of a key share one GET)"
    );
    println!("    #[cached] L2 hits                {:>8.0} /s", ours_hot);
    println!("    raw GET + decode                 {:>8.0} /s", raw_hot);
    println!(
        "    ratio                            {:>8.2}x",
        ours_hot / raw_hot
    );
}
