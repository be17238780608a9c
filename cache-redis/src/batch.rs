//! Automatic batching of concurrent reads: reads of different keys that
//! wait at the same moment go to Redis together.
//!
//! The rule: a read is sent at once, alone, while fewer than [`FLIGHTS`]
//! reads or batches are on their way to the same server (so a read that is
//! alone never waits for company); a read that arrives while that many are
//! in flight joins a queue, and the queue goes out as one batch (up to
//! [`MAX_BATCH`] keys) as soon as one of them lands. Under load, batches
//! grow by themselves to the number of reads waiting; when idle, nothing
//! waits.
//!
//! A batch is one pipeline: `MGET` of its keys (one `MGET` per hash slot on
//! a cluster, where a command may not span slots; each master has batches
//! of its own), then `PTTL` of each key whose caller wants its time left.
//! Every caller gets its own answer: a missing key is `None` for that key
//! only, bytes that do not decode are the caller's business (a miss for
//! that key), an error answer for one `MGET` (a slot that moved) is an
//! error for its keys only, and each caller's wait is bounded by its own
//! command timeout (the store's timer around [`Batcher::read`]); a caller
//! that gave up is left out of the batch. A batch in flight is bounded by
//! the same timeout, so a server that stops answering never holds the
//! queue.
//!
//! Hand-written: redis-rs pipelines commands on a multiplexed connection
//! but has no batching of independent callers' reads into one command, and
//! no crate offers it for redis-rs.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{RedisError, RedisResult, Value};
use tokio::sync::oneshot;

use crate::connection::Connection;
use crate::slot::key_slot;

/// Reads or batches in flight to one server before new reads queue. Two
/// keep the server and the client busy at once (one batch is answered
/// while the next is sent); measured with `cache-bench` (64 and 256 tasks
/// on one server): 1 and 3 flights were 4-10% slower.
pub(crate) const FLIGHTS: usize = 2;

/// Most keys in one batch; the rest wait for the next.
pub(crate) const MAX_BATCH: usize = 128;

/// What a read of one key found: its bytes, and its `PTTL` if asked for.
pub(crate) type Fetched = Option<(Vec<u8>, Option<i64>)>;

/// A read waiting in the queue.
struct Request {
    key: String,
    ttl: bool,
    answer: oneshot::Sender<RedisResult<Fetched>>,
}

#[derive(Default)]
struct State {
    flights: usize,
    queue: Vec<Request>,
}

/// The reads to one server (one master of a cluster).
pub(crate) struct Batcher {
    state: std::sync::Mutex<State>,
    connection: Connection,
    /// One `MGET` per hash slot (a cluster).
    by_slot: bool,
    /// Bound of a batch in flight.
    timeout: Duration,
}

/// A read or batch in flight: when it lands (or is dropped, as when its
/// caller gave up), the queue goes out.
struct Flight(Arc<Batcher>);

impl Drop for Flight {
    fn drop(&mut self) {
        self.0.landed();
    }
}

impl Batcher {
    pub(crate) fn new(connection: Connection, by_slot: bool, timeout: Duration) -> Batcher {
        Batcher {
            state: std::sync::Mutex::default(),
            connection,
            by_slot,
            timeout,
        }
    }

    /// Reads `key` (and its `PTTL` with `ttl`), alone or in a batch.
    pub(crate) async fn read(self: &Arc<Self>, key: &str, ttl: bool) -> RedisResult<Fetched> {
        let queued = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.flights < FLIGHTS && state.queue.is_empty() {
                state.flights += 1;
                None
            } else {
                let (answer, rx) = oneshot::channel();
                state.queue.push(Request {
                    key: key.to_owned(),
                    ttl,
                    answer,
                });
                Some(rx)
            }
        };
        match queued {
            // Boxed: inline, the lone read's state made every read's (and
            // every Redis hit's) larger, though under load most reads queue.
            None => Box::pin(self.read_alone(key, ttl)).await,
            Some(rx) => rx
                .await
                .unwrap_or_else(|_| Err(gone("the batch of this read was dropped"))),
        }
    }

    /// A read sent at once, alone, as a flight of its own.
    async fn read_alone(self: &Arc<Self>, key: &str, ttl: bool) -> RedisResult<Fetched> {
        let _flight = Flight(Arc::clone(self));
        let mut con = self.connection.clone();
        read_one(&mut con, key, ttl).await
    }

    /// A flight landed: send what waits, in batches, while fewer than
    /// [`FLIGHTS`] are in flight (so reads queue only while that many are).
    fn landed(self: &Arc<Self>) {
        let batches: Vec<Vec<Request>> = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.flights = state.flights.saturating_sub(1);
            // Callers that gave up (timed out, cancelled) are left out.
            state.queue.retain(|r| !r.answer.is_closed());
            let mut batches = Vec::new();
            while !state.queue.is_empty() && state.flights < FLIGHTS {
                state.flights += 1;
                let n = state.queue.len().min(MAX_BATCH);
                batches.push(state.queue.drain(..n).collect());
            }
            batches
        };
        for batch in batches {
            self.send(batch);
        }
    }

    /// Sends `batch` in a task of its own (its flight already counted).
    fn send(self: &Arc<Self>, batch: Vec<Request>) {
        let flight = Flight(Arc::clone(self));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            for r in batch {
                let _ = r
                    .answer
                    .send(Err(gone("no Tokio runtime to send a batch on")));
            }
            return;
        };
        runtime.spawn(async move {
            let me = Arc::clone(&flight.0);
            let mut con = me.connection.clone();
            let keys: Vec<(&str, bool)> = batch.iter().map(|r| (r.key.as_str(), r.ttl)).collect();
            let sent = tokio::time::timeout(me.timeout, read_many(&mut con, &keys, me.by_slot));
            let results = match sent.await {
                Ok(results) => results,
                Err(_) => {
                    let late = RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "a batch of reads got no answer in time",
                    ));
                    vec![Err(late); keys.len()]
                }
            };
            for (request, result) in batch.into_iter().zip(results) {
                let _ = request.answer.send(result);
            }
            // The callers just answered usually read again at once: let
            // them queue first, so that they leave together, not one alone
            // and the rest behind it.
            tokio::task::yield_now().await;
            drop(flight);
        });
    }
}

