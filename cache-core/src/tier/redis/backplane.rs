//! The backplane: every instance's in-process tier kept in step over one
//! pub/sub channel (`<prefix>:__backplane`).
//!
//! Every explicit write (`set`), delete and invalidation is published with
//! the writer's instance id. Values computed on a miss are not: they follow a
//! miss in Redis, and an in-process copy never outlives the Redis key it was
//! read from, so no instance can hold an older copy to drop. Each instance
//! hands the others' messages to the layer above ([`TierEvents::remote_change`]),
//! which applies them to its in-process tier and records them in its
//! invalidation log, so a computation racing a remote invalidation is not
//! stored either. Lock releases (`Landed`) wake the calls of this process
//! waiting on that lock, whoever released it.
//!
//! Pub/sub delivers nothing to a disconnected subscriber, so whenever the
//! subscription (re)starts the layer above is told
//! ([`TierEvents::subscribed`]) and clears its in-process tier: an entry that
//! may have missed an invalidation is not served. At each (re)subscription
//! the tier also checks that Redis will not evict its bookkeeping keys.

use std::sync::{Arc, PoisonError, Weak};

use cache_redis::Event;
use serde::{Deserialize, Serialize};

use super::{L2, TierError};
use crate::glob::Glob;
use crate::tier::TierEvents;

#[derive(Debug, Serialize, Deserialize)]
struct Message {
    origin: u64,
    op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Op {
    /// A key was written or deleted: drop it.
    Key(String),
    /// A pattern was invalidated.
    Pattern(String),
    /// A lock on a key was released (its value stored, or the computation
    /// given up): processes waiting on that lock read again.
    Landed(String),
    /// A tag was invalidated. (Last, so the messages above keep their
    /// encoding: instances of an older build ignore this one.)
    Tag(String),
}

/// How often a cluster tier reads which master serves each bucket (and,
/// through `cache_redis`, notices a failover); sooner when a breaker opens.
const TOPOLOGY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl L2 {
    /// The message for `op`, from this instance.
    pub(super) fn payload(&self, op: Op) -> Vec<u8> {
        postcard::to_allocvec(&Message {
            origin: self.instance,
            op,
        })
        .unwrap_or_default()
    }

    /// Publishes `op`; waits for Redis to take it.
    pub(super) async fn announce(&self, op: Op) -> Result<(), TierError> {
        let payload = self.payload(op);
        self.guarded(None, self.store.publish(self.layout.channel(), &payload))
            .await
    }

    /// Starts the tier's background work: the replay of queued
    /// invalidations, and (with `subscribe`) the backplane receiver, which
    /// reports to `events`. Both hold the tier and `events` weakly. Needs a
    /// Tokio runtime; without one, nothing runs in the background.
    /// On a cluster: reads which master serves each bucket now and every
    /// [`TOPOLOGY_INTERVAL`] (see `L2::refresh_masters`); holds the tier
    /// weakly and ends with it.
    fn start_topology(self: &Arc<Self>, rt: &tokio::runtime::Handle) {
        if !self.layout.is_cluster() {
            return;
        }
        let tier = Arc::downgrade(self);
        rt.spawn(async move {
            loop {
                let Some(l2) = tier.upgrade() else {
                    return;
                };
                l2.refresh_masters().await;
                let wanted = l2.topology_wanted();
                drop(l2);
                // Until the interval ends, or a breaker opens while the
                // map is unknown (the notification holds the tier only
                // through `wanted`'s Arc).
                tokio::select! {
                    () = tokio::time::sleep(TOPOLOGY_INTERVAL) => {}
                    () = wanted.notified() => {}
                }
                // At most two reads a second while breakers keep failing.
                tokio::time::sleep(TOPOLOGY_INTERVAL / 20).await;
            }
        });
    }

    pub(crate) fn start(self: &Arc<Self>, events: Weak<dyn TierEvents>, subscribe: bool) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.start_replay(&rt);
        self.start_topology(&rt);
        if !subscribe {
            return;
        }
        let mut sub = self.store.subscribe(self.layout.channel());
        let instance = self.instance;
        let status = self.status.clone();
        let tier = Arc::downgrade(self);
        let handle = rt.spawn(async move {
            while let Some(event) = sub.next().await {
                let Some(events) = events.upgrade() else {
                    return;
                };
                match event {
                    Event::Subscribed { resumed } => {
                        events.subscribed();
                        status.send_modify(|s| {
                            s.connected = true;
                            s.subscriptions += 1;
                        });
                        if resumed {
                            tracing::info!("backplane resubscribed; in-process tier cleared");
                        }
                        // Redis answers: check it will keep the bookkeeping keys.
                        let tier = tier.clone();
                        tokio::spawn(async move {
                            if let Some(l2) = tier.upgrade() {
                                l2.warn_if_evicting().await;
                            }
                        });
                    }
                    Event::Disconnected => status.send_modify(|s| s.connected = false),
                    Event::Message(bytes) => {
                        let Ok(msg) = postcard::from_bytes::<Message>(&bytes) else {
                            tracing::debug!("ignoring a backplane message that does not decode");
                            continue;
                        };
                        let glob = match msg.op {
                            // From any instance: a background refresh here may
                            // hold a lock a call here waits on.
                            Op::Landed(key) => {
                                if let Some(l2) = tier.upgrade() {
                                    l2.wake(&key);
                                }
                                continue;
                            }
                            _ if msg.origin == instance => continue,
                            Op::Key(key) => Glob::exact_key(&key),
                            Op::Pattern(p) => Glob::new(&p),
                            Op::Tag(tag) => {
                                events.remote_tag(&tag);
                                status.send_modify(|s| s.applied += 1);
                                continue;
                            }
                        };
                        events.remote_change(&glob);
                        status.send_modify(|s| s.applied += 1);
                    }
                    _ => {}
                }
            }
        });
        *self.receiver.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle.abort_handle());
    }
}
