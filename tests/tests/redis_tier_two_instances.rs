//! Redis as the shared tier, with two "app instances" (two `Cache`s) on one
//! private `redis-server` (and the same cases on a 3-master cluster): values
//! computed by one served to the other, every
//! format and compression, corrupt entries, invalidations reaching the other
//! instance's in-process tier, and the manual API across instances.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, Compression, Preset, cached, invalidates};
use cache_redis::KeyTtl;
use serde::{Deserialize, Serialize};
use tests::redis_server::RedisServer;
use tests::support::Instance;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Employee {
    id: u64,
    name: String,
    version: u64,
}

#[derive(Debug)]
struct DbError;

#[derive(Default)]
struct Service {
    calls: AtomicUsize,
    version: AtomicU64,
}

impl Service {
    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    fn employee_row(&self, id: u64) -> Employee {
        self.calls.fetch_add(1, SeqCst);
        Employee {
            id,
            name: format!("employee {id}"),
            version: self.version.load(SeqCst),
        }
    }

    #[cached(ttl = "medium", key = "employee:<id>")]
    async fn employee(&self, id: u64) -> Result<Employee, DbError> {
        Ok(self.employee_row(id))
    }

    #[invalidates("employee:<id>")]
    async fn update(&self, id: u64) -> Result<(), DbError> {
        let _ = id;
        self.version.fetch_add(1, SeqCst);
        Ok(())
    }

    #[cached(ttl = "short", key = "json:<id>", format = "json")]
    async fn as_json(&self, id: u64) -> Employee {
        self.employee_row(id)
    }

    #[cached(ttl = "short", key = "msgpack:<id>", format = "msgpack")]
    async fn as_msgpack(&self, id: u64) -> Employee {
        self.employee_row(id)
    }

    #[cached(ttl = "short", key = "bincode:<id>", format = "bincode")]
    async fn as_bincode(&self, id: u64) -> Employee {
        self.employee_row(id)
    }

    #[cached(ttl = "short", key = "postcard:<id>", format = "postcard", version = 2)]
    async fn as_postcard(&self, id: u64) -> Employee {
        self.employee_row(id)
    }

    #[cached(ttl = "short", key = "text:<len>")]
    async fn text(&self, len: usize) -> String {
        self.calls.fetch_add(1, SeqCst);
        "x".repeat(len)
    }

    #[cached(ttl = "short", key = "always:<len>", compress = "always")]
    async fn text_always(&self, len: usize) -> String {
        "y".repeat(len)
    }

    #[cached(ttl = "short", key = "never:<len>", compress = "never")]
    async fn text_never(&self, len: usize) -> String {
        "z".repeat(len)
    }

    #[cached(key = "user:<user>:profile")]
    async fn profile(&self, user: &str) -> String {
        self.calls.fetch_add(1, SeqCst);
        format!("profile of {user}")
    }

    #[invalidates("user:<user>:*")]
    async fn forget(&self, user: &str) {
        let _ = user;
    }
}

/// One function as three builds of a service deploy it: the old build, one
/// that bumped `version`, and one whose `Employee` gained a field.
#[derive(Default)]
struct Builds {
    old: AtomicUsize,
    bumped: AtomicUsize,
    changed: AtomicUsize,
}

/// `Employee` as the build that added a field has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EmployeeWithEmail {
    id: u64,
    name: String,
    version: u64,
    email: String,
}

impl Builds {
    fn counts(&self) -> (usize, usize, usize) {
        (
            self.old.load(SeqCst),
            self.bumped.load(SeqCst),
            self.changed.load(SeqCst),
        )
    }

    #[cached(ttl = "long", key = "deploy:<id>")]
    async fn old(&self, id: u64) -> Employee {
        self.old.fetch_add(1, SeqCst);
        Employee {
            id,
            name: "old".into(),
            version: 0,
        }
    }

    #[cached(ttl = "long", key = "deploy:<id>", version = 2)]
    async fn bumped(&self, id: u64) -> Employee {
        self.bumped.fetch_add(1, SeqCst);
        Employee {
            id,
            name: "bumped".into(),
            version: 2,
        }
    }

    #[cached(ttl = "long", key = "deploy:<id>")]
    async fn changed(&self, id: u64) -> EmployeeWithEmail {
        self.changed.fetch_add(1, SeqCst);
        EmployeeWithEmail {
            id,
            name: "changed".into(),
            version: 0,
            email: "a@b".into(),
        }
    }
}

