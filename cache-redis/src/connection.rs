//! [`Connection`]: the one multiplexed connection a [`RedisStore`](crate::RedisStore)
//! sends its commands on: to a single server (redis-rs's `ConnectionManager`,
//! which reconnects by itself), to a Redis Cluster, or to the master the
//! sentinels of a Sentinel deployment name.
//!
//! ## On a cluster
//!
//! A command on one key (every command the store sends for a cache key:
//! the key, its index sets and markers share one bucket's hash tag, so one
//! slot) goes straight to the master that serves the slot, on a connection
//! of that master's own (a `ConnectionManager` per master, made on first
//! use and kept while the node is a master), routed by the slot map as
//! `CLUSTER SLOTS` gives it. The map is read on first use, again in the
//! background after a command failed with an error that says its node
//! cannot serve (at most once a second), whenever the tier checks the
//! topology, and at once on a `MOVED` or `ASK` redirection, whose command
//! redis-rs's own cluster client (`cluster_async`) then sends: it follows
//! redirections, including `ASK` during a slot migration. Keyless commands
//! and commands whose keys span slots go to that client too.
//!
//! Why a router of our own in front of redis-rs's client: one dead master
//! must not hold up the others. The client serves every master through one
//! driver task, which stops dispatching while it refreshes its slot map;
//! after a master died with no replica to take over, a burst of commands to
//! its slots (the entry census of `stats()`, 32 buckets at a time) made
//! that client time out every command, to live masters too, for 16-20 s
//! in about half of the runs (the cluster suite's
//! `a_burst_to_a_dead_master_does_not_hold_up_the_live_ones`). With a
//! connection per master, a dead master's commands fail on its own
//! connection, at once, and the breaker of its buckets opens; the others
//! are untouched.
//!
//! `PUBLISH` (the backplane's announcements) goes to the master of the
//! channel's slot, or, when that one cannot be reached, to another master:
//! classic pub/sub is broadcast over the whole cluster from any node.
//!
//! Making the first connection (reading the slot map) runs in a task of its
//! own: a command's timeout does not cancel it half-way. The cache can start
//! while the cluster is down.
//!
//! Commands that concern every master (`SCAN`, `INFO`, `DBSIZE`, `PING`)
//! go to each master on its connection ([`Connection::masters`]).
//!
//! With Redis Sentinel, it is a `ConnectionManager` to the master the
//! sentinels name, replaced when that node stops serving (see
//! [`sentinel`](crate::sentinel)).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    Arg, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, Pipeline, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};

use crate::config::RedisConfig;
use crate::sentinel::Sentinel;
use crate::slot::{SLOTS, key_slot};

/// A connection to a single server or to a cluster. Cheap to clone; clones
/// share it.
#[derive(Clone)]
pub struct Connection {
    inner: Kind,
    /// On a cluster, the master the last script call (`EVALSHA`) on this
    /// handle went to: a `SCRIPT LOAD` that follows a `NOSCRIPT` answer
    /// goes there too.
    last: Option<ConnectionManager>,
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

/// A master's address.
type Master = (String, u16);

/// No master serves the slot (in [`Routes::slots`]).
const NO_MASTER: u16 = u16::MAX;

/// The routing table: for each slot, the index of its master's link.
struct Routes {
    links: Vec<Arc<Link>>,
    /// [`SLOTS`] entries: an index into `links`, or [`NO_MASTER`].
    slots: Vec<u16>,
}

impl Routes {
    fn link(&self, slot: u16) -> Option<(usize, &Arc<Link>)> {
        let i = usize::from(*self.slots.get(usize::from(slot))?);
        self.links.get(i).map(|link| (i, link))
    }
}

/// A master and the connection to it, made on first use.
struct Link {
    addr: Master,
    info: ConnectionInfo,
    connect_timeout: Duration,
    manager: std::sync::Mutex<Option<ConnectionManager>>,
    /// One connection made at a time.
    making: tokio::sync::Mutex<()>,
}

impl Link {
    fn current(&self) -> Option<ConnectionManager> {
        self.manager
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The connection to this master, made now if there is none. A
    /// `ConnectionManager` reconnects by itself after it broke, so one made
    /// is kept; one that could not be made is tried again by the next call.
    async fn connection(&self) -> RedisResult<ConnectionManager> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one = self.making.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            // The store's own timer bounds each command.
            .set_response_timeout(None)
            .set_number_of_retries(0);
        let client = redis::Client::open(self.info.clone())?;
        let made = ConnectionManager::new_with_config(client, config).await?;
        *self.manager.lock().unwrap_or_else(PoisonError::into_inner) = Some(made.clone());
        Ok(made)
    }
}

/// The cluster client, its connection once made, the routing table and a
/// link to each master.
struct Cluster {
    client: ClusterClient,
    /// The client's connection once made; dropped when the masters change
    /// (a failover), so the next command makes one from the new slot map.
    connection: std::sync::Mutex<Option<ClusterConnection>>,
    /// One client connection made at a time.
    making: tokio::sync::Mutex<()>,
    /// The slot map last read, as a routing table.
    routes: std::sync::RwLock<Option<Arc<Routes>>>,
    /// One slot map read at a time for a command that has no table yet.
    routing: tokio::sync::Mutex<()>,
    /// When a read of the slot map was last started after a failure.
    refreshed: std::sync::Mutex<Option<Instant>>,
    /// The masters the last slot map named.
    last_masters: std::sync::Mutex<Vec<Master>>,
    /// The link to each master of the last slot map.
    links: std::sync::Mutex<HashMap<Master, Arc<Link>>>,
    seed: ConnectionInfo,
    /// Every seed node, asked directly for the slot map.
    seeds: Vec<ConnectionInfo>,
    connect_timeout: Duration,
}

/// Where a command goes on a cluster.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// To the master of this slot.
    Slot(u16),
    /// To any master, that of this slot first (`PUBLISH`).
    AnyMaster(u16),
    /// To the master the handle's last script call went to.
    Last,
    /// Through redis-rs's cluster client.
    Client,
}

