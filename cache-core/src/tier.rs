//! Types shared by the Redis tier and its stand-in when the `redis` feature is off.

use std::time::Duration;

use serde::Serialize;

use crate::codec::DecodeError;
use crate::l2::TierError;

/// The invalidation sequence number read before a computation (see `l2`).
pub(crate) type Observed = u64;

/// What a read of the shared tier found.
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // never built without the feature
pub(crate) enum Read<V> {
    /// A fresh value.
    Hit(V, Timing),
    /// A value past its freshness, inside its stale window (`stale_if_error`),
    /// with the time left in that window if known.
    Stale(V, Option<Duration>),
    Miss,
    /// Bytes that are not a value of this type: removed, treated as a miss.
    Invalid(DecodeError),
    /// Redis failed or timed out: treated as a miss.
    Unavailable(TierError),
}

/// How long a value read from the shared tier stays fresh, and what its writer recorded.
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct Timing {
    /// Time it stays fresh (`None`: unknown, or no expiry).
    pub(crate) left: Option<Duration>,
    /// The stale window that follows, if the writer gave it one.
    pub(crate) stale: Duration,
    /// How long its origin call took, if recorded.
    pub(crate) delta: Option<Duration>,
}

/// State of the backplane subscription, from [`Cache::backplane`](crate::Cache::backplane).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackplaneStatus {
    /// The subscription is active.
    pub connected: bool,
    /// Times the subscription was (re)established; each cleared the in-process tier.
    pub subscriptions: u64,
    /// Messages from other instances applied so far.
    pub applied: u64,
}
