//! The Redis a suite's case runs against, one server or a 3-master
//! cluster, behind one type, so that the behaviour suites run on both
//! without being copied: write a case once with [`on_every_deployment!`](crate::on_every_deployment),
//! and build its instances, its raw store and its key names through
//! [`Redis`].

use std::time::Duration;

use cache_core::cache_redis::{Layout, RedisConfig, RedisStore};

use crate::redis_cluster::RedisCluster;
use crate::redis_server::RedisServer;
use crate::support::Instance;

/// A running private Redis: one server, or a cluster of 3 masters.
#[derive(Debug)]
pub enum Redis {
    /// One `redis-server`.
    Single(RedisServer),
    /// A cluster of 3 masters.
    Cluster(RedisCluster),
}

impl Redis {
    /// Starts one server.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`].
    pub fn single() -> Redis {
        Redis::Single(RedisServer::start())
    }

    /// Starts a cluster of 3 masters.
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::start`].
    pub fn cluster() -> Redis {
        Redis::Cluster(RedisCluster::start(3, 0))
    }

    /// An instance on it (see [`Instance`]).
    pub fn instance(&self) -> Instance {
        match self {
            Redis::Single(server) => Instance::on(server),
            Redis::Cluster(cluster) => Instance::on_cluster(cluster),
        }
    }

    /// `cache-redis`'s store on it, past every cache: bytes under the names
    /// Redis stores (see [`name`](Self::name)).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn store(&self) -> RedisStore {
        let config = match self {
            Redis::Single(server) => RedisConfig::new(server.url()),
            Redis::Cluster(cluster) => RedisConfig::cluster(cluster.seed_urls()),
        };
        // 2 s per command: a busy machine must not make a healthy Redis look failed.
        RedisStore::new(config.op_timeout(Duration::from_secs(2)))
            .expect("store on the test's Redis")
    }

    /// The name Redis stores a full key (`cache:employee:7`, its first
    /// segment the prefix) under: the key itself on one server, with its
    /// bucket's hash tag on a cluster.
    pub fn name(&self, key: &str) -> String {
        match self {
            Redis::Single(_) => key.to_owned(),
            Redis::Cluster(_) => {
                let prefix = key.split(':').next().unwrap_or_default();
                Layout::cluster(prefix).physical(key).into_owned()
            }
        }
    }

    /// True on a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Redis::Cluster(_))
    }
}

/// Writes a test case once and runs it on one server and on a cluster:
///
/// ```ignore
/// tests::on_every_deployment! {
///     /// What the case shows.
///     async fn values_travel(redis) {
///         let (a, b) = redis.instance().connected_pair().await;
///         // ...
///     }
/// }
/// ```
///
/// makes the module `values_travel` with the tests `single` and `cluster`,
/// each reported as ignored when `redis-server` is missing (as every Redis
/// test is).
///
/// Start with `multi_thread;` for a runtime of 2 worker threads (a case
/// that blocks one, or races two tasks).
#[macro_export]
macro_rules! on_every_deployment {
    (multi_thread; $(#[doc = $doc:expr])* async fn $name:ident($redis:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($redis: &$crate::deployment::Redis) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
            async fn single() {
                run(&$crate::deployment::Redis::single()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
            async fn cluster() {
                run(&$crate::deployment::Redis::cluster()).await;
            }
        }
    };
    ($(#[doc = $doc:expr])* async fn $name:ident($redis:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($redis: &$crate::deployment::Redis) $body

            #[tokio::test]
            #[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
            async fn single() {
                run(&$crate::deployment::Redis::single()).await;
            }

            #[tokio::test]
            #[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
            async fn cluster() {
                run(&$crate::deployment::Redis::cluster()).await;
            }
        }
    };
}
