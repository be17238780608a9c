//! An invalid environment cannot be reported to a caller of an annotated
//! function, so the lazily built default cache is a pass-through (correct,
//! uncached) and the error is logged. Own test binary: own process.
#![allow(unsafe_code)] // std::env::set_var is unsafe in edition 2024

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_core::{Cache, cached};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "bad:<id>")]
async fn lookup(id: u32) -> u32 {
    CALLS.fetch_add(1, SeqCst);
    id
}

#[tokio::test]
async fn invalid_environment_disables_caching_and_builder_reports_it() {
    // SAFETY: the only test in this process, run before any thread reads the environment.
    unsafe {
        std::env::set_var("CACHE_DEFAULT_TTL", "five minutes");
    }
    let err = Cache::builder().from_env().build().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid CACHE_DEFAULT_TTL=\"five minutes\": `five minutes` is not a duration: expected e.g. 90s, 15m, 2h, 1d, 1h30m, 250ms or whole seconds"
    );
    assert_eq!(lookup(1).await, 1);
    assert_eq!(lookup(1).await, 1);
    assert_eq!(CALLS.load(SeqCst), 2, "pass-through");
    assert!(!Cache::global().is_enabled());
}
