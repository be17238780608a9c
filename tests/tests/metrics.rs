//! Metrics (feature `metrics`) as an application sees them: through the
//! Prometheus exporter users install, rendered as text. Each test uses a
//! cache of its own name, so the tests of this binary share the one global
//! recorder without reading each other's series.

use std::sync::OnceLock;
use std::time::Duration;

use cache_core::{Cache, Preset, cached, invalidates};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tests::redis_server::RedisServer;

fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)
            .unwrap_or_else(|e| panic!("the test binary installs one recorder: {e}"));
        handle
    })
}

/// The value of the series `name` whose labels include all of `labels`
/// (`key="value"` pairs), if it was rendered.
fn value(name: &str, labels: &[&str]) -> Option<f64> {
    prometheus().render().lines().find_map(|line| {
        let (series, v) = line.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        let matches = (rest.is_empty() && labels.is_empty())
            || (rest.starts_with('{') && labels.iter().all(|l| rest.contains(l)));
        matches.then(|| v.parse().ok()).flatten()
    })
}

#[cached(ttl = "60s", key = "item:<id>")]
async fn item(id: u32) -> u32 {
    id * 2
}

#[invalidates("item:<id>", "items:*")]
async fn drop_item(id: u32) {
    let _ = id;
}

fn named(name: &str) -> Cache {
    prometheus();
    Cache::builder()
        .name(name)
        .build_blocking()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn calls_are_counted_by_function_template_and_outcome_never_by_key() {
    let cache = named("m-calls");
    cache
        .scope(async {
            assert_eq!(item(424_242).await, 848_484);
            assert_eq!(item(424_242).await, 848_484);
            assert_eq!(item(424_242).await, 848_484);
        })
        .await;
    let call = |outcome: &str| {
        value(
            "cache_calls_total",
            &[
                "cache=\"m-calls\"",
                "function=\"item:<id>\"",
                &format!("outcome=\"{outcome}\""),
            ],
        )
    };
    assert_eq!(call("miss"), Some(1.0));
    assert_eq!(call("hit_l1"), Some(2.0));
    assert_eq!(call("coalesced"), Some(0.0), "registered up front, at zero");
    assert_eq!(
        value(
            "cache_origin_duration_seconds_count",
            &["cache=\"m-calls\"", "function=\"item:<id>\""]
        ),
        Some(1.0)
    );
    assert_eq!(value("cache_sets_total", &["cache=\"m-calls\""]), Some(1.0));
    let text = prometheus().render();
    assert!(!text.contains("424242"), "a raw key reached a label");
}

#[tokio::test]
async fn the_manual_api_is_counted_under_its_own_function_label() {
    let cache = named("m-manual");
    cache
        .set("k", &1u8, Preset::Short)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _: Option<u8> = cache.get("k").await.unwrap_or_else(|e| panic!("{e}"));
    let _: Option<u8> = cache.get("absent").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cache
            .delete("k")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .removed,
        1
    );
    cache
        .set("p:1", &1u8, Preset::Short)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cache
        .set("p:2", &1u8, Preset::Short)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cache
            .invalidate("p:*")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .removed,
        2
    );
    let manual = |outcome: &str| {
        value(
            "cache_calls_total",
            &[
                "cache=\"m-manual\"",
                "function=\"(manual)\"",
                &format!("outcome=\"{outcome}\""),
            ],
        )
    };
    assert_eq!((manual("hit_l1"), manual("miss")), (Some(1.0), Some(1.0)));
    let c = |name: &str| value(name, &["cache=\"m-manual\""]);
    assert_eq!(c("cache_sets_total"), Some(3.0));
    assert_eq!(c("cache_deletes_total"), Some(1.0));
    assert_eq!(c("cache_invalidations_total"), Some(1.0));
    assert_eq!(c("cache_invalidated_entries_total"), Some(2.0));
    cache.stats().await;
    assert_eq!(
        c("cache_entries"),
        Some(0.0),
        "gauges are set when stats are taken"
    );
}

#[tokio::test]
async fn a_cache_built_with_metrics_off_records_nothing() {
    prometheus();
    let cache = Cache::builder()
        .name("m-off")
        .metrics(false)
        .build_blocking()
        .unwrap_or_else(|e| panic!("{e}"));
    cache.scope(item(1)).await;
    cache
        .set("k", &1u8, Preset::Short)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!prometheus().render().contains("cache=\"m-off\""));
    assert_eq!(cache.stats().await.sets, 2, "stats() counts all the same");
}

#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn redis_commands_are_timed_and_failures_counted() {
    let mut server = RedisServer::start();
    prometheus();
    let cache = Cache::builder()
        .name("m-redis")
        .redis_url(server.url())
        .key_prefix("mr")
        .redis_op_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cache
        .set("k", &1u8, Preset::Short)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cache.exists("k").await.unwrap_or_else(|e| panic!("{e}")));
    let commands = value(
        "cache_redis_command_duration_seconds_count",
        &["cache=\"m-redis\""],
    )
    .unwrap_or(0.0);
    assert!(commands >= 2.0, "{commands} Redis commands timed");
    server.kill();
    let _: Option<u8> = cache.get("other").await.unwrap_or_else(|e| panic!("{e}"));
    let errors = value("cache_redis_errors_total", &["cache=\"m-redis\""]).unwrap_or(0.0);
    assert!(errors >= 1.0, "{errors}");
    let stats = cache.stats().await;
    assert_eq!(
        value("cache_breaker_state", &["cache=\"m-redis\""]),
        Some(match stats.breaker {
            Some(cache_core::BreakerState::Closed) => 0.0,
            Some(cache_core::BreakerState::HalfOpen) => 1.0,
            _ => 2.0,
        })
    );
}

#[tokio::test]
async fn an_invalidating_function_adds_no_call_series() {
    let cache = named("m-inval");
    cache
        .scope(async {
            assert_eq!(item(77).await, 154);
            drop_item(77).await;
        })
        .await;
    assert_eq!(
        value("cache_invalidations_total", &["cache=\"m-inval\""]),
        Some(2.0),
        "one per pattern"
    );
    let text = prometheus().render();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cache=\"m-inval\"") && l.starts_with("cache_calls_total"))
        .collect();
    assert!(!series.is_empty(), "the cached function's series are there");
    assert!(
        series.iter().all(|l| !l.contains("items:*")),
        "no call series for the #[invalidates] function (label \"item:<id>, items:*\"): {series:?}"
    );
    assert!(
        !text.contains("function=\"item:<id>, items:*\""),
        "no origin histogram either"
    );
}
