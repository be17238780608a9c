//! `cache-cli`, the built binary, against a private `redis-server` and a
//! library instance that writes entries and stats snapshots.
//!
//! The binary is `target/<profile>/cache-cli`, built by `cargo test
//! --workspace` (its own crate has integration tests); `CACHE_CLI_BIN`
//! points elsewhere. Run alone, build it first: `cargo build -p cache-cli`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use cache_core::{Cache, Format, Preset, cached};
use serde_json::Value;
use tests::redis_server::RedisServer;
use tests::support::{Instance, eventually, redis_connection};

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CACHE_CLI_BIN") {
        return path.into();
    }
    // target/<profile>/deps/cli-<hash> -> target/<profile>/cache-cli
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join(format!("cache-cli{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: run `cargo build -p cache-cli` (or the whole `cargo test --workspace`)",
        path.display()
    );
    path
}

fn cli(server: &RedisServer, prefix: &str, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("REDIS_URL", server.url())
        .env("CACHE_KEY_PREFIX", prefix)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    err
}

#[cached(ttl = "medium", key = "employee:<id>")]
async fn employee(id: u64) -> Result<String, std::io::Error> {
    Ok(format!("employee {id}"))
}

/// An instance that reports every second (its snapshot lives 3 s: the
/// tests read it while a busy machine delays the reports). The tests that
/// use it run on two worker threads, so that it keeps reporting while the
/// test waits for the binary.
async fn instance(server: &RedisServer, prefix: &str) -> Cache {
    Instance::on(server)
        .prefix(prefix)
        .configure(|b| b.stats_interval(Duration::from_secs(1)))
        .connected()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn stats_show_every_live_instance_but_not_the_cli() {
    let server = RedisServer::start();
    let cache = instance(&server, "clis").await;
    cache
        .scope(async {
            for id in [1, 2, 1, 1] {
                employee(id).await.unwrap();
            }
        })
        .await;
    let own = cache.stats().await;
    assert_eq!((own.hits, own.misses), (2, 2));
    eventually("the instance's snapshot has its calls", async || {
        let all = json(&cli(&server, "clis", &["--json", "stats"]));
        all["total"]["hits"] == 2
    })
    .await;
    let all = json(&cli(&server, "clis", &["--json", "stats"]));
    let instances = all["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "the CLI is not an instance: {all}");
    assert_eq!(instances[0]["pid"], std::process::id());
    assert_eq!(all["total"]["misses"], 2);
    assert!(all["total"]["redis"]["used_memory"].as_u64().unwrap() > 0);
    let human = stdout(&cli(&server, "clis", &["stats"]));
    assert!(human.contains("1 live instance(s)"), "{human}");
    assert!(human.contains("50.0 %"), "{human}");
    assert!(human.contains("employee:<id>"), "{human}");
}

/// (prefix, entries) of `namespaces --json`.
fn prefixes(ns: &Value) -> Vec<(&str, u64)> {
    ns.as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["prefix"].as_str().unwrap(),
                n["entries"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn namespaces_count_from_the_index_sets() {
    let server = RedisServer::start();
    let cache = Instance::on(&server).prefix("clin").connected().await;
    for key in ["user:1:a", "user:1:b", "user:2:a", "report:q3", "answer"] {
        cache.set(key, &1u8, Preset::Medium).await.unwrap();
    }
    let ns = json(&cli(&server, "clin", &["--json", "namespaces"]));
    let rows = prefixes(&ns);
    assert_eq!(rows, [("user:", 3), ("", 1), ("report:", 1)]);
    let deep = json(&cli(
        &server,
        "clin",
        &["--json", "namespaces", "--depth", "2"],
    ));
    let rows = prefixes(&deep);
    assert_eq!(
        rows,
        [("user:1:", 2), ("", 1), ("report:", 1), ("user:2:", 1)]
    );
    let human = stdout(&cli(&server, "clin", &["namespaces"]));
    assert!(human.contains("user:*"), "{human}");
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn inspect_describes_entries_and_refuses_what_is_not_one() {
    let server = RedisServer::start();
    let json_cache = Instance::on(&server)
        .prefix("clii")
        .configure(|b| b.format(Format::Json))
        .connected()
        .await;
    json_cache
        .set(
            "user:7",
            &serde_json::json!({"name": "<Ada>", "id": 7}),
            Preset::Medium,
        )
        .await
        .unwrap();
    let postcard = Instance::on(&server).prefix("clii").connected().await;
    postcard
        .set("blob", &vec![1u8, 2, 3], Preset::Long)
        .await
        .unwrap();

    let info = json(&cli(&server, "clii", &["--json", "inspect", "user:7"]));
    assert_eq!(info["key"], "user:7");
    assert!(info["ttl_ms"].as_u64().unwrap() > 0);
    let v = &info["values"][0];
    assert_eq!(
        (v["format"].as_str(), v["compression"].as_str()),
        (Some("json"), Some("none"))
    );
    assert_eq!(v["payload"], serde_json::json!({"name": "<Ada>", "id": 7}));
    assert_eq!(v["fingerprint"].as_str().unwrap().len(), 16);

    let human = stdout(&cli(&server, "clii", &["inspect", "blob"]));
    assert!(human.contains("format     postcard"), "{human}");
    assert!(human.contains("head       03010203"), "{human}");

    // Bytes under the prefix that the library did not write.
    let mut con = redis_connection(&server).await;
    let _: () = redis::cmd("SET")
        .arg("clii:junk")
        .arg("not an entry")
        .query_async(&mut con)
        .await
        .unwrap();
    let human = stdout(&cli(&server, "clii", &["inspect", "junk"]));
    assert!(human.contains("not a valid cache entry"), "{human}");

    let out = cli(&server, "clii", &["inspect", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("no key \"nope\""));
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn invalidate_and_clear_reach_every_instance() {
    let server = RedisServer::start();
    let cache = Instance::on(&server).prefix("clic").connected().await;
    for key in ["user:1:a", "user:1:b", "user:2:a"] {
        cache.set(key, &1u8, Preset::Medium).await.unwrap();
    }
    // In-process copies the CLI cannot see directly.
    assert_eq!(cache.get::<u8>("user:1:a").await.unwrap(), Some(1));

    let done = json(&cli(&server, "clic", &["--json", "invalidate", "user:1:*"]));
    assert_eq!(done[0]["removed"], 2);
    assert_eq!(done[0]["queued"], false);
    eventually("the instance dropped its copy", async || {
        cache.get::<u8>("user:1:a").await.unwrap().is_none()
    })
    .await;
    assert_eq!(cache.get::<u8>("user:2:a").await.unwrap(), Some(1));

    for refused in [&["invalidate", "*"][..], &["invalidate"], &["clear"]] {
        let out = cli(&server, "clic", refused);
        assert_eq!(out.status.code(), Some(2), "{refused:?}");
        one_line_error(&out);
    }
    assert_eq!(cache.get::<u8>("user:2:a").await.unwrap(), Some(1));

    let out = cli(&server, "clic", &["clear", "--yes"]);
    assert!(
        stdout(&out).starts_with("cleared: 1 entries removed"),
        "{}",
        stdout(&out)
    );
    eventually("the instance dropped everything", async || {
        cache.get::<u8>("user:2:a").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn health_and_watch() {
    let mut server = RedisServer::start();
    let cache = instance(&server, "clih").await;
    cache.set("k", &1u8, Preset::Medium).await.unwrap();
    // Its first snapshot may predate its backplane subscription.
    eventually(
        "the instance is live, its backplane connected",
        async || {
            let all = json(&cli(&server, "clih", &["--json", "stats"]));
            all["instances"].as_array().is_some_and(|i| i.len() == 1)
                && all["instances"][0]["stats"]["backplane"]["connected"] == true
        },
    )
    .await;
    let out = cli(&server, "clih", &["health"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("healthy: Redis answered in"));

    // Calls while `watch` runs; it shows them once the instance has
    // reported twice (every second) since it started.
    let caller = {
        let cache = cache.clone();
        tokio::spawn(async move {
            loop {
                cache.get::<u8>("k").await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let out = cli(
        &server,
        "clih",
        &["--json", "watch", "--interval", "0.8", "--iterations", "4"],
    );
    caller.abort();
    assert!(out.status.success());
    let frames: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 4);
    for f in &frames {
        assert_eq!(f["instances"].as_array().unwrap().len(), 1);
    }
    assert!(
        frames
            .iter()
            .any(|f| f["total"]["over_s"].as_f64().unwrap() > 0.0
                && f["total"]["calls_per_s"].as_f64().unwrap() > 0.0
                && f["total"]["hit_rate"] == 1.0),
        "a frame with the calls' rate: {frames:?}"
    );
    let out = cli(
        &server,
        "clih",
        &["watch", "--interval", "0.2", "--iterations", "1"],
    );
    assert!(stdout(&out).contains("calls/s"), "{}", stdout(&out));

    server.kill();
    let out = cli(&server, "clih", &["health"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).starts_with("unreachable"));
}
