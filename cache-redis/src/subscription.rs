//! A pub/sub subscription that survives disconnects.

use std::time::Duration;

use futures_util::StreamExt;
use redis::Client;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::RedisConfig;

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
    /// Subscribes through `clients` in turn: the server, or a cluster's
    /// seed nodes (a message published on any node of a cluster reaches
    /// the subscribers of every node), moving to the next after a failure.
    pub(crate) fn start(
        clients: Vec<Client>,
        channel: String,
        config: RedisConfig,
    ) -> Subscription {
        let (tx, rx) = mpsc::channel(4096);
        let task = tokio::spawn(run(clients, channel, config, tx));
        Subscription { rx, task }
    }

    /// The next event; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

async fn run(clients: Vec<Client>, channel: String, config: RedisConfig, tx: mpsc::Sender<Event>) {
    const MIN_BACKOFF: Duration = Duration::from_millis(50);
    const MAX_BACKOFF: Duration = Duration::from_secs(2);
    let mut backoff = MIN_BACKOFF;
    let mut subscribed_before = false;
    let mut turn = 0usize;
    loop {
        let Some(client) = clients.get(turn % clients.len().max(1)) else {
            return;
        };
        turn = turn.wrapping_add(1);
        let attempt = async {
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
        if let Some(pubsub) = attempt.await {
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
