//! `#[cached]` on functions and methods: hits, TTLs, what is stored, keys, caches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use cache_core::{Cache, Preset, cached};
use serde::{Deserialize, Serialize};
use tests::support::memory_cache;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Employee {
    id: u64,
    name: String,
}

/// Deliberately not `Clone`: errors are never shared between callers.
#[derive(Debug, PartialEq)]
struct DbError(String);

struct Repo {
    tenant: String,
    calls: AtomicUsize,
    fail: bool,
}

impl Repo {
    fn new(tenant: &str) -> Repo {
        Repo {
            tenant: tenant.into(),
            calls: AtomicUsize::new(0),
            fail: false,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    #[cached(ttl = "medium", key = "tenant:<self.tenant>:employee:<id>")]
    async fn employee(&self, id: u64) -> Result<Employee, DbError> {
        self.calls.fetch_add(1, SeqCst);
        if self.fail {
            return Err(DbError(format!("no employee {id}")));
        }
        Ok(Employee {
            id,
            name: format!("{}-{id}", self.tenant),
        })
    }

    #[cached(ttl = "short", key = "find:<name>")]
    async fn find(&self, name: &str) -> Option<Employee> {
        self.calls.fetch_add(1, SeqCst);
        (name == "ada").then(|| Employee {
            id: 1,
            name: name.into(),
        })
    }

    #[cached(ttl = "short", key = "find_none:<name>", cache_none)]
    async fn find_caching_none(&self, name: &str) -> Option<Employee> {
        self.calls.fetch_add(1, SeqCst);
        (name == "ada").then(|| Employee {
            id: 1,
            name: name.into(),
        })
    }

    #[cached(key = "team:<team>", unless = |members: &Vec<Employee>| members.is_empty())]
    async fn team(&self, team: u32) -> Vec<Employee> {
        self.calls.fetch_add(1, SeqCst);
        (0..u64::from(team))
            .map(|id| Employee {
                id,
                name: "x".into(),
            })
            .collect()
    }

    #[cached(ttl = 30, key = "mut:<id>")]
    async fn with_mut(&mut self, id: u64) -> u64 {
        self.calls.fetch_add(1, SeqCst);
        id * 2
    }

    #[cached(ttl = "1h30m", key = "arc:<self.tenant>:<id>")]
    async fn with_arc(self: Arc<Self>, id: u64) -> u64 {
        self.calls.fetch_add(1, SeqCst);
        id + 1
    }
}

#[tokio::test]
async fn miss_then_hit() {
    let c = memory_cache();
    let repo = Repo::new("acme");
    c.scope(async {
        let a = repo.employee(7).await.unwrap();
        let b = repo.employee(7).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(repo.calls(), 1);
        repo.employee(8).await.unwrap();
        assert_eq!(repo.calls(), 2);
    })
    .await;
    let stats = c.stats().await;
    assert_eq!((stats.hits, stats.misses, stats.sets), (1, 2, 2));
    let f = &stats.functions[0];
    assert_eq!(f.label, "tenant:<self.tenant>:employee:<id>");
    assert_eq!(
        f.function, "cached::Repo::employee",
        "the label keeps the impl type"
    );
    assert_eq!((f.hits, f.misses), (1, 2));
    // The key is the template with values, under the prefix.
    assert!(c.exists("tenant:acme:employee:7").await.unwrap());
}

#[tokio::test]
async fn self_fields_separate_keys() {
    let c = memory_cache();
    let (a, b) = (Repo::new("a"), Repo::new("b"));
    c.scope(async {
        assert_eq!(a.employee(1).await.unwrap().name, "a-1");
        assert_eq!(b.employee(1).await.unwrap().name, "b-1");
        assert_eq!(a.employee(1).await.unwrap().name, "a-1");
    })
    .await;
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn entries_expire_after_their_ttl() {
    let c = memory_cache();
    let repo = Repo::new("t");
    c.scope(async {
        repo.employee(1).await.unwrap();
        tokio::time::advance(Duration::from_secs(299)).await;
        repo.employee(1).await.unwrap();
        assert_eq!(repo.calls(), 1, "still fresh at 299 s of 300 s");
        tokio::time::advance(Duration::from_secs(2)).await;
        repo.employee(1).await.unwrap();
        assert_eq!(repo.calls(), 2, "expired after 300 s");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn ttl_overrides_apply_at_run_time() {
    let c = Cache::builder()
        .preset_ttl(Preset::Medium, Duration::from_secs(10))
        .build_blocking()
        .unwrap();
    let repo = Repo::new("t");
    c.scope(async {
        repo.employee(1).await.unwrap();
        assert_eq!(
            c.ttl("tenant:t:employee:1").await.unwrap(),
            Some(Duration::from_secs(10))
        );
        tokio::time::advance(Duration::from_secs(11)).await;
        repo.employee(1).await.unwrap();
    })
    .await;
    assert_eq!(repo.calls(), 2);
}

#[tokio::test]
async fn errors_are_not_stored() {
    let c = memory_cache();
    let mut repo = Repo::new("t");
    repo.fail = true;
    c.scope(async {
        assert_eq!(repo.employee(1).await, Err(DbError("no employee 1".into())));
        assert_eq!(repo.employee(1).await, Err(DbError("no employee 1".into())));
    })
    .await;
    assert_eq!(repo.calls(), 2);
    let stats = c.stats().await;
    assert_eq!((stats.sets, stats.origin_errors), (0, 2));
    assert!(!c.exists("tenant:t:employee:1").await.unwrap());
}

#[tokio::test]
async fn none_is_stored_only_with_cache_none() {
    let c = memory_cache();
    let repo = Repo::new("t");
    c.scope(async {
        assert!(repo.find("bob").await.is_none());
        assert!(repo.find("bob").await.is_none());
        assert_eq!(repo.calls(), 2, "None not stored");
        assert!(repo.find("ada").await.is_some());
        assert!(repo.find("ada").await.is_some());
        assert_eq!(repo.calls(), 3, "Some stored");
        assert!(repo.find_caching_none("bob").await.is_none());
        assert!(repo.find_caching_none("bob").await.is_none());
        assert_eq!(repo.calls(), 4, "None stored with cache_none");
    })
    .await;
}

#[tokio::test]
async fn unless_skips_storing() {
    let c = memory_cache();
    let repo = Repo::new("t");
    c.scope(async {
        assert!(repo.team(0).await.is_empty());
        assert!(repo.team(0).await.is_empty());
        assert_eq!(repo.calls(), 2, "empty teams not stored");
        assert_eq!(repo.team(2).await.len(), 2);
        assert_eq!(repo.team(2).await.len(), 2);
        assert_eq!(repo.calls(), 3);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn receivers_mut_and_arc() {
    let c = memory_cache();
    c.scope(async {
        let mut repo = Repo::new("t");
        assert_eq!(repo.with_mut(4).await, 8);
        assert_eq!(repo.with_mut(4).await, 8);
        assert_eq!(repo.calls(), 1);
        assert_eq!(c.ttl("mut:4").await.unwrap(), Some(Duration::from_secs(30)));

        let repo = Arc::new(Repo::new("t"));
        assert_eq!(Arc::clone(&repo).with_arc(1).await, 2);
        assert_eq!(Arc::clone(&repo).with_arc(1).await, 2);
        assert_eq!(repo.calls(), 1);
        assert_eq!(
            c.ttl("arc:t:1").await.unwrap(),
            Some(Duration::from_secs(5400))
        );
    })
    .await;
}

// ----- free functions, generics, default keys ------------------------------

static GENERIC_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "generic:<id>:<kind>")]
async fn generic<T>(id: u64, kind: &str) -> Result<Vec<T>, std::io::Error>
where
    T: Default + Clone + Send + Sync + Serialize + for<'de> Deserialize<'de> + 'static,
{
    GENERIC_CALLS.fetch_add(1, SeqCst);
    let _ = (id, kind);
    Ok(vec![T::default()])
}

#[tokio::test]
async fn generic_functions() {
    let c = memory_cache();
    c.scope(async {
        assert_eq!(generic::<u8>(1, "u8").await.unwrap(), vec![0u8]);
        assert_eq!(generic::<u8>(1, "u8").await.unwrap(), vec![0u8]);
        assert_eq!(
            generic::<String>(1, "s").await.unwrap(),
            vec![String::new()]
        );
    })
    .await;
    assert_eq!(GENERIC_CALLS.load(SeqCst), 2);
}

static DEFAULT_KEY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Serialize)]
struct Filter {
    team: String,
    active: bool,
}

#[cached]
async fn search(query: &str, page: u32, filter: &Filter) -> Vec<String> {
    DEFAULT_KEY_CALLS.fetch_add(1, SeqCst);
    vec![format!("{query}:{page}:{}:{}", filter.team, filter.active)]
}

#[tokio::test]
async fn default_keys_use_every_argument() {
    let c = memory_cache();
    let f = Filter {
        team: "x".into(),
        active: true,
    };
    let g = Filter {
        team: "x".into(),
        active: false,
    };
    c.scope(async {
        search("a:b", 1, &f).await;
        search("a:b", 1, &f).await;
        assert_eq!(DEFAULT_KEY_CALLS.load(SeqCst), 1);
        search("a:b", 2, &f).await;
        search("a:b", 1, &g).await;
        search("a", 1, &f).await;
        assert_eq!(DEFAULT_KEY_CALLS.load(SeqCst), 4);
    })
    .await;
    // Scalars stay readable, so a default key can be invalidated by pattern.
    let removed = c
        .invalidate("cached::search:a%3Ab:*")
        .await
        .unwrap()
        .removed;
    assert_eq!(removed, 3);
    let stats = c.stats().await;
    assert_eq!(stats.functions[0].label, "search:<query>:<page>:<filter>");
}

static DESTRUCTURED_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Placeholders name the bindings of a pattern parameter.
#[cached(key = "pair:<label>:<a>:<b>")]
async fn destructured(label: &str, (a, mut b): (u32, u32)) -> u32 {
    DESTRUCTURED_CALLS.fetch_add(1, SeqCst);
    let _ = label;
    b += a;
    b
}

#[tokio::test]
async fn destructured_parameters_are_keyed_by_their_bindings() {
    let c = memory_cache();
    c.scope(async {
        assert_eq!(destructured("x", (1, 2)).await, 3);
        assert_eq!(destructured("x", (1, 2)).await, 3);
        assert_eq!(
            destructured("x", (5, 5)).await,
            10,
            "another pair, another entry"
        );
        assert_eq!(destructured("x", (2, 1)).await, 3);
    })
    .await;
    assert_eq!(DESTRUCTURED_CALLS.load(SeqCst), 3);
    assert!(c.exists("pair:x:1:2").await.unwrap());
    assert!(c.exists("pair:x:2:1").await.unwrap());
}

// ----- named caches, disabled caches, early returns -----------------------

static REPORT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = "reports-test", ttl = "report", key = "report:<id>")]
async fn report(id: u32) -> String {
    REPORT_CALLS.fetch_add(1, SeqCst);
    format!("report {id}")
}

#[tokio::test]
async fn named_caches_are_separate() {
    let reports = Cache::builder()
        .name("reports-test")
        .max_entries(10)
        .build_blocking()
        .unwrap();
    reports.clone().install().unwrap();
    assert_eq!(report(1).await, "report 1");
    assert_eq!(report(1).await, "report 1");
    assert_eq!(REPORT_CALLS.load(SeqCst), 1);
    assert!(reports.exists("report:1").await.unwrap());
    assert!(!Cache::global().exists("report:1").await.unwrap());
    assert!(
        Cache::builder()
            .name("reports-test")
            .build_blocking()
            .unwrap()
            .install()
            .is_err()
    );
}

static PASS_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "pass:<id>")]
async fn pass_through(id: u32) -> u32 {
    PASS_CALLS.fetch_add(1, SeqCst);
    id
}

#[tokio::test]
async fn disabled_cache_passes_through() {
    let off = Cache::builder().enabled(false).build_blocking().unwrap();
    off.scope(async {
        pass_through(1).await;
        pass_through(1).await;
    })
    .await;
    assert_eq!(PASS_CALLS.load(SeqCst), 2);
    let stats = off.stats().await;
    assert_eq!((stats.hits, stats.misses, stats.enabled), (0, 0, false));
    assert_eq!(
        off.health().await.status,
        cache_core::HealthStatus::Disabled
    );
}

static EARLY_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "early:<n>")]
async fn early_return(n: i32) -> Result<i32, std::num::TryFromIntError> {
    EARLY_CALLS.fetch_add(1, SeqCst);
    if n < 0 {
        return Ok(0);
    }
    let small: i8 = i8::try_from(n)?;
    Ok(i32::from(small) * 2)
}

