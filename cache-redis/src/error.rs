//! Errors.

use std::time::Duration;

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL could not be parsed (the message never contains the password).
    #[error("invalid Redis URL {url}: {reason}")]
    InvalidUrl {
        /// The URL with any password replaced by `***`.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// Called outside a Tokio runtime (the connection runs as a task).
    #[error("a Redis store must be created inside a Tokio runtime")]
    NoRuntime,
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

impl StoreError {
    /// True for timeouts and connection failures, and for the answers of a
    /// server that cannot serve the key now: a cluster moving slots or
    /// failing over (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`,
    /// `MASTERDOWN`), a replica (`READONLY`), a server loading its data
    /// (`LOADING`), and sentinels that name no master that is up (during a
    /// Sentinel failover). These are worth retrying later (the breaker counts them,
    /// and queued invalidations wait for them), unlike a command error.
    pub fn is_unavailable(&self) -> bool {
        use redis::{ErrorKind, ServerErrorKind};
        match self {
            StoreError::Timeout(_) => true,
            StoreError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_cluster_error()
                    || matches!(
                        e.kind(),
                        ErrorKind::ClusterConnectionNotFound
                            | ErrorKind::MasterNameNotFoundBySentinel
                            | ErrorKind::NoValidReplicasFoundBySentinel
                            | ErrorKind::Server(
                                ServerErrorKind::MasterDown
                                    | ServerErrorKind::ReadOnly
                                    | ServerErrorKind::BusyLoading
                            )
                    )
            }
            StoreError::InvalidUrl { .. } | StoreError::NoRuntime => false,
        }
    }
}
