//! The shared tier on a Redis Cluster (3 masters, started here) against
//! raw redis-rs on the same cluster, and against one server, in one run:
//!
//! 1. sequential L2 hits (in-process tier off) through a `#[cached]`-style
//!    read vs a raw cluster `GET` of the same key plus a postcard decode of
//!    the same ~1 KB value; the same on one server, for comparison;
//! 2. 64 concurrent tasks reading their own keys: the cache vs raw cluster
//!    `GET` + decode, as throughput;
//! 3. removing the 1,000 keys of one prefix (`user:42:*`) among 100,000
//!    (quick) or 1,000,000 keys: on the cluster (one bucket, one shard) and
//!    on one server; and a top-level pattern (`team:*`, 1,000 keys spread
//!    over every bucket), which fans out to every bucket.
//!
//! `cargo bench -p examples --bench cluster` (`BENCH_QUICK=1` for a short
//! run). Starts its own servers; skipped with a message without
//! `redis-server`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cache_core::{Cache, Preset};
use cache_redis::redis;
use examples::{Employee, compare, median};
use tests::redis_cluster::RedisCluster;
use tests::redis_server::RedisServer;

const KEYS: u64 = 256;
const TASKS: usize = 64;
const MATCHING: usize = 1_000;
const PREFIX: &str = "bench";

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// An instance on the cluster (or on `url`), in-process tier `l1`.
async fn cache(cluster: Option<&RedisCluster>, url: &str, l1: bool) -> Cache {
    let builder = Cache::builder()
        .key_prefix(PREFIX)
        .l1_enabled(l1)
        .redis_op_timeout(Duration::from_secs(30));
    let builder = match cluster {
        Some(c) => builder.redis_cluster(c.seed_urls()),
        None => builder.redis_url(url),
    };
    builder.build().await.expect("cache")
}

/// A tag whose slot is in `slots` (a master's range in the harness).
fn tag_in(slots: std::ops::Range<u16>) -> String {
    (0u32..)
        .map(|n| format!("m{n}"))
        .find(|t| slots.contains(&cache_redis::key_slot(t.as_bytes())))
        .expect("a tag for every range")
}

/// Plain keys on every master in equal shares, pipelined straight to each
/// master: the other data a `SCAN` would walk.
async fn fill_cluster(cluster: &RedisCluster, from: usize, to: usize) {
    let per = cache_redis::SLOTS.div_ceil(3);
    for m in 0..3u16 {
        let tag = tag_in(m * per..((m + 1) * per).min(cache_redis::SLOTS));
        let url = format!("redis://127.0.0.1:{}", cluster.port(usize::from(m)));
        let mut con = redis::Client::open(url)
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let mut i = from + usize::from(m);
        while i < to {
            let mut pipe = redis::pipe();
            let mut n = 0;
            while i < to && n < 10_000 {
                pipe.cmd("SET")
                    .arg(format!("other:{{{tag}}}:{i}"))
                    .arg("x")
                    .ignore();
                i += 3;
                n += 1;
            }
            pipe.query_async::<()>(&mut con).await.expect("fill");
        }
    }
}

