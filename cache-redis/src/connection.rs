//! [`Connection`]: the one multiplexed connection a [`RedisStore`](crate::RedisStore)
//! sends its commands on: to a single server (redis-rs's `ConnectionManager`,
//! which reconnects by itself), or to a Redis Cluster (redis-rs's
//! `cluster_async` client, which routes each command by its key's slot,
//! follows `MOVED`/`ASK` and refreshes its slot map after a failover).
//!
//! The cluster connection is made on first use, like the single one, so a
//! cache can start while the cluster is down. Making it (reaching a seed,
//! reading the slot map, connecting to the masters) runs in a task of its
//! own: a command's timeout does not cancel it half-way.
//!
//! With Redis Sentinel, it is a `ConnectionManager` to the master the
//! sentinels name, replaced when that node stops serving (see
//! [`sentinel`](crate::sentinel)).
//!
//! Commands that concern every master (`SCAN`, `INFO`, `DBSIZE`, `PING`)
//! go to each master on a connection of their own ([`Connection::masters`]),
//! from the slot map as `CLUSTER SLOTS` gives it.

use std::sync::{Arc, PoisonError};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Value,
};

use crate::config::RedisConfig;
use crate::sentinel::Sentinel;

/// A connection to a single server or to a cluster. Cheap to clone; clones
/// share it.
#[derive(Clone)]
pub struct Connection {
    inner: Kind,
}

#[derive(Clone)]
enum Kind {
    Single(ConnectionManager),
    Cluster(Arc<Cluster>),
    Sentinel(Arc<Sentinel>),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.inner {
            Kind::Single(_) => "Connection(single)",
            Kind::Cluster(_) => "Connection(cluster)",
            Kind::Sentinel(_) => "Connection(sentinel)",
        })
    }
}

/// The cluster client, its connection once made, and the seed nodes'
/// settings (for connections to each master).
struct Cluster {
    client: ClusterClient,
    /// The connection once made; dropped when the masters change (a
    /// failover), so the next command makes one from the new slot map.
    connection: std::sync::Mutex<Option<ClusterConnection>>,
    /// One connection made at a time.
    making: tokio::sync::Mutex<()>,
    /// The masters the last slot map named.
    last_masters: std::sync::Mutex<Vec<Master>>,
    /// A connection to each master, for commands that concern every one.
    master_connections: std::sync::Mutex<std::collections::HashMap<Master, ConnectionManager>>,
    seed: ConnectionInfo,
    /// Every seed node, asked directly for the slot map.
    seeds: Vec<ConnectionInfo>,
    connect_timeout: std::time::Duration,
}

impl Cluster {
    fn current(&self) -> Option<ClusterConnection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn connection(self: &Arc<Self>) -> redis::RedisResult<ClusterConnection> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let me = Arc::clone(self);
        let made = tokio::spawn(async move {
            let _one = me.making.lock().await;
            if let Some(c) = me.current() {
                return Ok(c);
            }
            let c = me.client.get_async_connection().await?;
            *me.connection.lock().unwrap_or_else(PoisonError::into_inner) = Some(c.clone());
            Ok(c)
        });
        let made = made.await.unwrap_or_else(|e| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "cluster connection task failed",
                e.to_string(),
            )))
        });
        made.map_err(|e| {
            if e.to_string().contains("cluster support disabled") {
                // A single server given as a seed node: say which setting is wrong.
                redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "a seed node of the cluster (REDIS_CLUSTER_URLS, CacheBuilder::redis_cluster) \
                     is not in cluster mode (cluster-enabled no); for a single server use \
                     REDIS_URL or CacheBuilder::redis_url",
                ))
            } else {
                e
            }
        })
    }
}

/// A master's address.
type Master = (String, u16);

