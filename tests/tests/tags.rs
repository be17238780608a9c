//! Tags: `#[cached(tags = [...])]`, `#[invalidates(tags = [...])]` and
//! `Cache::invalidate_tag` remove every entry of a tag across namespaces,
//! exactly those, on every tier and instance; a value computed before a
//! tag's invalidation is never stored after it (in-process, and refused by
//! Redis for another instance); an invalidation during an outage is queued
//! and replayed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{BreakerConfig, KeyBuilder, cache_put, cached, invalidates};
use tests::redis_server::{RedisServer, ServerConfig};
use tests::support::{Instance, connected, eventually, memory_cache, redis_store};
use tokio::sync::Notify;

#[derive(Default)]
struct Reports {
    calls: AtomicUsize,
    version: AtomicUsize,
    /// When set, `report` waits here after reading its data (a slow query).
    hold: Option<(Notify, Notify)>,
}

impl Reports {
    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    fn read(&self, what: String) -> String {
        self.calls.fetch_add(1, SeqCst);
        format!("{what} v{}", self.version.load(SeqCst))
    }

    #[cached(key = "report:<tenant>:<id>", tags = ["tenant:<tenant>", "reports"])]
    async fn report(&self, tenant: &str, id: u32) -> String {
        let v = self.read(format!("report {id} of {tenant}"));
        if let Some((read, go)) = &self.hold {
            read.notify_one();
            go.notified().await;
        }
        v
    }

    #[cached(key = "dashboard:<tenant>", tags = ["tenant:<tenant>"])]
    async fn dashboard(&self, tenant: &str) -> String {
        self.read(format!("dashboard of {tenant}"))
    }

    #[cached(key = "employee:<id>")]
    async fn employee(&self, id: u32) -> String {
        self.read(format!("employee {id}"))
    }

    /// A write-through of a tagged entry joins its tags too.
    #[cache_put(key = "dashboard:<tenant>", tags = ["tenant:<tenant>"])]
    async fn rebuild_dashboard(&self, tenant: &str) -> String {
        self.read(format!("dashboard of {tenant}"))
    }

    #[invalidates(tags = ["tenant:<tenant>"])]
    async fn tenant_changed(&self, tenant: &str) -> Result<(), String> {
        let _ = tenant;
        self.version.fetch_add(1, SeqCst);
        Ok(())
    }

