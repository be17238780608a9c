#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
//! The `#[cached]` and `#[invalidates]` attributes. Use them through
//! `cache_core`, which re-exports them and documents them in full.
//!
//! Each entry point is one line: parsing, checks and code generation work on
//! `proc_macro2` tokens in their own modules, so they are unit-testable.

mod attr;
mod expand;
mod item;
mod template;
mod ttl;

use proc_macro::TokenStream;

/// Caches an async function's result. See the `cache_core` crate docs.
///
/// ```ignore
/// #[cached(ttl = "medium", key = "employee:<id>")]
/// async fn get_employee(id: u64) -> Result<Employee, DbError> { /* ... */ }
/// ```
///
/// Options: `ttl` (a preset name, a duration string or whole seconds),
/// `key` (a template; default: the function path and every argument; it
/// must use every parameter but those in `ignore = [db, ...]` or named
/// `_...`, and may name fields, tuple fields and names bound by pattern
/// parameters),
/// `cache` (a named cache), `cache_none` (store `None` too), `unless` (a
/// predicate over the value: `true` skips storing it), `ttl_from` (the TTL
/// from the value: a `Duration` or `Option<Duration>`, at most `ttl`; `None`
/// or zero skips storing it), `format`, `compress`,
/// `version`, `l1_ttl`, `lock = false` (no Redis stampede lock),
/// `stale_if_error = "1h"` (serve an expired value when the body fails),
/// `timeout = "2s"` (with `stale_if_error`: serve it when the body is slow),
/// `refresh = 0.8` / `refresh = "xfetch"` (refresh in the background before
/// expiry), `crate` (the runtime's path if renamed).
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(args.into(), item.into()).into()
}

/// Writes an async function's result under a key after it succeeds, so the
/// `#[cached]` function that reads the key gets the fresh value as a hit
/// (write-through, like Spring's `@CachePut`). See the `cache_core` crate docs.
///
/// ```ignore
/// #[cache_put(key = "employee:<id>", ttl = "medium")]
/// async fn update_employee(id: u64, change: Change) -> Result<Employee, DbError> { /* ... */ }
/// ```
///
/// Options: `key` (required), `ttl`, `cache`, `cache_none`, `format`,
/// `compress`, `version`, `l1_ttl`, `crate`: those that decide what is
/// stored must match the reading function's.
#[proc_macro_attribute]
pub fn cache_put(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cache_put(args.into(), item.into()).into()
}

/// Invalidates keys or patterns after an async function succeeds.
///
/// ```ignore
/// #[invalidates("employee:<id>", "user:<id>:*")]
/// async fn update_employee(id: u64, change: Change) -> Result<(), DbError> { /* ... */ }
/// ```
#[proc_macro_attribute]
pub fn invalidates(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::invalidates(args.into(), item.into()).into()
}

/// The candidate closest to `name` by edit distance, if close enough to be a typo.
pub(crate) fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (levenshtein(name, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_names() {
        let names = ["short", "medium", "long", "very_long", "user_context"];
        assert_eq!(super::nearest("mediun", &names), Some("medium"));
        assert_eq!(super::nearest("usercontext", &names), Some("user_context"));
        assert_eq!(super::nearest("zzzzzz", &names), None);
    }
}
