//! `ttl_from`: the TTL computed from the value being stored (a token's
//! expiry, a short TTL for empty results), at most the function's `ttl`;
//! `None` or zero returns the value without storing it. On the in-process
//! tier, and in Redis.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, cached};
use serde::{Deserialize, Serialize};
use tests::redis_server::RedisServer;
use tests::support::{Instance, eventually, memory_cache, redis_connection};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Token {
    value: String,
    lifetime: Duration,
}

impl Token {
    /// Tokens are cached until they expire, less a minute of margin; one
    /// that is about to expire is not cached at all.
    fn cache_for(&self) -> Option<Duration> {
        self.lifetime.checked_sub(Duration::from_secs(60))
    }
}

#[derive(Default)]
struct Auth {
    calls: AtomicUsize,
}

impl Auth {
    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    #[cached(ttl = "1h", key = "token:<client>:<lifetime_s>", ttl_from = Token::cache_for)]
    async fn token(&self, client: &str, lifetime_s: u64) -> Token {
        self.calls.fetch_add(1, SeqCst);
        Token {
            value: format!("{client}-{}", self.calls()),
            lifetime: Duration::from_secs(lifetime_s),
        }
    }

    /// Empty results are kept for 5 s only; the others for the function's TTL.
    #[cached(ttl = "10m", key = "search:<q>", ttl_from = |hits| if hits.is_empty() {
        Duration::from_secs(5)
    } else {
        Duration::MAX
    })]
    async fn search(&self, q: &str) -> Result<Vec<u64>, String> {
        self.calls.fetch_add(1, SeqCst);
        Ok(if q == "nothing" { vec![] } else { vec![1, 2] })
    }
}

/// Within the default jitter (±10 %) of `want`.
fn near(got: Duration, want: Duration) -> bool {
    got > want.mul_f64(0.85) && got <= want.mul_f64(1.11)
}

async fn stored(c: &Cache, key: &str) -> Option<Duration> {
    c.ttl(key).await.unwrap()
}

#[tokio::test]
async fn the_value_chooses_its_ttl_within_the_functions() {
    let c = memory_cache();
    let auth = Auth::default();
    c.scope(async {
        auth.token("a", 600).await; // 10 min token: cached 9 min
        auth.token("a", 7200).await; // 2 h token: capped at the function's 1 h
        auth.search("nothing").await.unwrap();
        auth.search("rust").await.unwrap();
    })
    .await;
    let t = stored(&c, "token:a:600").await.expect("stored");
    assert!(near(t, Duration::from_secs(540)), "{t:?}");
    let t = stored(&c, "token:a:7200").await.expect("stored");
    assert!(near(t, Duration::from_secs(3600)), "{t:?}");
    let t = stored(&c, "search:nothing").await.expect("stored");
    assert!(near(t, Duration::from_secs(5)), "{t:?}");
    let t = stored(&c, "search:rust").await.expect("stored");
    assert!(near(t, Duration::from_secs(600)), "{t:?}");
}

#[tokio::test]
async fn none_or_zero_is_not_stored() {
    let c = memory_cache();
    let auth = Auth::default();
    c.scope(async {
        // 30 s left: `cache_for` says None. 60 s left: zero.
        for lifetime in [30, 60] {
            let first = auth.token("b", lifetime).await;
            let second = auth.token("b", lifetime).await;
            assert_ne!(first, second, "computed again: nothing was stored");
        }
    })
    .await;
    assert_eq!(auth.calls(), 4);
    assert_eq!(stored(&c, "token:b:30").await, None);
    assert_eq!(stored(&c, "token:b:60").await, None);
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn redis_keeps_the_chosen_ttl() {
    let server = RedisServer::start();
    let (a, b) = Instance::on(&server).connected_pair().await;
    let auth = Auth::default();
    a.scope(async {
        auth.token("c", 600).await;
        auth.token("c", 30).await;
        auth.search("nothing").await.unwrap();
    })
    .await;
    let mut con = redis_connection(&server).await;
    let mut token = 0;
    eventually("the token in Redis", async || {
        token = pttl(&mut con, "cache:token:c:600").await;
        token > 0
    })
    .await;
    let token = Duration::from_millis(u64::try_from(token).unwrap());
    assert!(near(token, Duration::from_secs(540)), "{token:?}");
    let mut empty = 0;
    eventually("the empty result in Redis", async || {
        empty = pttl(&mut con, "cache:search:nothing").await;
        empty > 0
    })
    .await;
    assert!(near(
        Duration::from_millis(u64::try_from(empty).unwrap()),
        Duration::from_secs(5)
    ));
    assert_eq!(pttl(&mut con, "cache:token:c:30").await, -2, "not stored");
    // The other instance is served the stored token, not the one never stored.
    let calls = auth.calls();
    b.scope(auth.token("c", 600)).await;
    assert_eq!(auth.calls(), calls);
    b.scope(auth.token("c", 30)).await;
    assert_eq!(auth.calls(), calls + 1);
}

async fn pttl(con: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(con).await.unwrap()
}

/// With `refresh`, closures in `unless` and `ttl_from` need no annotations either.
#[cached(ttl = "10m", key = "rates:<currency>", refresh = 0.8,
    unless = |r| r.is_empty(), ttl_from = |r| Duration::from_secs(r.len() as u64 * 60))]
async fn rates(currency: String) -> Vec<u64> {
    vec![currency.len() as u64; 2]
}

#[tokio::test]
async fn closures_with_refresh() {
    let c = memory_cache();
    c.scope(rates("EUR".into())).await;
    let t = stored(&c, "rates:EUR").await.expect("stored");
    assert!(near(t, Duration::from_secs(120)), "{t:?}");
}
