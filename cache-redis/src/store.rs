//! [`RedisStore`]: commands with hard timeouts on one multiplexed connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, RedisResult};

use crate::batch::{Batcher, read_one};
use crate::config::{RedisConfig, redact};
use crate::connection::Connection;
use crate::error::StoreError;
use crate::layout::is_reserved;
use crate::sentinel::Sentinel;
use crate::subscription::{Source, Subscription};

/// A handle to one Redis server, or to a Redis Cluster. Cheap to clone;
/// clones share the connection.
///
/// The connection is made on first use and remade after failures (by
/// redis-rs's `ConnectionManager`, one per master on a cluster; see
/// [`Connection`]); construction does no I/O, so a cache can start while
/// Redis is down. Every command is bounded by [`RedisConfig::op_timeout`].
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where subscriptions connect.
    subscribe_to: Source,
    connection: Connection,
    config: RedisConfig,
    scripts: Scripts,
    /// The batchers of reads ([`batch`](crate::batch)): one per server, or
    /// per master of a cluster (by its index in the slot map, modulo
    /// their number); empty when batching is off.
    batchers: Vec<Arc<Batcher>>,
}

/// Batchers of a cluster's store: masters beyond this many share one.
const CLUSTER_BATCHERS: usize = 64;

impl Inner {
    fn new(subscribe_to: Source, connection: Connection, config: RedisConfig) -> Inner {
        let count = match (config.batch_reads, connection.is_cluster()) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => CLUSTER_BATCHERS,
        };
        let batchers = (0..count)
            .map(|_| {
                Arc::new(Batcher::new(
                    connection.clone(),
                    connection.is_cluster(),
                    config.op_timeout,
                ))
            })
            .collect();
        Inner {
            subscribe_to,
            connection,
            config,
            scripts: Scripts::new(),
            batchers,
        }
    }
}

/// Compare-and-delete of a lock, then the release message. Sent as `EVAL`
/// with its text, not by hash: a release is often the last command of a call
/// whose caller is gone (cancelled, timed out), and `EVALSHA`'s fallback after
/// `NOSCRIPT` (a restarted Redis) needs the caller to still be there.
const UNLOCK: &str = "local mine = redis.call('GET', KEYS[1]) == ARGV[1] \
     if mine then redis.call('DEL', KEYS[1]) end \
     redis.call('PUBLISH', ARGV[2], ARGV[3]) \
     if mine then return 1 end \
     return 0";

/// Lua: `next_seq(key)` moves an invalidation sequence on and returns its
/// new number: one above the last, and never below Redis's clock in
/// microseconds. A sequence that was lost (evicted, flushed, or not yet
/// replicated when a failover promoted a replica) so starts above every
/// number handed out before, instead of again at 1, where the next
/// invalidation's marker would be below what computations already in
/// flight observed, and would not stop their stale writes. Numbers stay
/// below 2^53, exact in Lua's doubles. A user whose ACL denies `TIME` gets
/// the plain count (`pcall`): everything works, without the floor.
const NEXT_SEQ_LUA: &str = "local function next_seq(key) \
     local t = redis.pcall('TIME') \
     local now = 0 \
     if not t.err then now = tonumber(t[1]) * 1000000 + tonumber(t[2]) end \
     local n = tonumber(redis.call('GET', key) or '0') + 1 \
     if now > n then n = now end \
     n = string.format('%.0f', n) \
     redis.call('SET', key, n) \
     return n \
 end ";

/// Lua scripts, sent by hash (`EVALSHA`, loaded on first use by redis-rs).
struct Scripts {
    renew: redis::Script,
    write: redis::Script,
    invalidate_key: redis::Script,
    drain: redis::Script,
    bump: redis::Script,
    census: redis::Script,
    expire: redis::Script,
}

/// The invalidation sequence number read before a computation, to be
/// checked when its result is written; see [`WriteGuard`].
pub type Observed = u64;

