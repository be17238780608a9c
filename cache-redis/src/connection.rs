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

use std::sync::Arc;

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
    connection: tokio::sync::OnceCell<ClusterConnection>,
    seed: ConnectionInfo,
}

impl Cluster {
    async fn connection(self: &Arc<Self>) -> redis::RedisResult<ClusterConnection> {
        if let Some(c) = self.connection.get() {
            return Ok(c.clone());
        }
        let me = Arc::clone(self);
        let made = tokio::spawn(async move {
            me.connection
                .get_or_try_init(|| me.client.get_async_connection())
                .await
                .cloned()
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
                connection: tokio::sync::OnceCell::new(),
                seed,
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
    pub(crate) async fn masters(
        &self,
        connect_timeout: std::time::Duration,
    ) -> redis::RedisResult<Vec<Connection>> {
        let cluster = match &self.inner {
            Kind::Single(_) | Kind::Sentinel(_) => return Ok(vec![self.clone()]),
            Kind::Cluster(c) => Arc::clone(c),
        };
        let mut con = cluster.connection().await?;
        let slots: Vec<Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut con)
            .await?;
        let mut masters: Vec<(String, u16)> = Vec::new();
        for range in &slots {
            // [start, end, [host, port, id, ...], replicas...]
            let Value::Array(parts) = range else { continue };
            let Some(Value::Array(master)) = parts.get(2) else {
                continue;
            };
            let host = match master.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = master.get(1) else {
                continue;
            };
            let Ok(port) = u16::try_from(*port) else {
                continue;
            };
            if !masters.contains(&(host.clone(), port)) {
                masters.push((host, port));
            }
        }
        let mut out = Vec::with_capacity(masters.len());
        for (host, port) in masters {
            let addr = match cluster.seed.addr() {
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => ConnectionAddr::Tcp(host, port),
            };
            let info = cluster.seed.clone().set_addr(addr);
            let client = redis::Client::open(info)?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(None)
                .set_number_of_retries(0);
            let manager = ConnectionManager::new_with_config(client, config).await?;
            out.push(Connection::single(manager));
        }
        Ok(out)
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
