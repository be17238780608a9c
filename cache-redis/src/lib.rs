//! The Redis tier of `cache-core`, at the level of keys and bytes.
//!
//! `cache-core` owns the cache's semantics (typed values, envelopes, formats,
//! tiers, invalidation rules) and uses this crate, behind its default `redis`
//! feature, for everything that talks to Redis:
//!
//! - [`RedisStore`]: one multiplexed connection (redis-rs `ConnectionManager`)
//!   that connects lazily and reconnects by itself, every command under a hard
//!   timeout that is small by default ([`RedisConfig`]).
//! - Pattern deletion with `SCAN MATCH … COUNT` and batched `UNLINK`, never `KEYS`.
//! - [`Layout`]: the names of a cache's keys and of its bookkeeping (index
//!   sets, generation markers, locks, the backplane channel).
//! - [`Subscription`]: a pub/sub channel on its own connection that
//!   resubscribes after a disconnect and says so, so the caller can drop
//!   whatever it may have missed.
//!
//! ```no_run
//! use cache_redis::{RedisConfig, RedisStore};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), cache_redis::StoreError> {
//! let store = RedisStore::new(RedisConfig::new("redis://127.0.0.1:6379/0"))?;
//! store.set("greeting", b"hello", Duration::from_secs(60)).await?;
//! assert_eq!(store.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod config;
mod connection;
mod error;
mod layout;
mod sentinel;
mod slot;
mod store;
mod subscription;
pub mod variants;

pub use config::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_OP_TIMEOUT, RedisConfig};
pub use connection::Connection;
pub use error::StoreError;
pub use layout::{Bucket, Layout, MARKER_TTL, MAX_DEPTH, is_reserved};
pub use slot::{BUCKETS, SLOTS, key_slot};
pub use store::{KeyTtl, NodeInfo, Observed, RedisStore, ServerInfo, WriteGuard};
pub use subscription::{Event, Subscription};

/// The redis-rs crate this tier is built on, for callers that need raw access
/// (benchmarks compare against it).
pub use redis;