/// What a write of a value must respect.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum WriteGuard<'a> {
    /// A computed value: written only if no marker holds a sequence number
    /// above the one observed before the computation started (no
    /// invalidation that covers the key since).
    Unchanged {
        /// The markers.
        markers: &'a [String],
        /// The sequence number then.
        observed: Observed,
    },
    /// For a Redis that evicts keys, where a marker may be gone: as
    /// [`Unchanged`](Self::Unchanged), and also refused if `sequence` moved
    /// since `observed` was read (any invalidation of its bucket), or is
    /// missing (evicted, with whatever moved it). A missing sequence is
    /// created again, so the next computation may write.
    UnmovedSequence {
        /// The markers.
        markers: &'a [String],
        /// The sequence key the computation observed.
        sequence: &'a str,
        /// The sequence number then.
        observed: Observed,
    },
    /// An explicit overwrite: stamps `marker` (the key's own) with the next
    /// sequence number, so that computations that started before it do not
    /// overwrite it.
    Bump {
        /// The key's marker.
        marker: &'a str,
        /// The sequence key.
        sequence: &'a str,
        /// How long the marker lives.
        ttl: Duration,
    },
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
            // KEYS: value key, index sets (ARGV[3] of them), the registry
            // that counts the key, then markers (mode `check-seq`: the
            // sequence key last), then (mode `bump`) the sequence key.
            // ARGV: value, px, index count, mode, marker ttl, observed sequence.
            write: redis::Script::new(
                &"{next_seq} \
                 local nidx = tonumber(ARGV[3]) \
                 local first = 3 + nidx \
                 if ARGV[4] == 'check' or ARGV[4] == 'check-seq' then \
                     local seen = tonumber(ARGV[6]) \
                     if ARGV[4] == 'check-seq' and not redis.call('GET', KEYS[#KEYS]) then \
                         next_seq(KEYS[#KEYS]) \
                         return 0 \
                     end \
                     for i = first, #KEYS do \
                         if tonumber(redis.call('GET', KEYS[i]) or '0') > seen then \
                             return 0 \
                         end \
                     end \
                 else \
                     local n = next_seq(KEYS[first + 1]) \
                     redis.call('SET', KEYS[first], n, 'PX', ARGV[5]) \
                 end \
                 local px = tonumber(ARGV[2]) \
                 {merge} \
                 for i = 2, 1 + nidx do \
                     redis.call('SADD', KEYS[i], KEYS[1]) \
                     if redis.call('PTTL', KEYS[i]) < px then \
                         redis.call('PEXPIRE', KEYS[i], px) \
                     end \
                 end \
                 local reg = KEYS[2 + nidx] \
                 if nidx > 0 then \
                     redis.call('SADD', reg, KEYS[2]) \
                 else \
                     redis.call('SADD', reg, KEYS[1]) \
                 end \
                 if redis.call('PTTL', reg) < px then \
                     redis.call('PEXPIRE', reg, px) \
                 end \
                 return 1"
                    .replace("{next_seq}", NEXT_SEQ_LUA)
                    .replace("{merge}", crate::variants::MERGE_LUA)
                    .replace(
                        "MAX_OTHERS",
                        &(crate::variants::MAX_VARIANTS - 1).to_string(),
                    ),
            ),
            // KEYS: key, its marker, the sequence key. ARGV: marker ttl.
            invalidate_key: redis::Script::new(&format!(
                "{NEXT_SEQ_LUA} \
                 local n = redis.call('UNLINK', KEYS[1]) \
                 local s = next_seq(KEYS[3]) \
                 redis.call('SET', KEYS[2], s, 'PX', ARGV[1]) \
                 return n"
            )),
            // KEYS: index set, marker, sequence key. ARGV: batch, marker ttl, bump (1/0).
            drain: redis::Script::new(&format!(
                "{NEXT_SEQ_LUA} \
                 if ARGV[3] == '1' then \
                     local s = next_seq(KEYS[3]) \
                     redis.call('SET', KEYS[2], s, 'PX', ARGV[2]) \
                 end \
                 local m \
                 if redis.call('SCARD', KEYS[1]) <= tonumber(ARGV[1]) then \
                     m = redis.call('SMEMBERS', KEYS[1]) \
                     redis.call('DEL', KEYS[1]) \
                 else \
                     m = redis.call('SPOP', KEYS[1], ARGV[1]) \
                 end \
                 local n = 0 \
                 if #m > 0 then n = redis.call('UNLINK', unpack(m)) end \
                 return {{n, redis.call('SCARD', KEYS[1])}}"
            )),
            // KEYS: marker, sequence key. ARGV: marker ttl.
            bump: redis::Script::new(&format!(
                "{NEXT_SEQ_LUA} \
                 local s = next_seq(KEYS[2]) \
                 redis.call('SET', KEYS[1], s, 'PX', ARGV[1]) \
                 return s"
            )),
            // KEYS: a set. ARGV: how many members to check at most.
            // Counts the members that exist and removes the others: all of
            // them up to the limit (exact), else a random sample, scaled.
            census: redis::Script::new(
                "local n = redis.call('SCARD', KEYS[1]) \
                 local limit = tonumber(ARGV[1]) \
                 local members \
                 local exact = 1 \
                 if n <= limit then \
                     members = redis.call('SMEMBERS', KEYS[1]) \
                 else \
                     members = redis.call('SRANDMEMBER', KEYS[1], limit) \
                     exact = 0 \
                 end \
                 local live = 0 \
                 for _, m in ipairs(members) do \
                     if redis.call('EXISTS', m) == 1 then \
                         live = live + 1 \
                     else \
                         redis.call('SREM', KEYS[1], m) \
                     end \
                 end \
                 if exact == 1 or #members == 0 then return {live, 1} end \
                 return {math.floor(live * n / #members + 0.5), 0}",
            ),
            // KEYS: key, index sets. ARGV: px.
            expire: redis::Script::new(
                "local px = tonumber(ARGV[1]) \
                 local ok = redis.call('PEXPIRE', KEYS[1], px) \
                 if ok == 1 then \
                     for i = 2, #KEYS do \
                         if redis.call('PTTL', KEYS[i]) < px then \
                             redis.call('PEXPIRE', KEYS[i], px) \
                         end \
                     end \
                 end \
                 return ok",
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// `used_memory`, in bytes.
    pub used_memory: u64,
    /// Keys in the selected database.
    pub keys: u64,
    /// `maxmemory`, in bytes (0: no limit).
    pub max_memory: u64,
    /// `maxmemory_policy` (`noeviction`, `allkeys-lru`, ...), if reported.
    pub eviction_policy: Option<String>,
    /// `evicted_keys`: keys Redis evicted to make room since it started
    /// (summed over a cluster's masters).
    pub evicted_keys: u64,
    /// Each master's own figures (one entry on a single server).
    pub nodes: Vec<NodeInfo>,
}