#[tokio::test]
async fn return_and_question_mark_keep_their_meaning() {
    let c = memory_cache();
    c.scope(async {
        assert_eq!(early_return(-5).await.unwrap(), 0);
        assert_eq!(early_return(-5).await.unwrap(), 0);
        assert!(early_return(1000).await.is_err());
        assert_eq!(early_return(3).await.unwrap(), 6);
    })
    .await;
    assert_eq!(EARLY_CALLS.load(SeqCst), 3);
}

#[tokio::test]
async fn scopes_isolate_parallel_tests() {
    let (c1, c2) = (memory_cache(), memory_cache());
    let repo = Repo::new("iso");
    c1.scope(repo.employee(1)).await.unwrap();
    c2.scope(repo.employee(1)).await.unwrap();
    assert_eq!(repo.calls(), 2, "each scope has its own entries");
    c1.scope(repo.employee(1)).await.unwrap();
    assert_eq!(repo.calls(), 2);
}

#[tokio::test]
async fn wrong_type_under_a_key_is_a_miss_and_replaced() {
    let c = memory_cache();
    let repo = Repo::new("t");
    c.set(
        "tenant:t:employee:1",
        &"not an employee".to_string(),
        Preset::Short,
    )
    .await
    .unwrap();
    let e = c.scope(repo.employee(1)).await.unwrap();
    assert_eq!(e.id, 1);
    assert_eq!(repo.calls(), 1);
    assert_eq!(
        c.get::<Employee>("tenant:t:employee:1").await.unwrap(),
        Some(e)
    );
}

// ----- preset names in any case --------------------------------------------

/// The constant name a service ported from Python has.
#[cached(ttl = "USER_CONTEXT", key = "upper:<id>")]
async fn upper_case_preset(id: u64) -> u64 {
    id
}

#[tokio::test]
async fn preset_names_in_any_case() {
    let c = memory_cache();
    c.scope(upper_case_preset(1)).await;
    let left = c.ttl("upper:1").await.unwrap().expect("stored");
    let user_context = c.resolve_ttl(cache_core::Preset::UserContext.into());
    let medium = c.resolve_ttl(cache_core::Preset::Medium.into());
    // Jitter spreads TTLs by at most ±10 %: nearer user_context (900 s) than medium (300 s).
    assert!(
        left > user_context.mul_f64(0.85) && left <= user_context.mul_f64(1.11),
        "{left:?} vs {user_context:?}"
    );
    assert!(left > medium * 2);
}
