//! Connection settings.

use std::fmt;
use std::time::Duration;

/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// Default time to wait for one command's answer. Small on purpose: a cache
/// that makes callers wait on a slow Redis is worse than a miss (redis-rs's own
/// default, 500 ms, is too long for a cache).
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(100);

/// Where Redis is and how long to wait for it.
///
/// The URL takes the usual forms: `redis://host:port/db`,
/// `redis://:password@host/0`, `redis://user:password@host/2` (ACL), and
/// `rediss://...` for TLS (feature `tls`). `Debug` never shows the password.
///
/// ```
/// use cache_redis::RedisConfig;
/// use std::time::Duration;
///
/// let config = RedisConfig::new("redis://app:s3cret@10.0.0.5:6380/2")
///     .op_timeout(Duration::from_millis(50));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server URL (on a cluster, the first seed node's; with
    /// sentinels, the master's name or URL).
    pub url: String,
    /// A Redis Cluster's seed nodes ([`RedisConfig::cluster`]); empty for
    /// a single server.
    pub cluster_nodes: Vec<String>,
    /// The sentinels of a Redis Sentinel deployment
    /// ([`RedisConfig::sentinel`]); empty otherwise.
    pub sentinel_nodes: Vec<String>,
    /// The master the sentinels watch: its name, or a URL whose host is its
    /// name and which carries its credentials, database and TLS
    /// (`rediss://:secret@mymaster/2`). Empty without sentinels.
    pub sentinel_master: String,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time to wait for one command's answer.
    pub op_timeout: Duration,
    /// `COUNT` hint of each `SCAN` step in pattern deletion.
    pub scan_count: usize,
    /// Whether reads of different keys that wait at the same moment go to
    /// Redis together (`MGET`; see [`RedisConfig::batch_reads`]). On by
    /// default.
    pub batch_reads: bool,
    /// PEM certificates of the authorities that sign the server's TLS
    /// certificate, for `rediss://` servers whose certificate a private CA
    /// signed ([`RedisConfig::tls_root_certificates`]). `None`: the
    /// platform's roots. Single servers and clusters (feature `tls`).
    pub tls_roots: Option<Vec<u8>>,
}

