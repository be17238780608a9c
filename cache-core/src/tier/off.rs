//! Stand-in for the shared tier when the `redis` feature is off:
//! uninhabited types with the same surface, so the engine needs no `cfg`.
//! Every method body is `match *self {}`: the compiler proves none runs.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Attempt, Invalidated, Observed, Read, TierEvents};
use crate::breaker::{BreakerConfig, BreakerState};
use crate::codec::{CodecConfig, Compression, EncodeError, Format, Meta};
use crate::observe::Observer;
use crate::stats::{BackplaneStatus, NamespaceStats};

/// Never constructed.
#[derive(Debug, thiserror::Error)]
#[error("the redis feature is off")]
pub(crate) struct TierError;

impl TierError {
    pub(crate) fn is_failure(&self) -> bool {
        true
    }
}

/// Never constructed.
#[derive(Debug, Clone)]
pub(crate) struct RedisConfig;

/// The shape of `cache_redis::ServerInfo` the engine reads (never built).
pub(crate) struct ServerInfo {
    pub(crate) used_memory: u64,
    pub(crate) keys: u64,
    pub(crate) nodes: Vec<NodeInfo>,
}

/// The shape of `cache_redis::NodeInfo` the engine reads (never built).
pub(crate) struct NodeInfo {
    pub(crate) address: String,
    pub(crate) reachable: bool,
    pub(crate) used_memory: u64,
    pub(crate) keys: u64,
}

/// Never constructed.
pub(crate) enum Waiter {}

impl Waiter {
    pub(crate) fn notify(&self) -> &tokio::sync::Notify {
        match *self {}
    }
}

/// Never constructed.
pub(crate) enum Held {}

#[allow(clippy::unused_async)]
impl Held {
    pub(crate) async fn release(self) {
        match self {}
    }
    pub(crate) async fn run<F: Future>(&self, _: F) -> F::Output {
        match *self {}
    }
}

/// Never constructed.
#[derive(Debug)]
pub(crate) enum L2 {}

#[allow(clippy::unused_async)]
impl L2 {
    pub(crate) fn connect(
        _: RedisConfig,
        _: CodecConfig,
        _: BreakerConfig,
        _: &str,
        _: Arc<Observer>,
    ) -> Result<L2, TierError> {
        Err(TierError)
    }
    pub(crate) fn start(self: &Arc<Self>, _: Weak<dyn TierEvents>, _: bool) {
        match **self {}
    }
    pub(crate) fn breaker_state(&self) -> BreakerState {
        match *self {}
    }
    pub(crate) fn status(&self) -> watch::Receiver<BackplaneStatus> {
        match *self {}
    }
    pub(crate) fn pending(&self) -> u64 {
        match *self {}
    }
    pub(crate) async fn read<V: DeserializeOwned + 'static>(
        &self,
        _: &str,
        _: u32,
        _: bool,
    ) -> Read<V> {
        match *self {}
    }
    pub(crate) fn encode<V: Serialize>(
        &self,
        _: &V,
        _: u32,
        _: Option<Format>,
        _: Option<Compression>,
        _: Option<Meta>,
    ) -> Result<Vec<u8>, EncodeError> {
        match *self {}
    }
    pub(crate) fn observation_usable(&self, _: Instant) -> bool {
        match *self {}
    }
    pub(crate) async fn try_lock<V: DeserializeOwned + 'static>(
        self: &Arc<Self>,
        _: &str,
        _: &str,
        _: Duration,
        _: Duration,
        _: u32,
    ) -> Result<Attempt<V>, TierError> {
        match **self {}
    }
    pub(crate) fn waiter(&self, _: &str) -> Waiter {
        match *self {}
    }
    pub(crate) async fn observe(&self, _: &str) -> Result<Observed, TierError> {
        match *self {}
    }
    pub(crate) async fn write(
        &self,
        _: &str,
        _: &[u8],
        _: Duration,
        _: &[String],
    ) -> Result<(), TierError> {
        match *self {}
    }
    pub(crate) async fn write_computed(
        &self,
        _: &str,
        _: &[u8],
        _: Duration,
        _: &Observed,
        _: &[String],
    ) -> Result<bool, TierError> {
        match *self {}
    }
    pub(crate) async fn invalidate_key(&self, _: &str) -> Invalidated {
        match *self {}
    }
    pub(crate) async fn invalidate_pattern(&self, _: &str) -> Invalidated {
        match *self {}
    }
    pub(crate) async fn invalidate_tag(&self, _: &str) -> Invalidated {
        match *self {}
    }
    pub(crate) async fn announce_key(&self, _: &str) -> Result<(), TierError> {
        match *self {}
    }
    pub(crate) fn defer_key(&self, _: &str) {
        match *self {}
    }
    pub(crate) async fn exists(&self, _: &str) -> Result<bool, TierError> {
        match *self {}
    }
    pub(crate) async fn ttl(&self, _: &str) -> Result<Option<Duration>, TierError> {
        match *self {}
    }
    pub(crate) async fn expire(&self, _: &str, _: Duration) -> Result<bool, TierError> {
        match *self {}
    }
    pub(crate) async fn ping(&self) -> Result<Duration, TierError> {
        match *self {}
    }
    pub(crate) async fn inspect(
        &self,
        _: &str,
    ) -> Result<Option<crate::stats::EntryInfo>, TierError> {
        match *self {}
    }
    pub(crate) async fn claim_warm(
        &self,
        _: &str,
        _: &str,
        _: Duration,
    ) -> Result<bool, TierError> {
        match *self {}
    }
    pub(crate) async fn info(&self) -> Result<ServerInfo, TierError> {
        match *self {}
    }
    pub(crate) async fn namespaces(&self) -> Result<Vec<NamespaceStats>, TierError> {
        match *self {}
    }
    pub(crate) async fn namespaces_at(&self, _: usize) -> Result<Vec<NamespaceStats>, TierError> {
        match *self {}
    }
    pub(crate) fn open_journal(&self, _: &std::path::Path, _: &str) -> Result<(), TierError> {
        match *self {}
    }
    pub(crate) async fn shutdown(&self, _: tokio::time::Instant) -> crate::stats::Shutdown {
        match *self {}
    }
    pub(crate) fn instance(&self) -> String {
        match *self {}
    }
    pub(crate) async fn put_snapshot(&self, _: &[u8], _: Duration) -> Result<(), TierError> {
        match *self {}
    }
    pub(crate) async fn snapshots(&self) -> Result<Vec<Vec<u8>>, TierError> {
        match *self {}
    }
}
