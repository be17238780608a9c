//! The value every library caches, and the origin they all call.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `examples::Employee` (about 1 KB), redeclared here because hitbox's
/// `CacheableResponse` derive must sit on a local type with named fields.
/// [`Employee::sample`] builds it from the examples' record, so every library
/// caches the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "peers", derive(hitbox_fn::CacheableResponse))]
pub(crate) struct Employee {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) title: String,
    pub(crate) department: String,
    pub(crate) bio: String,
    pub(crate) skills: Vec<String>,
    pub(crate) manager: Option<u64>,
    pub(crate) active: bool,
}

impl Employee {
    pub(crate) fn sample(id: u64) -> Employee {
        let e = examples::Employee::sample(id);
        Employee {
            id: e.id,
            name: e.name,
            email: e.email,
            title: e.title,
            department: e.department,
            bio: e.bio,
            skills: e.skills,
            manager: e.manager,
            active: e.active,
        }
    }
}

/// Calls of [`origin`] so far, by every library: the stampede case counts
/// them, and the hit cases check that none happened while they measured.
pub(crate) static ORIGIN_CALLS: AtomicU64 = AtomicU64::new(0);
static ORIGIN_DELAY_MS: AtomicU64 = AtomicU64::new(0);

/// How long [`origin`] takes from now on (0 while caches are filled).
pub(crate) fn set_origin_delay(delay: Duration) {
    ORIGIN_DELAY_MS.store(delay.as_millis() as u64, Relaxed);
}

pub(crate) fn origin_calls() -> u64 {
    ORIGIN_CALLS.load(Relaxed)
}

/// The "database query" behind every cached function.
pub(crate) async fn origin(id: u64) -> Employee {
    ORIGIN_CALLS.fetch_add(1, Relaxed);
    let delay = ORIGIN_DELAY_MS.load(Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    Employee::sample(id)
}