impl RedisConfig {
    /// Settings for `url`, with the default timeouts.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            cluster_nodes: Vec::new(),
            sentinel_nodes: Vec::new(),
            sentinel_master: String::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            op_timeout: DEFAULT_OP_TIMEOUT,
            scan_count: 1000,
            batch_reads: true,
            tls_roots: None,
        }
    }

    /// Settings for a Redis Cluster reached through `nodes` (seed nodes:
    /// one reachable node is enough to find the others; give several).
    /// `rediss://` and passwords work as for one server.
    ///
    /// ```
    /// let c = cache_redis::RedisConfig::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
    /// assert!(c.is_cluster());
    /// assert_eq!(c.redacted_url(), "redis://10.0.0.1:7000,redis://10.0.0.2:7000");
    /// ```
    pub fn cluster<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> RedisConfig {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        RedisConfig {
            cluster_nodes: nodes.clone(),
            ..RedisConfig::new(nodes.first().cloned().unwrap_or_default())
        }
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        !self.cluster_nodes.is_empty()
    }

    /// Settings for the master of a Redis Sentinel deployment: the
    /// sentinels' URLs (`redis://host:26379`, with the sentinels' own
    /// password if they have one) and the master's name as the sentinels
    /// know it. The master's own password, database and TLS go in a URL
    /// whose host is that name: `redis://:secret@mymaster/2`,
    /// `rediss://mymaster`. The cache asks the sentinels for the master
    /// on first use and again whenever the node it uses stops serving
    /// (dead, or demoted to a replica by a failover).
    ///
    /// ```
    /// let c = cache_redis::RedisConfig::sentinel(
    ///     ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"],
    ///     "redis://:s3cret@mymaster/2",
    /// );
    /// assert!(c.is_sentinel());
    /// assert_eq!(
    ///     c.redacted_url(),
    ///     "redis://:***@mymaster/2 via redis://10.0.0.1:26379,redis://10.0.0.2:26379"
    /// );
    /// ```
    pub fn sentinel<S: Into<String>>(
        sentinels: impl IntoIterator<Item = S>,
        master: impl Into<String>,
    ) -> RedisConfig {
        let master = master.into();
        RedisConfig {
            sentinel_nodes: sentinels.into_iter().map(Into::into).collect(),
            sentinel_master: master.clone(),
            ..RedisConfig::new(master)
        }
    }

    /// True for a Redis Sentinel deployment.
    pub fn is_sentinel(&self) -> bool {
        !self.sentinel_nodes.is_empty()
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the per-command timeout.
    #[must_use]
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Turns automatic batching of concurrent reads on (the default) or
    /// off. With it, a read is sent at once while the connection has few
    /// reads in flight; reads that arrive while it is busy wait for the
    /// next batch (one `MGET`, one `MGET` per hash slot on a cluster). Each
    /// read keeps its own timeout, answer and errors.
    ///
    /// ```
    /// let c = cache_redis::RedisConfig::new("redis://127.0.0.1/0").batch_reads(false);
    /// assert!(!c.batch_reads);
    /// ```
    #[must_use]
    pub fn batch_reads(mut self, on: bool) -> Self {
        self.batch_reads = on;
        self
    }

    /// Trusts the certificate authorities in `pem` (instead of the
    /// platform's roots) for `rediss://` servers: a server whose
    /// certificate they did not sign, or whose certificate does not name
    /// the host connected to, is refused. Single servers and clusters.
    ///
    /// ```no_run
    /// let ca = std::fs::read("/etc/redis/ca.pem")?;
    /// let c = cache_redis::RedisConfig::new("rediss://redis.internal:6380/0").tls_root_certificates(ca);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_roots = Some(pem.into());
        self
    }

    /// The connection settings of `url` with this configuration's TLS roots.
    pub(crate) fn connection_info(&self, url: &str) -> redis::RedisResult<redis::ConnectionInfo> {
        #[cfg(feature = "tls")]
        if let Some(pem) = &self.tls_roots
            && url.starts_with("rediss://")
        {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            };
            return Ok(redis::Client::build_with_tls(url, certificates)?
                .get_connection_info()
                .clone());
        }
        redis::IntoConnectionInfo::into_connection_info(url)
    }

    /// Sets the `SCAN` `COUNT` hint.
    #[must_use]
    pub fn scan_count(mut self, count: usize) -> Self {
        self.scan_count = count.max(1);
        self
    }

    /// The URL with its password replaced by `***`, for logs and errors.
    ///
    /// ```
    /// let c = cache_redis::RedisConfig::new("redis://user:pw@host:1/0");
    /// assert_eq!(c.redacted_url(), "redis://user:***@host:1/0");
    /// ```
    pub fn redacted_url(&self) -> String {
        if self.is_cluster() {
            let nodes: Vec<String> = self.cluster_nodes.iter().map(|n| redact(n)).collect();
            return nodes.join(",");
        }
        if self.is_sentinel() {
            let nodes: Vec<String> = self.sentinel_nodes.iter().map(|n| redact(n)).collect();
            return format!("{} via {}", redact(&self.sentinel_master), nodes.join(","));
        }
        redact(&self.url)
    }
}

/// rustls needs a process-wide crypto provider, and picks none by itself
/// when the build enables no provider feature, or two (another crate may
/// enable `aws-lc-rs`): then the first TLS connection would panic. This
/// installs `ring`'s unless the application installed one.
#[cfg(feature = "tls")]
pub(crate) fn crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one meanwhile, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("connect_timeout", &self.connect_timeout)
            .field("op_timeout", &self.op_timeout)
            .field("scan_count", &self.scan_count)
            .field("batch_reads", &self.batch_reads)
            .field("tls_roots", &self.tls_roots.as_ref().map(|_| "PEM"))
            .finish()
    }
}

pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next().unwrap_or_default();
    let redacted = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        "***".to_owned()
    };
    format!("{}{}{}", &url[..scheme_end], redacted, &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact("redis://u:pw@h/0"), "redis://u:***@h/0");
        assert_eq!(redact("rediss://token@h"), "rediss://***@h");
        assert_eq!(redact("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(redact("redis://h/0?x=a@b"), "redis://h/0?x=a@b");
    }
}
