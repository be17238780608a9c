//! The default cache built lazily from the environment. This file is its own
//! test binary (own process), so setting variables here affects no other test.
#![allow(unsafe_code)] // std::env::set_var is unsafe in edition 2024

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, cached};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "short", key = "env:<id>")]
async fn lookup(id: u32) -> u32 {
    CALLS.fetch_add(1, SeqCst);
    id
}

#[tokio::test]
async fn default_cache_follows_the_environment() {
    // SAFETY: the only test in this process, run before any thread reads the environment.
    unsafe {
        std::env::set_var("CACHE_KEY_PREFIX", "svc");
        std::env::set_var("CACHE_TTL_SHORT", "7s");
        std::env::set_var("CACHE_MAX_SIZE_MEMORY", "100");
    }
    lookup(1).await;
    lookup(1).await;
    assert_eq!(CALLS.load(SeqCst), 1);
    let cache = Cache::global();
    assert_eq!(cache.key_prefix(), "svc");
    let ttl = cache.ttl("env:1").await.unwrap().unwrap();
    assert!(
        ttl <= Duration::from_secs(7) && ttl > Duration::from_secs(5),
        "{ttl:?}"
    );
    // Installing after first use is refused with a clear error.
    let err = Cache::builder()
        .build_blocking()
        .unwrap()
        .install()
        .unwrap_err();
    assert!(err.to_string().contains("already installed"), "{err}");
}
