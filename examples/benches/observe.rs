//! What observing costs on the hit path, same run: an L1 hit of a
//! `#[cached]` function in a cache that records metrics (a Prometheus
//! recorder installed) against one that does not (`metrics(false)`), and
//! the same hit with a `tracing` subscriber at `info` (per-call events are
//! at `debug`, so it declines them) against none.
//!
//! `cargo bench -p examples --features metrics --bench observe`
//! (`BENCH_QUICK=1` for a short run).

use std::hint::black_box;
use std::time::Instant;

use cache_core::{Cache, cached};
use examples::{Employee, compare};

const KEYS: u64 = 1024;

#[cached(cache = "metrics-on", ttl = "long", key = "employee:<id>")]
async fn recorded(id: u64) -> Result<Employee, std::io::Error> {
    Ok(Employee::sample(id))
}

#[cached(cache = "metrics-off", ttl = "long", key = "employee:<id>")]
async fn unrecorded(id: u64) -> Result<Employee, std::io::Error> {
    Ok(Employee::sample(id))
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let (rounds, iters) = if quick { (7, 20_000) } else { (31, 100_000) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = prometheus.handle();
    metrics::set_global_recorder(prometheus).expect("the only recorder");
    for (name, on) in [("metrics-on", true), ("metrics-off", false)] {
        Cache::builder()
            .name(name)
            .metrics(on)
            .build_blocking()
            .expect("cache")
            .install()
            .expect("first install");
    }
    rt.block_on(async {
        for id in 0..KEYS {
            recorded(id).await.expect("origin");
            unrecorded(id).await.expect("origin");
        }
    });

    let on = |n: u32| {
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..n {
                black_box(recorded(black_box(u64::from(i) % KEYS)).await.ok());
            }
            t.elapsed()
        })
    };
    let off = |n: u32| {
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..n {
                black_box(unrecorded(black_box(u64::from(i) % KEYS)).await.ok());
            }
            t.elapsed()
        })
    };
    let m = compare(rounds, iters, on, off);

    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let with_subscriber = |n: u32| tracing::dispatcher::with_default(&dispatch, || off(n));
    let t = compare(rounds, iters, with_subscriber, off);

    let hits = handle
        .render()
        .lines()
        .filter(|l| l.starts_with("cache_calls_total") && l.contains("outcome=\"hit_l1\""))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum::<f64>();
    assert!(hits > 0.0, "the recorder saw the hits");
    let ns = |d: std::time::Duration| d.as_secs_f64() * 1e9;
    println!("observe: L1 hits, {rounds} rounds x {iters} calls, medians");
    println!(
        "  metrics recorded (Prometheus)     {:>8.1} ns  vs off {:>8.1} ns  ratio {:.2}x (target <= 1.10x)",
        ns(m.ours),
        ns(m.raw),
        m.ratio()
    );
    println!(
        "  subscriber at info                {:>8.1} ns  vs none {:>7.1} ns  ratio {:.2}x",
        ns(t.ours),
        ns(t.raw),
        t.ratio()
    );
}
