//! The employee service over real HTTP: each test starts the built binary
//! (`PORT=0`, its own SQLite file), reads the port from its `listening on`
//! line, drives it with reqwest and kills it at the end.
//!
//! Each service process is its own: its metrics and cache see only the
//! test's requests, so counts are exact. What crosses processes (the
//! backplane, in the Redis test) is waited for with a bounded poll.

use reqwest::StatusCode;
use serde_json::json;
use tests::support::eventually;

mod common;
use common::*;

#[tokio::test]
async fn a_miss_then_a_hit() {
    let dir = temp_dir();
    let s = service(&dir);

    let (status, first) = s.get("/employees/7").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["id"], json!(7));
    assert_eq!(s.calls("employee:<id>", "miss").await, 1.0);
    assert_eq!(s.calls("employee:<id>", "hit_l1").await, 0.0);

    let (status, second) = s.get("/employees/7").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second, first);
    assert_eq!(s.calls("employee:<id>", "miss").await, 1.0);
    assert_eq!(s.calls("employee:<id>", "hit_l1").await, 1.0);

    // The same in the cache's own stats, through the admin routes.
    let (status, stats) = s.get_with("/admin/cache/stats", TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let functions = stats["functions"].as_array().expect("functions");
    let employee = functions
        .iter()
        .find(|f| f["label"] == json!("employee:<id>"))
        .unwrap_or_else(|| panic!("employee:<id> in {stats}"));
    assert_eq!(employee["misses"], json!(1), "{employee}");
    assert_eq!(employee["hits"], json!(1), "{employee}");
    assert_eq!(stats["l1_hits"], json!(1), "{stats}");
}

#[tokio::test]
async fn an_update_then_a_fresh_read() {
    let dir = temp_dir();
    let s = service(&dir);

    let (_, before) = s.get("/employees/12").await;
    let (status, page) = s.get("/employees?page=1&size=20").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][11], before);
    assert_eq!(page["total"], json!(200));
    // Both are cached now.
    assert_eq!(s.get("/employees/12").await.1, before);
    assert_eq!(s.calls("employee:<id>", "hit_l1").await, 1.0);

    let change = json!({"name": "Grace Hopper", "title": "Rear Admiral", "department": "Navy"});
    let (status, updated) = s.put_json("/employees/12", &change).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], json!("Grace Hopper"));
    assert_eq!(
        updated["email"], before["email"],
        "fields not in the body are kept"
    );

    // The update dropped employee:12 and every page in this process before
    // it answered: both reads query again and see the new row.
    let (_, after) = s.get("/employees/12").await;
    assert_eq!(after, updated);
    assert_eq!(s.calls("employee:<id>", "miss").await, 2.0);
    let (_, page) = s.get("/employees?page=1&size=20").await;
    assert_eq!(page["items"][11], updated);
    assert_eq!(
        s.calls("employees:page:<page>:size:<size>", "miss").await,
        2.0
    );
}

#[tokio::test]
async fn the_admin_routes_need_the_token() {
    let dir = temp_dir();
    let s = service(&dir);

    for path in [
        "/admin/cache/stats",
        "/admin/cache/health",
        "/admin/cache/no-such-route",
    ] {
        let (status, body) = s.get(path).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} without a token: {body}"
        );
        assert!(body["error"].is_string(), "{body}");
        let (status, _) = s.get_with(path, "wrong-token").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} with a wrong token"
        );
        let (status, _) = s.get_with(path, &TOKEN[..TOKEN.len() - 1]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} with a prefix of the token"
        );
    }
    let (status, stats) = s.get_with("/admin/cache/stats", TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["backend"], json!("memory"));
    let (status, health) = s.get_with("/admin/cache/health", TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    let (status, _) = s.get_with("/admin/cache/no-such-route", TOKEN).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The writing routes too: refused without the token, working with it.
    let invalidate = json!({"patterns": ["employee:*"]});
    let request = s
        .http
        .post(s.url("/admin/cache/invalidate"))
        .json(&invalidate);
    assert_eq!(s.send(request).await.0, StatusCode::UNAUTHORIZED);
    s.get("/employees/5").await;
    let request = s
        .http
        .post(s.url("/admin/cache/invalidate"))
        .bearer_auth(TOKEN)
        .json(&invalidate);
    let (status, answer) = s.send(request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["total"], json!(1), "employee:5 was cached: {answer}");
    s.get("/employees/5").await;
    assert_eq!(s.calls("employee:<id>", "miss").await, 2.0, "queried again");
    let request = s
        .http
        .delete(s.url("/admin/cache/clear"))
        .bearer_auth(TOKEN);
    assert_eq!(
        s.send(request).await.0,
        StatusCode::BAD_REQUEST,
        "no confirm=true"
    );
}