tests::on_every_deployment! {
async fn builds_that_disagree_on_a_type_keep_their_own_entries_under_one_key(redis) {
    // No in-process copies: every read goes to Redis.
    let instance = || redis.instance().configure(|b| b.l1_enabled(false));
    let (old, bumped, changed) = (
        instance().connected().await,
        instance().connected().await,
        instance().connected().await,
    );
    let builds = Builds::default();
    for _ in 0..300 {
        assert_eq!(old.scope(builds.old(7)).await.name, "old");
        assert_eq!(bumped.scope(builds.bumped(7)).await.name, "bumped");
        assert_eq!(changed.scope(builds.changed(7)).await.name, "changed");
    }
    assert_eq!(builds.counts(), (1, 1, 1), "each build computed once, then hit its own entry");
    for cache in [&old, &bumped, &changed] {
        let stats = cache.stats().await;
        assert_eq!((stats.l2_hits, stats.misses, stats.errors), (299, 1, 0));
    }

    // One invalidation removes every build's entry.
    assert_eq!(old.invalidate("deploy:7").await.unwrap().removed, 1);
    assert_eq!(redis.store().get(&redis.name("cache:deploy:7")).await.unwrap(), None);
    changed.scope(builds.changed(7)).await;
    old.scope(builds.old(7)).await;
    bumped.scope(builds.bumped(7)).await;
    assert_eq!(builds.counts(), (2, 2, 2));
}
}

tests::on_every_deployment! {
async fn a_value_computed_by_one_instance_is_served_to_the_other(redis) {
    let (a, b) = redis.instance().connected_pair().await;
    let svc = Service::default();
    let from_a = a.scope(svc.employee(7)).await.unwrap();
    let from_b = b.scope(svc.employee(7)).await.unwrap();
    assert_eq!(from_a, from_b);
    assert_eq!(svc.calls(), 1, "B read A's value from Redis");
    b.scope(svc.employee(7)).await.unwrap();
    let stats = b.stats().await;
    assert_eq!((stats.l2_hits, stats.l1_hits, stats.misses), (1, 1, 0));
    assert_eq!(stats.backend, "redis");
    assert!(stats.redis.unwrap().reachable);
    // The Redis TTL is the preset's.
    match redis.store().ttl(&redis.name("cache:employee:7")).await.unwrap() {
        KeyTtl::Expires(d) => assert!(
            d > Duration::from_secs(295) && d <= Duration::from_secs(300),
            "{d:?}"
        ),
        other => panic!("expected a TTL, got {other:?}"),
    }
}
}

tests::on_every_deployment! {
async fn an_invalidation_reaches_the_other_instances_in_process_tier(redis) {
    let (a, b) = redis.instance().connected_pair().await;
    let svc = Service::default();
    assert_eq!(b.scope(svc.employee(1)).await.unwrap().version, 0); // B computes, keeps an L1 copy
    assert_eq!(b.scope(svc.employee(1)).await.unwrap().version, 0); // L1 hit
    let mut seen = b.backplane().unwrap();
    let before = seen.borrow().applied;
    a.scope(svc.update(1)).await.unwrap();
    seen.wait_for(|s| s.applied > before).await.unwrap();
    let after = b.scope(svc.employee(1)).await.unwrap();
    assert_eq!(after.version, 1, "B's in-process copy was dropped");
    assert_eq!(svc.calls(), 2);
}
}

tests::on_every_deployment! {
async fn every_format_round_trips_through_redis(redis) {
    let (a, b) = redis.instance().connected_pair().await;
    let svc = Service::default();
    let store = redis.store();
    let cases: [(&str, u8); 4] = [("postcard", 1), ("json", 2), ("msgpack", 3), ("bincode", 4)];
    for (name, format_id) in cases {
        let (x, y) = match name {
            "json" => (a.scope(svc.as_json(1)).await, b.scope(svc.as_json(1)).await),
            "msgpack" => (
                a.scope(svc.as_msgpack(1)).await,
                b.scope(svc.as_msgpack(1)).await,
            ),
            "bincode" => (
                a.scope(svc.as_bincode(1)).await,
                b.scope(svc.as_bincode(1)).await,
            ),
            _ => (
                a.scope(svc.as_postcard(1)).await,
                b.scope(svc.as_postcard(1)).await,
            ),
        };
        assert_eq!(x, y, "{name}");
        let bytes = store
            .get(&redis.name(&format!("cache:{name}:1")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bytes[3], format_id, "{name} envelope");
    }
    assert_eq!(svc.calls(), 4, "B never called the origin");
    // JSON is readable in redis-cli.
    let json = store.get(&redis.name("cache:json:1")).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&json[13..]).contains("\"name\":\"employee 1\""));
}
}

