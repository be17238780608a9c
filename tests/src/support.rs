//! Helpers the integration suites share: caches standing for service
//! instances over a test's private Redis, direct access to that Redis, and a
//! bounded wait for conditions that no event reports.

use std::time::Duration;

use cache_core::cache_redis::{RedisConfig, RedisStore};
use cache_core::{Cache, CacheBuilder};

use crate::redis_cluster::RedisCluster;
use crate::redis_server::RedisServer;

/// An in-process-only cache with the default settings, for one test. Run the
/// test's calls inside `cache.scope(...)`, so tests running in parallel do
/// not share entries.
///
/// # Panics
///
/// If the default configuration does not build (a bad `CACHE_*` variable).
pub fn memory_cache() -> Cache {
    Cache::builder()
        .build_blocking()
        .expect("default config builds")
}

/// One "service instance": a [`Cache`] over a test's private Redis. Several
/// on one server stand for several processes.
///
/// Without settings it is what `Cache::builder().redis_url(..)` gives: key
/// prefix `cache`, backplane subscribed. [`build`](Self::build) returns at
/// once; [`connected`](Self::connected) also waits for the backplane
/// subscription, so that no message published afterwards is missed.
///
/// ```no_run
/// # async fn f(redis: &tests::redis_server::RedisServer) {
/// use tests::support::Instance;
/// let a = Instance::on(redis).prefix("st").connected().await;
/// let (b, c) = Instance::on(redis).connected_pair().await;
/// let d = Instance::on(redis).prefix("st").backplane(false).build();
/// let e = Instance::on(redis)
///     .configure(|b| b.lock_wait(std::time::Duration::from_millis(300)))
///     .build();
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Instance {
    builder: CacheBuilder,
}

impl Instance {
    /// An instance over `server`'s Redis (which need not be running yet).
    pub fn on(server: &RedisServer) -> Instance {
        Instance {
            builder: Cache::builder().redis_url(server.url()),
        }
    }

    /// An instance on a Redis Cluster (which need not be running yet), with
    /// 2 s per command (a busy machine must not make a healthy node look
    /// failed).
    pub fn on_cluster(cluster: &RedisCluster) -> Instance {
        Instance {
            builder: Cache::builder()
                .redis_cluster(cluster.seed_urls())
                .redis_op_timeout(Duration::from_secs(2)),
        }
    }

    /// The key prefix (default `cache`), so a suite's keys are recognisable
    /// in Redis.
    pub fn prefix(self, prefix: &str) -> Instance {
        self.configure(|b| b.key_prefix(prefix))
    }

    /// Whether the instance subscribes to the backplane (default: yes). An
    /// instance without it hears nothing of other instances' writes, so only
    /// Redis can protect it from stale values.
    pub fn backplane(self, subscribe: bool) -> Instance {
        self.configure(|b| b.backplane(subscribe))
    }

    /// Any other setting of the [`CacheBuilder`].
    pub fn configure(self, settings: impl FnOnce(CacheBuilder) -> CacheBuilder) -> Instance {
        Instance {
            builder: settings(self.builder),
        }
    }

    /// The cache, without waiting for its backplane subscription.
    ///
    /// # Panics
    ///
    /// If the settings do not build (a cache with Redis also needs a Tokio
    /// runtime).
    pub fn build(self) -> Cache {
        self.builder.build_blocking().expect("instance builds")
    }

    /// The cache, once its backplane subscription is active.
    ///
    /// # Panics
    ///
    /// As [`build`](Self::build), or if the backplane is off.
    pub async fn connected(self) -> Cache {
        let cache = self.build();
        connected(&cache).await;
        cache
    }

    /// Two instances with these settings, both once their backplane
    /// subscription is active: "A" and "B" of a two-process scenario.
    ///
    /// # Panics
    ///
    /// As [`connected`](Self::connected).
    pub async fn connected_pair(self) -> (Cache, Cache) {
        let a = self.clone().build();
        let b = self.build();
        connected(&a).await;
        connected(&b).await;
        (a, b)
    }
}

/// Waits until `cache`'s backplane subscription is active, so that no
/// message published from now on is missed.
///
/// # Panics
///
/// If `cache` has no Redis tier or its backplane is off.
pub async fn connected(cache: &Cache) {
    cache
        .backplane()
        .expect("a cache with Redis and its backplane on")
        .wait_for(|s| s.connected)
        .await
        .expect("backplane status");
}

/// `cache-redis`'s store on `server`: bytes in and out of Redis, under the
/// keys as they are stored (with the instances' prefix), past every cache.
///
/// # Panics
///
/// Outside a Tokio runtime.
pub fn redis_store(server: &RedisServer) -> RedisStore {
    // 2 s per command: a busy machine must not make a healthy Redis look failed.
    let config = RedisConfig::new(server.url()).op_timeout(Duration::from_secs(2));
    RedisStore::new(config).expect("store on the test's Redis")
}

/// A plain redis-rs connection to `server`, for commands no cache API
/// offers (`KEYS`, `PTTL`, `CLIENT PAUSE`, planting a lock, ...).
///
/// # Panics
///
/// If Redis does not accept the connection.
pub async fn redis_connection(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test's Redis")
}

/// Whether Redis holds `key` (a full key, prefix included).
///
/// # Panics
///
/// If the command fails.
pub async fn exists(con: &mut impl redis::aio::ConnectionLike, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<u64>(con)
        .await
        .expect("EXISTS")
        == 1
}

/// Longest [`eventually`] waits.
pub const EVENTUALLY_BOUND: Duration = Duration::from_secs(20);

/// Polls `condition` every 10 ms until it holds, for at most
/// [`EVENTUALLY_BOUND`] on Tokio's clock (so it also works, and advances the
/// clock, in a test with paused time).
///
/// For conditions that no event reports (a counter in `stats()`, a key in
/// Redis, a task that started): where an event exists, await it instead,
/// e.g. `cache.backplane().unwrap().wait_for(|s| s.applied > before)`.
///
/// # Panics
///
/// `timed out after 20 s waiting for: <what>` when it never holds.
/// `chromedriver` and the Chromium (or Chrome) it drives, if both are
/// installed (`CHROMEDRIVER` and `CHROME_BIN` override the search).
pub fn browser() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    crate::redis_binary::browser()
}

pub async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + EVENTUALLY_BOUND;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {EVENTUALLY_BOUND:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
