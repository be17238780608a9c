//! multi-tier-cache: a `CacheManager` with a Moka tier over a Redis tier (its
//! two-tier default, switched to bincode), or the Redis tier alone;
//! `get_or_compute_typed` with its built-in stampede protection.

use std::sync::Arc;

use multi_tier_cache::serialization::BincodeSerializer;
use multi_tier_cache::{
    CacheManager, CacheSerializer, CacheStrategy, CacheTier, L2CacheBackend, MokaCache,
    MokaCacheConfig, RedisCache,
};

use crate::data::{Employee, origin};
use crate::measure::{Call, Entrant, Kind, Spec, call, job};

const LIB: &str = "multi-tier-cache";

/// The two managers.
#[derive(Clone)]
pub(crate) struct Mtc {
    pub(crate) two: Arc<CacheManager>,
    l2: Arc<CacheManager>,
}

impl std::fmt::Debug for Mtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mtc")
    }
}

fn manager(tiers: Vec<CacheTier>) -> Result<Arc<CacheManager>, String> {
    let mut m = CacheManager::new_with_tiers(tiers, None).map_err(|e| e.to_string())?;
    m.set_serializer(CacheSerializer::Bincode(BincodeSerializer));
    Ok(Arc::new(m))
}

async fn get(
    m: Arc<CacheManager>,
    prefix: &'static str,
    id: u64,
) -> multi_tier_cache::CacheResult<Employee> {
    m.get_or_compute_typed(
        &format!("{prefix}:employee:{id}"),
        CacheStrategy::LongTerm,
        || async move { Ok(origin(id).await) },
    )
    .await
}

impl Mtc {
    pub(crate) async fn setup(url: &str) -> Result<Mtc, String> {
        let e = |e: multi_tier_cache::CacheError| format!("multi-tier-cache: {e}");
        let moka: Arc<dyn L2CacheBackend> =
            Arc::new(MokaCache::new(MokaCacheConfig::default()).map_err(e)?);
        let redis: Arc<dyn L2CacheBackend> = Arc::new(RedisCache::with_url(url).await.map_err(e)?);
        let two = manager(vec![
            CacheTier::new(moka, 1, false, 1, 1.0),
            CacheTier::new(redis.clone(), 2, true, 1, 1.0),
        ])?;
        let l2 = manager(vec![CacheTier::new(redis, 1, false, 1, 1.0)])?;
        Ok(Mtc { two, l2 })
    }

    pub(super) fn l1(&self, keys: u64) -> Vec<Entrant> {
        let m = self.two.clone();
        vec![Entrant {
            spec: Spec::new(
                LIB,
                "get_or_compute_typed, Moka + Redis tiers",
                "bincode",
                Kind::Peer,
            ),
            job: job(keys, move |id| get(m.clone(), "mtc-two", id)),
        }]
    }

    pub(super) fn l2(&self, keys: u64) -> Vec<Entrant> {
        let m = self.l2.clone();
        vec![Entrant {
            spec: Spec::new(
                LIB,
                "get_or_compute_typed, Redis tier only",
                "bincode",
                Kind::Peer,
            ),
            job: job(keys, move |id| get(m.clone(), "mtc-l2", id)),
        }]
    }

    pub(super) fn calls(&self) -> Vec<(Spec, Call)> {
        let m = self.two.clone();
        vec![(
            Spec::new(
                LIB,
                "get_or_compute_typed, Moka + Redis tiers",
                "bincode",
                Kind::Peer,
            ),
            call(move |id| get(m.clone(), "mtc-two", id)),
        )]
    }

    /// Writes `n` small values under `prefix:user:42:item:<i>` through both tiers.
    pub(crate) async fn fill(&self, n: usize) -> Result<(), String> {
        for i in 0..n {
            self.two
                .get_or_compute_typed(
                    &format!("mtc:user:42:item:{i}"),
                    CacheStrategy::LongTerm,
                    || async move { Ok(i as u64) },
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