tests::on_every_deployment! {
async fn compression_applies_above_the_threshold_only(redis) {
    let a = redis.instance().connected().await;
    let svc = Service::default();
    let store = redis.store();
    let compressed = |k: &'static str| {
        let store = store.clone();
        let name = redis.name(k);
        async move { store.get(&name).await.unwrap().unwrap()[4] == 1 }
    };
    a.scope(async {
        svc.text(100).await;
        svc.text(5000).await;
        svc.text_always(100).await;
        svc.text_never(5000).await;
    })
    .await;
    assert!(!compressed("cache:text:100").await);
    assert!(compressed("cache:text:5000").await);
    assert!(compressed("cache:always:100").await);
    assert!(!compressed("cache:never:5000").await);
    let big = store.get(&redis.name("cache:text:5000")).await.unwrap().unwrap();
    assert!(
        big.len() < 200,
        "5000 repeated bytes compress well: {}",
        big.len()
    );
    let b = redis.instance().connected().await;
    assert_eq!(b.scope(svc.text(5000)).await.len(), 5000);
    assert_eq!(svc.calls(), 2, "read back and decompressed by B");
}
}

tests::on_every_deployment! {
async fn corrupt_truncated_and_foreign_entries_are_misses_that_get_replaced(redis) {
    let a = redis.instance().connected().await;
    let store = redis.store();
    let svc = Service::default();
    a.scope(svc.employee(1)).await.unwrap();
    let good = store.get(&redis.name("cache:employee:1")).await.unwrap().unwrap();
    let ttl = Duration::from_secs(60);

    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\xffnot an envelope at all".to_vec()),
        ("truncated", good[..good.len() - 3].to_vec()),
        ("trailing", [good.clone(), vec![0, 1, 2]].concat()),
    ];
    for (what, bytes) in bad {
        let reader = redis.instance().connected().await; // empty in-process tier
        store.set(&redis.name("cache:employee:1"), &bytes, ttl).await.unwrap();
        let before = svc.calls();
        let v = reader.scope(svc.employee(1)).await.unwrap();
        assert_eq!(v.id, 1, "{what}");
        assert_eq!(svc.calls(), before + 1, "{what}: recomputed");
        assert_eq!(
            store.get(&redis.name("cache:employee:1")).await.unwrap().unwrap(),
            good,
            "{what}: replaced"
        );
        assert_eq!(reader.stats().await.errors, 1, "{what}: counted");
    }

    // Written for another type under the same key.
    a.set("employee:1", &"just a string".to_string(), Preset::Short)
        .await
        .unwrap();
    let reader = redis.instance().connected().await;
    let before = svc.calls();
    assert_eq!(reader.scope(svc.employee(1)).await.unwrap().id, 1);
    assert_eq!(svc.calls(), before + 1);
    assert_eq!(
        reader
            .get::<Employee>("employee:1")
            .await
            .unwrap()
            .map(|e| e.id),
        Some(1)
    );
}
}

