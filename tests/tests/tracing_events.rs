//! The `tracing` events of calls (target `cache_core::call`): one per call
//! at `debug` with the function, its key template, the outcome and the
//! duration; the raw key only at `trace`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cache_core::{Cache, cached};
use tracing::Level;

/// What a subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains("cache_core::call"))
            .map(str::to_owned)
            .collect()
    }
}

#[cached(ttl = "60s", key = "employee:<id>")]
async fn employee(id: u64) -> String {
    format!("employee {id}")
}

async fn three_calls(level: Level) -> Vec<String> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let cache = Cache::builder()
        .build_blocking()
        .unwrap_or_else(|e| panic!("{e}"));
    cache
        .scope(async {
            employee(770_077).await;
            employee(770_077).await;
            let _: Option<String> = cache_core::Cache::global().get("x").await.ok().flatten();
        })
        .await;
    let _ = cache.get::<String>("manual").await;
    captured.lines()
}

#[tokio::test]
async fn one_debug_event_per_call_with_template_and_outcome_but_no_key() {
    let lines = three_calls(Level::DEBUG).await;
    let calls: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("template=\"employee:<id>\""))
        .collect();
    assert_eq!(calls.len(), 2, "{lines:#?}");
    assert!(calls[0].contains("outcome=\"miss\""), "{}", calls[0]);
    assert!(calls[1].contains("outcome=\"hit_l1\""), "{}", calls[1]);
    assert!(
        calls
            .iter()
            .all(|l| l.contains("DEBUG") && l.contains("took="))
    );
    assert!(
        calls
            .iter()
            .all(|l| l.contains("function=\"tracing_events::employee\"")),
        "{calls:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("770077")),
        "the raw key is only logged at trace: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("outcome=\"miss\"") && l.contains("template=\"\"")),
        "a manual lookup has its event too: {lines:#?}"
    );
}

#[tokio::test]
async fn at_trace_the_event_carries_the_key() {
    let lines = three_calls(Level::TRACE).await;
    let calls: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("template=\"employee:<id>\""))
        .collect();
    assert_eq!(calls.len(), 2, "{lines:#?}");
    assert!(
        calls
            .iter()
            .all(|l| l.contains("TRACE") && l.contains("770077")),
        "{calls:#?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_pattern_that_repeats_the_prefix_and_matches_nothing_is_a_warning_naming_the_one_meant() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let cache = Cache::builder()
        .key_prefix("hr")
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cache
        .set("employee:7", &1u8, cache_core::Preset::Short)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let done = cache
        .invalidate("hr:employee:*")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done.removed, 0);
    let all = String::from_utf8_lossy(
        &captured
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned();
    assert!(
        all.contains("WARN") && all.contains(r#"did you mean "employee:*""#),
        "{all}"
    );
    // The pattern meant removes the entry, with no warning.
    let before = all.len();
    let done = cache
        .invalidate("employee:*")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done.removed, 1);
    assert_eq!(
        captured
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len(),
        before
    );
}
