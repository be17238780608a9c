//! The attribute's compile-time TTL grammar and the runtime's `parse_duration`
//! agree: each function's stored TTL equals the runtime parse of its string.

use std::time::Duration;

use cache_core::{Cache, Preset, cached, parse_duration};

#[cached(ttl = "90s", key = "a")]
async fn a() -> u8 {
    0
}
#[cached(ttl = "15m", key = "b")]
async fn b() -> u8 {
    0
}
#[cached(ttl = "2h", key = "c")]
async fn c() -> u8 {
    0
}
#[cached(ttl = "1d", key = "d")]
async fn d() -> u8 {
    0
}
#[cached(ttl = "1h30m", key = "e")]
async fn e() -> u8 {
    0
}
#[cached(ttl = "2500ms", key = "f")]
async fn f() -> u8 {
    0
}
#[cached(ttl = "300", key = "g")]
async fn g() -> u8 {
    0
}
#[cached(ttl = 42, key = "h")]
async fn h() -> u8 {
    0
}
#[cached(key = "default")]
async fn default_ttl() -> u8 {
    0
}
#[cached(ttl = "very_long", key = "p1")]
async fn p1() -> u8 {
    0
}
#[cached(ttl = "user_context", key = "p2")]
async fn p2() -> u8 {
    0
}
#[cached(ttl = "dashboard", key = "p3")]
async fn p3() -> u8 {
    0
}

#[tokio::test(start_paused = true)]
async fn attribute_and_runtime_agree() {
    let cache = Cache::builder().build_blocking().unwrap();
    cache
        .scope(async {
            a().await;
            b().await;
            c().await;
            d().await;
            e().await;
            f().await;
            g().await;
            h().await;
            default_ttl().await;
            p1().await;
            p2().await;
            p3().await;
        })
        .await;
    let expect = [
        ("a", "90s"),
        ("b", "15m"),
        ("c", "2h"),
        ("d", "1d"),
        ("e", "1h30m"),
        ("f", "2500ms"),
        ("g", "300"),
        ("h", "42"),
    ];
    for (key, text) in expect {
        assert_eq!(
            cache.ttl(key).await.unwrap(),
            Some(parse_duration(text).unwrap()),
            "{key}"
        );
    }
    assert_eq!(
        cache.ttl("default").await.unwrap(),
        Some(Duration::from_secs(300))
    );
    assert_eq!(
        cache.ttl("p1").await.unwrap(),
        Some(Preset::VeryLong.default_duration())
    );
    assert_eq!(
        cache.ttl("p2").await.unwrap(),
        Some(Preset::UserContext.default_duration())
    );
    assert_eq!(
        cache.ttl("p3").await.unwrap(),
        Some(Preset::Dashboard.default_duration())
    );
}
