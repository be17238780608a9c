//! The admin router's dashboard in a real browser: headless Chromium driven
//! over WebDriver (`chromedriver`, both from Debian's packages), against the
//! built service with Redis and its admin token (sent as HTTP Basic, as a
//! person's browser does after its prompt).
//!
//! It checks that the page loads without a console error, that its numbers
//! are those of `/stats`, that the invalidate form (after its confirmation)
//! removes the key, that "warm now" runs the service's warmer, and that a
//! key holding `<script>` is shown as text.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use cache_core::{Cache, Preset};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tests::redis_server::RedisServer;
use tests::support::{browser, eventually};

mod common;
use common::*;

/// A `chromedriver` on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let (driver, _) = browser().expect(
            "chromedriver and Chromium: apt-get install chromium chromium-driver (or set CHROMEDRIVER and CHROME_BIN)",
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        eventually("chromedriver answers", async || {
            reqwest::get(&status)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        Driver { child, url }
    }

    async fn session(&self) -> Client {
        let (_, chromium) = browser().expect("Chromium");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1400"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a WebDriver session")
    }

    /// The browser's console since the last call (chromedriver's log).
    async fn console(&self, client: &Client) -> Vec<Value> {
        let id = client.session_id().await.unwrap().unwrap();
        let log: Value = reqwest::Client::new()
            .post(format!("{}/session/{id}/se/log", self.url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        log["value"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap()
}

/// How many times the page has refreshed its figures.
async fn polls(client: &Client) -> u64 {
    js(client, "return Number(document.body.dataset.polls || 0)")
        .await
        .as_u64()
        .unwrap_or(0)
}

/// Waits for the page's next refresh (it polls every 2 s).
async fn next_poll(client: &Client) {
    let seen = polls(client).await;
    eventually("the dashboard refreshes", async || {
        polls(client).await > seen
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(skip_redis, ignore = "needs redis-server (see tests/build.rs)")]
#[cfg_attr(
    skip_browser,
    ignore = "needs chromedriver and Chromium (see build.rs)"
)]
async fn the_dashboard_in_a_browser() {
    let redis = RedisServer::start();
    let dir = temp_dir();
    let db = dir.path().join("employees.sqlite3");
    let service = Service::start(
        dir.path(),
        "service",
        &db,
        &[("CACHE_ADMIN_TOKEN", TOKEN), ("REDIS_URL", &redis.url())],
    );
    service.backplane_connected().await;
    // A key holding markup, written by another instance of the same cache.
    let other = Cache::builder()
        .redis_url(redis.url())
        .build()
        .await
        .unwrap();
    other
        .set("<script>alert(1)</script>:x", &1u8, Preset::Medium)
        .await
        .unwrap();
    for id in [1, 2, 1, 1, 3] {
        let (status, _) = service.get(&format!("/employees/{id}")).await;
        assert_eq!(status, reqwest::StatusCode::OK);
    }

    let driver = Driver::start().await;
    let client = driver.session().await;
    let page = service.url("/admin/cache/dashboard").replacen(
        "http://",
        &format!("http://admin:{TOKEN}@"),
        1,
    );
    client.goto(&page).await.unwrap();
    next_poll(&client).await;
    eventually("the warmers are listed", async || {
        text(&client, "#warmers tbody").await.contains("first_page")
    })
    .await;
    assert_eq!(text(&client, "#status").await, "healthy");
    assert!(js(&client, "return document.getElementById('error').hidden").await == json!(true));

    // The numbers are those of /stats (nothing is called meanwhile).
    next_poll(&client).await;
    let (_, stats) = service
        .get_with("/admin/cache/stats?scope=all", TOKEN)
        .await;
    let mut cells = Vec::new();
    for cell in client
        .find_all(Locator::Css("#instances tfoot td"))
        .await
        .unwrap()
    {
        cells.push(cell.text().await.unwrap());
    }
    let total = &stats["total"];
    // As the page writes them (en-US grouping).
    let count = |v: &Value| {
        let digits = v.as_u64().unwrap().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    assert_eq!(
        cells,
        [
            "total".to_owned(),
            format!("{:.1} %", total["hit_rate"].as_f64().unwrap() * 100.0),
            count(&total["l1_hits"]),
            count(&total["l2_hits"]),
            count(&total["misses"]),
            count(&total["errors"]),
            "closed".to_owned(),
        ]
    );
    let lookups = ["l1_hits", "l2_hits", "misses"]
        .iter()
        .map(|k| total[k].as_u64().unwrap())
        .sum::<u64>();
    assert!(lookups >= 5, "the five requests are counted: {stats}");
    assert_eq!(total["misses"], 3, "{stats}");

    // Markup in a key is text: shown as typed, no element made from it.
    eventually("the namespaces are listed", async || {
        text(&client, "#namespaces tbody")
            .await
            .contains("<script>alert(1)</script>:*")
    })
    .await;
    assert_eq!(
        js(
            &client,
            "return document.querySelectorAll('main script').length"
        )
        .await,
        0
    );
    assert!(client.get_alert_text().await.is_err(), "no alert ran");

    // The invalidate form asks first, then removes the key everywhere.
    let key = "cache:employee:1";
    assert!(redis_has(&redis, key).await);
    client
        .find(Locator::Css("#patterns"))
        .await
        .unwrap()
        .send_keys("employee:1")
        .await
        .unwrap();
    client
        .find(Locator::Css("#invalidate button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        client.get_alert_text().await.unwrap(),
        "Invalidate on every instance: employee:1?"
    );
    client.accept_alert().await.unwrap();
    eventually("the form reports the removal", async || {
        text(&client, "#invalidate-result")
            .await
            .starts_with("Removed 1 entries: employee:1 1")
    })
    .await;
    assert!(!redis_has(&redis, key).await);

    // "Warm now" runs the service's warmer and shows its report.
    client
        .find(Locator::Css("button[data-warmer='first_page']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("the warmer's report", async || {
        text(&client, "#warmers tbody")
            .await
            .contains("21 entries in")
    })
    .await;
    assert!(redis_has(&redis, key).await, "warmed again");

    let problems: Vec<Value> = driver
        .console(&client)
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(problems.is_empty(), "console: {problems:?}");
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(std::env::temp_dir().join("cache-dashboard.png"), png);
    }
    client.close().await.unwrap();
}

async fn redis_has(redis: &RedisServer, key: &str) -> bool {
    let mut con = tests::support::redis_connection(redis).await;
    tests::support::exists(&mut con, key).await
}
