//! The `#[invalidates]` attribute on the in-process tier: exact keys,
//! patterns, only after success, and a read racing an update never storing
//! stale data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

use cache_core::{cached, invalidates};
use serde::{Deserialize, Serialize};
use tests::support::memory_cache;
use tokio::sync::Notify;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    user: u64,
    version: u64,
}

#[derive(Debug)]
struct DbError;

/// A fake database whose reads can be held mid-flight.
#[derive(Default)]
struct Service {
    version: AtomicU64,
    reads: AtomicUsize,
    hold: Option<(Arc<Notify>, Arc<Notify>)>,
}

impl Service {
    fn reads(&self) -> usize {
        self.reads.load(SeqCst)
    }

    #[cached(key = "user:<user>:profile")]
    async fn profile(&self, user: u64) -> Result<Profile, DbError> {
        self.reads.fetch_add(1, SeqCst);
        let version = self.version.load(SeqCst);
        if let Some((read_done, release)) = &self.hold {
            read_done.notify_one();
            release.notified().await;
        }
        Ok(Profile { user, version })
    }

    #[cached(key = "user:<user>:settings")]
    async fn settings(&self, user: u64) -> Result<Profile, DbError> {
        self.reads.fetch_add(1, SeqCst);
        Ok(Profile {
            user,
            version: self.version.load(SeqCst),
        })
    }

    #[invalidates("user:<user>:profile")]
    async fn update_profile(&self, user: u64) -> Result<(), DbError> {
        let _ = user;
        self.version.fetch_add(1, SeqCst);
        Ok(())
    }

    #[invalidates("user:<user>:*")]
    async fn update_all(&self, user: u64) -> Result<(), DbError> {
        let _ = user;
        self.version.fetch_add(1, SeqCst);
        Ok(())
    }

    #[invalidates("user:<user>:*")]
    async fn failed_update(&self, user: u64) -> Result<(), DbError> {
        let _ = user;
        Err(DbError)
    }

    #[invalidates("user:<user>:profile", "user:<other>:profile")]
    async fn swap(&self, user: u64, other: u64) -> u64 {
        self.version.fetch_add(1, SeqCst);
        user + other
    }
}

#[tokio::test]
async fn exact_key() {
    let c = memory_cache();
    let s = Service::default();
    c.scope(async {
        assert_eq!(s.profile(1).await.unwrap().version, 0);
        s.settings(1).await.unwrap();
        s.profile(2).await.unwrap();
        s.update_profile(1).await.unwrap();
        assert_eq!(
            s.profile(1).await.unwrap().version,
            1,
            "user 1's profile recomputed"
        );
        assert_eq!(s.reads(), 4);
        s.settings(1).await.unwrap();
        s.profile(2).await.unwrap();
        assert_eq!(s.reads(), 4, "other keys kept");
    })
    .await;
    let stats = c.stats().await;
    let inv = stats
        .functions
        .iter()
        .find(|f| f.function.ends_with("update_profile"))
        .unwrap();
    assert_eq!(
        inv.function,
        "invalidates_attribute::Service::update_profile"
    );
    assert_eq!(
        (inv.label.as_str(), inv.invalidations),
        ("user:<user>:profile", 1)
    );
    assert_eq!(
        (inv.patterns, inv.invalidated_entries),
        (1, 1),
        "user 1's profile"
    );
}

#[tokio::test]
async fn pattern_removes_only_that_users_keys() {
    let c = memory_cache();
    let s = Service::default();
    c.scope(async {
        s.profile(4).await.unwrap();
        s.settings(4).await.unwrap();
        s.profile(42).await.unwrap();
        s.update_all(4).await.unwrap();
        assert_eq!(s.reads(), 3);
        s.profile(4).await.unwrap();
        s.settings(4).await.unwrap();
        assert_eq!(s.reads(), 5, "both of user 4's keys recomputed");
        s.profile(42).await.unwrap();
        assert_eq!(s.reads(), 5, "user 42 kept (4* would have matched it)");
    })
    .await;
    assert_eq!(c.stats().await.invalidated_entries, 2);
}

#[tokio::test]
async fn nothing_is_invalidated_on_error() {
    let c = memory_cache();
    let s = Service::default();
    c.scope(async {
        s.profile(1).await.unwrap();
        assert!(s.failed_update(1).await.is_err());
        s.profile(1).await.unwrap();
    })
    .await;
    assert_eq!(s.reads(), 1);
    assert_eq!(c.stats().await.invalidations, 0);
}

#[tokio::test]
async fn several_patterns_and_plain_returns() {
    let c = memory_cache();
    let s = Service::default();
    c.scope(async {
        s.profile(1).await.unwrap();
        s.profile(2).await.unwrap();
        s.profile(3).await.unwrap();
        assert_eq!(s.swap(1, 2).await, 3);
        s.profile(1).await.unwrap();
        s.profile(2).await.unwrap();
        s.profile(3).await.unwrap();
    })
    .await;
    assert_eq!(s.reads(), 5);
    let stats = c.stats().await;
    let swap = stats
        .functions
        .iter()
        .find(|f| f.function.ends_with("swap"))
        .unwrap();
    assert_eq!(
        (swap.invalidations, swap.patterns, swap.invalidated_entries),
        (1, 2, 2),
        "one call, two patterns, one entry each"
    );
}

/// The stale-set race: a read that started before an update must not store
/// its (old) value after the update's invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_racing_an_update_does_not_store_stale_data() {
    let c = memory_cache();
    let read_done = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let s = Arc::new(Service {
        hold: Some((Arc::clone(&read_done), Arc::clone(&release))),
        ..Service::default()
    });

    let reader = {
        let s = Arc::clone(&s);
        tokio::spawn(c.scope(async move { s.profile(1).await.unwrap() }))
    };
    read_done.notified().await; // the origin has read version 0 and is held
    c.scope(s.update_profile(1)).await.unwrap(); // version 1, invalidated
    release.notify_one();
    let stale = reader.await.unwrap();
    assert_eq!(
        stale.version, 0,
        "the racing caller itself gets what it read"
    );

    // The next read must not be served the value read before the update.
    let unheld = Service {
        version: AtomicU64::new(1),
        ..Service::default()
    };
    let fresh = c.scope(unheld.profile(1)).await.unwrap();
    assert_eq!(fresh.version, 1);
    assert_eq!(unheld.reads(), 1, "recomputed, not served from the cache");
    assert_eq!(c.stats().await.skipped_stores, 1);
}
