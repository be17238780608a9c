//! TTL presets an application declares (`ttl_presets!`): used by the
//! attribute by name, overridden by `CACHE_TTL_<NAME>` and by the builder
//! (code over environment), a bad variable refused by name, on the
//! in-process tier and in Redis. One test: the environment is the process's.

#![allow(unsafe_code)] // std::env::set_var is unsafe in edition 2024

use std::time::Duration;

use cache_core::{Cache, cached, ttl_presets};
use tests::redis_server::RedisServer;

mod presets {
    cache_core::ttl_presets! {
        /// Card transactions: fresh within a minute.
        pub TRANSACTIONS = "45s";
    }
}

ttl_presets! {
    /// Company records change a few times a year.
    pub COMPANY = "6h";
}

#[cached(ttl = COMPANY, key = "company:<id>")]
async fn company(id: u64) -> String {
    format!("company {id}")
}

#[cached(ttl = presets::TRANSACTIONS, key = "transactions:<account>")]
async fn transactions(account: u64) -> Vec<u64> {
    vec![account]
}

/// The TTL the entry under `key` was stored with, from the tier that answers.
async fn stored_ttl(c: &Cache, key: &str) -> Duration {
    c.ttl(key).await.unwrap().expect("stored")
}

/// Within the default jitter (±10 %) of `want`, and not near anything else.
fn near(got: Duration, want: Duration) -> bool {
    got > want.mul_f64(0.85) && got <= want.mul_f64(1.11)
}

#[tokio::test]
async fn declared_presets_follow_code_and_environment() {
    // Declared durations.
    let c = Cache::builder().build().await.unwrap();
    c.scope(async {
        company(1).await;
        transactions(2).await;
    })
    .await;
    let t = stored_ttl(&c, "company:1").await;
    assert!(near(t, Duration::from_secs(6 * 3600)), "{t:?}");
    let t = stored_ttl(&c, "transactions:2").await;
    assert!(near(t, Duration::from_secs(45)), "{t:?}");

    // The environment overrides them; code overrides the environment.
    unsafe {
        std::env::set_var("CACHE_TTL_COMPANY", "2m");
        std::env::set_var("CACHE_TTL_TRANSACTIONS", "10m");
    }
    let c = Cache::builder()
        .from_env()
        .custom_preset_ttl(&presets::TRANSACTIONS, Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    c.scope(async {
        company(1).await;
        transactions(2).await;
    })
    .await;
    let t = stored_ttl(&c, "company:1").await;
    assert!(near(t, Duration::from_secs(120)), "{t:?}");
    let t = stored_ttl(&c, "transactions:2").await;
    assert!(near(t, Duration::from_secs(20)), "{t:?}");

    // A bad value is refused, naming the variable.
    unsafe {
        std::env::set_var("CACHE_TTL_COMPANY", "two minutes");
    }
    let e = Cache::builder().from_env().build().await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("CACHE_TTL_COMPANY") && text.contains("two minutes"),
        "{text}"
    );
    unsafe {
        std::env::remove_var("CACHE_TTL_COMPANY");
        std::env::remove_var("CACHE_TTL_TRANSACTIONS");
    }

    // Both presets are known to the program.
    let mut names: Vec<&str> = cache_core::CustomPreset::all().map(|p| p.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["COMPANY", "TRANSACTIONS"]);

    redis_tier().await;
}

/// In Redis, the entry lives for the overridden duration.
async fn redis_tier() {
    if cfg!(skip_redis) {
        eprintln!("skipped the Redis half: redis-server not found (see README)");
        return;
    }
    let server = RedisServer::start();
    let c = tests::support::Instance::on(&server)
        .configure(|b| b.custom_preset_ttl(&COMPANY, Duration::from_secs(90)))
        .connected()
        .await;
    c.scope(company(3)).await;
    let mut con = tests::support::redis_connection(&server).await;
    let mut pttl: i64 = -2;
    // The computed value reaches Redis after the call returns.
    tests::support::eventually("the entry in Redis", async || {
        pttl = redis::cmd("PTTL")
            .arg("cache:company:3")
            .query_async(&mut con)
            .await
            .unwrap();
        pttl > 0
    })
    .await;
    let t = Duration::from_millis(u64::try_from(pttl).expect("a TTL in Redis"));
    assert!(near(t, Duration::from_secs(90)), "{t:?}");
}
