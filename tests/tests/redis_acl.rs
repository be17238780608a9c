//! A locked-down Redis: `requirepass`-style passwords and an ACL user that
//! may touch only the cache's prefix, its backplane channel and the
//! commands the library sends (the rule README lists). Everything works,
//! Redis's own `ACL LOG` records no denied command, and a wrong password
//! degrades the cache with a clear error that never shows the password.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, HealthStatus, Preset, cached, invalidates};
use cache_redis::{RedisConfig, RedisStore};
use tests::redis_server::{RedisServer, ServerConfig};
use tests::support::eventually;

/// The ACL rule of README ("Locked-down Redis"), for the prefix `cache`.
const APP_RULE: &str = "on >app-s3cret resetkeys ~cache:* resetchannels &cache:__backplane \
    -@all +get +mget +set +pttl +exists +pexpire +unlink +scan +publish +subscribe +ping \
    +info +dbsize +smembers +sadd +evalsha +eval +script|load +time +getrange +del +scard \
    +spop +srem +srandmember";

fn locked_down() -> RedisServer {
    RedisServer::start_with(ServerConfig {
        file: Some(format!(
            "user default on >admin-pw ~* &* +@all\nuser app {APP_RULE}\n"
        )),
        ..Default::default()
    })
}

fn url(server: &RedisServer, auth: &str) -> String {
    format!("redis://{auth}@127.0.0.1:{}/0", server.port())
}

fn admin(server: &RedisServer) -> RedisStore {
    RedisStore::new(
        RedisConfig::new(url(server, "default:admin-pw")).op_timeout(Duration::from_secs(2)),
    )
    .unwrap()
}

async fn acl_log(server: &RedisServer) -> String {
    let client = redis::Client::open(url(server, "default:admin-pw")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let log: redis::Value = redis::cmd("ACL")
        .arg("LOG")
        .query_async(&mut con)
        .await
        .unwrap();
    match log {
        redis::Value::Array(entries) if entries.is_empty() => String::new(),
        other => format!("{other:?}"),
    }
}

#[derive(Default)]
struct Db {
    reads: AtomicUsize,
}

impl Db {
    #[cached(ttl = "medium", key = "employee:<id>", refresh = 0.9)]
    async fn employee(self: Arc<Self>, id: u64) -> String {
        self.reads.fetch_add(1, SeqCst);
        format!("employee {id}")
    }

    #[invalidates("employee:<id>", "team:<id>:*")]
    async fn update(&self, id: u64) {
        let _ = id;
    }
}

fn app(server: &RedisServer, auth: &str) -> Cache {
    Cache::builder()
        .redis_url(url(server, auth))
        .redis_op_timeout(Duration::from_secs(2))
        .stats_interval(Duration::from_millis(100))
        .build_blocking()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn an_acl_user_limited_to_the_prefix_can_do_everything_the_cache_does() {
    let server = locked_down();
    let (a, b) = (
        app(&server, "app:app-s3cret"),
        app(&server, "app:app-s3cret"),
    );
    for c in [&a, &b] {
        tests::support::connected(c).await;
    }
    let db = Arc::new(Db::default());
    // Misses, writes, the stampede lock and its release, hits.
    assert_eq!(a.scope(Arc::clone(&db).employee(1)).await, "employee 1");
    assert_eq!(b.scope(Arc::clone(&db).employee(1)).await, "employee 1");
    assert_eq!(db.reads.load(SeqCst), 1, "B read A's value");
    // Manual API, prefix, key and scanned-pattern invalidation, with the backplane.
    for i in 0..5 {
        a.set(&format!("team:1:{i}"), &i, Preset::Short)
            .await
            .unwrap();
    }
    let mut heard = b.backplane().unwrap();
    let before = heard.borrow().applied;
    a.scope(db.update(1)).await;
    heard.wait_for(|s| s.applied > before).await.unwrap();
    assert_eq!(a.get::<u32>("team:1:3").await.unwrap(), None);
    a.set("x1y", &1u8, Preset::Short).await.unwrap();
    assert_eq!(a.invalidate("x?y").await.unwrap().removed, 1);
    assert_eq!(a.delete("nothing").await.unwrap().removed, 0);
    a.set("k", &1u8, Preset::Short).await.unwrap();
    assert!(a.expire("k", Duration::from_secs(30)).await.unwrap());
    assert!(a.ttl("k").await.unwrap().is_some());
    assert!(a.exists("k").await.unwrap());
    // Stats, namespaces, health, the other instances' snapshots, clear.
    let stats = a.stats().await;
    assert!(stats.redis.is_some(), "{stats}");
    assert!(!a.namespaces().await.unwrap().is_empty());
    assert_eq!(a.health().await.status, HealthStatus::Healthy);
    eventually("both instances report", async || {
        a.stats_all()
            .await
            .is_ok_and(|all| all.instances.len() == 2)
    })
    .await;
    assert!(a.clear().await.unwrap().is_done());

    for c in [&a, &b] {
        let s = c.stats().await;
        assert_eq!((s.errors, s.redis_skipped), (0, 0), "{s}");
    }
    assert_eq!(acl_log(&server).await, "", "no command was denied");
    // And nothing outside the prefix was touched.
    let admin = admin(&server);
    admin
        .set("other:data", b"kept", Duration::from_secs(60))
        .await
        .unwrap();
    a.clear().await.unwrap();
    assert!(admin.exists("other:data").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn a_wrong_password_degrades_with_a_clear_error_that_hides_the_password() {
    let server = locked_down();
    let cache = app(&server, "app:not-the-Pa55word");
    let db = Arc::new(Db::default());
    // Calls are served by the function.
    assert_eq!(cache.scope(Arc::clone(&db).employee(2)).await, "employee 2");
    let health = cache.health().await;
    assert_eq!(health.status, HealthStatus::Degraded);
    let error = health.error.unwrap_or_default();
    assert!(
        error.contains("WRONGPASS") || error.to_lowercase().contains("password"),
        "{error}"
    );
    for shown in [
        error,
        format!("{cache:?}"),
        format!("{:?}", cache.stats().await),
    ] {
        assert!(!shown.contains("not-the-Pa55word"), "{shown}");
    }
}
