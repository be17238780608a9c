//! The master of a Redis Sentinel deployment, found through the sentinels
//! (redis-rs's `SentinelClient`, which asks each sentinel in turn for the
//! master's address and checks with `ROLE` that the node it names is a
//! master), and a connection to it that follows failovers.
//!
//! redis-rs's `ConnectionManager` reconnects to the address it was made
//! for; after a failover that address is a dead node or a demoted replica
//! (`READONLY`). So the connection here is dropped when a command on it
//! fails with an error that says the node cannot serve
//! ([`StoreError::is_unavailable`](crate::StoreError::is_unavailable):
//! refused, reset, timed out, `READONLY`, `LOADING`, ...), and the next
//! command asks the sentinels again. While the sentinels still name the old
//! master (before they agree it is down), those commands fail like a
//! single server's during an outage: the cache's breaker spaces them.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisResult, TlsMode};

/// The sentinels, the master's name, and the connection to the master
/// they named last.
pub(crate) struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    current: Mutex<Option<ConnectionManager>>,
    connect_timeout: Duration,
}

/// The master's name and connection settings from `master`: a bare name
/// (`mymaster`), or a URL whose host is the name and which carries the
/// master's credentials, database and TLS (`rediss://:secret@mymaster/2`).
pub(crate) fn master_settings(master: &str) -> RedisResult<(String, SentinelNodeConnectionInfo)> {
    if !master.contains("://") {
        return Ok((master.to_owned(), SentinelNodeConnectionInfo::default()));
    }
    let info = master.into_connection_info()?;
    let (name, tls) = match info.addr() {
        ConnectionAddr::Tcp(host, _) => (host.clone(), None),
        ConnectionAddr::TcpTls { host, insecure, .. } => (
            host.clone(),
            Some(if *insecure {
                TlsMode::Insecure
            } else {
                TlsMode::Secure
            }),
        ),
        _ => {
            return Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "the master is named by a redis:// or rediss:// URL whose host is its name",
            )));
        }
    };
    let mut node = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(info.redis_settings().clone());
    if let Some(tls) = tls {
        node = node.set_tls_mode(tls);
    }
    Ok((name, node))
}

impl Sentinel {
    /// The sentinels at `sentinels` watching `master` (see
    /// [`master_settings`]). No I/O.
    pub(crate) fn new(
        sentinels: &[String],
        master: &str,
        connect_timeout: Duration,
    ) -> RedisResult<Sentinel> {
        let (name, node) = master_settings(master)?;
        let mut infos = Vec::with_capacity(sentinels.len());
        for s in sentinels {
            infos.push(s.as_str().into_connection_info()?);
        }
        let client = SentinelClient::build(infos, name, Some(node), SentinelServerType::Master)?;
        Ok(Sentinel {
            client: tokio::sync::Mutex::new(client),
            current: Mutex::new(None),
            connect_timeout,
        })
    }

    fn current(&self) -> Option<ConnectionManager> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A client for the master the sentinels name now.
    pub(crate) async fn master_client(&self) -> RedisResult<Client> {
        let mut client = self.client.lock().await;
        Self::ask(&mut client, self.connect_timeout).await
    }

    async fn ask(client: &mut SentinelClient, connect_timeout: Duration) -> RedisResult<Client> {
        match tokio::time::timeout(connect_timeout * 2, client.async_get_client()).await {
            Ok(found) => found,
            Err(_) => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no sentinel named a reachable master in time",
            ))),
        }
    }

    /// The connection to the master: the one in use, or a new one to the
    /// master the sentinels name now.
    pub(crate) async fn connection(&self) -> RedisResult<ConnectionManager> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        // One resolution at a time; those who waited use its connection.
        let mut sentinels = self.client.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let client = Self::ask(&mut sentinels, self.connect_timeout).await?;
        // One timer per command: the store's.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None)
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_with_config(client, config).await?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(manager.clone());
        Ok(manager)
    }

    /// Drops the connection in use: the next command asks the sentinels.
    pub(crate) fn forget(&self) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}