tests::on_every_deployment! {
async fn a_decompression_bomb_is_refused(redis) {
    // A writer that accepts 128 MiB stores 64 MiB of zeros: a few KiB compressed.
    let writer = redis.instance()
        .configure(|b| {
            b.max_value_size(128 * 1024 * 1024)
                .compression(Compression::Always)
                .redis_op_timeout(Duration::from_secs(5))
        })
        .build();
    writer
        .set("blob", &vec![0u8; 64 * 1024 * 1024], Preset::Short)
        .await
        .unwrap();
    let stored = redis.store()
        .get(&redis.name("cache:blob"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.len() < 64 * 1024,
        "compressed to {} bytes",
        stored.len()
    );
    // A reader with the default 8 MiB limit refuses the frame before inflating it.
    let reader = redis.instance().connected().await;
    assert_eq!(reader.get::<Vec<u8>>("blob").await.unwrap(), None);
    assert_eq!(reader.stats().await.errors, 1);
    // A read never removes an entry; the next write replaces it.
    assert!(reader.exists("blob").await.unwrap());
    reader.set("blob", &vec![1u8; 16], Preset::Short).await.unwrap();
    assert_eq!(reader.get::<Vec<u8>>("blob").await.unwrap(), Some(vec![1u8; 16]));
}
}

tests::on_every_deployment! {
async fn hostile_user_values_behave_exactly_as_in_memory(redis) {
    let (a, b) = redis.instance().connected_pair().await;
    let svc = Service::default();
    let users = ["*", "[a-z]", "\\", ":", "a", "a:b", "?"];
    for u in users {
        a.scope(svc.profile(u)).await;
        b.scope(svc.profile(u)).await;
    }
    assert_eq!(svc.calls(), users.len(), "B read every value from Redis");
    let store = redis.store();
    let mut bp = b.backplane().unwrap();
    for victim in ["*", "[a-z]", "\\", ":"] {
        let before = bp.borrow().applied;
        a.scope(svc.forget(victim)).await;
        bp.wait_for(|s| s.applied > before).await.unwrap();
        for u in users {
            let key = cache_core::KeyBuilder::new()
                .lit("cache:user:")
                .value(&u)
                .lit(":profile")
                .build();
            let gone = ["*", "[a-z]", "\\", ":"]
                .iter()
                .take_while(|v| **v != victim)
                .any(|v| *v == u)
                || u == victim;
            assert_eq!(
                !store.exists(&redis.name(&key)).await.unwrap(),
                gone,
                "victim {victim:?}, user {u:?}"
            );
        }
    }
    // B's in-process copies went with them: exactly the four victims are recomputed.
    let before = svc.calls();
    for u in users {
        b.scope(svc.profile(u)).await;
    }
    assert_eq!(svc.calls(), before + 4);
}
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn in_process_copies_outlive_neither_redis_nor_a_dead_redis() {
    let mut server = RedisServer::start();
    let (a, b) = Instance::on(&server).connected_pair().await;
    let mut bp = b.backplane().unwrap();
    a.set("session", &"alive".to_string(), Duration::from_secs(5))
        .await
        .unwrap();
    bp.wait_for(|s| s.applied == 1).await.unwrap(); // the overwrite's announcement
    assert_eq!(
        b.get::<String>("session").await.unwrap().as_deref(),
        Some("alive")
    ); // L2 hit, L1 filled
    server.kill();
    // With Redis gone, B answers from its in-process copy, whose TTL is Redis's remaining TTL.
    assert_eq!(
        b.get::<String>("session").await.unwrap().as_deref(),
        Some("alive")
    );
    let left = b.ttl("session").await.unwrap().unwrap();
    assert!(
        left <= Duration::from_secs(5) && left > Duration::from_secs(3),
        "{left:?}"
    );
    assert!(
        b.stats().await.errors >= 1,
        "the failed Redis call was counted"
    );
    assert_eq!(b.health().await.status, cache_core::HealthStatus::Degraded);
}

tests::on_every_deployment! {
async fn manual_api_works_across_instances(redis) {
    let (a, b) = redis.instance().connected_pair().await;
    a.set("k", &41u32, Preset::Short).await.unwrap();
    assert_eq!(b.get::<u32>("k").await.unwrap(), Some(41));
    assert!(b.exists("k").await.unwrap());
    let mut bp_a = a.backplane().unwrap();
    let seen_by_a = bp_a.borrow().applied;
    assert!(b.expire("k", Duration::from_secs(600)).await.unwrap());
    // Announced: other instances' copies must not outlive the new TTL.
    bp_a.wait_for(|s| s.applied > seen_by_a).await.unwrap();
    assert!(a.ttl("k").await.unwrap().unwrap() > Duration::from_secs(590));
    let mut bp = b.backplane().unwrap();
    let before = bp.borrow().applied;
    assert_eq!(a.delete("k").await.unwrap().removed, 1);
    bp.wait_for(|s| s.applied > before).await.unwrap();
    assert_eq!(b.get::<u32>("k").await.unwrap(), None);
    for i in 0..10u32 {
        a.set(&format!("page:{i}"), &i, Preset::Short)
            .await
            .unwrap();
    }
    let before = bp_a.borrow().applied;
    assert_eq!(b.invalidate("page:*").await.unwrap().removed, 10);
    a.set("x", &1u8, Preset::Short).await.unwrap();
    b.clear().await.unwrap();
    // Both of b's announcements (the pattern, then the clear) reached a,
    // in the order b published them.
    bp_a.wait_for(|s| s.applied >= before + 2).await.unwrap();
    assert!(!a.exists("x").await.unwrap());
    let v = Arc::new(AtomicUsize::new(0));
    let v2 = Arc::clone(&v);
    let got = b
        .get_or_set("computed", Preset::Short, async move {
            v2.fetch_add(1, SeqCst);
            7u8
        })
        .await
        .unwrap();
    assert_eq!(got, 7);
    assert_eq!(a.get::<u8>("computed").await.unwrap(), Some(7));
    assert_eq!(v.load(SeqCst), 1);
}
}

#[tokio::test]
async fn redis_needs_a_key_prefix() {
    let err = Cache::builder()
        .redis_url("redis://127.0.0.1:1/0")
        .key_prefix("")
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a key prefix"), "{err}");
}