/// Commands on one key, the first argument.
const ONE_KEY: &[&[u8]] = &[
    b"GET",
    b"SET",
    b"GETDEL",
    b"GETEX",
    b"PTTL",
    b"TTL",
    b"PEXPIRE",
    b"EXPIRE",
    b"PEXPIREAT",
    b"PERSIST",
    b"SMEMBERS",
    b"SADD",
    b"SREM",
    b"SCARD",
    b"SSCAN",
    b"SISMEMBER",
    b"INCR",
    b"INCRBY",
    b"DECR",
    b"STRLEN",
    b"TYPE",
    b"HGET",
    b"HSET",
    b"HDEL",
    b"HGETALL",
];

/// Commands whose every argument is a key.
const ALL_KEYS: &[&[u8]] = &[b"UNLINK", b"DEL", b"EXISTS", b"MGET", b"TOUCH"];

/// Scripts: `EVAL script numkeys key... arg...`.
const SCRIPTS: &[&[u8]] = &[b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL"];

fn is(name: &[u8], list: &[&[u8]]) -> bool {
    list.iter().any(|c| c.eq_ignore_ascii_case(name))
}

/// The one slot of `keys`, if they share one.
fn one_slot<'a>(mut keys: impl Iterator<Item = &'a [u8]>) -> Option<u16> {
    let slot = key_slot(keys.next()?);
    keys.all(|k| key_slot(k) == slot).then_some(slot)
}

/// Where `cmd` goes.
fn target(cmd: &Cmd) -> Target {
    let mut simple = cmd.args_iter().map(|a| match a {
        Arg::Simple(bytes) => bytes,
        _ => b"0",
    });
    let Some(name) = simple.next() else {
        return Target::Client;
    };
    if is(name, ONE_KEY) {
        return simple
            .next()
            .map_or(Target::Client, |k| Target::Slot(key_slot(k)));
    }
    if is(name, ALL_KEYS) {
        return one_slot(simple).map_or(Target::Client, Target::Slot);
    }
    if is(name, SCRIPTS) {
        let _script = simple.next();
        let keys = simple
            .next()
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        return one_slot(simple.take(keys)).map_or(Target::Client, Target::Slot);
    }
    if name.eq_ignore_ascii_case(b"PUBLISH") {
        return simple.next().map_or(Target::Client, |channel| {
            Target::AnyMaster(key_slot(channel))
        });
    }
    if name.eq_ignore_ascii_case(b"SCRIPT") {
        return Target::Last;
    }
    Target::Client
}

/// True for a script call (`EVALSHA`, ...).
fn is_script(cmd: &Cmd) -> bool {
    matches!(cmd.args_iter().next(), Some(Arg::Simple(name)) if is(name, SCRIPTS))
}