impl Cluster {
    /// The masters of the slot map (`CLUSTER SLOTS`, from any node), and
    /// for each slot range its master's index among them.
    ///
    /// Every seed node is asked at once and the first answer taken, so a
    /// hung node does not hold the answer up; when no seed answers (the
    /// cluster moved on from them), the cluster connection is asked.
    async fn slot_map(
        self: &Arc<Self>,
    ) -> redis::RedisResult<(Vec<Master>, Vec<(u16, u16, usize)>)> {
        let limit = self.connect_timeout * 2;
        let asks = self.seeds.iter().cloned().map(|info| {
            Box::pin(async move {
                let ask = async {
                    let client = redis::Client::open(info)?;
                    let config = redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(limit))
                        .set_response_timeout(Some(limit));
                    let mut con = client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    redis::cmd("CLUSTER")
                        .arg("SLOTS")
                        .query_async::<Vec<Value>>(&mut con)
                        .await
                };
                match tokio::time::timeout(limit, ask).await {
                    Ok(answer) => answer,
                    Err(_) => Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "no answer to CLUSTER SLOTS in time",
                    ))),
                }
            })
        });
        let slots: Vec<Value> = match futures_util::future::select_ok(asks).await {
            Ok((slots, _)) => slots,
            Err(_) => {
                let mut con = self.connection().await?;
                redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut con)
                    .await?
            }
        };
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => u16::try_from(*n).ok(),
            _ => None,
        };
        let mut masters: Vec<Master> = Vec::new();
        let mut ranges = Vec::new();
        for range in &slots {
            // [start, end, [host, port, id, ...], replicas...]
            let Value::Array(parts) = range else { continue };
            let (Some(start), Some(end)) = (int(parts.first()), int(parts.get(1))) else {
                continue;
            };
            let Some(Value::Array(master)) = parts.get(2) else {
                continue;
            };
            let host = match master.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let Some(port) = int(master.get(1)) else {
                continue;
            };
            let index = match masters.iter().position(|m| *m == (host.clone(), port)) {
                Some(i) => i,
                None => {
                    masters.push((host, port));
                    masters.len() - 1
                }
            };
            ranges.push((start, end, index));
        }
        let mut last = self
            .last_masters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !last.is_empty() && *last != masters {
            // redis-rs's client refreshes its slot map on `MOVED`, not when
            // a master's address stops answering after a failover: make a
            // new connection, which reads the map afresh.
            tracing::info!(
                masters = ?masters,
                "the Redis Cluster's masters changed (a failover or a resharding): reconnecting"
            );
            *self
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
        last.clone_from(&masters);
        drop(last);
        Ok((masters, ranges))
    }
}

impl Connection {
    pub(crate) fn single(manager: ConnectionManager) -> Connection {
        Connection {
            inner: Kind::Single(manager),
        }
    }

