//! `#[cached]` and `#[invalidates]` on unusual but valid code, each case once
//! a wrong value or a compile error: default keys across impls, traits and
//! generic arguments; `Result`/`Option` behind type aliases; a wildcard next
//! to a separator; keys from `macro_rules!`, raw field names, `ref` parameters.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_core::{cached, invalidates};
use serde::{Deserialize, Serialize};
use tests::support::memory_cache;

// --- default keys include the impl type, the trait and generic arguments ----

struct Users;
struct Orders;

impl Users {
    #[cached]
    async fn count() -> u64 {
        10
    }
}

impl Orders {
    #[cached]
    async fn count() -> u64 {
        99
    }
}

trait Table {
    async fn rows(&self, page: u32) -> Vec<String>;
}

impl Table for Users {
    #[cached]
    async fn rows(&self, page: u32) -> Vec<String> {
        vec![format!("user-row-{page}")]
    }
}

impl Table for Orders {
    #[cached]
    async fn rows(&self, page: u32) -> Vec<String> {
        vec![format!("order-row-{page}")]
    }
}

trait Entity {
    const N: u64;
}
impl Entity for Users {
    const N: u64 = 1;
}
impl Entity for Orders {
    const N: u64 = 2;
}

#[cached]
async fn total<T: Entity>() -> u64 {
    T::N
}

#[tokio::test]
async fn default_keys_tell_impls_traits_and_generics_apart() {
    let c = memory_cache();
    c.scope(async {
        assert_eq!(Users::count().await, 10);
        assert_eq!(Orders::count().await, 99);
        assert_eq!(Users.rows(1).await, vec!["user-row-1"]);
        assert_eq!(Orders.rows(1).await, vec!["order-row-1"]);
        assert_eq!(total::<Users>().await, 1);
        assert_eq!(total::<Orders>().await, 2);
        // and they are cached
        assert_eq!(Orders::count().await, 99);
    })
    .await;
    let stats = c.stats().await;
    assert_eq!((stats.misses, stats.hits), (6, 1));
}

// --- Result aliases are results ---------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ApiError(String);
type ApiResult<T> = Result<T, ApiError>;

static ACCOUNT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "account:<id>")]
async fn account(id: u64) -> ApiResult<String> {
    ACCOUNT_CALLS.fetch_add(1, SeqCst);
    Err(ApiError(format!("no account {id}")))
}

#[invalidates("account:<id>")]
async fn close_account(id: u64) -> ApiResult<()> {
    Err(ApiError(format!("cannot close {id}")))
}

#[tokio::test]
async fn errors_behind_a_result_alias_are_neither_cached_nor_invalidating() {
    let c = memory_cache();
    c.scope(async {
        assert!(account(1).await.is_err());
        assert!(account(1).await.is_err());
        assert!(close_account(1).await.is_err());
    })
    .await;
    assert_eq!(ACCOUNT_CALLS.load(SeqCst), 2);
    let stats = c.stats().await;
    assert_eq!((stats.sets, stats.invalidations), (0, 0));
}

type MaybeName = Option<String>;

#[cached(key = "name:<id>", cache_none)]
async fn name(id: u64) -> MaybeName {
    (id == 1).then(|| "one".to_owned())
}

#[tokio::test]
async fn cache_none_sees_through_option_aliases() {
    let c = memory_cache();
    c.scope(async {
        assert_eq!(name(2).await, None);
    })
    .await;
    assert_eq!(c.get::<Option<String>>("name:2").await.unwrap(), Some(None));
}

// --- patterns cannot reach across a separator into another value ------------

static REPORT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "report:<year>-<slug>")]
async fn report(year: u32, slug: &str) -> String {
    REPORT_CALLS.fetch_add(1, SeqCst);
    format!("{year}/{slug}")
}

#[invalidates("report:*-<slug>")]
async fn touch_slug(slug: &str) {
    let _ = slug;
}

#[tokio::test]
async fn wildcard_before_a_separator_matches_only_that_value() {
    let c = memory_cache();
    c.scope(async {
        report(2023, "q-1").await;
        report(2023, "1").await;
        touch_slug("1").await;
        report(2023, "q-1").await;
        assert_eq!(REPORT_CALLS.load(SeqCst), 2, "q-1 kept");
        report(2023, "1").await;
        assert_eq!(REPORT_CALLS.load(SeqCst), 3, "1 removed");
    })
    .await;
}

// --- keys given through macro_rules!, raw field names, `ref` params -----------

macro_rules! getter {
    ($name:ident, $key:literal) => {
        #[cached(key = $key)]
        async fn $name(id: u64) -> u64 {
            id * 3
        }
    };
}

getter!(tripled, "tripled:<id>");

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Event {
    r#type: String,
}

#[cached(key = "event:<e.type>")]
async fn event_kind(e: &Event) -> String {
    e.r#type.to_uppercase()
}

#[cached(key = "ref:<x>")]
#[allow(clippy::toplevel_ref_arg)] // the point of the test
async fn by_ref(ref x: u64) -> u64 {
    *x + 1
}

#[tokio::test]
async fn unusual_but_valid_signatures() {
    let c = memory_cache();
    c.scope(async {
        assert_eq!(tripled(2).await, 6);
        assert_eq!(
            event_kind(&Event {
                r#type: "click".into()
            })
            .await,
            "CLICK"
        );
        assert_eq!(by_ref(4).await, 5);
    })
    .await;
    assert!(c.exists("tripled:2").await.unwrap());
    assert!(c.exists("event:click").await.unwrap());
    assert!(c.exists("ref:4").await.unwrap());
}
