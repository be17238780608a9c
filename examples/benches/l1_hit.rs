//! L1 hit through a `#[cached]` function vs raw moka gets of the same ~1 KB
//! value under the same key (built the same way), measured in one run:
//! `moka::future::Cache::get` and `moka::sync::Cache::get` (the block the
//! in-process tier is built on).
//!
//! `cargo bench -p examples --bench l1_hit` (set `BENCH_QUICK=1` for a short run).

use std::hint::black_box;
use std::time::Instant;

use cache_core::{Cache, cached};
use examples::{Employee, compare};

const KEYS: u64 = 1024;

#[cached(ttl = "long", key = "employee:<id>")]
async fn get_employee(id: u64) -> Result<Employee, std::io::Error> {
    Ok(Employee::sample(id))
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (rounds, iters) = if quick { (7, 20_000) } else { (31, 100_000) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let cache = Cache::builder()
        .max_entries(10_000)
        .build_blocking()
        .expect("cache");
    cache.clone().install().expect("first install");
    let raw: moka::future::Cache<String, Employee> =
        moka::future::Cache::builder().max_capacity(10_000).build();
    let raw_sync: moka::sync::Cache<String, Employee> =
        moka::sync::Cache::builder().max_capacity(10_000).build();
    rt.block_on(async {
        for id in 0..KEYS {
            get_employee(id).await.expect("origin");
            raw.insert(format!("cache:employee:{id}"), Employee::sample(id))
                .await;
            raw_sync.insert(format!("cache:employee:{id}"), Employee::sample(id));
        }
    });
    let size = postcard::to_allocvec(&Employee::sample(1))
        .map(|v| v.len())
        .unwrap_or(0);

    let ours = |n: u32| {
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..n {
                let id = u64::from(i) % KEYS;
                black_box(get_employee(black_box(id)).await.ok());
            }
            t.elapsed()
        })
    };
    let s = compare(rounds, iters, ours, |n| {
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..n {
                let id = u64::from(i) % KEYS;
                let key = format!("cache:employee:{}", black_box(id));
                black_box(raw_sync.get(&key));
            }
            t.elapsed()
        })
    });
    let c = compare(rounds, iters, ours, |n| {
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..n {
                let id = u64::from(i) % KEYS;
                let key = format!("cache:employee:{}", black_box(id));
                black_box(raw.get(&key).await);
            }
            t.elapsed()
        })
    });
    let stats = rt.block_on(cache.stats());
    assert_eq!(stats.misses, KEYS, "every measured call was a hit");
    println!("l1_hit: value {size} B (postcard), {rounds} rounds x {iters} calls, medians");
    let ns = |d: std::time::Duration| d.as_secs_f64() * 1e9;
    println!(
        "  #[cached] L1 hit                  {:>8.1} ns  (median of both runs below)",
        ns((c.ours + s.ours) / 2)
    );
    println!(
        "  raw moka::future get + clone      {:>8.1} ns  ratio {:.2}x (target <= 1.20x)",
        ns(c.raw),
        c.ratio()
    );
    println!(
        "  raw moka::sync get + clone        {:>8.1} ns  ratio {:.2}x",
        ns(s.raw),
        s.ratio()
    );
}
