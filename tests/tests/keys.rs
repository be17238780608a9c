//! Keys never collide and user values never widen an invalidation pattern.

use std::collections::HashMap;
use std::sync::Mutex;

use cache_core::{Cache, KeyBuilder, cached, invalidates};
use proptest::prelude::*;

/// Values users might send: glob metacharacters, separators, escapes, unicode.
fn nasty() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "*", "?", "[a-z]", "[", "]", "\\", ":", "%", "%2A", "~", "-", ".", "a", "b", "42", "é",
        " ", "",
    ]);
    prop::collection::vec(pieces, 0..5).prop_map(|v| v.concat())
}

fn key(template: &[&str], values: &[&str]) -> String {
    // template[i] literal, then values[i] — like "org:<org>:<name>".
    let mut b = KeyBuilder::new();
    for (i, lit) in template.iter().enumerate() {
        b = b.lit(lit);
        if let Some(v) = values.get(i) {
            b = b.value(v);
        }
    }
    b.build()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn distinct_tuples_give_distinct_keys(a in nasty(), b in nasty(), c in nasty(), d in nasty()) {
        for template in [&["org:", ":"][..], &["r:", "-"][..], &["x", "."][..], &["", "é"][..]] {
            let k1 = key(template, &[&a, &b]);
            let k2 = key(template, &[&c, &d]);
            prop_assert_eq!(k1 == k2, (a.clone(), b.clone()) == (c.clone(), d.clone()),
                "template {:?}: {} vs {}", template, k1, k2);
        }
    }

    #[test]
    fn escaped_values_carry_no_glob_metacharacters(a in nasty()) {
        let k = KeyBuilder::new().value(&a).build();
        prop_assert!(!k.contains(['*', '?', '[', ']', '\\', ':']), "{}", k);
    }
}

// ----- invalidation through the attributes with hostile values ---------------

struct Store {
    reads: Mutex<HashMap<String, usize>>,
}

impl Store {
    fn reads(&self, user: &str) -> usize {
        self.reads.lock().unwrap().get(user).copied().unwrap_or(0)
    }

    #[cached(key = "user:<user>:profile")]
    async fn profile(&self, user: &str) -> String {
        *self
            .reads
            .lock()
            .unwrap()
            .entry(user.to_owned())
            .or_default() += 1;
        format!("profile of {user}")
    }

    #[cached(key = "user:<user>:orders:<page>")]
    async fn orders(&self, user: &str, page: u32) -> Vec<u32> {
        *self
            .reads
            .lock()
            .unwrap()
            .entry(user.to_owned())
            .or_default() += 1;
        vec![page]
    }

    #[invalidates("user:<user>:*")]
    async fn forget(&self, user: &str) {
        let _ = user;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn invalidating_a_users_pattern_removes_exactly_their_entries(
        users in prop::collection::hash_set(nasty(), 2..6),
        pick in any::<prop::sample::Index>(),
    ) {
        let users: Vec<String> = users.into_iter().collect();
        let victim = pick.get(&users).clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cache = Cache::builder().build_blocking().unwrap();
        let store = Store { reads: Mutex::new(HashMap::new()) };
        let after = rt.block_on(cache.scope(async {
            for u in &users {
                store.profile(u).await;
                store.orders(u, 1).await;
                store.orders(u, 2).await;
            }
            store.forget(&victim).await;
            for u in &users {
                store.profile(u).await;
                store.orders(u, 1).await;
                store.orders(u, 2).await;
            }
            users.iter().map(|u| (u.clone(), store.reads(u))).collect::<Vec<_>>()
        }));
        for (u, reads) in after {
            let expected = if u == victim { 6 } else { 3 };
            prop_assert_eq!(reads, expected, "user {:?} (victim {:?})", u, victim);
        }
        let removed = rt.block_on(cache.stats()).invalidated_entries;
        prop_assert_eq!(removed, 3);
    }
}

#[tokio::test]
async fn manual_patterns_from_key_builder_match_attribute_keys() {
    let cache = Cache::builder().build_blocking().unwrap();
    let store = Store {
        reads: Mutex::new(HashMap::new()),
    };
    cache
        .scope(async {
            store.profile("a*").await;
            store.profile("ab").await;
        })
        .await;
    let pattern = KeyBuilder::new()
        .lit("user:")
        .value(&"a*")
        .lit(":*")
        .build();
    assert_eq!(cache.invalidate(&pattern).await.unwrap().removed, 1);
    assert!(cache.exists("user:ab:profile").await.unwrap());
    // A raw, unescaped pattern is a glob: it is the caller's to mean.
    assert_eq!(cache.invalidate("user:a*").await.unwrap().removed, 1);
}