fn gone(what: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::Io, what))
}

/// One key: `GET`, or `GET` and `PTTL` in one round trip.
pub(crate) async fn read_one(
    con: &mut impl ConnectionLike,
    key: &str,
    ttl: bool,
) -> RedisResult<Fetched> {
    if ttl {
        let (value, pttl): (Option<Vec<u8>>, i64) =
            redis::pipe().get(key).pttl(key).query_async(con).await?;
        Ok(value.map(|v| (v, Some(pttl))))
    } else {
        // Sized up front: `redis::cmd` grows its buffers twice per command.
        let mut get = redis::Cmd::with_capacity(2, 3 + key.len());
        get.arg("GET").arg(key);
        let value: Option<Vec<u8>> = get.query_async(con).await?;
        Ok(value.map(|v| (v, None)))
    }
}

/// Many keys in one pipeline: an `MGET` per group (all keys; or per hash
/// slot with `by_slot`), then `PTTL` of each key whose caller asked. One
/// result per key, in order.
pub(crate) async fn read_many(
    con: &mut Connection,
    keys: &[(&str, bool)],
    by_slot: bool,
) -> Vec<RedisResult<Fetched>> {
    // Groups of key indexes, in order of first appearance.
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    for (i, (key, _)) in keys.iter().enumerate() {
        let slot = if by_slot { key_slot(key.as_bytes()) } else { 0 };
        match groups.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, members)) => members.push(i),
            None => groups.push((slot, vec![i])),
        }
    }
    let mut pipe = redis::pipe();
    for (_, members) in &groups {
        let cmd = pipe.cmd("MGET");
        for &i in members {
            cmd.arg(keys[i].0);
        }
    }
    let ttls: Vec<usize> = (0..keys.len()).filter(|&i| keys[i].1).collect();
    for &i in &ttls {
        pipe.cmd("PTTL").arg(keys[i].0);
    }
    let count = groups.len() + ttls.len();
    let mut values = match con.req_packed_commands(&pipe, 0, count).await {
        Ok(values) if values.len() == count => values,
        Ok(_) => return vec![Err(gone("a batch's answer had the wrong length")); keys.len()],
        // The slot map changed under the batch (its keys now span masters,
        // or a slot moved): each key is read on its own, routed afresh.
        Err(e)
            if by_slot
                && matches!(
                    e.kind(),
                    redis::ErrorKind::Server(
                        redis::ServerErrorKind::CrossSlot
                            | redis::ServerErrorKind::Moved
                            | redis::ServerErrorKind::Ask
                    )
                ) =>
        {
            let mut results = Vec::with_capacity(keys.len());
            for (key, ttl) in keys {
                results.push(read_one(con, key, *ttl).await);
            }
            return results;
        }
        Err(e) => return vec![Err(e); keys.len()],
    };
    let mut results: Vec<RedisResult<Fetched>> = vec![Ok(None); keys.len()];
    let mut moved = Vec::new();
    let pttls = values.split_off(groups.len());
    for ((_, members), value) in groups.iter().zip(values) {
        match value {
            Value::Array(items) if items.len() == members.len() => {
                for (&i, item) in members.iter().zip(items) {
                    results[i] = match item {
                        Value::Nil => Ok(None),
                        Value::BulkString(bytes) => Ok(Some((bytes, None))),
                        other => Err(unexpected(&other)),
                    };
                }
            }
            Value::ServerError(e)
                if matches!(
                    e.kind(),
                    Some(redis::ServerErrorKind::Moved | redis::ServerErrorKind::Ask)
                ) =>
            {
                // The slot moved: these keys are read one by one, which
                // follows the redirection.
                moved.extend(members.iter().copied());
            }
            Value::ServerError(e) => {
                let e = RedisError::from(e);
                for &i in members {
                    results[i] = Err(e.clone());
                }
            }
            other => {
                for &i in members {
                    results[i] = Err(unexpected(&other));
                }
            }
        }
    }
    for (&i, value) in ttls.iter().zip(pttls) {
        if let Ok(Some((_, pttl))) = &mut results[i] {
            match value {
                Value::Int(ms) => *pttl = Some(ms),
                Value::ServerError(e) => results[i] = Err(RedisError::from(e)),
                other => results[i] = Err(unexpected(&other)),
            }
        }
    }
    for i in moved {
        results[i] = read_one(con, keys[i].0, keys[i].1).await;
    }
    results
}

fn unexpected(value: &Value) -> RedisError {
    RedisError::from((
        redis::ErrorKind::Parse,
        "unexpected answer in a batch of reads",
        format!("{value:?}"),
    ))
}
