//! `cached`: `#[cached]` over its in-memory store, and `#[concurrent_cached]`
//! over `AsyncRedisCache` (values are MessagePack; no in-process tier in front).

use std::fmt;
use std::time::Duration;

use cached::AsyncRedisCache;
use cached::macros::{cached, concurrent_cached};

use crate::data::{Employee, origin};
use crate::measure::{Call, Entrant, Kind, Spec, call, job};

const LIB: &str = "cached";

#[cached(max_size = 100_000, ttl_secs = 3600)]
pub(crate) async fn memory(id: u64) -> Employee {
    origin(id).await
}

#[cached(max_size = 100_000, ttl_secs = 3600, sync_writes = "by_key")]
async fn memory_by_key(id: u64) -> Employee {
    origin(id).await
}

/// `concurrent_cached` needs an error type to map store errors into.
#[derive(Debug, Clone)]
pub(crate) struct StoreError(String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[concurrent_cached(
    ty = "AsyncRedisCache<u64, Employee>",
    create = r#"{
        AsyncRedisCache::builder("cached-rs:employee")
            .ttl(Duration::from_secs(3600))
            .connection_string(&super::url())
            .connection_manager(true)
            .build()
            .await
            .expect("cached: AsyncRedisCache::build")
    }"#,
    map_error = r#"|e| StoreError(format!("{e}"))"#
)]
async fn redis_store(id: u64) -> Result<Employee, StoreError> {
    Ok(origin(id).await)
}

fn ok<T>(v: T) -> Result<T, std::convert::Infallible> {
    Ok(v)
}

pub(super) fn l1(keys: u64) -> Vec<Entrant> {
    vec![Entrant {
        spec: Spec::new(
            LIB,
            "#[cached(max_size, ttl_secs)]",
            "none (typed)",
            Kind::Peer,
        ),
        job: job(keys, memory),
    }]
}

pub(super) fn l2(keys: u64) -> Vec<Entrant> {
    vec![Entrant {
        spec: Spec::new(
            LIB,
            "#[concurrent_cached] AsyncRedisCache (connection manager)",
            "MessagePack",
            Kind::Peer,
        ),
        job: job(keys, redis_store),
    }]
}

pub(super) fn stampede() -> Vec<(Spec, Call)> {
    vec![
        (
            Spec::new(
                LIB,
                "#[cached] in memory (default)",
                "none (typed)",
                Kind::Peer,
            ),
            call(|id| async move { ok(memory(id).await) }),
        ),
        (
            Spec::new(
                LIB,
                "#[cached(sync_writes = \"by_key\")] in memory",
                "none (typed)",
                Kind::Peer,
            ),
            call(|id| async move { ok(memory_by_key(id).await) }),
        ),
        (
            Spec::new(
                LIB,
                "#[concurrent_cached] AsyncRedisCache",
                "MessagePack",
                Kind::Peer,
            ),
            call(redis_store),
        ),
    ]
}

pub(super) fn outage() -> Vec<(Spec, Call)> {
    vec![(
        Spec::new(
            LIB,
            "#[concurrent_cached] AsyncRedisCache (connection manager)",
            "MessagePack",
            Kind::Peer,
        ),
        call(redis_store),
    )]
}