#[tokio::test]
async fn without_a_token_the_admin_routes_are_not_mounted() {
    let dir = temp_dir();
    let db = dir.path().join("employees.sqlite3");
    let s = Service::start(dir.path(), "service", &db, &[]);

    for path in ["/admin/cache/stats", "/admin/cache/health"] {
        let (status, _) = s.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let (status, _) = s.get_with(path, TOKEN).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} with a token");
    }
    // The API itself is there.
    assert_eq!(s.get("/employees/1").await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_input_is_a_json_4xx() {
    let dir = temp_dir();
    let s = service(&dir);

    let (status, body) = s.get("/employees/9999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], json!("employee 9999 not found"));

    let bad_requests: [(&str, &'static str); 6] = [
        ("malformed JSON", r#"{"name": "Ada","#),
        ("not an object", "[1, 2]"),
        ("a missing field", r#"{"name": "Ada", "title": "Engineer"}"#),
        (
            "an unknown field",
            r#"{"name": "Ada", "title": "Engineer", "department": "Data", "salary": 1}"#,
        ),
        (
            "an empty value",
            r#"{"name": " ", "title": "Engineer", "department": "Data"}"#,
        ),
        (
            "a wrong type",
            r#"{"name": 1, "title": "Engineer", "department": "Data"}"#,
        ),
    ];
    for (what, body) in bad_requests {
        let (status, answer) = s.put_raw("/employees/7", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert!(answer["error"].is_string(), "{what}: {answer}");
    }
    let (_, unchanged) = s.get("/employees/7").await;
    assert_ne!(
        unchanged["name"],
        json!("Ada"),
        "no bad request changed the row"
    );

    let valid = json!({"name": "Ada", "title": "Engineer", "department": "Data"});
    let (status, body) = s.put_json("/employees/9999", &valid).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    for path in [
        "/employees/abc",
        "/employees/0",
        "/employees/-3",
        "/employees/99999999999999999999",
        "/employees?page=0",
        "/employees?page=x",
        "/employees?size=0",
        "/employees?size=101",
        "/employees?size=-1",
        "/employees?colour=red",
    ] {
        let (status, body) = s.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let (status, page) = s.get("/employees?page=11&size=20").await;
    assert_eq!(status, StatusCode::OK, "past the last page: an empty page");
    assert_eq!(page["items"], json!([]));

    let (status, body) = s.get("/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn metrics_and_health() {
    let dir = temp_dir();
    let s = service(&dir);

    let (status, health) = s.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["database"], json!("ok"));
    assert_eq!(health["cache_backend"], json!("memory"));
    let (status, health) = s.get_with("/admin/cache/health", TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{health}");

    s.get("/employees/3").await;
    let text = s.metrics().await;
    // Histograms with the service's buckets, and the gauges `stats()` sets.
    let bucket = sample(
        &text,
        "cache_origin_duration_seconds_bucket",
        &[("function", "employee:<id>"), ("le", "+Inf")],
    );
    assert_eq!(bucket, Some(1.0), "{text}");
    // (moka counts entries lazily: the gauge is there, its value may lag.)
    assert!(
        sample(&text, "cache_entries", &[("cache", "default")]).is_some(),
        "{text}"
    );
    assert_eq!(sample(&text, "cache_sets_total", &[]), Some(1.0));
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_it_cleanly() {
    use rustix::process::{Pid, Signal, kill_process};

    let dir = temp_dir();
    let mut s = service(&dir);
    assert_eq!(s.get("/employees/1").await.0, StatusCode::OK);

    let pid = Pid::from_raw(i32::try_from(s.child.id()).expect("pid")).expect("pid");
    kill_process(pid, Signal::TERM).expect("SIGTERM");
    let mut status = None;
    eventually("the service to exit after SIGTERM", async || {
        status = s.child.try_wait().expect("try_wait");
        status.is_some()
    })
    .await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}; log:\n{}",
        s.log()
    );
    assert!(s.log().contains("stopped"), "{}", s.log());
}

/// Two instances on one SQLite file and one Redis: a value B cached is
/// dropped from B's in-process tier by A's update, through the backplane.
#[tokio::test]
#[cfg_attr(skip_redis, ignore = "needs redis-server (see tests/build.rs)")]
async fn two_instances_share_redis_and_the_database() {
    let redis = tests::redis_server::RedisServer::start();
    let dir = temp_dir();
    let db = dir.path().join("employees.sqlite3");
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str()), ("CACHE_ADMIN_TOKEN", TOKEN)];
    let a = Service::start(dir.path(), "a", &db, &env);
    let b = Service::start(dir.path(), "b", &db, &env);
    a.backplane_connected().await;
    b.backplane_connected().await;
    assert_eq!(b.get("/healthz").await.1["cache_backend"], json!("redis"));

    // B reads employee 21 twice: one query, then its cache. And the page
    // that holds it.
    let (status, page_before) = b.get("/employees?page=2&size=20").await;
    assert_eq!(status, StatusCode::OK);
    let (status, before) = b.get("/employees/21").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(b.get("/employees/21").await.1, before);
    assert_eq!(b.calls("employee:<id>", "miss").await, 1.0);
    let cached =
        b.calls("employee:<id>", "hit_l1").await + b.calls("employee:<id>", "hit_l2").await;
    assert_eq!(cached, 1.0, "B's second read came from its cache");
    assert_eq!(page_before["items"][0], before);

    // A updates it: A's own next read is fresh at once.
    let change = json!({"name": "Radia Perlman", "title": "Fellow", "department": "Networks"});
    let (status, updated) = a.put_json("/employees/21", &change).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(a.get("/employees/21").await.1, updated);

    // B hears of it over the backplane (asynchronously): it then answers
    // with the new row, never again with the old one.
    eventually("B to serve the updated employee", async || {
        let (status, now) = b.get("/employees/21").await;
        assert_eq!(status, StatusCode::OK);
        assert!(now == before || now == updated, "{now}");
        now == updated
    })
    .await;
    for _ in 0..3 {
        assert_eq!(b.get("/employees/21").await.1, updated);
    }
    eventually("B to serve the updated page", async || {
        let (_, page) = b.get("/employees?page=2&size=20").await;
        assert!(page == page_before || page["items"][0] == updated, "{page}");
        page["items"][0] == updated
    })
    .await;

    // B reports the shared tier in its stats.
    let (status, stats) = b.get_with("/admin/cache/stats", TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["backend"], json!("redis"));
    // And each finds the other's snapshot in Redis (written periodically).
    eventually("both instances in stats?scope=all", async || {
        let (status, all) = a.get_with("/admin/cache/stats?scope=all", TOKEN).await;
        assert_eq!(status, StatusCode::OK, "{all}");
        all["instances"].as_array().map(Vec::len) == Some(2)
    })
    .await;
}
