//! [`RedisStore`]: commands with hard timeouts on one multiplexed connection.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, RedisResult};

use crate::config::{RedisConfig, redact};
use crate::error::StoreError;
use crate::subscription::Subscription;

/// A handle to one Redis server. Cheap to clone; clones share the connection.
///
/// The connection is made on first use and remade after failures by
/// redis-rs's `ConnectionManager`; construction does no I/O, so a cache can
/// start while Redis is down. Every command is bounded by
/// [`RedisConfig::op_timeout`].
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    manager: ConnectionManager,
    config: RedisConfig,
    scripts: Scripts,
}

/// Lua scripts, sent by hash (`EVALSHA`, loaded on first use by redis-rs).
struct Scripts {
    renew: redis::Script,
    unlock: redis::Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            renew: redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                     return redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
                 end \
                 return 0",
            ),
            unlock: redis::Script::new(
                "local mine = redis.call('GET', KEYS[1]) == ARGV[1] \
                 if mine then redis.call('DEL', KEYS[1]) end \
                 redis.call('PUBLISH', ARGV[2], ARGV[3]) \
                 if mine then return 1 end \
                 return 0",
            ),
        }
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A key's time to live as Redis reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// No such key.
    Missing,
    /// The key never expires.
    Persistent,
    /// Time left.
    Expires(Duration),
}

impl KeyTtl {
    fn from_pttl(ms: i64) -> KeyTtl {
        match ms {
            -2 => KeyTtl::Missing,
            ms if ms < 0 => KeyTtl::Persistent,
            ms => KeyTtl::Expires(Duration::from_millis(ms.unsigned_abs())),
        }
    }
}

/// What `INFO` and `DBSIZE` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// `used_memory`, in bytes.
    pub used_memory: u64,
    /// Keys in the selected database.
    pub keys: u64,
}

