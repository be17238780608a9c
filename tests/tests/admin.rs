//! The admin router over real HTTP (a real socket, a real client): every
//! endpoint, every refusal (a 400 that names the problem and removes
//! nothing), and on a private `redis-server`: an invalidation reaching
//! another instance, every instance's stats, and 503s with Redis down.

use std::time::Duration;

use cache_core::{Cache, Preset, admin};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::redis_server::RedisServer;
use tests::support::{Instance, eventually};

/// Serves `router` on a free loopback port; its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn get(url: &str) -> (StatusCode, Value) {
    let r = reqwest::get(url).await.unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn post(url: &str, body: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn delete(url: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new().delete(url).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn memory_cache_with_entries() -> Cache {
    let cache = Cache::builder().key_prefix("adm").build().await.unwrap();
    for k in ["user:1:a", "user:1:b", "user:2:a", "employee:7"] {
        cache.set(k, &1u8, Preset::Medium).await.unwrap();
    }
    cache
}

#[tokio::test]
async fn stats_health_and_namespaces() {
    let cache = memory_cache_with_entries().await;
    let _: Option<u8> = cache.get("user:1:a").await.unwrap();
    let _: Option<u8> = cache.get("nothing").await.unwrap();
    let base = serve(admin::router(cache.clone())).await;

    let (status, stats) = get(&format!("{base}/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (stats["hits"].as_u64(), stats["misses"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(stats["sets"], 4);
    assert_eq!(stats["backend"], "memory");

    let (status, all) = get(&format!("{base}/stats?scope=all")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["instances"].as_array().unwrap().len(), 1);
    assert_eq!(all["total"]["sets"], 4);

    let (status, err) = get(&format!("{base}/stats?scope=everyone")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("unknown scope \"everyone\""),
        "{err}"
    );

    let (status, health) = get(&format!("{base}/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "healthy");

    let (status, ns) = get(&format!("{base}/namespaces")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ns["total"], 4);
    assert_eq!(
        ns["namespaces"],
        json!([
            {"prefix": "user:", "entries": 3, "exact": true},
            {"prefix": "employee:", "entries": 1, "exact": true},
        ])
    );
}

#[tokio::test]
async fn invalidate_returns_the_count_per_pattern() {
    let cache = memory_cache_with_entries().await;
    let base = serve(admin::router(cache.clone())).await;
    let (status, body) = post(
        &format!("{base}/invalidate"),
        r#"{"patterns": ["user:1:*", "employee:7", "employee:8"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["removed"],
        json!([
            {"pattern": "user:1:*", "removed": 2, "queued": false},
            {"pattern": "employee:7", "removed": 1, "queued": false},
            {"pattern": "employee:8", "removed": 0, "queued": false},
        ])
    );
    assert_eq!(body["total"], 3);
    assert_eq!(body["warnings"], json!([]));
    assert!(cache.exists("user:2:a").await.unwrap());
    assert!(!cache.exists("user:1:a").await.unwrap());

    // A pattern pasted with the cache's prefix is applied as given, and
    // the answer says why it matched nothing.
    let (status, body) = post(
        &format!("{base}/invalidate"),
        r#"{"patterns": ["adm:user:2:*"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 0);
    assert!(
        body["warnings"][0]
            .as_str()
            .unwrap()
            .contains("starts with the cache's prefix")
    );
    assert!(cache.exists("user:2:a").await.unwrap());
}

#[cache_core::cached(key = "report:<tenant>:<id>", tags = ["tenant:<tenant>"])]
async fn report(tenant: u32, id: u32) -> String {
    format!("report {id} of {tenant}")
}

#[tokio::test]
async fn invalidate_takes_tags() {
    let cache = memory_cache_with_entries().await;
    cache
        .scope(async {
            report(7, 1).await;
            report(7, 2).await;
            report(8, 3).await;
        })
        .await;
    let base = serve(admin::router(cache.clone())).await;
    let (status, body) = post(
        &format!("{base}/invalidate"),
        r#"{"patterns": ["employee:7"], "tags": ["tenant:7"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["removed"],
        json!([
            {"pattern": "employee:7", "removed": 1, "queued": false},
            {"tag": "tenant:7", "removed": 2, "queued": false},
        ])
    );
    assert_eq!(body["total"], 3);
    assert!(!cache.exists("report:7:1").await.unwrap());
    assert!(cache.exists("report:8:3").await.unwrap());
}

#[tokio::test]
async fn every_bad_request_is_a_400_that_names_the_problem_and_removes_nothing() {
    let cache = memory_cache_with_entries().await;
    let base = serve(admin::router(cache.clone())).await;
    let url = format!("{base}/invalidate");
    let too_long = format!(
        r#"{{"patterns": ["{}"]}}"#,
        "k".repeat(cache_core::MAX_KEY_LEN + 1)
    );
    let too_many = json!({ "patterns": vec!["user:1:a"; admin::MAX_PATTERNS + 1] }).to_string();
    let cases: [(&str, &str); 10] = [
        ("{\"patterns\": [\"user:1:*\"", "must be JSON"),
        ("not json", "must be JSON"),
        ("{}", "`patterns` and `tags` are empty"),
        (r#"{"tags": [""]}"#, "tag 1 is 0 bytes long"),
        (
            r#"{"patterns": ["user:1:*"], "force": true}"#,
            "unknown field `force`",
        ),
        (r#"{"patterns": "user:1:*"}"#, "must be JSON"),
        (r#"{"patterns": []}"#, "`patterns` and `tags` are empty"),
        (r#"{"patterns": ["user:1:*", ""]}"#, "pattern 2 is empty"),
        (r#"{"patterns": ["*"]}"#, "/clear?confirm=true"),
        (&too_long, "at most"),
    ];
    for (body, message) in cases.iter().chain([&(too_many.as_str(), "at most 1000")]) {
        let (status, answer) = post(&url, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(message), "{body}: {error}");
    }
    let (status, answer) = delete(&format!("{base}/clear")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("?confirm=true"));
    let (status, _) = delete(&format!("{base}/clear?confirm=yes")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        cache
            .namespaces()
            .await
            .unwrap()
            .iter()
            .map(|n| n.entries)
            .sum::<u64>(),
        4
    );
    assert_eq!(cache.stats().await.invalidations, 0, "nothing was applied");

    // Routing: unknown paths and methods, answered in JSON too.
    let (status, answer) = get(&format!("{base}/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no such endpoint")
    );
    let (status, answer) = get(&format!("{base}/invalidate")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("POST /invalidate")
    );

    let (status, body) = delete(&format!("{base}/clear?confirm=true")).await;
    assert_eq!(
        (status, body["cleared"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    assert!(cache.namespaces().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_read_only_router_serves_stats_and_health_only() {
    let cache = memory_cache_with_entries().await;
    let base = serve(admin::read_only(cache.clone())).await;
    assert_eq!(get(&format!("{base}/stats")).await.0, StatusCode::OK);
    assert_eq!(get(&format!("{base}/health")).await.0, StatusCode::OK);
    let r = reqwest::Client::new()
        .post(format!("{base}/invalidate"))
        .body(r#"{"patterns": ["user:1:*"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = reqwest::Client::new()
        .delete(format!("{base}/clear?confirm=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        reqwest::get(format!("{base}/namespaces"))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert!(cache.exists("user:1:a").await.unwrap());
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn with_redis_an_invalidation_reaches_every_instance_and_a_dead_redis_is_a_503() {
    let mut server = RedisServer::start();
    let (a, b) = Instance::on(&server)
        .prefix("adm")
        .configure(|c| c.stats_interval(Duration::from_millis(100)))
        .connected_pair()
        .await;
    a.set("user:1:a", &1u8, Preset::Medium).await.unwrap();
    a.set("user:2:a", &2u8, Preset::Medium).await.unwrap();
    // b holds an in-process copy.
    assert_eq!(b.get::<u8>("user:1:a").await.unwrap(), Some(1));
    let base = serve(admin::router(a.clone())).await;

    let mut heard = b.backplane().unwrap();
    let applied = heard.borrow().applied;
    let (status, body) = post(
        &format!("{base}/invalidate"),
        r#"{"patterns": ["user:1:*"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 1, "counted in Redis");
    assert_eq!(body["removed"][0]["queued"], false);
    assert_eq!(body["pending_invalidations"], 0);
    heard.wait_for(|s| s.applied > applied).await.unwrap();
    assert_eq!(
        b.get::<u8>("user:1:a").await.unwrap(),
        None,
        "gone from b's in-process tier too"
    );

    let (status, ns) = get(&format!("{base}/namespaces")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ns["namespaces"],
        json!([{"prefix": "user:", "entries": 1, "exact": true}])
    );

    eventually("both instances in stats?scope=all", async || {
        let (_, all) = get(&format!("{base}/stats?scope=all")).await;
        all["instances"].as_array().is_some_and(|i| i.len() == 2) && all["total"]["hits"] == 1
    })
    .await;

    server.kill();
    let (status, health) = get(&format!("{base}/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["status"], "degraded");
    assert!(health["error"].is_string());
    assert_eq!(
        get(&format!("{base}/namespaces")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, err) = get(&format!("{base}/stats?scope=all")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        err["error"].as_str().unwrap().contains("Redis unavailable"),
        "{err}"
    );
    let (status, stats) = get(&format!("{base}/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["redis"]["reachable"], false);

    // An invalidation during the outage is kept for replay, and the answer says so.
    let (status, body) = post(
        &format!("{base}/invalidate"),
        r#"{"patterns": ["user:2:*"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["removed"][0]["queued"], true);
    assert_eq!(body["pending_invalidations"], 1);
    let (status, body) = delete(&format!("{base}/clear?confirm=true")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        (&body["cleared"], &body["queued"]),
        (&json!(false), &json!(true))
    );
}

#[tokio::test]
async fn warm_runs_named_warmers_and_refuses_unknown_names() {
    let cache = Cache::builder().key_prefix("admw").build().await.unwrap();
    cache
        .warmer("settings", |w| async move {
            w.set("settings:theme", &"dark".to_string(), Preset::Long)
                .await
        })
        .unwrap();
    cache
        .warmer("broken", |_| async move {
            Err::<(), _>("origin <down>".to_string())
        })
        .unwrap();
    let base = serve(admin::router(cache.clone())).await;

    let (status, body) = get(&format!("{base}/warmers")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"warmers": ["settings", "broken"]}));

    let (status, body) = post(
        &format!("{base}/warm"),
        r#"{"names": ["settings", "nope"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "no warmer named \"nope\" (known: settings, broken)"
    );
    assert_eq!(
        cache.stats().await.warm_runs,
        0,
        "a refused request runs nothing"
    );
    for bad in [r#"{"names": []}"#, r#"{"name": "settings"}"#, "not json"] {
        let (status, body) = post(&format!("{base}/warm"), bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            body["error"].as_str().unwrap().contains("settings, broken"),
            "{body}"
        );
    }

    let (status, body) = post(
        &format!("{base}/warm"),
        r#"{"names": ["settings", "broken"]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["failed"], 1);
    let reports = body["reports"].as_array().unwrap();
    assert_eq!(
        (reports[0]["name"].as_str(), reports[0]["written"].as_u64()),
        (Some("settings"), Some(1))
    );
    assert!(reports[0]["error"].is_null());
    assert_eq!(reports[1]["error"], "origin <down>");
    assert!(reports[1]["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        cache
            .get::<String>("settings:theme")
            .await
            .unwrap()
            .as_deref(),
        Some("dark")
    );
}