async fn write_matching(cache: &Cache, pattern: impl Fn(usize) -> String) {
    let tasks: Vec<_> = (0..MATCHING)
        .map(|i| {
            let cache = cache.clone();
            let key = pattern(i);
            tokio::spawn(async move { cache.set(&key, &i, Preset::Long).await.expect("set") })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

/// Sequential L2 hits of the `KEYS` employees through `cache`, against raw
/// `GET`s of their stored `names` on `raw` plus a postcard decode.
fn sequential<C>(
    rt: &tokio::runtime::Runtime,
    cache: &Cache,
    raw: C,
    names: &[String],
    rounds: usize,
    iters: u32,
) -> examples::Comparison
where
    C: redis::aio::ConnectionLike + Clone,
{
    compare(
        rounds,
        iters,
        |n| {
            rt.block_on(async {
                let t = Instant::now();
                for i in 0..n {
                    let key = format!("employee:{}", u64::from(i) % KEYS);
                    black_box(cache.get::<Employee>(&key).await.expect("get"));
                }
                t.elapsed()
            })
        },
        |n| {
            let mut con = raw.clone();
            rt.block_on(async {
                let t = Instant::now();
                for i in 0..n {
                    let name = &names[(u64::from(i) % KEYS) as usize];
                    let bytes: Vec<u8> = redis::cmd("GET")
                        .arg(name)
                        .query_async(&mut con)
                        .await
                        .expect("GET");
                    black_box(decode(&bytes));
                }
                t.elapsed()
            })
        },
    )
}

/// The `Employee` in a stored entry (after the 13-byte envelope header).
fn decode(bytes: &[u8]) -> Employee {
    postcard::from_bytes::<Employee>(&bytes[13..]).expect("decode")
}

fn main() {
    let Some(single) = RedisServer::start_or_skip() else {
        return;
    };
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (rounds, iters, tput_rounds, per_task) = if quick {
        (5, 1000, 3, 100)
    } else {
        (21, 4000, 11, 400)
    };
    let others = if quick { 100_000 } else { 1_000_000 };
    let started = Instant::now();
    eprintln!("[cluster bench] starting a 3-master cluster");
    let cluster = RedisCluster::start(3, 0);
    eprintln!("[cluster bench] cluster up after {:.1?}", started.elapsed());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // 1 and 2: hits.
    let (on_cluster, on_single, raw, raw_single) = rt.block_on(async {
        let on_cluster = cache(Some(&cluster), "", false).await;
        let on_single = cache(None, &single.url(), false).await;
        for id in 0..KEYS {
            let e = Employee::sample(id);
            on_cluster
                .set(&format!("employee:{id}"), &e, Preset::Long)
                .await
                .expect("set");
            on_single
                .set(&format!("employee:{id}"), &e, Preset::Long)
                .await
                .expect("set");
        }
        // The raw building blocks: redis-rs's cluster client and its
        // multiplexed connection, their defaults.
        let raw = redis::cluster::ClusterClient::new(cluster.seed_urls())
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("cluster connection");
        let raw_single = redis::Client::open(single.url())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        (on_cluster, on_single, raw, raw_single)
    });
    // The names the cache stores under: bucket-tagged on the cluster.
    let layout = cache_redis::Layout::cluster(PREFIX);
    let names: Vec<String> = (0..KEYS)
        .map(|id| {
            layout
                .physical(&format!("{PREFIX}:employee:{id}"))
                .into_owned()
        })
        .collect();

    eprintln!("[cluster bench] sequential hits");
    let single_names: Vec<String> = (0..KEYS)
        .map(|id| format!("{PREFIX}:employee:{id}"))
        .collect();
    let seq = sequential(&rt, &on_cluster, raw.clone(), &names, rounds, iters);
    let seq_single = sequential(
        &rt,
        &on_single,
        raw_single.clone(),
        &single_names,
        rounds,
        iters,
    );

    eprintln!("[cluster bench] {TASKS} tasks");
    let throughput = |ours: bool| -> f64 {
        rt.block_on(async {
            let t = Instant::now();
            let mut set = tokio::task::JoinSet::new();
            for task in 0..TASKS {
                let (cache, mut con, names) = (on_cluster.clone(), raw.clone(), names.clone());
                set.spawn(async move {
                    for i in 0..per_task {
                        let id = (task * 4 + i % 4) % KEYS as usize;
                        if ours {
                            let key = format!("employee:{id}");
                            black_box(cache.get::<Employee>(&key).await.expect("get"));
                        } else {
                            let bytes: Vec<u8> = redis::cmd("GET")
                                .arg(&names[id])
                                .query_async(&mut con)
                                .await
                                .expect("GET");
                            black_box(decode(&bytes));
                        }
                    }
                });
            }
            set.join_all().await;
            (TASKS * per_task) as f64 / t.elapsed().as_secs_f64()
        })
    };
    throughput(true);
    throughput(false);
    let (mut ours_tp, mut raw_tp) = (Vec::new(), Vec::new());
    for round in 0..tput_rounds {
        if round % 2 == 0 {
            ours_tp.push(throughput(true));
            raw_tp.push(throughput(false));
        } else {
            raw_tp.push(throughput(false));
            ours_tp.push(throughput(true));
        }
    }
    let (ours_tp, raw_tp) = (median(ours_tp), median(raw_tp));

    // 3: invalidation among `others` other keys.
    eprintln!("[cluster bench] filling {others} other keys on each deployment");
    let inv_rounds = if quick { 3 } else { 5 };
    let (cl_prefix, one_prefix, cl_top) = rt.block_on(async {
        fill_cluster(&cluster, 0, others).await;
        let mut con = raw_single.clone();
        tests::redis_server::fill_plain_keys(&mut con, 0, others)
            .await
            .expect("fill");
        let on_cluster = cache(Some(&cluster), "", false).await;
        let on_single = cache(None, &single.url(), false).await;
        let (mut cl, mut one, mut top) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..inv_rounds {
            for (cache, times) in [(&on_cluster, &mut cl), (&on_single, &mut one)] {
                write_matching(cache, |i| format!("user:42:item:{i}")).await;
                let t = Instant::now();
                let n = cache
                    .invalidate("user:42:*")
                    .await
                    .expect("invalidate")
                    .removed;
                times.push(t.elapsed().as_secs_f64());
                assert_eq!(n as usize, MATCHING);
            }
            write_matching(&on_cluster, |i| format!("team:{i}:name")).await;
            let t = Instant::now();
            let n = on_cluster
                .invalidate("team:*")
                .await
                .expect("invalidate")
                .removed;
            top.push(t.elapsed().as_secs_f64());
            assert_eq!(n as usize, MATCHING);
        }
        (median(cl), median(one), median(top))
    });

    println!(
        "cluster: 3 masters (started here) vs one server, value ~1 KB, in-process tier off, medians"
    );
    println!("  sequential L2 hits ({rounds} rounds x {iters} calls)");
    println!(
        "    cache on the cluster             {:>8.1} µs",
        us(seq.ours)
    );
    println!(
        "    raw cluster GET + decode         {:>8.1} µs",
        us(seq.raw)
    );
    println!("    ratio                            {:>8.2}x", seq.ratio());
    println!(
        "    cache on one server              {:>8.1} µs",
        us(seq_single.ours)
    );
    println!(
        "    raw GET + decode, one server     {:>8.1} µs",
        us(seq_single.raw)
    );
    println!(
        "    ratio                            {:>8.2}x",
        seq_single.ratio()
    );
    println!(
        "  {TASKS} tasks, each on its own keys ({tput_rounds} rounds x {} calls)",
        TASKS * per_task
    );
    println!("    cache on the cluster             {ours_tp:>8.0} /s");
    println!("    raw cluster GET + decode         {raw_tp:>8.0} /s");
    println!(
        "    ratio                            {:>8.2}x",
        ours_tp / raw_tp
    );
    println!("  invalidating {MATCHING} keys among {others} other keys ({inv_rounds} rounds)");
    println!(
        "    user:42:* on the cluster (one bucket)   {:>8.2} ms",
        cl_prefix * 1e3
    );
    println!(
        "    user:42:* on one server                 {:>8.2} ms",
        one_prefix * 1e3
    );
    println!(
        "    ratio                                   {:>8.2}x",
        cl_prefix / one_prefix
    );
    println!(
        "    team:* on the cluster (every bucket)    {:>8.2} ms ({} buckets)",
        cl_top * 1e3,
        cache_redis::BUCKETS
    );
    eprintln!("[cluster bench] done in {:.1?}", started.elapsed());
}
