//! Stand-in for the shared tier when the `redis` feature is off: an
//! uninhabited type with the same surface, so call sites need no `cfg`.

use std::sync::Weak;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::cache::Inner;
use crate::codec::{CodecConfig, Compression, EncodeError, Format};
pub(crate) use crate::tier::{BackplaneStatus, Observed, Read, Timing};

pub(crate) const MARKER_TTL: Duration = Duration::from_secs(3600);

/// Never constructed.
pub(crate) enum Waiter {}

impl Waiter {
    pub(crate) fn notify(&self) -> &tokio::sync::Notify {
        match *self {}
    }
}

pub(crate) fn random_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

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

#[derive(Debug)]
pub(crate) enum L2 {}

#[allow(clippy::unused_async)]
impl L2 {
    pub(crate) fn connect(
        _: RedisConfig,
        _: CodecConfig,
        _: crate::breaker::BreakerConfig,
        _: &str,
    ) -> Result<L2, TierError> {
        Err(TierError)
    }
    pub(crate) fn breaker_state(&self) -> crate::breaker::BreakerState {
        match *self {}
    }
    pub(crate) fn pending(&self) -> u64 {
        match *self {}
    }
    pub(crate) fn defer_key(&self, _: &str) {
        match *self {}
    }
    pub(crate) fn defer_pattern(&self, _: &str) {
        match *self {}
    }
    pub(crate) fn status(&self) -> watch::Receiver<BackplaneStatus> {
        match *self {}
    }
    pub(crate) async fn read<V: DeserializeOwned>(&self, _: &str, _: u32, _: bool) -> Read<V> {
        match *self {}
    }
    pub(crate) fn encode<V: Serialize>(
        &self,
        _: &V,
        _: u32,
        _: Option<Format>,
        _: Option<Compression>,
        _: Option<crate::codec::Meta>,
    ) -> Result<Vec<u8>, EncodeError> {
        match *self {}
    }
    pub(crate) async fn lock_and_read<V: DeserializeOwned>(
        &self,
        _: &str,
        _: &str,
        _: Duration,
        _: u32,
    ) -> Result<(bool, Read<V>, Observed), TierError> {
        match *self {}
    }
    pub(crate) async fn observe(&self) -> Result<Observed, TierError> {
        match *self {}
    }
    pub(crate) async fn write_computed(
        &self,
        _: &str,
        _: &[u8],
        _: Duration,
        _: &Observed,
    ) -> Result<bool, TierError> {
        match *self {}
    }
    pub(crate) async fn renew_lock(
        &self,
        _: &str,
        _: &str,
        _: Duration,
    ) -> Result<bool, TierError> {
        match *self {}
    }
    pub(crate) async fn unlock(&self, _: &str, _: &str) -> Result<bool, TierError> {
        match *self {}
    }
    pub(crate) fn waiter(&self, _: &str) -> Waiter {
        match *self {}
    }
    pub(crate) async fn write(&self, _: &str, _: &[u8], _: Duration) -> Result<(), TierError> {
        match *self {}
    }
    pub(crate) async fn remove(&self, _: &str) -> Result<u64, TierError> {
        match *self {}
    }
    pub(crate) async fn remove_matching(&self, _: &str) -> Result<u64, TierError> {
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
    pub(crate) async fn info(&self) -> Result<(u64, u64), TierError> {
        match *self {}
    }
    pub(crate) async fn announce_key(&self, _: &str) -> Result<(), TierError> {
        match *self {}
    }
    pub(crate) async fn announce_pattern(&self, _: &str) -> Result<(), TierError> {
        match *self {}
    }
    pub(crate) fn start_backplane(&self, _: Weak<Inner>, _: bool) {
        match *self {}
    }
}
