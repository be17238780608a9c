//! The tiers: the in-process tier ([`memory`]), the single flight
//! ([`flight`]), and the shared Redis tier ([`redis`], or a stand-in
//! without the `redis` feature), with the types they share.
//!
//! A tier never names the engine: the Redis tier reports what happens on
//! its side (a backplane message, a subscription that restarted) through
//! [`TierEvents`], which the engine implements and hands it at start.

use std::time::Duration;

use tokio::time::Instant;

use crate::codec::DecodeError;
use crate::glob::Glob;

pub(crate) mod flight;
pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(not(feature = "redis"))]
#[path = "tier/off.rs"]
pub(crate) mod redis;

pub(crate) use redis::{Held, L2, RedisConfig, TierError};

/// The invalidation sequence number read before a computation (see
/// [`cache_redis::Layout`] with the `redis` feature).
pub(crate) type Observed = u64;

/// What the Redis tier reports to the layer above it. Held as a `Weak`, so
/// the tier's background tasks never keep the cache alive.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) trait TierEvents: Send + Sync + 'static {
    /// The backplane subscription (re)started: whatever was published while
    /// it was down is lost, so nothing in-process can be proven fresh.
    fn subscribed(&self);
    /// Another instance wrote, deleted or invalidated what `glob` matches.
    fn remote_change(&self, glob: &Glob);
    /// Another instance invalidated a tag.
    fn remote_tag(&self, tag: &str);
}

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

/// What one attempt at a key's stampede lock found.
pub(crate) struct Attempt<V> {
    /// The lock, if this attempt took it.
    pub(crate) held: Option<Held>,
    /// The key's value, read in the same round trip.
    pub(crate) read: Read<V>,
    /// The invalidation sequence then, and when it was asked for.
    pub(crate) observed: (Observed, Instant),
}

/// What an invalidation in Redis came to. Whatever did not reach Redis
/// (the removal, or the announcement that follows it) is queued for replay
/// either way; `error` says what failed, for counting and strict mode.
#[derive(Debug)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct Invalidated {
    /// Keys removed in Redis, if the removal ran.
    pub(crate) removed: Option<u64>,
    pub(crate) error: Option<TierError>,
}
