//! The building blocks, used bare: moka gets and redis-rs `GET` + decode of
//! the same value under a key built the same way.

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use crate::data::Employee;
use crate::measure::{Entrant, Kind, Spec, job};

/// Raw moka caches and a raw redis-rs connection, filled with `keys` records.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub(crate) future: moka::future::Cache<String, Employee>,
    pub(crate) sync: moka::sync::Cache<String, Employee>,
    pub(crate) con: MultiplexedConnection,
    /// Our Redis tier alone (`cache-redis`, reads batched), without the
    /// engine: where the batched throughput case's time goes.
    pub(crate) store: cache_redis::RedisStore,
}

impl Raw {
    pub(crate) async fn setup(url: &str, keys: u64) -> Result<Raw, redis::RedisError> {
        let future = moka::future::Cache::builder().max_capacity(100_000).build();
        let sync = moka::sync::Cache::builder().max_capacity(100_000).build();
        // redis-rs's multiplexed connection with its defaults.
        let mut con = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        for id in 0..keys {
            let e = Employee::sample(id);
            let key = format!("employee:{id}");
            future.insert(key.clone(), e.clone()).await;
            sync.insert(key, e.clone());
            let pc = postcard::to_allocvec(&e).map_err(io)?;
            let bc = bincode::serde::encode_to_vec(&e, bincode::config::standard()).map_err(io)?;
            let () = con.set(format!("raw-pc:employee:{id}"), pc).await?;
            let () = con.set(format!("raw-bc:employee:{id}"), bc).await?;
        }
        let store = cache_redis::RedisStore::new(cache_redis::RedisConfig::new(url)).map_err(io)?;
        Ok(Raw {
            future,
            sync,
            con,
            store,
        })
    }

    pub(crate) fn l1(&self, keys: u64) -> Vec<Entrant> {
        let future = self.future.clone();
        let sync = self.sync.clone();
        vec![
            Entrant {
                spec: Spec::new(
                    "moka",
                    "future::Cache get + clone",
                    "none (typed)",
                    Kind::Raw,
                ),
                job: job(keys, move |id| {
                    let future = future.clone();
                    async move { future.get(&format!("employee:{id}")).await }
                }),
            },
            Entrant {
                spec: Spec::new("moka", "sync::Cache get + clone", "none (typed)", Kind::Raw),
                job: job(keys, move |id| {
                    let v = sync.get(&format!("employee:{id}"));
                    async move { v }
                }),
            },
        ]
    }

    pub(crate) fn l2(&self, keys: u64) -> Vec<Entrant> {
        let (pc, bc) = (self.con.clone(), self.con.clone());
        vec![
            Entrant {
                spec: Spec::new("redis-rs", "GET + postcard decode", "postcard", Kind::Raw),
                job: job(keys, move |id| get_postcard(pc.clone(), id)),
            },
            Entrant {
                spec: Spec::new("redis-rs", "GET + bincode decode", "bincode", Kind::Raw),
                job: job(keys, move |id| get_bincode(bc.clone(), id)),
            },
        ]
    }
}

fn io(e: impl std::fmt::Display) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(e.to_string()))
}

/// A raw Redis hit: `GET`, then decode the plain postcard bytes.
pub(crate) async fn get_postcard(mut con: MultiplexedConnection, id: u64) -> Option<Employee> {
    let bytes: Vec<u8> = con.get(format!("raw-pc:employee:{id}")).await.ok()?;
    postcard::from_bytes(&bytes).ok()
}

/// The same read through our Redis tier alone: `RedisStore::get` (batched
/// with the reads waiting beside it), then decode.
pub(crate) async fn store_get_postcard(
    store: &cache_redis::RedisStore,
    id: u64,
) -> Option<Employee> {
    let bytes = store.get(&format!("raw-pc:employee:{id}")).await.ok()??;
    postcard::from_bytes(&bytes).ok()
}

/// A raw batch: `MGET` of `ids`, then decode each; how many decoded.
pub(crate) async fn mget_postcard(mut con: MultiplexedConnection, ids: &[u64]) -> usize {
    let keys: Vec<String> = ids
        .iter()
        .map(|id| format!("raw-pc:employee:{id}"))
        .collect();
    let values: Vec<Option<Vec<u8>>> = match con.mget(&keys).await {
        Ok(v) => v,
        Err(_) => return 0,
    };
    values
        .iter()
        .flatten()
        .filter(|b| postcard::from_bytes::<Employee>(b).is_ok())
        .count()
}

async fn get_bincode(mut con: MultiplexedConnection, id: u64) -> Option<Employee> {
    let bytes: Vec<u8> = con.get(format!("raw-bc:employee:{id}")).await.ok()?;
    bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
        .ok()
        .map(|(e, _)| e)
}
