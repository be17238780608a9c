//! A pub/sub subscription that survives disconnects.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::Client;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::RedisConfig;
use crate::sentinel::Sentinel;

/// Where a subscription connects.
#[derive(Clone)]
pub(crate) enum Source {
    /// The server, or a cluster's seed nodes, in turn (a message published
    /// on any node of a cluster reaches the subscribers of every node).
    Nodes(Vec<Client>),
    /// The master the sentinels name at each attempt. (A node demoted to a
    /// replica while the subscription lasts still delivers: replicas
    /// receive what is published on their master.)
    Sentinel(Arc<Sentinel>),
}

impl Source {
    async fn client(&self, turn: usize) -> Option<Client> {
        match self {
            Source::Nodes(clients) => clients.get(turn % clients.len().max(1)).cloned(),
            Source::Sentinel(s) => s.master_client().await.ok(),
        }
    }
}

/// What a [`Subscription`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The subscription is active. `resumed` is true after a disconnect:
    /// messages published in between were missed.
    Subscribed {
        /// True if this follows a disconnect.
        resumed: bool,
    },
    /// A message's payload.
    Message(Vec<u8>),
    /// The connection dropped; the subscription is being remade.
    Disconnected,
}

/// A channel subscription on its own connection. A background task
/// resubscribes after failures (backing off from 50 ms to 2 s) and reports
/// each transition as an [`Event`]. Dropping it ends the task.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Event>,
    task: JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscription {
    /// Subscribes through `source`, moving to its next node (or asking the
    /// sentinels again) after a failure.
    pub(crate) fn start(source: Source, channel: String, config: RedisConfig) -> Subscription {
        let (tx, rx) = mpsc::channel(4096);
        let task = tokio::spawn(run(source, channel, config, tx));
        Subscription { rx, task }
    }

    /// The next event; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

async fn run(source: Source, channel: String, config: RedisConfig, tx: mpsc::Sender<Event>) {
    const MIN_BACKOFF: Duration = Duration::from_millis(50);
    const MAX_BACKOFF: Duration = Duration::from_secs(2);
    let mut backoff = MIN_BACKOFF;
    let mut subscribed_before = false;
    let mut turn = 0usize;
    loop {
        let attempt = async {
            let client = source.client(turn).await?;
            let mut pubsub =
                tokio::time::timeout(config.connect_timeout, client.get_async_pubsub())
                    .await
                    .ok()?
                    .ok()?;
            tokio::time::timeout(config.connect_timeout, pubsub.subscribe(&channel))
                .await
                .ok()?
                .ok()?;
            Some(pubsub)
        };
        let attempt = attempt.await;
        turn = turn.wrapping_add(1);
        if let Some(pubsub) = attempt {
            backoff = MIN_BACKOFF;
            if tx
                .send(Event::Subscribed {
                    resumed: subscribed_before,
                })
                .await
                .is_err()
            {
                return;
            }
            subscribed_before = true;
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                if tx
                    .send(Event::Message(msg.get_payload_bytes().to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            tracing::warn!(channel, "Redis subscription dropped; resubscribing");
            if tx.send(Event::Disconnected).await.is_err() {
                return;
            }
        } else if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