impl RedisStore {
    /// A store for `config`. Parses the URL; connects on first use.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidUrl`] if the URL cannot be parsed or needs a
    /// feature that is off (`rediss://` without `tls`);
    /// [`StoreError::NoRuntime`] outside a Tokio runtime.
    pub fn new(config: RedisConfig) -> Result<RedisStore, StoreError> {
        let invalid = |e: redis::RedisError| StoreError::InvalidUrl {
            url: redact(&config.url),
            reason: e.to_string(),
        };
        let client = Client::open(config.url.as_str()).map_err(invalid)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::NoRuntime);
        }
        // One timer per command: ours, in `run`, which also bounds waits for
        // a reconnect; redis-rs's own response timer would be a second one.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(None)
            // Reconnect attempts happen in the background of failed commands;
            // keep them few and short so they never hold a caller.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(invalid)?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                manager,
                config,
                scripts: Scripts::new(),
            }),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The multiplexed connection, for raw commands (benchmarks compare against it).
    pub fn connection(&self) -> ConnectionManager {
        self.inner.manager.clone()
    }

    async fn run<T, F>(&self, fut: F) -> Result<T, StoreError>
    where
        F: Future<Output = RedisResult<T>>,
    {
        let limit = self.inner.config.op_timeout;
        match tokio::time::timeout(limit, fut).await {
            Ok(result) => result.map_err(|e| {
                if e.is_timeout() {
                    StoreError::Timeout(limit)
                } else {
                    StoreError::Redis(e)
                }
            }),
            Err(_) => Err(StoreError::Timeout(limit)),
        }
    }

    /// `GET key`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut con = self.connection();
        self.run(async move { con.get(key).await }).await
    }

    /// `GET key` and `PTTL key` in one round trip.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, KeyTtl)>, StoreError> {
        let mut con = self.connection();
        let (value, pttl): (Option<Vec<u8>>, i64) = self
            .run(async move { redis::pipe().get(key).pttl(key).query_async(&mut con).await })
            .await?;
        Ok(value.map(|v| (v, KeyTtl::from_pttl(pttl))))
    }

    /// `SET key value PX ttl`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut con = self.connection();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut con)
                .await
        })
        .await
    }

    /// `UNLINK keys...`; returns how many existed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn unlink(&self, keys: &[&str]) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut con = self.connection();
        self.run(async move { redis::cmd("UNLINK").arg(keys).query_async(&mut con).await })
            .await
    }

    /// `EXISTS key`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let mut con = self.connection();
        self.run(async move { con.exists(key).await }).await
    }

    /// `PTTL key`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl, StoreError> {
        let mut con = self.connection();
        let ms: i64 = self.run(async move { con.pttl(key).await }).await?;
        Ok(KeyTtl::from_pttl(ms))
    }

    /// `PEXPIRE key ttl`; false if the key does not exist.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut con = self.connection();
        let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        self.run(async move { con.pexpire(key, ms).await }).await
    }

    /// Deletes every key matching a glob `pattern` with `SCAN MATCH … COUNT`
    /// and `UNLINK` per batch (never `KEYS`, which blocks the server). Each
    /// step is bounded by the op timeout; the whole walk costs O(keyspace).
    /// Returns how many keys were removed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if a step times out or fails (keys removed before it stay removed).
    pub async fn delete_matching(&self, pattern: &str) -> Result<u64, StoreError> {
        let count = self.inner.config.scan_count;
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut con = self.connection();
            let (next, keys): (u64, Vec<String>) = self
                .run(async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(count)
                        .query_async(&mut con)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                removed += self.unlink(&refs).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// `PUBLISH channel payload`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), StoreError> {
        let mut con = self.connection();
        self.run(async move { con.publish::<_, _, ()>(channel, payload).await })
            .await
    }

    /// `SET lock token NX PX ttl`, then `GET key` and `PTTL key`, pipelined in
    /// one round trip: whether the lock is now held with `token`, and the
    /// value under `key`. Pipelined in this order, a value the read misses can
    /// only be written by a later holder of the lock, so a caller that took
    /// the lock and read nothing may compute.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn lock_and_get(
        &self,
        lock: &str,
        token: &str,
        ttl: Duration,
        key: &str,
    ) -> Result<(bool, Option<(Vec<u8>, KeyTtl)>), StoreError> {
        let mut con = self.connection();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let (set, value, pttl): (Option<String>, Option<Vec<u8>>, i64) = self
            .run(async move {
                redis::pipe()
                    .cmd("SET")
                    .arg(lock)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .get(key)
                    .pttl(key)
                    .query_async(&mut con)
                    .await
            })
            .await?;
        Ok((set.is_some(), value.map(|v| (v, KeyTtl::from_pttl(pttl)))))
    }

    /// Extends a lock held with `token` to `ttl` from now; false if it is no
    /// longer ours (it expired, and maybe another holder took it).
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn renew_lock(
        &self,
        lock: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut con = self.connection();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let script = &self.inner.scripts.renew;
        let renewed: i64 = self
            .run(async move {
                script
                    .key(lock)
                    .arg(token)
                    .arg(ms)
                    .invoke_async(&mut con)
                    .await
            })
            .await?;
        Ok(renewed == 1)
    }

    /// Releases a lock held with `token` (compare-and-delete, so a lock that
    /// expired and was taken by another holder is left alone), then publishes
    /// `payload` on `channel` in the same script, so waiters elsewhere wake
    /// without polling. True if the lock was still ours.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn unlock(
        &self,
        lock: &str,
        token: &str,
        channel: &str,
        payload: &[u8],
    ) -> Result<bool, StoreError> {
        let mut con = self.connection();
        let script = &self.inner.scripts.unlock;
        let released: i64 = self
            .run(async move {
                script
                    .key(lock)
                    .arg(token)
                    .arg(channel)
                    .arg(payload)
                    .invoke_async(&mut con)
                    .await
            })
            .await?;
        Ok(released == 1)
    }

    /// Round-trips a `PING` and times it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let mut con = self.connection();
        let started = Instant::now();
        self.run(async move { redis::cmd("PING").query_async::<()>(&mut con).await })
            .await?;
        Ok(started.elapsed())
    }

    /// Used memory and key count (`INFO memory`, `DBSIZE`), in one round trip.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn info(&self) -> Result<ServerInfo, StoreError> {
        let mut con = self.connection();
        let (info, keys): (String, u64) = self
            .run(async move {
                redis::pipe()
                    .cmd("INFO")
                    .arg("memory")
                    .cmd("DBSIZE")
                    .query_async(&mut con)
                    .await
            })
            .await?;
        let used_memory = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok(ServerInfo { used_memory, keys })
    }

    /// Subscribes to `channel` on a dedicated connection that reconnects by
    /// itself; see [`Subscription`].
    pub fn subscribe(&self, channel: &str) -> Subscription {
        Subscription::start(
            self.inner.client.clone(),
            channel.to_owned(),
            self.inner.config.clone(),
        )
    }
}
