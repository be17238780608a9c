//! `#[cache_put]`: write-through. After the function succeeds its result is
//! stored under the key the reading `#[cached]` function uses, so the next
//! read is a hit with the fresh value, on this instance and on others; an
//! `Err` writes nothing; `None` removes the key; a computation under way
//! when the write lands does not store its older value over it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_core::{cache_put, cached};
use serde::{Deserialize, Serialize};
use tests::redis_server::RedisServer;
use tests::support::{Instance, eventually, memory_cache};
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Employee {
    id: u64,
    title: String,
}

#[derive(Debug, PartialEq)]
struct DbError;

#[derive(Default)]
struct Repo {
    titles: Mutex<Vec<(u64, String)>>,
    reads: AtomicUsize,
    /// When set, a read waits here after reading the row (a slow query).
    hold: Option<(Notify, Notify)>,
}

impl Repo {
    fn reads(&self) -> usize {
        self.reads.load(SeqCst)
    }

    fn row(&self, id: u64) -> Option<Employee> {
        let titles = self.titles.lock().unwrap();
        let title = titles.iter().rev().find(|(i, _)| *i == id)?.1.clone();
        Some(Employee { id, title })
    }

    #[cached(ttl = "medium", key = "employee:<id>", format = "json", version = 2)]
    async fn employee(&self, id: u64) -> Result<Employee, DbError> {
        self.reads.fetch_add(1, SeqCst);
        let row = self.row(id).ok_or(DbError);
        if let Some((read, go)) = &self.hold {
            read.notify_one();
            go.notified().await;
        }
        row
    }

    #[cache_put(ttl = "medium", key = "employee:<id>", format = "json", version = 2)]
    async fn retitle(&self, id: u64, title: &str) -> Result<Employee, DbError> {
        if title.is_empty() {
            return Err(DbError);
        }
        self.titles.lock().unwrap().push((id, title.to_owned()));
        self.row(id).ok_or(DbError)
    }

    #[cached(ttl = "medium", key = "manager:<id>", cache_none)]
    async fn manager(&self, id: u64) -> Option<String> {
        self.reads.fetch_add(1, SeqCst);
        self.row(id).map(|e| e.title)
    }

    /// `None`: the employee has no manager now.
    #[cache_put(key = "manager:<id>")]
    async fn set_manager(&self, id: u64, manager: Option<&str>) -> Option<String> {
        let _ = id;
        manager.map(str::to_owned)
    }
}

fn repo() -> Repo {
    let r = Repo::default();
    r.titles.lock().unwrap().push((7, "Engineer".into()));
    r
}

#[tokio::test]
async fn the_next_read_is_a_hit_with_the_written_value() {
    let c = memory_cache();
    let r = repo();
    c.scope(async {
        assert_eq!(r.employee(7).await.unwrap().title, "Engineer");
        let written = r.retitle(7, "Staff Engineer").await.unwrap();
        assert_eq!(r.employee(7).await.unwrap(), written);
        assert_eq!(r.reads(), 1, "read once, then served what the write stored");

        // A failed write stores nothing.
        assert_eq!(r.retitle(7, "").await, Err(DbError));
        assert_eq!(r.employee(7).await.unwrap().title, "Staff Engineer");
        assert_eq!(r.reads(), 1);
    })
    .await;
    let stats = c.stats().await;
    let put = stats
        .functions
        .iter()
        .find(|f| f.label == "employee:<id>" && f.kind == cache_core::FunctionKind::Puts)
        .expect("the write-through function is counted");
    assert_eq!(put.sets, 1);
}

#[tokio::test]
async fn none_removes_the_key_unless_cache_none() {
    let c = memory_cache();
    let r = repo();
    c.scope(async {
        assert_eq!(r.manager(7).await.as_deref(), Some("Engineer"));
        r.set_manager(7, Some("Grace")).await;
        assert_eq!(r.manager(7).await.as_deref(), Some("Grace"));
        assert_eq!(r.reads(), 1);
        r.set_manager(7, None).await;
    })
    .await;
    assert!(!c.exists("manager:7").await.unwrap(), "no value is current");
}

/// A read that fetched the old row before the write, and finishes after it,
/// returns its own result but does not store it over the written value.
#[tokio::test]
async fn a_computation_under_way_does_not_overwrite_the_write() {
    let c = memory_cache();
    let mut r = repo();
    r.hold = Some((Notify::new(), Notify::new()));
    let r = &r;
    let (read, go) = r.hold.as_ref().unwrap();
    c.scope(async {
        let slow = async { r.employee(7).await.unwrap() };
        let write = async {
            read.notified().await; // the slow read has its (old) row
            let written = r.retitle(7, "Principal").await.unwrap();
            go.notify_one();
            written
        };
        let (old, written) = tokio::join!(slow, write);
        assert_eq!(old.title, "Engineer");
        assert_eq!(written.title, "Principal");
        assert_eq!(r.employee(7).await.unwrap().title, "Principal");
        assert_eq!(r.reads(), 1);
    })
    .await;
}

/// Across instances on one Redis: B's write replaces A's in-process copy,
/// and a third instance reads the written value from Redis.
#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn other_instances_are_served_the_written_value() {
    let server = RedisServer::start();
    let (a, b) = Instance::on(&server).connected_pair().await;
    let r = repo();
    assert_eq!(a.scope(r.employee(7)).await.unwrap().title, "Engineer");
    assert_eq!(r.reads(), 1);
    b.scope(r.retitle(7, "Architect")).await.unwrap();
    eventually("A is served B's write", async || {
        a.scope(r.employee(7)).await.unwrap().title == "Architect"
    })
    .await;
    let c = Instance::on(&server).connected().await;
    assert_eq!(c.scope(r.employee(7)).await.unwrap().title, "Architect");
    assert_eq!(r.reads(), 1, "nobody read the database again");
}
