//! A private Redis Cluster for one test: `masters` nodes sharing the 16,384
//! slots in equal ranges, each with `replicas` replicas, on free ports in
//! temporary directories, killed on drop. Tests kill, pause and restart
//! single nodes and wait for a replica's promotion.
//!
//! The cluster is assembled with the cluster commands themselves
//! (`CLUSTER ADDSLOTSRANGE`, `MEET`, `REPLICATE`), as `redis-cli --cluster
//! create` does, so nothing beyond `redis-server` is needed. Nodes run with a
//! 1 s node timeout (a failover takes about two seconds) and
//! `cluster-require-full-coverage no`, so the slots of healthy masters keep
//! being served while one master is down: the behaviour the cache has to
//! handle per node. (With Redis's default, `yes`, the whole cluster refuses
//! commands until the failed slots are covered again; the cache then serves
//! every key as it does during a single node's outage.)
//!
//! Waits here block the calling thread: from an async test, call them in
//! `tokio::task::spawn_blocking`.

use crate::node::{Auth, query, wait};
use crate::redis_server::{RedisServer, ServerConfig};

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16_384;

/// A running private cluster.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    masters: usize,
    auth: Auth,
}

fn node_config(auth: &Auth) -> ServerConfig {
    let mut args = vec![
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "1000",
        "--cluster-require-full-coverage",
        "no",
        // A replica that lost its master a while ago still takes over.
        "--cluster-replica-validity-factor",
        "0",
    ];
    if let Some(pw) = &auth.0 {
        args.extend(["--requirepass", pw, "--masterauth", pw]);
    }
    ServerConfig {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..ServerConfig::default()
    }
}

/// A range of slots and the port of the master that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u16,
    end: u16,
    master: u16,
    replicas: usize,
}

/// `CLUSTER SLOTS` as seen by the node on `port`.
fn slot_ranges(auth: &Auth, port: u16) -> redis::RedisResult<Vec<Range>> {
    let rows: Vec<redis::Value> = query(auth, port, redis::cmd("CLUSTER").arg("SLOTS"))?;
    let mut ranges = Vec::new();
    for row in rows {
        let redis::Value::Array(fields) = row else {
            continue;
        };
        let int = |v: &redis::Value| match v {
            redis::Value::Int(n) => u16::try_from(*n).ok(),
            _ => None,
        };
        let (Some(start), Some(end)) = (fields.first().and_then(int), fields.get(1).and_then(int))
        else {
            continue;
        };
        let Some(redis::Value::Array(master)) = fields.get(2) else {
            continue;
        };
        let Some(port) = master.get(1).and_then(int) else {
            continue;
        };
        ranges.push(Range {
            start,
            end,
            master: port,
            replicas: fields.len().saturating_sub(3),
        });
    }
    Ok(ranges)
}

