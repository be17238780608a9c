//! The runtime is a dependency here only as `cachelib`: `::cache_core` does
//! not resolve, so these expansions compile only if `crate = "..."` is honoured.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cachelib::{Cache, cached, invalidates};

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(crate = "cachelib", ttl = "short", key = "item:<id>")]
async fn item(id: u32) -> Result<String, std::fmt::Error> {
    CALLS.fetch_add(1, SeqCst);
    Ok(format!("item {id}"))
}

#[invalidates("item:<id>", crate = "cachelib")]
async fn touch(id: u32) {
    let _ = id;
}

#[tokio::test]
async fn crate_override_is_used() {
    let cache = Cache::builder().build_blocking().unwrap();
    cache
        .scope(async {
            assert_eq!(item(1).await.unwrap(), "item 1");
            assert_eq!(item(1).await.unwrap(), "item 1");
            touch(1).await;
            assert_eq!(item(1).await.unwrap(), "item 1");
        })
        .await;
    assert_eq!(CALLS.load(SeqCst), 2);
}