    /// A cluster connection over `config`'s seed nodes (no I/O yet).
    pub(crate) fn cluster(config: &RedisConfig) -> redis::RedisResult<Connection> {
        let mut infos = Vec::with_capacity(config.cluster_nodes.len());
        for node in &config.cluster_nodes {
            infos.push(node.as_str().into_connection_info()?);
        }
        let infos_for_slots = infos.clone();
        let seed = infos.first().cloned().ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a cluster needs at least one seed node",
            ))
        })?;
        let client = ClusterClient::builder(infos)
            .connection_timeout(config.connect_timeout)
            // A command the caller gave up on (`RedisStore::run`'s timer)
            // ends inside the client too. The defaults (16 retries, backing
            // off up to 655 s) keep requests for a dead master alive long
            // after their callers left, each retry asking for a slot
            // refresh, and the client serves nothing else while it
            // refreshes: one dead master stalled reads of the live ones for
            // seconds (the cluster suite's dead-master test, 1 run in 3).
            // Two retries follow a `MOVED` or `ASK` and one reconnect.
            .response_timeout(config.op_timeout)
            .overall_response_timeout(Some(config.op_timeout))
            .retries(2)
            .min_retry_wait(5)
            .max_retry_wait(50)
            .build()?;
        Ok(Connection {
            inner: Kind::Cluster(Arc::new(Cluster {
                client,
                connection: std::sync::Mutex::new(None),
                making: tokio::sync::Mutex::new(()),
                last_masters: std::sync::Mutex::new(Vec::new()),
                master_connections: std::sync::Mutex::default(),
                seed,
                seeds: infos_for_slots,
                connect_timeout: config.connect_timeout,
            })),
        })
    }

    /// The master of a Sentinel deployment (no I/O yet).
    pub(crate) fn sentinel(sentinel: Arc<Sentinel>) -> Connection {
        Connection {
            inner: Kind::Sentinel(sentinel),
        }
    }

    /// Called after a command failed with an error that says the node
    /// cannot serve: with Sentinel, the next command asks the sentinels
    /// for the master again. (A single server's and a cluster's clients
    /// reconnect and follow the slot map by themselves.)
    pub(crate) fn failed(&self) {
        if let Kind::Sentinel(s) = &self.inner {
            s.forget();
        }
    }

    /// True on a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, Kind::Cluster(_))
    }

    /// One connection per master: the server itself on a single node; on
    /// a cluster, a new connection to each master of the slot map now.
    ///
    /// Each comes with its address (`host:port`; `None` off a cluster). The
    /// connections to a cluster's masters are kept for the next call
    /// (they reconnect by themselves); those of former masters are dropped.
    pub(crate) async fn masters(
        &self,
        connect_timeout: std::time::Duration,
    ) -> redis::RedisResult<Vec<(Option<String>, redis::RedisResult<Connection>)>> {
        let cluster = match &self.inner {
            Kind::Single(_) | Kind::Sentinel(_) => return Ok(vec![(None, Ok(self.clone()))]),
            Kind::Cluster(c) => Arc::clone(c),
        };
        let (masters, _) = cluster.slot_map().await?;
        let mut out = Vec::with_capacity(masters.len());
        let kept: std::collections::HashMap<Master, ConnectionManager> = {
            let mut kept = cluster
                .master_connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            kept.retain(|m, _| masters.contains(m));
            kept.clone()
        };
        for (host, port) in masters {
            let label = format!("{host}:{port}");
            if let Some(manager) = kept.get(&(host.clone(), port)) {
                out.push((Some(label), Ok(Connection::single(manager.clone()))));
                continue;
            }
            let addr = match cluster.seed.addr() {
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => ConnectionAddr::Tcp(host.clone(), port),
            };
            let info = cluster.seed.clone().set_addr(addr);
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(None)
                .set_number_of_retries(0);
            let made = match redis::Client::open(info) {
                Ok(client) => ConnectionManager::new_with_config(client, config).await,
                Err(e) => Err(e),
            };
            // A master that cannot be reached is reported as such; the
            // others are still used.
            let made = made.map(|manager| {
                cluster
                    .master_connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert((host, port), manager.clone());
                Connection::single(manager)
            });
            out.push((Some(label), made));
        }
        Ok(out)
    }
}

impl Connection {
    /// For each cluster bucket, the index of the master that serves it
    /// now (buckets with the same index fail together); empty off a
    /// cluster, `usize::MAX` for a bucket whose slot has no master.
    pub(crate) async fn bucket_masters(&self) -> redis::RedisResult<Vec<usize>> {
        let Kind::Cluster(cluster) = &self.inner else {
            return Ok(Vec::new());
        };
        let (_, ranges) = cluster.slot_map().await?;
        Ok(crate::slot::bucket_tags()
            .iter()
            .map(|tag| {
                let slot = crate::slot::key_slot(tag.as_bytes());
                ranges
                    .iter()
                    .find(|(start, end, _)| (*start..=*end).contains(&slot))
                    .map_or(usize::MAX, |(_, _, master)| *master)
            })
            .collect())
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Kind::Single(c) => c.req_packed_command(cmd),
            Kind::Cluster(c) => {
                let c = Arc::clone(c);
                Box::pin(async move { c.connection().await?.req_packed_command(cmd).await })
            }
            Kind::Sentinel(s) => {
                let s = Arc::clone(s);
                Box::pin(async move { s.connection().await?.req_packed_command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Kind::Single(c) => c.req_packed_commands(cmd, offset, count),
            Kind::Cluster(c) => {
                let c = Arc::clone(c);
                Box::pin(async move {
                    c.connection()
                        .await?
                        .req_packed_commands(cmd, offset, count)
                        .await
                })
            }
            Kind::Sentinel(s) => {
                let s = Arc::clone(s);
                Box::pin(async move {
                    s.connection()
                        .await?
                        .req_packed_commands(cmd, offset, count)
                        .await
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Kind::Single(c) => c.get_db(),
            Kind::Cluster(_) => 0,
            // The master's database is the one its URL names.
            Kind::Sentinel(_) => 0,
        }
    }
}
