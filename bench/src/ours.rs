//! cache-rs, configured as a service would: `#[cached]` functions on named
//! caches over the private Redis, defaults everywhere else (100 ms per Redis
//! command, breaker, single flight, Redis lock).

use std::time::Duration;

use cache_core::{Cache, cached};

use crate::data::{Employee, origin};
use crate::measure::{Call, Entrant, Kind, Spec, call, job};

const LIB: &str = "cache-rs";

#[cached(cache = "bench-two-tier", ttl = "long", key = "employee:<id>")]
pub(crate) async fn two_tier(id: u64) -> Result<Employee, std::io::Error> {
    Ok(origin(id).await)
}

#[cached(cache = "bench-l2", ttl = "long", key = "employee:<id>")]
pub(crate) async fn l2_postcard(id: u64) -> Result<Employee, std::io::Error> {
    Ok(origin(id).await)
}

#[cached(cache = "bench-l2-unbatched", ttl = "long", key = "employee:<id>")]
pub(crate) async fn l2_unbatched(id: u64) -> Result<Employee, std::io::Error> {
    Ok(origin(id).await)
}

#[cached(
    cache = "bench-l2",
    ttl = "long",
    key = "employee-bincode:<id>",
    format = "bincode"
)]
pub(crate) async fn l2_bincode(id: u64) -> Result<Employee, std::io::Error> {
    Ok(origin(id).await)
}

/// Our caches are installed under the names the functions above use (the
/// registry keeps them alive).
#[derive(Debug)]
pub(crate) struct Ours;

impl Ours {
    pub(crate) async fn setup(url: &str) -> Result<Ours, cache_core::Error> {
        let two_tier = Cache::builder()
            .name("bench-two-tier")
            .key_prefix("ours-two")
            .redis_url(url)
            .max_entries(100_000)
            .build()
            .await?;
        two_tier.clone().install()?;
        let l2_only = Cache::builder()
            .name("bench-l2")
            .key_prefix("ours-l2")
            .redis_url(url)
            .l1_enabled(false)
            .build()
            .await?;
        l2_only.clone().install()?;
        let unbatched = Cache::builder()
            .name("bench-l2-unbatched")
            .key_prefix("ours-l2u")
            .redis_url(url)
            .l1_enabled(false)
            .redis_batch_reads(false)
            .build()
            .await?;
        unbatched.clone().install()?;
        for cache in [&two_tier, &l2_only, &unbatched] {
            if let Some(mut bp) = cache.backplane() {
                // Subscribed before measuring: the first subscription fences
                // computations that straddle it (their values are not stored).
                let _ = tokio::time::timeout(Duration::from_secs(5), bp.wait_for(|s| s.connected))
                    .await;
            }
        }
        Ok(Ours)
    }

    pub(crate) fn l1(&self, keys: u64) -> Vec<Entrant> {
        vec![Entrant {
            spec: Spec::new(LIB, "#[cached], L1 + Redis", "none (typed)", Kind::Ours),
            job: job(keys, two_tier),
        }]
    }

    pub(crate) fn l2(&self, keys: u64) -> Vec<Entrant> {
        vec![
            Entrant {
                spec: Spec::new(LIB, "#[cached], Redis only", "postcard", Kind::Ours),
                job: job(keys, l2_postcard),
            },
            Entrant {
                spec: Spec::new(
                    LIB,
                    "#[cached(format = \"bincode\")], Redis only",
                    "bincode",
                    Kind::Ours,
                ),
                job: job(keys, l2_bincode),
            },
        ]
    }

    /// The cases that need a call per key: stampede and Redis killed.
    pub(crate) fn calls(&self) -> Vec<(Spec, Call)> {
        vec![(
            Spec::new(LIB, "#[cached], L1 + Redis", "postcard", Kind::Ours),
            call(two_tier),
        )]
    }
}