/// True for a `MOVED` or `ASK` redirection: the slot is served elsewhere.
fn redirected(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    )
}

fn redirected_value(v: &Value) -> bool {
    matches!(v, Value::ServerError(e)
        if matches!(e.kind(), Some(ServerErrorKind::Moved | ServerErrorKind::Ask)))
}

/// True when the node could not be reached (another may serve).
fn unreachable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

impl Cluster {
    fn current(&self) -> Option<ClusterConnection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `current`, or else `make` run in a task of its own (so a caller's
    /// timeout does not cancel it half-way), one at a time under `lock`.
    async fn current_or_made<T, M, Fut>(
        self: &Arc<Self>,
        current: fn(&Cluster) -> Option<T>,
        lock: fn(&Cluster) -> &tokio::sync::Mutex<()>,
        make: M,
    ) -> RedisResult<T>
    where
        T: Send + 'static,
        M: FnOnce(Arc<Cluster>) -> Fut + Send + 'static,
        Fut: Future<Output = RedisResult<T>> + Send,
    {
        if let Some(v) = current(self) {
            return Ok(v);
        }
        let me = Arc::clone(self);
        let made = tokio::spawn(async move {
            let _one = lock(&me).lock().await;
            if let Some(v) = current(&me) {
                return Ok(v);
            }
            make(Arc::clone(&me)).await
        });
        made.await.unwrap_or_else(|e| Err(task_failed(&e)))
    }

    /// redis-rs's cluster client connection, made now if there is none.
    async fn connection(self: &Arc<Self>) -> RedisResult<ClusterConnection> {
        self.current_or_made(
            Cluster::current,
            |c| &c.making,
            |me| async move {
                let c = me.client.get_async_connection().await?;
                *me.connection.lock().unwrap_or_else(PoisonError::into_inner) = Some(c.clone());
                Ok(c)
            },
        )
        .await
    }

    fn current_routes(&self) -> Option<Arc<Routes>> {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The routing table, read now (in a task of its own) if there is none.
    async fn routes(self: &Arc<Self>) -> RedisResult<Arc<Routes>> {
        self.current_or_made(
            Cluster::current_routes,
            |c| &c.routing,
            |me| async move {
                me.slot_map().await?;
                me.current_routes().ok_or_else(|| {
                    redis::RedisError::from((
                        ErrorKind::ClusterConnectionNotFound,
                        "the cluster's slot map names no master",
                    ))
                })
            },
        )
        .await
    }

    /// Reads the slot map again in the background, at most once a second:
    /// after a command failed because its node cannot serve (a failover
    /// may have moved its slots).
    fn refresh_soon(self: &Arc<Self>) {
        {
            let mut last = self
                .refreshed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *last = Some(Instant::now());
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let me = Arc::clone(self);
            runtime.spawn(async move {
                if let Err(e) = me.slot_map().await {
                    tracing::debug!(error = %e, "reading the cluster's slot map failed");
                }
            });
        }
    }

    /// One command, routed as [`target`] says.
    async fn command(
        self: Arc<Self>,
        cmd: &Cmd,
        last: &mut Option<ConnectionManager>,
    ) -> RedisResult<Value> {
        let (slot, any) = match target(cmd) {
            Target::Slot(slot) => (slot, false),
            Target::AnyMaster(slot) => (slot, true),
            Target::Last => match last {
                Some(con) => return con.req_packed_command(cmd).await,
                None => return self.connection().await?.req_packed_command(cmd).await,
            },
            Target::Client => return self.connection().await?.req_packed_command(cmd).await,
        };
        let routes = self.routes().await?;
        let Some((first, link)) = routes.link(slot) else {
            return self.connection().await?.req_packed_command(cmd).await;
        };
        let answer = match link.connection().await {
            Ok(mut con) => {
                // Only a script's `NOSCRIPT` answer is followed by a command
                // for the same master (`SCRIPT LOAD`): no clone otherwise.
                if is_script(cmd) {
                    *last = Some(con.clone());
                }
                con.req_packed_command(cmd).await
            }
            Err(e) => Err(e),
        };
        match answer {
            Err(e) if any && unreachable(&e) => {
                // Pub/sub is broadcast cluster-wide: any other master will do.
                let mut failure = e;
                for (i, other) in routes.links.iter().enumerate() {
                    if i == first {
                        continue;
                    }
                    let sent = match other.connection().await {
                        Ok(mut con) => con.req_packed_command(cmd).await,
                        Err(e) => Err(e),
                    };
                    match sent {
                        Err(e) if unreachable(&e) => failure = e,
                        done => return done,
                    }
                }
                Err(failure)
            }
            Err(e) if redirected(&e) => self.redirect_command(cmd).await,
            Ok(v) if redirected_value(&v) => self.redirect_command(cmd).await,
            other => other,
        }
    }

    /// A command whose slot moved: the table is read again, and redis-rs's
    /// client, which follows `MOVED` and `ASK`, sends it.
    async fn redirect_command(self: &Arc<Self>, cmd: &Cmd) -> RedisResult<Value> {
        self.slot_map().await?;
        self.connection().await?.req_packed_command(cmd).await
    }

    /// A pipeline: to one master when every command in it goes to the same
    /// one, otherwise through redis-rs's client.
    async fn pipeline(
        self: Arc<Self>,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let mut slots = pipeline.cmd_iter().map(|c| match target(c) {
            Target::Slot(slot) => Some(slot),
            _ => None,
        });
        let first = match slots.next() {
            Some(Some(slot)) if !pipeline.is_transaction() => slot,
            _ => {
                return self
                    .connection()
                    .await?
                    .req_packed_commands(pipeline, offset, count)
                    .await;
            }
        };
        let routes = self.routes().await?;
        let master = routes.link(first).map(|(i, _)| i);
        let mut one_slot = true;
        let same = master.is_some()
            && slots.all(|s| {
                one_slot &= s == Some(first);
                s.and_then(|s| routes.link(s)).map(|(i, _)| i) == master
            });
        let link = match routes.link(first) {
            Some((_, link)) if same => link,
            _ => {
                return self
                    .connection()
                    .await?
                    .req_packed_commands(pipeline, offset, count)
                    .await;
            }
        };
        let mut con = link.connection().await?;
        match con.req_packed_commands(pipeline, offset, count).await {
            // redis-rs's client takes pipelines on one slot only; the
            // caller of a pipeline over several slots (a batch of reads)
            // follows redirections per command.
            Err(e) if one_slot && redirected(&e) => {
                self.redirect_pipeline(pipeline, offset, count).await
            }
            Ok(values) if one_slot && values.iter().any(redirected_value) => {
                self.redirect_pipeline(pipeline, offset, count).await
            }
            other => other,
        }
    }

    async fn redirect_pipeline(
        self: &Arc<Self>,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.slot_map().await?;
        self.connection()
            .await?
            .req_packed_commands(pipeline, offset, count)
            .await
    }

    /// The address of a master, with the seed's settings (TLS, password).
    fn info_for(&self, host: &str, port: u16) -> ConnectionInfo {
        let addr = match self.seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        self.seed.clone().set_addr(addr)
    }
}

fn task_failed(e: &tokio::task::JoinError) -> redis::RedisError {
    redis::RedisError::from((
        ErrorKind::Io,
        "cluster connection task failed",
        e.to_string(),
    ))
}

/// A seed node that is a single server: say which setting is wrong.
fn name_the_setting(e: redis::RedisError) -> redis::RedisError {
    if e.to_string().contains("cluster support disabled") {
        redis::RedisError::from((
            ErrorKind::InvalidClientConfig,
            "a seed node of the cluster (REDIS_CLUSTER_URLS, CacheBuilder::redis_cluster) \
             is not in cluster mode (cluster-enabled no); for a single server use \
             REDIS_URL or CacheBuilder::redis_url",
        ))
    } else {
        e
    }
}

impl Cluster {
    /// Reads the slot map (`CLUSTER SLOTS`, from any node) and makes it the
    /// routing table; returns the masters, and for each slot range its
    /// master's index among them.
    ///
    /// Every seed node is asked at once and the first answer taken, so a
    /// hung node does not hold the answer up; when no seed answers (the
    /// cluster moved on from them), redis-rs's client is asked.
    async fn slot_map(self: &Arc<Self>) -> RedisResult<(Vec<Master>, Vec<(u16, u16, usize)>)> {
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
                        ErrorKind::Io,
                        "no answer to CLUSTER SLOTS in time",
                    ))),
                }
            })
        });
        let slots: Vec<Value> = match futures_util::future::select_ok(asks).await {
            Ok((slots, _)) => slots,
            Err(first) => {
                let first = name_the_setting(first);
                if first.kind() == ErrorKind::InvalidClientConfig {
                    return Err(first);
                }
                let mut con = self.connection().await.map_err(name_the_setting)?;
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
        self.install(&masters, &ranges);
        let mut last = self
            .last_masters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !last.is_empty() && *last != masters {
            // redis-rs's client refreshes its slot map on `MOVED`, not when
            // a master's address stops answering after a failover: its next
            // connection reads the map afresh.
            tracing::info!(
                masters = ?masters,
                "the Redis Cluster's masters changed (a failover or a resharding)"
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

    /// Makes `masters` and `ranges` the routing table, keeping the links
    /// (and connections) of masters that stay and dropping the others.
    fn install(&self, masters: &[Master], ranges: &[(u16, u16, usize)]) {
        let links: Vec<Arc<Link>> = {
            let mut kept = self.links.lock().unwrap_or_else(PoisonError::into_inner);
            kept.retain(|m, _| masters.contains(m));
            masters
                .iter()
                .map(|m| {
                    Arc::clone(kept.entry(m.clone()).or_insert_with(|| {
                        Arc::new(Link {
                            addr: m.clone(),
                            info: self.info_for(&m.0, m.1),
                            connect_timeout: self.connect_timeout,
                            manager: std::sync::Mutex::new(None),
                            making: tokio::sync::Mutex::new(()),
                        })
                    }))
                })
                .collect()
        };
        let mut slots = vec![NO_MASTER; usize::from(SLOTS)];
        for &(start, end, master) in ranges {
            let Ok(index) = u16::try_from(master) else {
                continue;
            };
            for slot in start..=end.min(SLOTS - 1) {
                slots[usize::from(slot)] = index;
            }
        }
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) =
            Some(Arc::new(Routes { links, slots }));
    }
}

impl Connection {
    pub(crate) fn single(manager: ConnectionManager) -> Connection {
        Connection {
            inner: Kind::Single(manager),
            last: None,
        }
    }

    /// A cluster connection over `config`'s seed nodes (no I/O yet).
    pub(crate) fn cluster(config: &RedisConfig) -> RedisResult<Connection> {
        let mut infos = Vec::with_capacity(config.cluster_nodes.len());
        for node in &config.cluster_nodes {
            infos.push(config.connection_info(node)?);
        }
        let infos_for_slots = infos.clone();
        let seed = infos.first().cloned().ok_or_else(|| {
            redis::RedisError::from((
                ErrorKind::InvalidClientConfig,
                "a cluster needs at least one seed node",
            ))
        })?;
        let builder = ClusterClient::builder(infos);
        #[cfg(feature = "tls")]
        let builder = match &config.tls_roots {
            Some(pem) => builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            }),
            None => builder,
        };
        let client = builder
            .connection_timeout(config.connect_timeout)
            // A command the caller gave up on (`RedisStore::run`'s timer)
            // ends inside the client too. The defaults (16 retries, backing
            // off up to 655 s) keep requests for a dead master alive long
            // after their callers left, each retry asking for a slot
            // refresh. Two retries follow a `MOVED` or `ASK` and one
            // reconnect.
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
                routes: std::sync::RwLock::new(None),
                routing: tokio::sync::Mutex::new(()),
                refreshed: std::sync::Mutex::new(None),
                last_masters: std::sync::Mutex::new(Vec::new()),
                links: std::sync::Mutex::default(),
                seed,
                seeds: infos_for_slots,
                connect_timeout: config.connect_timeout,
            })),
            last: None,
        })
    }

    /// The master of a Sentinel deployment (no I/O yet).
    pub(crate) fn sentinel(sentinel: Arc<Sentinel>) -> Connection {
        Connection {
            inner: Kind::Sentinel(sentinel),
            last: None,
        }
    }

    /// Called after a command failed with an error that says the node
    /// cannot serve: with Sentinel, the next command asks the sentinels
    /// for the master again; on a cluster, the slot map is read again in
    /// the background (a single server's client reconnects by itself).
    pub(crate) fn failed(&self) {
        match &self.inner {
            Kind::Sentinel(s) => s.forget(),
            Kind::Cluster(c) => c.refresh_soon(),
            Kind::Single(_) => {}
        }
    }

    /// The master that serves `key` now, as an index into the last slot
    /// map (0 off a cluster, or before the map is read): reads are batched
    /// per master.
    pub(crate) fn group(&self, key: &str) -> usize {
        let Kind::Cluster(c) = &self.inner else {
            return 0;
        };
        let routes = c.routes.read().unwrap_or_else(PoisonError::into_inner);
        routes
            .as_ref()
            .and_then(|r| r.link(key_slot(key.as_bytes())))
            .map_or(0, |(i, _)| i)
    }

    /// True on a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, Kind::Cluster(_))
    }

    /// One connection per master: the server itself on a single node; on
    /// a cluster, the connection to each master of the slot map now.
    ///
    /// Each comes with its address (`host:port`; `None` off a cluster). A
    /// master that cannot be reached is reported as such; the others are
    /// still used.
    pub(crate) async fn masters(
        &self,
    ) -> RedisResult<Vec<(Option<String>, RedisResult<Connection>)>> {
        let cluster = match &self.inner {
            Kind::Single(_) | Kind::Sentinel(_) => return Ok(vec![(None, Ok(self.clone()))]),
            Kind::Cluster(c) => Arc::clone(c),
        };
        cluster.slot_map().await?;
        let routes = cluster.routes().await?;
        let mut out = Vec::with_capacity(routes.links.len());
        for link in &routes.links {
            let label = format!("{}:{}", link.addr.0, link.addr.1);
            out.push((Some(label), link.connection().await.map(Connection::single)));
        }
        Ok(out)
    }

    /// For each cluster bucket, the index of the master that serves it
    /// now (buckets with the same index fail together); empty off a
    /// cluster, `usize::MAX` for a bucket whose slot has no master.
    pub(crate) async fn bucket_masters(&self) -> RedisResult<Vec<usize>> {
        let Kind::Cluster(cluster) = &self.inner else {
            return Ok(Vec::new());
        };
        let (_, ranges) = cluster.slot_map().await?;
        Ok(crate::slot::bucket_tags()
            .iter()
            .map(|tag| {
                let slot = key_slot(tag.as_bytes());
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
        let Connection { inner, last } = self;
        match inner {
            Kind::Single(c) => c.req_packed_command(cmd),
            Kind::Cluster(c) => Box::pin(Arc::clone(c).command(cmd, last)),
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
            Kind::Cluster(c) => Box::pin(Arc::clone(c).pipeline(cmd, offset, count)),
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

#[cfg(test)]
mod tests {
    use super::{Target, target};

    #[test]
    fn commands_go_to_the_slot_of_their_keys() {
        let slot = |k: &str| crate::slot::key_slot(k.as_bytes());
        assert_eq!(
            target(redis::cmd("GET").arg("a{7}")),
            Target::Slot(slot("7"))
        );
        assert_eq!(
            target(redis::cmd("SET").arg("{7}x").arg("v").arg("PX").arg(5)),
            Target::Slot(slot("7"))
        );
        assert_eq!(
            target(redis::cmd("UNLINK").arg("{7}a").arg("{7}b")),
            Target::Slot(slot("7"))
        );
        // Keys of two slots: the client splits them.
        assert_eq!(
            target(redis::cmd("UNLINK").arg("a").arg("b")),
            Target::Client
        );
        assert_eq!(
            target(
                redis::cmd("EVALSHA")
                    .arg("abc")
                    .arg(2)
                    .arg("{7}k")
                    .arg("{7}i")
                    .arg("arg-in-another-slot")
            ),
            Target::Slot(slot("7"))
        );
        assert_eq!(
            target(redis::cmd("EVAL").arg("return 1").arg(0)),
            Target::Client
        );
        assert_eq!(
            target(redis::cmd("PUBLISH").arg("p:__backplane").arg("m")),
            Target::AnyMaster(slot("p:__backplane"))
        );
        assert_eq!(
            target(redis::cmd("SCRIPT").arg("LOAD").arg("x")),
            Target::Last
        );
        assert_eq!(target(&redis::cmd("PING")), Target::Client);
        assert_eq!(target(redis::cmd("get").arg("k")), Target::Slot(slot("k")));
        assert!(super::is_script(redis::cmd("EVALSHA").arg("abc").arg(0)));
        assert!(!super::is_script(redis::cmd("GET").arg("k")));
    }
}
