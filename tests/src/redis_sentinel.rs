//! A private Redis Sentinel deployment for one test: a master, a replica and
//! three sentinels (quorum 2) on free ports in temporary directories,
//! killed on drop. The sentinels call a master down after 1 s without an
//! answer, so a failover takes a few seconds.
//!
//! Waits here block the calling thread: from an async test, call them in
//! `tokio::task::block_in_place` (multi-threaded runtime) or
//! `spawn_blocking`.

use crate::node::{Auth, query, wait};
use crate::redis_server::{RedisServer, ServerConfig};

/// The name the sentinels know the master by.
pub const MASTER_NAME: &str = "cachemaster";

/// A running deployment.
#[derive(Debug)]
pub struct RedisSentinelSet {
    /// The data nodes: 0 starts as the master, 1 as its replica.
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinelSet {
    /// Starts the master, its replica and the sentinels, and waits until
    /// the replica is in sync and every sentinel knows the replica and the
    /// other sentinels (so that a failover can be authorized).
    ///
    /// # Panics
    ///
    /// If `redis-server` is missing (as for [`RedisServer::start`]), or the
    /// deployment does not form within 30 s.
    pub fn start() -> RedisSentinelSet {
        let master = RedisServer::start();
        let replica = RedisServer::start_with(ServerConfig {
            args: vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                master.port().to_string(),
            ],
            ..ServerConfig::default()
        });
        let file = format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 {port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
             sentinel failover-timeout {MASTER_NAME} 10000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n",
            port = master.port()
        );
        let sentinels: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(ServerConfig {
                    file: Some(file.clone()),
                    sentinel: true,
                    ..ServerConfig::default()
                })
            })
            .collect();
        let set = RedisSentinelSet {
            nodes: vec![master, replica],
            sentinels,
        };
        let replica_port = set.nodes[1].port();
        wait("the replica in sync with the master", || {
            query::<String>(
                &Auth::default(),
                replica_port,
                redis::cmd("INFO").arg("replication"),
            )
            .is_ok_and(|info| info.contains("master_link_status:up"))
        });
        for s in &set.sentinels {
            let port = s.port();
            wait("every sentinel knows the replica and the others", || {
                let replicas: redis::RedisResult<Vec<redis::Value>> = query(
                    &Auth::default(),
                    port,
                    redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME),
                );
                let others: redis::RedisResult<Vec<redis::Value>> = query(
                    &Auth::default(),
                    port,
                    redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER_NAME),
                );
                let quorum: redis::RedisResult<String> = query(
                    &Auth::default(),
                    port,
                    redis::cmd("SENTINEL").arg("CKQUORUM").arg(MASTER_NAME),
                );
                replicas.is_ok_and(|r| r.len() == 1)
                    && others.is_ok_and(|o| o.len() == 2)
                    && quorum.is_ok()
            });
        }
        set
    }

    /// The sentinels' URLs: what an application is configured with.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port()))
            .collect()
    }

    /// The name the sentinels know the master by.
    pub fn master_name(&self) -> &'static str {
        MASTER_NAME
    }

    fn master_port(&self) -> u16 {
        let sentinel = self
            .sentinels
            .iter()
            .find_map(|s| {
                query::<Vec<String>>(
                    &Auth::default(),
                    s.port(),
                    redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(MASTER_NAME),
                )
                .ok()
            })
            .expect("a sentinel answers");
        sentinel
            .get(1)
            .and_then(|p| p.parse().ok())
            .expect("the sentinel names the master's port")
    }

    /// The URL of the master the sentinels name now.
    ///
    /// # Panics
    ///
    /// If no sentinel answers.
    pub fn master_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.master_port())
    }

    /// Kills the master the sentinels name now (SIGKILL) and returns its
    /// port.
    ///
    /// # Panics
    ///
    /// If no sentinel answers.
    pub fn kill_master(&mut self) -> u16 {
        let port = self.master_port();
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port() == port) {
            node.kill();
        }
        port
    }

    /// Waits until the sentinels name a master other than `old` and that
    /// node answers as a master.
    ///
    /// # Panics
    ///
    /// After 30 s.
    pub fn wait_for_promotion(&self, old: u16) {
        wait("the sentinels promoted the replica", || {
            let sentinels = self.sentinels.iter().map(RedisServer::port);
            let named: Vec<Option<u16>> = sentinels
                .map(|p| {
                    query::<Vec<String>>(
                        &Auth::default(),
                        p,
                        redis::cmd("SENTINEL")
                            .arg("GET-MASTER-ADDR-BY-NAME")
                            .arg(MASTER_NAME),
                    )
                    .ok()
                    .and_then(|a| a.get(1).and_then(|p| p.parse().ok()))
                })
                .collect();
            let Some(Some(new)) = named.first().copied() else {
                return false;
            };
            new != old
                && named.iter().all(|n| *n == Some(new))
                && query::<String>(&Auth::default(), new, redis::cmd("INFO").arg("replication"))
                    .is_ok_and(|info| info.contains("role:master"))
        });
    }
}