fn cluster_ok(auth: &Auth, port: u16) -> bool {
    query::<String>(auth, port, redis::cmd("CLUSTER").arg("INFO"))
        .is_ok_and(|info| info.contains("cluster_state:ok"))
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each and waits
    /// until every node agrees that every slot is served (and every master
    /// has its replicas).
    ///
    /// # Panics
    ///
    /// If `redis-server` is missing (as for [`RedisServer::start`]), or the
    /// cluster does not form within 30 s.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        RedisCluster::start_with(masters, replicas, None)
    }

    /// [`start`](Self::start) with every node requiring `password`
    /// (`requirepass`, and `masterauth` for the replicas); the URLs it
    /// gives carry it.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with_password(masters: usize, replicas: usize, password: &str) -> RedisCluster {
        RedisCluster::start_with(masters, replicas, Some(password.to_owned()))
    }

    fn start_with(masters: usize, replicas: usize, password: Option<String>) -> RedisCluster {
        assert!(masters > 0, "a cluster has at least one master");
        let auth = Auth(password);
        let total = masters * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..total)
            .map(|_| RedisServer::start_with(node_config(&auth)))
            .collect();
        let cluster = RedisCluster {
            nodes,
            masters,
            auth,
        };
        cluster.assemble(replicas);
        cluster
    }

    fn assemble(&self, replicas: usize) {
        let per = usize::from(SLOTS).div_ceil(self.masters);
        for i in 0..self.masters {
            let start = i * per;
            let end = ((i + 1) * per).min(usize::from(SLOTS)) - 1;
            query::<()>(
                &self.auth,
                self.port(i),
                redis::cmd("CLUSTER")
                    .arg("ADDSLOTSRANGE")
                    .arg(start)
                    .arg(end),
            )
            .expect("CLUSTER ADDSLOTSRANGE");
        }
        let first = self.port(0);
        for i in 1..self.nodes.len() {
            query::<()>(
                &self.auth,
                first,
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(self.port(i)),
            )
            .expect("CLUSTER MEET");
        }
        let total = self.nodes.len();
        wait("every node knows every other", || {
            (0..total).all(|i| {
                query::<String>(&self.auth, self.port(i), redis::cmd("CLUSTER").arg("NODES"))
                    .is_ok_and(|nodes| nodes.lines().filter(|l| !l.is_empty()).count() == total)
            })
        });
        for r in 0..self.masters * replicas {
            let replica = self.masters + r;
            let master = r % self.masters;
            let id: String = query(
                &self.auth,
                self.port(master),
                redis::cmd("CLUSTER").arg("MYID"),
            )
            .expect("CLUSTER MYID");
            query::<()>(
                &self.auth,
                self.port(replica),
                redis::cmd("CLUSTER").arg("REPLICATE").arg(&id),
            )
            .expect("CLUSTER REPLICATE");
        }
        wait("every node serves every slot with its replicas", || {
            (0..total).all(|i| {
                cluster_ok(&self.auth, self.port(i))
                    && slot_ranges(&self.auth, self.port(i)).is_ok_and(|ranges| {
                        let covered: usize = ranges
                            .iter()
                            .map(|r| usize::from(r.end - r.start) + 1)
                            .sum();
                        covered == usize::from(SLOTS)
                            && ranges.iter().all(|r| r.replicas == replicas)
                    })
            })
        });
        // Replicas in sync, so that a failover finds the data.
        for r in 0..self.masters * replicas {
            let port = self.port(self.masters + r);
            wait("the replica's link to its master is up", || {
                query::<String>(&self.auth, port, redis::cmd("INFO").arg("replication"))
                    .is_ok_and(|info| info.contains("master_link_status:up"))
            });
        }
    }

    /// Every node's URL: what an application lists as its seed nodes.
    pub fn seed_urls(&self) -> Vec<String> {
        self.urls()
    }

    /// Every node's URL, masters first (in the order they were started).
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len())
            .map(|i| self.auth.url(self.port(i)))
            .collect()
    }

    /// The URLs of the nodes that serve slots now, as a live node sees
    /// them (after a failover, the promoted replica instead of the dead
    /// master).
    ///
    /// # Panics
    ///
    /// If no node answers.
    pub fn master_urls(&self) -> Vec<String> {
        let mut ports: Vec<u16> = self.live_ranges().iter().map(|r| r.master).collect();
        ports.sort_unstable();
        ports.dedup();
        ports.into_iter().map(|p| self.auth.url(p)).collect()
    }

    fn live_ranges(&self) -> Vec<Range> {
        (0..self.nodes.len())
            .find_map(|i| slot_ranges(&self.auth, self.port(i)).ok())
            .expect("a node of the cluster answers CLUSTER SLOTS")
    }

    /// The port of node `i` (masters are `0..masters`, then the replicas:
    /// node `masters + k` replicates master `k % masters`).
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port()
    }

    /// The node (index) whose master serves the slot of `key` (the key as
    /// stored, hash tag included) now.
    ///
    /// # Panics
    ///
    /// If no node answers or the slot is served by a node of another
    /// cluster.
    pub fn master_for_key(&self, key: &str) -> usize {
        let slot: u16 = query(
            &self.auth,
            self.live_port(),
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(key),
        )
        .expect("CLUSTER KEYSLOT");
        let range = self
            .live_ranges()
            .into_iter()
            .find(|r| (r.start..=r.end).contains(&slot))
            .expect("every slot is served");
        (0..self.nodes.len())
            .find(|&i| self.port(i) == range.master)
            .expect("the master is one of the cluster's nodes")
    }

    fn live_port(&self) -> u16 {
        (0..self.nodes.len())
            .map(|i| self.port(i))
            .find(|&p| cluster_ok(&self.auth, p) || slot_ranges(&self.auth, p).is_ok())
            .expect("a node of the cluster answers")
    }

    /// Kills node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again on its port, with its cluster configuration
    /// (it rejoins; a master that lost its slots comes back as a replica).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// SIGSTOP node `i`.
    pub fn pause(&self, i: usize) {
        self.nodes[i].pause();
    }

    /// SIGCONT node `i`.
    pub fn resume(&self, i: usize) {
        self.nodes[i].resume();
    }

    /// Waits until node `i` (a dead master) no longer serves any slot: a
    /// replica was promoted in its place, and every live node agrees that
    /// every slot is served.
    ///
    /// # Panics
    ///
    /// After 30 s.
    pub fn wait_for_failover(&self, i: usize) {
        let dead = self.port(i);
        let live: Vec<u16> = (0..self.nodes.len())
            .filter(|&n| n != i)
            .map(|n| self.port(n))
            .collect();
        wait("a replica promoted in place of the dead master", || {
            live.iter().all(|&p| {
                cluster_ok(&self.auth, p)
                    && slot_ranges(&self.auth, p).is_ok_and(|ranges| {
                        let covered: usize = ranges
                            .iter()
                            .map(|r| usize::from(r.end - r.start) + 1)
                            .sum();
                        covered == usize::from(SLOTS) && ranges.iter().all(|r| r.master != dead)
                    })
            })
        });
    }

    /// `WAIT`s on the master of `key` until its replicas have every write
    /// made so far (so a failover keeps them).
    ///
    /// # Panics
    ///
    /// If the master does not answer, or not every replica acknowledged
    /// within 5 s.
    pub fn wait_for_replication(&self, key: &str) {
        let master = self.master_for_key(key);
        let port = self.port(master);
        let replicas = self
            .live_ranges()
            .into_iter()
            .find(|r| r.master == port)
            .map_or(0, |r| r.replicas);
        let acked: usize = query(&self.auth, port, redis::cmd("WAIT").arg(replicas).arg(5000))
            .expect("WAIT on the master");
        assert_eq!(acked, replicas, "every replica acknowledged the writes");
    }
}
