//! Quickstart: an employee service cached with two attributes, on the default
//! in-process cache. No Redis, no environment, no setup.
//!
//! `cargo run --example quickstart`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_core::{Cache, cached, invalidates};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Employee {
    id: u64,
    name: String,
    title: String,
}

#[derive(Debug)]
enum DbError {
    NotFound(u64),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::NotFound(id) => write!(f, "employee {id} not found"),
        }
    }
}

impl std::error::Error for DbError {}

/// Stands in for a database: every query takes a while.
struct Db {
    rows: Mutex<HashMap<u64, Employee>>,
    latency: Duration,
}

struct EmployeeService {
    db: Db,
}

impl EmployeeService {
    #[cached(ttl = "medium", key = "employee:<id>")]
    async fn get_employee(&self, id: u64) -> Result<Employee, DbError> {
        tokio::time::sleep(self.db.latency).await; // the query
        let rows = self.db.rows.lock().map_err(|_| DbError::NotFound(id))?;
        rows.get(&id).cloned().ok_or(DbError::NotFound(id))
    }

    #[cached(ttl = "list", key = "employees:page:<page>:size:<size>")]
    async fn list_employees(&self, page: u32, size: u32) -> Result<Vec<Employee>, DbError> {
        tokio::time::sleep(self.db.latency).await;
        let rows = self.db.rows.lock().map_err(|_| DbError::NotFound(0))?;
        let mut all: Vec<Employee> = rows.values().cloned().collect();
        all.sort_by_key(|e| e.id);
        let start = (page as usize).saturating_sub(1) * size as usize;
        Ok(all.into_iter().skip(start).take(size as usize).collect())
    }

    #[invalidates("employee:<id>", "employees:page:*")]
    async fn update_title(&self, id: u64, title: &str) -> Result<(), DbError> {
        tokio::time::sleep(self.db.latency).await;
        let mut rows = self.db.rows.lock().map_err(|_| DbError::NotFound(id))?;
        let row = rows.get_mut(&id).ok_or(DbError::NotFound(id))?;
        row.title = title.to_owned();
        Ok(())
    }
}

async fn timed<T>(label: &str, fut: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = fut.await;
    println!(
        "  {label:<44} {:>10.1} µs",
        started.elapsed().as_secs_f64() * 1e6
    );
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows = (1..=50)
        .map(|id| {
            let e = Employee {
                id,
                name: format!("Employee {id}"),
                title: "Engineer".into(),
            };
            (id, e)
        })
        .collect();
    let service = Arc::new(EmployeeService {
        db: Db {
            rows: Mutex::new(rows),
            latency: Duration::from_millis(20),
        },
    });

    println!("Reads (the database takes 20 ms a query):");
    timed(
        "get_employee(7)      miss -> query",
        service.get_employee(7),
    )
    .await?;
    timed("get_employee(7)      hit", service.get_employee(7)).await?;
    let mut hits = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let started = Instant::now();
        service.get_employee(7).await?;
        hits.push(started.elapsed());
    }
    hits.sort_unstable();
    println!(
        "  {:<44} {:>10.1} µs",
        "get_employee(7)      hit, median of 10,000",
        hits[5_000].as_secs_f64() * 1e6
    );
    timed(
        "list_employees(1, 10) miss -> query",
        service.list_employees(1, 10),
    )
    .await?;
    timed("list_employees(1, 10) hit", service.list_employees(1, 10)).await?;

    println!("\nConcurrent cold reads share one query:");
    let burst = async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let service = Arc::clone(&service);
            set.spawn(async move { service.get_employee(8).await });
        }
        set.join_all().await
    };
    let results = timed("100 x get_employee(8) at once", burst).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let stats = Cache::global().stats().await;
    let f = stats.functions.iter().find(|f| f.label == "employee:<id>");
    let queries = f.map_or(0, |f| f.misses);
    println!(
        "  {ok} callers served; get_employee queries so far: {queries} (employee 7 once, employee 8 once)"
    );
    println!("  (the 99 callers that waited for the one query show as `coalesced` below)");

    println!("\nA write invalidates what it changed:");
    timed(
        "update_title(7)      + invalidate 2 patterns",
        service.update_title(7, "Staff Engineer"),
    )
    .await?;
    let e = timed(
        "get_employee(7)      miss -> query",
        service.get_employee(7),
    )
    .await?;
    println!("  title is now {:?}", e.title);
    timed(
        "get_employee(42)     miss -> query",
        service.get_employee(42),
    )
    .await?;
    match service.get_employee(999).await {
        Err(e) => {
            println!("  get_employee(999) -> error {e:?}: not cached, the next call asks again")
        }
        Ok(_) => println!("  unexpected employee 999"),
    }

    let cache = Cache::global();
    println!("\nStats:\n{}", cache.stats().await);
    let health = cache.health().await;
    println!(
        "Health: {:?}, backend {}, probe {:.1} µs",
        health.status,
        health.backend,
        health.latency.as_secs_f64() * 1e6
    );
    Ok(())
}
