//! Latency of an L1-miss call through `#[cached]` (a fast origin, a fresh key
//! each call) with Redis healthy, hung (SIGSTOP) and refused (killed), with
//! the cache's default timeouts and breaker. Starts its own `redis-server`.
//!
//! `cargo bench -p examples --bench resilience` (`BENCH_QUICK=1` for a short run).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_core::{BreakerState, Cache, cached};
use tests::redis_server::RedisServer;

static NEXT: AtomicU64 = AtomicU64::new(0);

fn origin(id: u64) -> Vec<u64> {
    black_box(vec![id; 16])
}

#[cached(ttl = "short", key = "item:<id>")]
async fn item(id: u64) -> Result<Vec<u64>, std::io::Error> {
    Ok(origin(id))
}

struct Figures {
    p50: Duration,
    p99: Duration,
    max: Duration,
    n: usize,
}

fn figures(mut v: Vec<Duration>) -> Figures {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Figures {
        p50: at(0.50),
        p99: at(0.99),
        max: v[v.len() - 1],
        n: v.len(),
    }
}

async fn one_miss() -> Duration {
    let id = NEXT.fetch_add(1, SeqCst);
    let t = Instant::now();
    black_box(item(id).await.ok());
    t.elapsed()
}

/// Calls until the breaker opens (at most `limit`), then `after` more calls.
async fn through_outage(cache: &Cache, after: usize) -> (Figures, Figures) {
    let mut before = Vec::new();
    while cache.breaker() != Some(BreakerState::Open) && before.len() < 1000 {
        before.push(one_miss().await);
    }
    let mut open = Vec::with_capacity(after);
    for _ in 0..after {
        open.push(one_miss().await);
    }
    (figures(before), figures(open))
}

fn row(label: &str, f: &Figures) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  {label:<46} {:>9.3} {:>9.3} {:>9.3} {:>6}",
        ms(f.p50),
        ms(f.p99),
        ms(f.max),
        f.n
    );
}

fn main() {
    let Some(mut server) = RedisServer::start_or_skip() else {
        return;
    };
    let n = if std::env::var_os("BENCH_QUICK").is_some() {
        300
    } else {
        3000
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cache = Cache::builder()
            .redis_url(server.url())
            .build()
            .await
            .expect("cache");
        cache.clone().install().expect("first install");
        let mut bare = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let t = Instant::now();
            black_box(origin(i));
            bare.push(t.elapsed());
        }
        let mut healthy = Vec::with_capacity(n);
        for _ in 0..n {
            healthy.push(one_miss().await);
        }

        server.pause();
        let (hung_before, hung_open) = through_outage(&cache, n).await;
        server.resume();
        // Let the breaker close again before the next outage.
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.breaker() != Some(BreakerState::Closed) && Instant::now() < deadline {
            one_miss().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.kill();
        let (refused_before, refused_open) = through_outage(&cache, n).await;

        println!("resilience: L1-miss calls through #[cached], fast origin, one at a time;");
        println!("            defaults: 100 ms per Redis command, breaker opens after 5 failures");
        println!(
            "  {:<46} {:>9} {:>9} {:>9} {:>6}",
            "case", "p50 ms", "p99 ms", "max ms", "calls"
        );
        row("origin alone (no cache)", &figures(bare));
        row("Redis healthy", &figures(healthy));
        row(
            "Redis hung (SIGSTOP), before the breaker opens",
            &hung_before,
        );
        row("Redis hung, breaker open", &hung_open);
        row(
            "Redis refused (killed), before the breaker opens",
            &refused_before,
        );
        row("Redis refused, breaker open", &refused_open);
        let stats = cache.stats().await;
        println!(
            "  Redis failures counted {}, commands skipped by the open breaker {}, breaker {:?}",
            stats.errors, stats.redis_skipped, stats.breaker
        );
    });
}