/// One master's figures in [`ServerInfo::nodes`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeInfo {
    /// `host:port` on a cluster; the server's URL (password redacted) otherwise.
    pub address: String,
    /// Whether it answered (the figures are 0 otherwise).
    pub reachable: bool,
    /// `used_memory`, in bytes.
    pub used_memory: u64,
    /// Keys in the selected database.
    pub keys: u64,
}

impl ServerInfo {
    /// True if Redis may evict keys to make room: a memory limit with a
    /// policy other than `noeviction`.
    pub fn may_evict(&self) -> bool {
        self.max_memory > 0
            && self
                .eviction_policy
                .as_deref()
                .is_some_and(|p| p != "noeviction")
    }
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
        #[cfg(feature = "tls")]
        crate::config::crypto_provider();
        let invalid = |e: redis::RedisError| StoreError::InvalidUrl {
            url: config.redacted_url(),
            reason: e.to_string(),
        };
        if config.is_cluster() {
            let mut clients = Vec::with_capacity(config.cluster_nodes.len());
            for node in &config.cluster_nodes {
                clients.push(
                    config
                        .connection_info(node)
                        .and_then(Client::open)
                        .map_err(|e| StoreError::InvalidUrl {
                            url: redact(node),
                            reason: e.to_string(),
                        })?,
                );
            }
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(StoreError::NoRuntime);
            }
            let connection = Connection::cluster(&config).map_err(invalid)?;
            return Ok(RedisStore {
                inner: Arc::new(Inner::new(Source::Nodes(clients), connection, config)),
            });
        }
        if config.is_sentinel() {
            let sentinel = Sentinel::new(
                &config.sentinel_nodes,
                &config.sentinel_master,
                config.connect_timeout,
            )
            .map_err(invalid)?;
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(StoreError::NoRuntime);
            }
            let sentinel = Arc::new(sentinel);
            return Ok(RedisStore {
                inner: Arc::new(Inner::new(
                    Source::Sentinel(Arc::clone(&sentinel)),
                    Connection::sentinel(sentinel),
                    config,
                )),
            });
        }
        let client = config
            .connection_info(&config.url)
            .and_then(Client::open)
            .map_err(invalid)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::NoRuntime);
        }
        // One timer per command: ours, in `run`, which also bounds waits for
        // a reconnect; redis-rs's own response timer would be a second one.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(None)
            // A reconnect is one connection attempt, started by a failed
            // command. Commands issued meanwhile await it, so retrying with a
            // backoff inside it would hold them: with 1 retry, every call
            // made while Redis refused connections waited ~16 ms for the
            // backoff. The next failed command starts the next attempt, and
            // the breaker spaces them once it opens.
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(invalid)?;
        Ok(RedisStore {
            inner: Arc::new(Inner::new(
                Source::Nodes(vec![client]),
                Connection::single(manager),
                config,
            )),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The multiplexed connection, for raw commands (benchmarks compare against it).
    pub fn connection(&self) -> Connection {
        self.inner.connection.clone()
    }

    /// True on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.connection.is_cluster()
    }

    /// A connection to each master (the server itself on a single node),
    /// for commands that concern every master.
    async fn masters(
        &self,
    ) -> Result<Vec<(Option<String>, redis::RedisResult<Connection>)>, StoreError> {
        let limit = self.inner.config.connect_timeout + self.inner.config.op_timeout;
        match tokio::time::timeout(limit, self.inner.connection.masters()).await {
            Ok(masters) => Ok(masters?),
            Err(_) => Err(StoreError::Timeout(limit)),
        }
    }

    /// On a cluster, for each bucket ([`crate::BUCKETS`]) the index of the
    /// master serving it now: buckets with the same index fail together
    /// (`usize::MAX`: no master). Empty on a single server.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn bucket_masters(&self) -> Result<Vec<usize>, StoreError> {
        let limit = self.inner.config.connect_timeout + self.inner.config.op_timeout;
        match tokio::time::timeout(limit, self.inner.connection.bucket_masters()).await {
            Ok(found) => Ok(found?),
            Err(_) => Err(StoreError::Timeout(limit)),
        }
    }

    /// Bounds `fut` by the op timeout; a connection-level failure tells the
    /// connection, which reconnects.
    fn run<T, F>(&self, fut: F) -> Run<'_, F>
    where
        F: Future<Output = RedisResult<T>>,
    {
        let limit = self.inner.config.op_timeout;
        Run {
            store: self,
            limit,
            timed: tokio::time::timeout(limit, fut),
        }
    }

    /// What [`run`](Self::run) returns: `None` when the op timeout passed.
    fn ran<T>(&self, result: Option<RedisResult<T>>, limit: Duration) -> Result<T, StoreError> {
        let result = match result {
            Some(result) => result.map_err(|e| {
                if e.is_timeout() {
                    StoreError::Timeout(limit)
                } else {
                    StoreError::Redis(e)
                }
            }),
            None => Err(StoreError::Timeout(limit)),
        };
        if let Err(e) = &result
            && e.is_unavailable()
        {
            self.inner.connection.failed();
        }
        result
    }

    /// `GET key`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(batcher) = self.batcher(key) {
            let read = self.run(batcher.read(key, false)).await?;
            return Ok(read.map(|(bytes, _)| bytes));
        }
        let mut con = self.connection();
        let read = self
            .run(async move { read_one(&mut con, key, false).await })
            .await?;
        Ok(read.map(|(bytes, _)| bytes))
    }

    /// The batcher of `key`'s server, if reads are batched.
    fn batcher(&self, key: &str) -> Option<&Arc<Batcher>> {
        let batchers = &self.inner.batchers;
        match batchers.len() {
            0 => None,
            1 => batchers.first(),
            n => batchers.get(self.inner.connection.group(key) % n),
        }
    }

    /// `GET key` and `PTTL key` in one round trip.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn get_with_ttl(&self, key: &str) -> Result<Option<(Vec<u8>, KeyTtl)>, StoreError> {
        let read = match self.batcher(key) {
            Some(batcher) => self.run(batcher.read(key, true)).await?,
            None => {
                let mut con = self.connection();
                self.run(async move { read_one(&mut con, key, true).await })
                    .await?
            }
        };
        Ok(read.map(|(v, pttl)| (v, KeyTtl::from_pttl(pttl.unwrap_or(-2)))))
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

    /// `SET key value NX PX ttl`: whether this call set it (false: the key
    /// was there).
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn claim(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut con = self.connection();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = self
            .run(async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut con)
                    .await
            })
            .await?;
        Ok(set.is_some())
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
        self.delete_matching_where(pattern, |_| true).await
    }

    /// Like [`delete_matching`](Self::delete_matching), on every master of a
    /// cluster, removing only the names `matches` accepts among those the
    /// `SCAN` pattern finds (on a cluster, a pattern over bucket-tagged
    /// names is wider than the one meant: see
    /// [`Layout::scan_pattern`](crate::Layout::scan_pattern)).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if a step times out or fails (keys removed before it stay removed).
    pub async fn delete_matching_where(
        &self,
        pattern: &str,
        matches: impl Fn(&str) -> bool,
    ) -> Result<u64, StoreError> {
        let mut removed = 0;
        for (_, master) in self.masters().await? {
            removed += self.delete_on(master?, pattern, &matches).await?;
        }
        Ok(removed)
    }

    async fn delete_on(
        &self,
        node: Connection,
        pattern: &str,
        matches: &impl Fn(&str) -> bool,
    ) -> Result<u64, StoreError> {
        let count = self.inner.config.scan_count;
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let mut con = node.clone();
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
            // Locks, indexes and markers are not the cache's data: a pattern
            // that happens to match them leaves them alone.
            let keys: Vec<String> = keys
                .into_iter()
                .filter(|k| !is_reserved(k) && matches(k))
                .collect();
            // One `UNLINK` per key on a cluster: the keys of a batch are in
            // many slots. On one node, one for the batch.
            if self.is_cluster() {
                for k in &keys {
                    removed += self.unlink(&[k.as_str()]).await?;
                }
            } else if !keys.is_empty() {
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
        sequence: &str,
    ) -> Result<(bool, Option<(Vec<u8>, KeyTtl)>, Observed), StoreError> {
        let mut con = self.connection();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let (set, value, pttl, observed): (Option<String>, Option<Vec<u8>>, i64, Option<u64>) =
            self.run(async move {
                redis::pipe()
                    .cmd("SET")
                    .arg(lock)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .get(key)
                    .pttl(key)
                    .get(sequence)
                    .query_async(&mut con)
                    .await
            })
            .await?;
        Ok((
            set.is_some(),
            value.map(|v| (v, KeyTtl::from_pttl(pttl))),
            observed.unwrap_or(0),
        ))
    }

    /// `GET sequence`: the invalidation sequence number now (0 if none yet),
    /// for a later [`WriteGuard::Unchanged`].
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn observe(&self, sequence: &str) -> Result<Observed, StoreError> {
        let mut con = self.connection();
        let n: Option<u64> = self
            .run(async move { redis::cmd("GET").arg(sequence).query_async(&mut con).await })
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Writes `key` (`SET … PX ttl`, keeping live entries of other variants
    /// beside it: see [`variants`](crate::variants)), adds it to the `indexes` sets and
    /// records it in `registry` ([`Layout::registry`](crate::Layout::registry):
    /// its first index set, or the key itself without one), each set kept
    /// alive as long as its longest-lived member, and applies `guard`, all in
    /// one script, so a write and its index entries never part. False if the
    /// guard refused the write (an invalidation came in between).
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn write(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        indexes: &[String],
        registry: &str,
        guard: WriteGuard<'_>,
    ) -> Result<bool, StoreError> {
        let mut con = self.connection();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let script = &self.inner.scripts.write;
        let mut invocation = script.key(key);
        invocation.key(indexes).key(registry);
        invocation.arg(value).arg(ms).arg(indexes.len());
        match guard {
            WriteGuard::Unchanged { markers, observed } => {
                invocation.key(markers).arg("check").arg(0).arg(observed);
            }
            WriteGuard::UnmovedSequence {
                markers,
                sequence,
                observed,
            } => {
                // The sequence last: the script checks it is there.
                invocation
                    .key(markers)
                    .key(sequence)
                    .arg("check-seq")
                    .arg(0)
                    .arg(observed);
            }
            WriteGuard::Bump {
                marker,
                sequence,
                ttl,
            } => {
                let marker_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                invocation
                    .key(marker)
                    .key(sequence)
                    .arg("bump")
                    .arg(marker_ms);
            }
        }
        let written: i64 = self
            .run(async move { invocation.invoke_async(&mut con).await })
            .await?;
        Ok(written == 1)
    }

    /// `UNLINK key` and bumps its marker (so computations of it that started
    /// before do not store their results), in one script. Returns 1 if the key existed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn invalidate_key(
        &self,
        key: &str,
        marker: &str,
        sequence: &str,
        marker_ttl: Duration,
    ) -> Result<u64, StoreError> {
        let mut con = self.connection();
        let ms = u64::try_from(marker_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let script = &self.inner.scripts.invalidate_key;
        self.run(async move {
            script
                .key(key)
                .key(marker)
                .key(sequence)
                .arg(ms)
                .invoke_async(&mut con)
                .await
        })
        .await
    }

    /// Bumps `marker`, then removes every key listed in the `index` set, in
    /// batches of [`RedisConfig::scan_count`] (`SPOP` + `UNLINK` per batch,
    /// each one script; a set that fits in one batch is read whole and
    /// deleted, ~25 % less server time than `SPOP`): O(keys in the index), whatever the size of the
    /// keyspace. Returns how many keys existed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if a step times out or fails (keys removed before it stay removed).
    pub async fn drain_index(
        &self,
        index: &str,
        marker: &str,
        sequence: &str,
        marker_ttl: Duration,
    ) -> Result<u64, StoreError> {
        // Lua's `unpack` takes a few thousand values at most.
        let batch = self.inner.config.scan_count.clamp(1, 1000);
        let ms = u64::try_from(marker_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let script = &self.inner.scripts.drain;
        let mut removed = 0;
        let mut bump = 1;
        loop {
            let mut con = self.connection();
            let (unlinked, left): (u64, u64) = self
                .run(async move {
                    script
                        .key(index)
                        .key(marker)
                        .key(sequence)
                        .arg(batch)
                        .arg(ms)
                        .arg(bump)
                        .invoke_async(&mut con)
                        .await
                })
                .await?;
            bump = 0;
            removed += unlinked;
            if left == 0 {
                return Ok(removed);
            }
        }
    }

    /// Stamps `marker` with the next number of the `sequence` (for `ttl`),
    /// atomically.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn bump(
        &self,
        marker: &str,
        sequence: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut con = self.connection();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let script = &self.inner.scripts.bump;
        self.run(async move {
            script
                .key(marker)
                .key(sequence)
                .arg(ms)
                .invoke_async::<u64>(&mut con)
                .await
        })
        .await
        .map(drop)
    }

    /// `PEXPIRE key ttl`, and extends the `indexes` sets to at least as long,
    /// so a key never outlives its index entries; false if the key is absent.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn expire_indexed(
        &self,
        key: &str,
        ttl: Duration,
        indexes: &[String],
    ) -> Result<bool, StoreError> {
        let mut con = self.connection();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let script = &self.inner.scripts.expire;
        let mut invocation = script.key(key);
        invocation.key(indexes).arg(ms);
        let ok: i64 = self
            .run(async move { invocation.invoke_async(&mut con).await })
            .await?;
        Ok(ok == 1)
    }

    /// How many members of the set `set` exist as keys, removing those
    /// that do not: exact (`true`) up to `limit` members, beyond that
    /// estimated from a random sample of `limit`. One script, O(`limit`),
    /// whatever the size of the set or the keyspace. Repeated counts
    /// converge: every count prunes what it found dead.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn census(&self, set: &str, limit: u32) -> Result<(u64, bool), StoreError> {
        let mut con = self.connection();
        let script = &self.inner.scripts.census;
        let (count, exact): (u64, u8) = self
            .run(async move {
                script
                    .key(set)
                    .arg(limit.max(1))
                    .invoke_async(&mut con)
                    .await
            })
            .await?;
        Ok((count, exact == 1))
    }

    /// `SMEMBERS set`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn members(&self, set: &str) -> Result<Vec<String>, StoreError> {
        let mut con = self.connection();
        self.run(async move { con.smembers(set).await }).await
    }

    /// One `SSCAN set cursor COUNT count` step: the next cursor (0 when
    /// done) and the members found.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn scan_members(
        &self,
        set: &str,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let mut con = self.connection();
        self.run(async move {
            redis::cmd("SSCAN")
                .arg(set)
                .arg(cursor)
                .arg("COUNT")
                .arg(count)
                .query_async(&mut con)
                .await
        })
        .await
    }

    /// Writes one instance's snapshot under `key` for `ttl` and lists the
    /// key in the set `live`, in one round trip.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn put_snapshot(
        &self,
        live: &str,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut con = self.connection();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(async move {
            redis::pipe()
                .cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .ignore()
                .sadd(live, key)
                .ignore()
                .query_async::<()>(&mut con)
                .await
        })
        .await
    }

    /// The snapshots listed in the set `live` that have not expired (their
    /// instance is alive); the keys of those that expired leave the set.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn snapshots(&self, live: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let keys = self.members(live).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.connection();
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.get(k);
        }
        let values: Vec<Option<Vec<u8>>> = self
            .run(async move { pipe.query_async(&mut con).await })
            .await?;
        let gone: Vec<&String> = keys
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
        if !gone.is_empty() {
            let mut con = self.connection();
            self.run(async move { con.srem::<_, _, ()>(live, gone).await })
                .await?;
        }
        Ok(values.into_iter().flatten().collect())
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
        let released: i64 = self
            .run(async move {
                redis::cmd("EVAL")
                    .arg(UNLOCK)
                    .arg(1)
                    .arg(lock)
                    .arg(token)
                    .arg(channel)
                    .arg(payload)
                    .query_async(&mut con)
                    .await
            })
            .await?;
        Ok(released == 1)
    }

    /// Round-trips a `PING` (to every master of a cluster) and times it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        for (_, master) in self.masters().await? {
            let mut con = master?;
            self.run(async move { redis::cmd("PING").query_async::<()>(&mut con).await })
                .await?;
        }
        Ok(started.elapsed())
    }

    /// Used memory and key count (`INFO memory`, `DBSIZE`), in one round
    /// trip per master, summed over the masters of a cluster.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on timeout or a Redis failure.
    ///
    /// A master that does not answer is listed in [`ServerInfo::nodes`] as
    /// unreachable and left out of the sums; it is an error only when none
    /// answers.
    pub async fn info(&self) -> Result<ServerInfo, StoreError> {
        let mut total = ServerInfo {
            used_memory: 0,
            keys: 0,
            max_memory: 0,
            eviction_policy: None,
            evicted_keys: 0,
            nodes: Vec::new(),
        };
        let mut first_error = None;
        let mut answered = false;
        for (label, master) in self.masters().await? {
            let address = label.unwrap_or_else(|| self.inner.config.redacted_url());
            let answer = match master {
                Ok(master) => self.info_on(master).await,
                Err(e) => Err(e.into()),
            };
            match answer {
                Ok(one) => {
                    answered = true;
                    total.used_memory += one.used_memory;
                    total.keys += one.keys;
                    total.evicted_keys += one.evicted_keys;
                    total.max_memory = total.max_memory.max(one.max_memory);
                    if one.may_evict() || total.eviction_policy.is_none() {
                        total.eviction_policy = one.eviction_policy;
                    }
                    total.nodes.push(NodeInfo {
                        address,
                        reachable: true,
                        used_memory: one.used_memory,
                        keys: one.keys,
                    });
                }
                Err(e) => {
                    total.nodes.push(NodeInfo {
                        address,
                        reachable: false,
                        used_memory: 0,
                        keys: 0,
                    });
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if !answered => Err(e),
            _ => Ok(total),
        }
    }

    async fn info_on(&self, node: Connection) -> Result<ServerInfo, StoreError> {
        let mut con = node;
        let (info, stats, keys): (String, String, u64) = self
            .run(async move {
                redis::pipe()
                    .cmd("INFO")
                    .arg("memory")
                    .cmd("INFO")
                    .arg("stats")
                    .cmd("DBSIZE")
                    .query_async(&mut con)
                    .await
            })
            .await?;
        let field = |name: &str| {
            info.lines()
                .chain(stats.lines())
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        let used_memory = field("used_memory:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let max_memory = field("maxmemory:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(ServerInfo {
            used_memory,
            keys,
            max_memory,
            eviction_policy: field("maxmemory_policy:"),
            evicted_keys: field("evicted_keys:")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            nodes: Vec::new(),
        })
    }

    /// Subscribes to `channel` on a dedicated connection that reconnects by
    /// itself; see [`Subscription`].
    pub fn subscribe(&self, channel: &str) -> Subscription {
        Subscription::start(
            self.inner.subscribe_to.clone(),
            channel.to_owned(),
            self.inner.config.clone(),
        )
    }
}

pin_project_lite::pin_project! {
    /// [`RedisStore::run`]'s future. Hand-written rather than an `async fn`:
    /// an `async fn` keeps its argument and, while awaiting it, a second
    /// copy of it, which doubled every command's state.
    struct Run<'a, F> {
        store: &'a RedisStore,
        limit: Duration,
        #[pin]
        timed: tokio::time::Timeout<F>,
    }
}

impl<T, F> Future for Run<'_, F>
where
    F: Future<Output = RedisResult<T>>,
{
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let limit = *this.limit;
        let result = std::task::ready!(this.timed.poll(cx)).ok();
        Poll::Ready(this.store.ran(result, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run by `cargo test -p cache-redis` alone: in the workspace, a suite
    /// turns the `tls` feature on.
    #[cfg(not(feature = "tls"))]
    #[tokio::test]
    async fn tls_urls_need_the_tls_feature_and_hide_the_password() {
        let Err(err) = RedisStore::new(RedisConfig::new("rediss://:secret@localhost:6380/0"))
        else {
            panic!("a rediss:// URL without the tls feature");
        };
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid Redis URL rediss://:***@localhost"),
            "{msg}"
        );
        assert!(!msg.contains("secret"), "{msg}");
    }

    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn tls_urls_build_with_the_tls_feature() {
        assert!(RedisStore::new(RedisConfig::new("rediss://:secret@localhost:6380/0")).is_ok());
    }
}
