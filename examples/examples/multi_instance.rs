//! Two instances of a service sharing one Redis: an L2 hit on the second
//! instance for a value the first computed, L1 hits after that, and an
//! invalidation on one instance reaching the other's in-process tier.
//!
//! `REDIS_URL=redis://127.0.0.1:6379/0 cargo run --example multi_instance`

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cache_core::{Cache, cached, invalidates};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Employee {
    id: u64,
    title: String,
}

#[derive(Debug)]
struct DbError;

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("database error")
    }
}

impl std::error::Error for DbError {}

/// The service code both instances run; the database is shared.
struct EmployeeService {
    queries: AtomicUsize,
    title_version: AtomicU64,
}

impl EmployeeService {
    #[cached(ttl = "medium", key = "employee:<id>")]
    async fn get_employee(&self, id: u64) -> Result<Employee, DbError> {
        self.queries.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await; // the query
        Ok(Employee {
            id,
            title: format!("Engineer v{}", self.title_version.load(SeqCst)),
        })
    }

    #[invalidates("employee:<id>")]
    async fn promote(&self, id: u64) -> Result<(), DbError> {
        let _ = id;
        self.title_version.fetch_add(1, SeqCst);
        Ok(())
    }
}

async fn timed<T>(label: &str, fut: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = fut.await;
    println!(
        "  {label:<48} {:>9.1} µs",
        started.elapsed().as_secs_f64() * 1e6
    );
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!(
            "multi_instance needs Redis: set REDIS_URL, e.g.\n  \
             redis-server --port 6380 --save '' &\n  \
             REDIS_URL=redis://127.0.0.1:6380/0 cargo run --example multi_instance"
        );
        std::process::exit(2);
    };
    let prefix = format!("demo{}", std::process::id());
    let a = Cache::builder()
        .redis_url(&url)
        .key_prefix(&prefix)
        .build()
        .await?;
    let b = Cache::builder()
        .redis_url(&url)
        .key_prefix(&prefix)
        .build()
        .await?;
    for cache in [&a, &b] {
        let mut bp = cache.backplane().ok_or("no backplane")?;
        tokio::time::timeout(Duration::from_secs(5), bp.wait_for(|s| s.connected))
            .await
            .map_err(|_| "could not subscribe to the backplane: is Redis reachable?")??;
    }
    let service = EmployeeService {
        queries: AtomicUsize::new(0),
        title_version: AtomicU64::new(0),
    };

    println!(
        "Instance A and instance B share {}:",
        url.split('@').next_back().unwrap_or(&url)
    );
    timed(
        "A: get_employee(7)   miss -> query -> Redis",
        a.scope(service.get_employee(7)),
    )
    .await?;
    timed(
        "B: get_employee(7)   L2 hit (from A's write)",
        b.scope(service.get_employee(7)),
    )
    .await?;
    timed(
        "B: get_employee(7)   L1 hit",
        b.scope(service.get_employee(7)),
    )
    .await?;
    timed(
        "A: get_employee(7)   L1 hit",
        a.scope(service.get_employee(7)),
    )
    .await?;
    println!("  queries so far: {}", service.queries.load(SeqCst));

    println!("\nA promotes employee 7 (invalidates employee:7 everywhere):");
    let mut seen = b.backplane().ok_or("no backplane")?;
    let applied = seen.borrow().applied;
    timed(
        "A: promote(7)        + invalidate + publish",
        a.scope(service.promote(7)),
    )
    .await?;
    tokio::time::timeout(
        Duration::from_secs(5),
        seen.wait_for(|s| s.applied > applied),
    )
    .await??;
    let e = timed(
        "B: get_employee(7)   miss -> query (copy dropped)",
        b.scope(service.get_employee(7)),
    )
    .await?;
    println!(
        "  B now sees {:?}; queries so far: {}",
        e.title,
        service.queries.load(SeqCst)
    );

    for (name, cache) in [("A", &a), ("B", &b)] {
        println!("\nInstance {name}:\n{}", cache.stats().await);
    }
    a.clear().await?; // remove the demo's keys
    Ok(())
}