    #[invalidates("employee:<id>", tags = ["reports"])]
    async fn employee_changed(&self, id: u32) -> Result<(), String> {
        let _ = id;
        self.version.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_tag_removes_its_entries_across_namespaces_and_no_other() {
    let c = memory_cache();
    let r = Reports::default();
    c.scope(async {
        r.report("acme", 1).await;
        r.report("acme", 2).await;
        r.report("globex", 3).await;
        r.dashboard("acme").await;
        r.dashboard("globex").await;
        r.employee(9).await;
        assert_eq!(r.calls(), 6);
        r.tenant_changed("acme").await.unwrap();
        for (k, gone) in [
            ("report:acme:1", true),
            ("report:acme:2", true),
            ("dashboard:acme", true),
            ("report:globex:3", false),
            ("dashboard:globex", false),
            ("employee:9", false),
        ] {
            assert_eq!(!c.exists(k).await.unwrap(), gone, "{k}");
        }
        assert_eq!(r.report("acme", 1).await, "report 1 of acme v1");
        // A second tag of the same entries, and a key, in one attribute.
        r.employee_changed(9).await.unwrap();
        for k in ["report:acme:1", "report:globex:3", "employee:9"] {
            assert!(!c.exists(k).await.unwrap(), "{k}");
        }
        assert!(c.exists("dashboard:globex").await.unwrap());
    })
    .await;
    // Built like a key, values escaped: a value cannot reach another tag.
    let star = KeyBuilder::new().lit("tenant:").value(&"*").build();
    assert_eq!(c.invalidate_tag(&star).await.unwrap().removed, 0);
    assert!(c.exists("dashboard:globex").await.unwrap());
    assert_eq!(c.invalidate_tag("tenant:globex").await.unwrap().removed, 1);
}

#[tokio::test]
async fn a_write_through_joins_its_tags() {
    let c = memory_cache();
    let r = Reports::default();
    c.scope(async {
        r.rebuild_dashboard("acme").await;
        assert!(c.exists("dashboard:acme").await.unwrap());
        r.tenant_changed("acme").await.unwrap();
        assert!(!c.exists("dashboard:acme").await.unwrap());
    })
    .await;
}

/// A report that read its data before the tag was invalidated, and
/// finishes after, is returned to its caller but not stored.
#[tokio::test]
async fn a_computation_overtaken_by_its_tag_is_not_stored() {
    let c = memory_cache();
    let r = &Reports {
        hold: Some((Notify::new(), Notify::new())),
        ..Reports::default()
    };
    let (read, go) = r.hold.as_ref().unwrap();
    c.scope(async {
        let slow = r.report("acme", 1);
        let invalidate = async {
            read.notified().await;
            r.tenant_changed("acme").await.unwrap();
            go.notify_one();
        };
        let (old, ()) = tokio::join!(slow, invalidate);
        assert_eq!(old, "report 1 of acme v0");
    })
    .await;
    assert!(!c.exists("report:acme:1").await.unwrap(), "not stored");
}

tests::on_every_deployment! {
/// Across instances: Redis drops the tag's keys, the other instance its
/// in-process copies, and no other entry goes.
async fn a_tag_reaches_every_instance_and_tier(redis) {
    let (a, b) = redis.instance().connected_pair().await;
    let r = Reports::default();
    for c in [&a, &b] {
        c.scope(async {
            for id in 0..20 {
                r.report(if id % 2 == 0 { "acme" } else { "globex" }, id).await;
            }
            r.dashboard("acme").await;
        })
        .await;
    }
    assert_eq!(r.calls(), 21, "B was served A's values");
    let store = redis.store();
    let mut bp = b.backplane().unwrap();
    let before = bp.borrow().applied;
    let removed = a.invalidate_tag("tenant:acme").await.unwrap();
    assert_eq!((removed.removed, removed.queued), (11, false));
    bp.wait_for(|s| s.applied > before).await.unwrap();
    for id in 0..20 {
        let tenant = if id % 2 == 0 { "acme" } else { "globex" };
        let key = format!("cache:report:{tenant}:{id}");
        assert_eq!(
            store.exists(&redis.name(&key)).await.unwrap(),
            id % 2 == 1,
            "{key} in Redis"
        );
    }
    // B computes acme's entries again, and serves globex's from memory.
    b.scope(async {
        assert_eq!(r.report("acme", 0).await, "report 0 of acme v0");
        r.report("globex", 1).await;
    })
    .await;
    assert_eq!(r.calls(), 22);
}
}

tests::on_every_deployment! { multi_thread;
/// A's computation started before B invalidated its tag: Redis refuses its
/// value, so a third instance computes again instead of reading it. (A
/// does not hear the backplane, so only Redis can tell.)
async fn redis_refuses_a_value_computed_before_its_tag_was_invalidated(redis) {
    let a = redis.instance().backplane(false).build();
    let b = redis.instance().connected().await;
    let r = Arc::new(Reports {
        hold: Some((Notify::new(), Notify::new())),
        ..Reports::default()
    });
    let slow = {
        let (a, r) = (a.clone(), Arc::clone(&r));
        tokio::spawn(async move { a.scope(r.report("acme", 1)).await })
    };
    let (read, go) = r.hold.as_ref().unwrap();
    read.notified().await;
    b.invalidate_tag("tenant:acme").await.unwrap();
    go.notify_one();
    assert_eq!(slow.await.unwrap(), "report 1 of acme v0");
    let store = redis.store();
    assert!(!store.exists(&redis.name("cache:report:acme:1")).await.unwrap());
    let c = redis.instance().connected().await;
    go.notify_one(); // this computation goes on at once
    c.scope(r.report("acme", 1)).await;
    assert_eq!(r.calls(), 2, "computed again");
}
}

/// Redis is down when the tag is invalidated: the removal is queued and
/// replayed once Redis is back with its data; then nobody reads the values.
#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_tag_invalidated_during_an_outage_is_replayed() {
    let mut server = RedisServer::start_with(ServerConfig::durable());
    let a = Instance::on(&server)
        .configure(|b| {
            b.redis_op_timeout(Duration::from_secs(2))
                .breaker(BreakerConfig::default().cool_down(Duration::from_millis(200)))
        })
        .build();
    connected(&a).await;
    let r = Reports::default();
    a.scope(async {
        r.report("acme", 1).await;
        r.report("globex", 2).await;
    })
    .await;
    let store = redis_store(&server);
    eventually("both reports in Redis", async || {
        store.exists("cache:report:acme:1").await.unwrap_or(false)
            && store.exists("cache:report:globex:2").await.unwrap_or(false)
    })
    .await;
    server.kill();
    let done = a.invalidate_tag("tenant:acme").await.unwrap();
    assert!(done.queued, "{done:?}");
    assert_eq!(a.stats().await.pending_invalidations, 1);
    server.restart();
    eventually("the queue replayed", async || {
        a.stats().await.pending_invalidations == 0
    })
    .await;
    let store = redis_store(&server); // a new connection to the restarted server
    assert!(
        !store.exists("cache:report:acme:1").await.unwrap(),
        "removed on replay"
    );
    assert!(
        store.exists("cache:report:globex:2").await.unwrap(),
        "another tenant's stays"
    );
    let b = Instance::on(&server).connected().await;
    assert_eq!(b.scope(r.report("acme", 1)).await, "report 1 of acme v0");
    assert_eq!(r.calls(), 3, "B computed acme's report again");
}
