//! The in-process glob matcher against Redis's own: generated patterns and
//! keys over the characters that matter to the grammar (`*`, `?`, `[`,
//! `]`, `^`, `-`, `\` and a few literals), the keys written to a private
//! `redis-server`, and `SCAN MATCH` compared, key by key, with what the
//! cache's in-process tier would invalidate for the same pattern.

use std::collections::BTreeSet;

use proptest::prelude::*;
use tests::redis_server::RedisServer;

fn alphabet() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop::sample::select(vec!['a', 'b', 'c', ':', '*', '?', '[', ']', '^', '-', '\\']),
        0..7,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

fn literal_keys() -> impl Strategy<Value = BTreeSet<String>> {
    proptest::collection::btree_set(
        proptest::collection::vec(
            prop::sample::select(vec!['a', 'b', 'c', ':', '*', '?', '[', ']', '^', '-', '\\']),
            // Never empty: a cache's keys start with its prefix (Redis
            // matches the empty key only by `*`, through a shortcut).
            1..6,
        )
        .prop_map(|cs| cs.into_iter().collect::<String>()),
        1..24,
    )
}

fn scan_match(con: &mut redis::Connection, pattern: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(con)
            .unwrap();
        out.extend(page);
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

#[test]
#[cfg_attr(skip_redis, ignore = "redis-server not found: see README")]
fn the_in_process_matcher_selects_what_redis_selects() {
    let server = RedisServer::start();
    let client = redis::Client::open(server.url()).unwrap();
    let con = std::cell::RefCell::new(client.get_connection().unwrap());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(5000));
    runner
        .run(&(alphabet(), literal_keys()), |(pattern, keys)| {
            let con = &mut *con.borrow_mut();
            let _: () = redis::cmd("FLUSHDB").query(con).unwrap();
            for k in &keys {
                let _: () = redis::cmd("SET").arg(k).arg(1).query(con).unwrap();
            }
            let by_redis = scan_match(con, &pattern);
            let in_process: BTreeSet<String> = keys
                .iter()
                .filter(|k| cache_core::__fuzz::glob_matches(&pattern, k))
                .cloned()
                .collect();
            prop_assert_eq!(in_process, by_redis, "pattern {:?}", pattern);
            Ok(())
        })
        .unwrap();
}
