//! The shared tier: typed reads and writes over `cache-redis`, and the
//! backplane that keeps every instance's in-process tier in step.
//!
//! # Backplane
//!
//! Every explicit write (`set`), delete and invalidation is published on
//! `<prefix>:__backplane` with the writer's instance id. Values computed on a
//! miss are not: they follow a miss in Redis, and an in-process copy never
//! outlives the Redis key it was read from, so no instance can hold an older
//! copy to drop. Each instance applies
//! the others' messages to its in-process tier (its own are ignored) and
//! records them in its invalidation log, so a computation racing a remote
//! invalidation is not stored either. Pub/sub delivers nothing to a
//! disconnected subscriber, so whenever the subscription (re)starts the
//! in-process tier is cleared: an entry that may have missed an invalidation
//! is not served.

use std::sync::{Arc, Weak};
use std::time::Duration;

use cache_redis::{Event, KeyTtl, RedisStore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::cache::Inner;
use crate::codec::{self, CodecConfig, Compression, Format};
use crate::glob::Glob;
use crate::stats::bump;
pub(crate) use crate::tier::{BackplaneStatus, Read};

#[derive(Debug, Serialize, Deserialize)]
struct Message {
    origin: u64,
    op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
enum Op {
    /// A key was written or deleted: drop it.
    Key(String),
    /// A pattern was invalidated.
    Pattern(String),
}

pub(crate) use cache_redis::{RedisConfig, StoreError as TierError};

pub(crate) struct L2 {
    store: RedisStore,
    codec: CodecConfig,
    instance: u64,
    channel: String,
    status: watch::Sender<BackplaneStatus>,
}

impl std::fmt::Debug for L2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2")
            .field("store", &self.store)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl L2 {
    pub(crate) fn connect(
        config: RedisConfig,
        codec: CodecConfig,
        prefix: &str,
    ) -> Result<L2, TierError> {
        Ok(L2::new(RedisStore::new(config)?, codec, prefix))
    }

    fn new(store: RedisStore, codec: CodecConfig, prefix: &str) -> L2 {
        let channel = if prefix.is_empty() {
            "__backplane".to_owned()
        } else {
            format!("{prefix}:__backplane")
        };
        let (status, _) = watch::channel(BackplaneStatus {
            connected: false,
            subscriptions: 0,
            applied: 0,
        });
        L2 {
            store,
            codec,
            instance: random_id(),
            channel,
            status,
        }
    }

    pub(crate) fn status(&self) -> watch::Receiver<BackplaneStatus> {
        self.status.subscribe()
    }

    pub(crate) async fn read<V: DeserializeOwned>(
        &self,
        key: &str,
        version: u32,
        want_ttl: bool,
    ) -> Read<V> {
        let fetched = if want_ttl {
            self.store.get_with_ttl(key).await.map(|o| {
                o.map(|(bytes, ttl)| {
                    let left = match ttl {
                        KeyTtl::Expires(d) => Some(d),
                        KeyTtl::Persistent | KeyTtl::Missing => None,
                    };
                    (bytes, left)
                })
            })
        } else {
            self.store.get(key).await.map(|o| o.map(|b| (b, None)))
        };
        match fetched {
            Err(e) => Read::Unavailable(e),
            Ok(None) => Read::Miss,
            Ok(Some((bytes, left))) => {
                match codec::decode::<V>(&bytes, codec::fingerprint::<V>(version), &self.codec) {
                    Ok(v) => Read::Hit(v, left),
                    Err(e) => {
                        // Only remove what we read: a concurrent valid write is kept.
                        let _ = self.store.unlink(&[key]).await;
                        Read::Invalid(e)
                    }
                }
            }
        }
    }

    pub(crate) fn encode<V: Serialize>(
        &self,
        value: &V,
        version: u32,
        format: Option<Format>,
        compression: Option<Compression>,
    ) -> Result<Vec<u8>, codec::EncodeError> {
        codec::encode(
            value,
            codec::fingerprint::<V>(version),
            format.unwrap_or(self.codec.format),
            compression.unwrap_or(self.codec.compression),
            &self.codec,
        )
    }

    pub(crate) async fn write(
        &self,
        key: &str,
        bytes: &[u8],
        ttl: Duration,
    ) -> Result<(), TierError> {
        self.store.set(key, bytes, ttl).await
    }

    pub(crate) async fn remove(&self, key: &str) -> Result<u64, TierError> {
        self.store.unlink(&[key]).await
    }

    /// Removes what `pattern` matches: one `UNLINK` for an exact key, else `SCAN` + `UNLINK`.
    pub(crate) async fn remove_matching(&self, pattern: &str) -> Result<u64, TierError> {
        match Glob::new(pattern).exact() {
            Some(key) => self.store.unlink(&[&key]).await,
            None => self.store.delete_matching(pattern).await,
        }
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool, TierError> {
        self.store.exists(key).await
    }

    /// `Ok(None)` if the key is absent; a key without expiry reports `Duration::MAX`.
    pub(crate) async fn ttl(&self, key: &str) -> Result<Option<Duration>, TierError> {
        Ok(match self.store.ttl(key).await? {
            KeyTtl::Missing => None,
            KeyTtl::Persistent => Some(Duration::MAX),
            KeyTtl::Expires(d) => Some(d),
        })
    }

    pub(crate) async fn expire(&self, key: &str, ttl: Duration) -> Result<bool, TierError> {
        self.store.expire(key, ttl).await
    }

    pub(crate) async fn ping(&self) -> Result<Duration, TierError> {
        self.store.ping().await
    }

    /// Used memory and key count.
    pub(crate) async fn info(&self) -> Result<(u64, u64), TierError> {
        self.store.info().await.map(|i| (i.used_memory, i.keys))
    }

    /// Tells the other instances to drop `key` (fire and forget).
    pub(crate) fn announce_key(&self, key: &str) {
        self.spawn_publish(Op::Key(key.to_owned()));
    }

    /// Tells the other instances to apply an invalidation; waits for Redis to take it.
    pub(crate) async fn announce_pattern(&self, pattern: &str) -> Result<(), TierError> {
        let payload = self.payload(Op::Pattern(pattern.to_owned()));
        self.store.publish(&self.channel, &payload).await
    }

    fn payload(&self, op: Op) -> Vec<u8> {
        postcard::to_allocvec(&Message {
            origin: self.instance,
            op,
        })
        .unwrap_or_default()
    }

    fn spawn_publish(&self, op: Op) {
        let payload = self.payload(op);
        let (store, channel) = (self.store.clone(), self.channel.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(error) = store.publish(&channel, &payload).await {
                    tracing::debug!(%error, "backplane publish failed");
                }
            });
        }
    }

    /// Starts the backplane receiver for `inner` (which owns this L2).
    pub(crate) fn start_backplane(&self, inner: Weak<Inner>) {
        let mut sub = self.store.subscribe(&self.channel);
        let instance = self.instance;
        let status = self.status.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            while let Some(event) = sub.next().await {
                let Some(inner) = inner.upgrade() else { return };
                match event {
                    Event::Subscribed { resumed } => {
                        // Whatever was published while we were not listening is lost:
                        // nothing in the in-process tier can be proven fresh. After a
                        // gap, computations that straddled it do not store either.
                        if resumed {
                            inner.forget_everything_local();
                        } else {
                            inner.clear_local();
                        }
                        status.send_modify(|s| {
                            s.connected = true;
                            s.subscriptions += 1;
                        });
                        if resumed {
                            tracing::info!("backplane resubscribed; in-process tier cleared");
                        }
                    }
                    Event::Disconnected => status.send_modify(|s| s.connected = false),
                    Event::Message(bytes) => {
                        let Ok(msg) = postcard::from_bytes::<Message>(&bytes) else {
                            tracing::debug!("ignoring a backplane message that does not decode");
                            continue;
                        };
                        if msg.origin == instance {
                            continue;
                        }
                        match msg.op {
                            Op::Key(key) => inner.apply_remote(&Glob::exact_key(&key)),
                            Op::Pattern(p) => inner.apply_remote(&Glob::new(&p)),
                        }
                        bump(&inner.counters.backplane_applied);
                        status.send_modify(|s| s.applied += 1);
                    }
                    _ => {}
                }
            }
        });
    }
}

fn random_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    RandomState::new().hash_one((
        nanos,
        std::process::id(),
        Arc::as_ptr(&Arc::new(0u8)) as usize,
    ))
}
