//! hitbox: `#[cached]` functions run with `.cache(&cache)`, over a Moka
//! backend composed with a Redis backend (its two-tier setup), or Redis alone.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hitbox::concurrency::BroadcastConcurrencyManager;
use hitbox::offload::OffloadManager;
use hitbox::policy::ConcurrencyLimit;
use hitbox_backend::composition::Compose;
use hitbox_backend::format::BincodeFormat;
use hitbox_fn::prelude::*;
use hitbox_moka::MokaBackend;
use hitbox_redis::{ConnectionMode, RedisBackend};

use crate::data::{Employee, origin};
use crate::measure::{Call, Entrant, Kind, Spec, call, job};

const LIB: &str = "hitbox";

#[cached(prefix = "hitbox-two")]
async fn two_tier(id: u64) -> Employee {
    origin(id).await
}

#[cached(prefix = "hitbox-l2")]
async fn redis_only(id: u64) -> Employee {
    origin(id).await
}

#[cached(prefix = "hitbox-sf")]
async fn single_flight(id: u64) -> Employee {
    origin(id).await
}

/// A cached call through one of the caches (each has its own `Cache` type).
type Lookup = Arc<dyn Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = Employee>>>>;

/// Each runs a different `Cache` type; boxed behind one call shape.
pub(super) struct Hitbox {
    two: Lookup,
    l2: Lookup,
    sf: Lookup,
}

impl std::fmt::Debug for Hitbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hitbox")
    }
}

fn policy() -> PolicyConfig {
    PolicyConfig::builder()
        .ttl(Duration::from_secs(3600))
        .build()
}

fn redis(url: &str) -> Result<RedisBackend, String> {
    // hitbox-redis's defaults (bincode values, its own timeouts and retries).
    RedisBackend::builder()
        .connection(ConnectionMode::single(url.to_owned()))
        .build()
        .map_err(|e| format!("hitbox-redis: {e}"))
}

fn moka() -> MokaBackend<BincodeFormat> {
    MokaBackend::builder()
        .max_entries(100_000)
        .value_format(BincodeFormat)
        .build()
}

impl Hitbox {
    pub(super) fn setup(url: &str) -> Result<Hitbox, String> {
        let two = Arc::new(
            Cache::builder()
                .backend(moka().compose(redis(url)?, OffloadManager::with_defaults()))
                .policy(policy())
                .build(),
        );
        let l2 = Arc::new(
            Cache::builder()
                .backend(redis(url)?)
                .policy(policy())
                .build(),
        );
        let sf = Arc::new(
            Cache::builder()
                .backend(moka().compose(redis(url)?, OffloadManager::with_defaults()))
                .policy(
                    PolicyConfig::builder()
                        .ttl(Duration::from_secs(3600))
                        .concurrency(ConcurrencyLimit::new(1).ok_or("ConcurrencyLimit::new(1)")?)
                        .build(),
                )
                .concurrency_manager(BroadcastConcurrencyManager::<Employee>::new())
                .build(),
        );
        Ok(Hitbox {
            two: Arc::new(move |id| {
                let c = two.clone();
                Box::pin(async move { two_tier(id).cache(&*c).await })
            }),
            l2: Arc::new(move |id| {
                let c = l2.clone();
                Box::pin(async move { redis_only(id).cache(&*c).await })
            }),
            sf: Arc::new(move |id| {
                let c = sf.clone();
                Box::pin(async move { single_flight(id).cache(&*c).await })
            }),
        })
    }

    pub(super) fn l1(&self, keys: u64) -> Vec<Entrant> {
        let f = self.two.clone();
        vec![Entrant {
            spec: Spec::new(
                LIB,
                "#[cached], Moka composed with Redis",
                "bincode",
                Kind::Peer,
            ),
            job: job(keys, move |id| f(id)),
        }]
    }

    pub(super) fn l2(&self, keys: u64) -> Vec<Entrant> {
        let f = self.l2.clone();
        vec![Entrant {
            spec: Spec::new(LIB, "#[cached], Redis backend", "bincode", Kind::Peer),
            job: job(keys, move |id| f(id)),
        }]
    }

    pub(super) fn stampede(&self) -> Vec<(Spec, Call)> {
        let (two, sf) = (self.two.clone(), self.sf.clone());
        vec![
            (
                Spec::new(
                    LIB,
                    "#[cached], Moka + Redis (default)",
                    "bincode",
                    Kind::Peer,
                ),
                call(move |id| {
                    let f = two(id);
                    async move { Ok::<_, Infallible>(f.await) }
                }),
            ),
            (
                Spec::new(
                    LIB,
                    "same + BroadcastConcurrencyManager, ConcurrencyLimit(1)",
                    "bincode",
                    Kind::Peer,
                ),
                call(move |id| {
                    let f = sf(id);
                    async move { Ok::<_, Infallible>(f.await) }
                }),
            ),
        ]
    }

    pub(super) fn outage(&self) -> Vec<(Spec, Call)> {
        let two = self.two.clone();
        vec![(
            Spec::new(
                LIB,
                "#[cached], Moka + Redis, default timeouts",
                "bincode",
                Kind::Peer,
            ),
            call(move |id| {
                let f = two(id);
                async move { Ok::<_, Infallible>(f.await) }
            }),
        )]
    }
}
