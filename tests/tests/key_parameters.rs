//! Keys from the parameters services have: `Option`s (optional query
//! filters), enums and newtypes (through `serde`), names bound inside
//! pattern parameters (axum's `Path(id): Path<u64>`), tuple fields; and the
//! parameters a key may leave out (`ignore`, a leading `_`). On the
//! in-process tier alone, and across two instances on a private
//! `redis-server`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_core::{Cache, KeyBuilder, cached, invalidates};
use serde::{Deserialize, Serialize};
use tests::redis_server::RedisServer;
use tests::support::{Instance, eventually, memory_cache};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Active,
    OnLeave,
}

/// A newtype id, as services wrap theirs.
#[derive(Debug, Clone, Copy, Serialize)]
struct TeamId(u32);

/// Stand-ins for axum's extractors: tuple structs a handler destructures.
struct Path<T>(T);
struct State<T>(T);

/// The database handle a handler receives; it does not change results.
struct Db;

#[derive(Default)]
struct Directory {
    calls: AtomicUsize,
    version: AtomicUsize,
}

impl Directory {
    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    fn row(&self, what: String) -> String {
        self.calls.fetch_add(1, SeqCst);
        format!("{what} v{}", self.version.load(SeqCst))
    }

    #[cached(key = "staff:<team>:<status>")]
    async fn staff(&self, team: Option<String>, status: Option<Status>) -> String {
        self.row(format!("{team:?}/{status:?}"))
    }

    #[invalidates("staff:<team>:*")]
    async fn reorganise(&self, team: Option<String>) {
        let _ = team;
        self.version.fetch_add(1, SeqCst);
    }

    #[cached(key = "team:<team>:<status>")]
    async fn team(&self, team: TeamId, status: Status) -> String {
        self.row(format!("{team:?}/{status:?}"))
    }

    /// A handler's shape: the id is bound inside a pattern, the database
    /// handle is left out of the key on purpose.
    #[cached(key = "employee:<id>", ignore = [db])]
    async fn handler(&self, Path(id): Path<u64>, State(db): State<&Db>) -> String {
        let Db = db;
        self.row(format!("employee {id}"))
    }

    /// Tuple fields, and a parameter that starts with `_`.
    #[cached(key = "range:<pair.0>:<pair.1>")]
    async fn range(&self, pair: (u32, u32), _request_id: u64) -> String {
        self.row(format!("{pair:?}"))
    }
}

#[tokio::test]
async fn none_is_its_own_value() {
    let c = memory_cache();
    let d = Directory::default();
    c.scope(async {
        let none = d.staff(None, None).await;
        assert_eq!(d.staff(None, None).await, none, "a hit");
        // Values an encoding of `None` could be confused with.
        for team in ["~", "", "None", "none", "%none", "%7E"] {
            let v = d.staff(Some(team.into()), None).await;
            assert_ne!(v, none, "{team:?} is not None");
        }
        assert_eq!(
            d.staff(None, Some(Status::OnLeave)).await,
            "None/Some(OnLeave) v0"
        );
        assert_eq!(d.calls(), 8, "one computation per distinct tuple");
    })
    .await;
    for key in [
        "staff:%none:%none",
        "staff:%7E:%none",
        "staff::%none",
        "staff:%none:on_leave",
    ] {
        assert!(c.exists(key).await.unwrap(), "{key}");
    }
    // The manual builder writes the same keys.
    let manual = KeyBuilder::new()
        .lit("staff:")
        .serialized(&None::<String>)
        .lit(":")
        .serialized(&Some(Status::OnLeave))
        .build();
    assert_eq!(manual, "staff:%none:on_leave");
}

#[tokio::test]
async fn invalidating_none_leaves_real_values_alone() {
    let c = memory_cache();
    let d = Directory::default();
    c.scope(async {
        d.staff(None, Some(Status::Active)).await;
        d.staff(None, None).await;
        d.staff(Some("~".into()), None).await;
        d.staff(Some(String::new()), None).await;
        d.reorganise(None).await;
    })
    .await;
    assert!(!c.exists("staff:%none:active").await.unwrap());
    assert!(!c.exists("staff:%none:%none").await.unwrap());
    assert!(
        c.exists("staff:%7E:%none").await.unwrap(),
        "the team named `~`"
    );
    assert!(c.exists("staff::%none").await.unwrap(), "the team named ``");
}

#[tokio::test]
async fn enums_and_newtypes_through_serde() {
    let c = memory_cache();
    let d = Directory::default();
    c.scope(async {
        d.team(TeamId(7), Status::Active).await;
        d.team(TeamId(7), Status::OnLeave).await;
        d.team(TeamId(7), Status::Active).await;
    })
    .await;
    assert_eq!(d.calls(), 2);
    assert!(c.exists("team:7:active").await.unwrap());
    assert!(c.exists("team:7:on_leave").await.unwrap());
}

#[tokio::test]
async fn pattern_bindings_and_ignored_parameters() {
    let c = memory_cache();
    let d = Directory::default();
    let db = Db;
    c.scope(async {
        assert_eq!(d.handler(Path(7), State(&db)).await, "employee 7 v0");
        let other = Db;
        assert_eq!(d.handler(Path(7), State(&other)).await, "employee 7 v0");
        assert_eq!(d.handler(Path(8), State(&db)).await, "employee 8 v0");
        assert_eq!(d.calls(), 2, "keyed on the id, not on the handle");

        assert_eq!(d.range((1, 2), 100).await, "(1, 2) v0");
        assert_eq!(d.range((1, 2), 101).await, "(1, 2) v0");
        assert_eq!(d.range((2, 1), 100).await, "(2, 1) v0");
        assert_eq!(d.calls(), 4);
    })
    .await;
    assert!(c.exists("employee:7").await.unwrap());
    assert!(c.exists("range:1:2").await.unwrap());
}

/// Across two instances on one Redis: B is served what A computed for
/// `None`, and B's invalidation of `None`'s entries reaches A's in-process
/// copy and no other team's entry.
#[tokio::test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
async fn options_and_enums_across_instances() {
    let server = RedisServer::start();
    let (a, b) = Instance::on(&server).prefix("kp").connected_pair().await;
    let d = Directory::default();
    let first = a.scope(d.staff(None, Some(Status::OnLeave))).await;
    let tilde = a
        .scope(d.staff(Some("~".into()), Some(Status::OnLeave)))
        .await;
    assert_eq!(d.calls(), 2);
    assert_eq!(b.scope(d.staff(None, Some(Status::OnLeave))).await, first);
    assert_eq!(
        b.scope(d.team(TeamId(3), Status::Active)).await,
        "TeamId(3)/Active v0"
    );
    assert_eq!(
        a.scope(d.team(TeamId(3), Status::Active)).await,
        "TeamId(3)/Active v0"
    );
    assert_eq!(d.calls(), 3, "B and A were served each other's values");

    b.scope(d.reorganise(None)).await;
    let want = "None/Some(OnLeave) v1";
    eventually("A sees B's invalidation of team None", async || {
        a.scope(d.staff(None, Some(Status::OnLeave))).await == want
    })
    .await;
    assert_eq!(
        a.scope(d.staff(Some("~".into()), Some(Status::OnLeave)))
            .await,
        tilde,
        "the team named `~` kept its entry"
    );
    check_keys(&a).await;
}

async fn check_keys(c: &Cache) {
    assert!(c.exists("staff:%none:on_leave").await.unwrap());
    assert!(c.exists("staff:%7E:on_leave").await.unwrap());
    assert!(c.exists("team:3:active").await.unwrap());
}
