//! [`Layout`]: the names of a cache's keys in Redis and of the bookkeeping
//! beside them. The one place these names are spelled; `cache-core` builds
//! every bookkeeping key through it, and [`is_reserved`] checks against it.
//!
//! Under a cache's prefix `P`, a value of `user:42:profile` lives at
//! `P:user:42:profile`. Beside it, in a namespace templates cannot produce
//! (they escape a `~` that starts a segment):
//!
//! | key | what |
//! |---|---|
//! | `P:~idx:user:`, `P:~idx:user:42:` | index sets: the keys under each segment prefix, up to [`MAX_DEPTH`] segments |
//! | `P:~gen:#seq` | the invalidation sequence |
//! | `P:~gen:`, `P:~gen:user:`, `P:~gen:user:42:` | generation markers of the root and of each segment prefix |
//! | `P:~key:user:42:profile` | the generation marker of one key |
//! | `P:~lock:user:42:profile` | the key's stampede lock |
//! | `P:~idx:#top` | the top-level index sets (`P:~idx:user:`, …): the namespaces, for counting entries |
//! | `P:~idx:#flat` | the keys without a segment (`P:answer`), for counting entries |
//! | `P:~stats:<instance>`, `P:~stats:#live` | each live instance's stats snapshot, and their list |
//! | `P:__backplane` | the pub/sub channel of the backplane |
//!
//! ```
//! use cache_redis::Layout;
//!
//! let layout = Layout::new("app");
//! assert_eq!(layout.lock_key("app:user:42"), "app:~lock:user:42");
//! assert_eq!(layout.indexes("app:user:42:profile"), ["app:~idx:user:", "app:~idx:user:42:"]);
//! assert!(cache_redis::is_reserved(&layout.lock_key("app:user:42")));
//! ```

use std::time::Duration;

/// How many segments deep keys are indexed and marked (`a:b:c:…`); deeper
/// prefix patterns fall back to `SCAN`.
pub const MAX_DEPTH: usize = 8;

/// How long a generation marker lives after its last stamp. A computation
/// that observed the markers longer ago than this must not write its result
/// (a marker that expired and came back would look unchanged).
pub const MARKER_TTL: Duration = Duration::from_secs(3600);

const LOCK: &str = "~lock:";
const INDEX: &str = "~idx:";
const GENERATION: &str = "~gen:";
const KEY_MARKER: &str = "~key:";
const STATS: &str = "~stats:";
const NAMESPACES: [&str; 5] = [LOCK, INDEX, GENERATION, KEY_MARKER, STATS];
/// Under [`INDEX`]: the set of top-level index sets, and the set of keys
/// without a segment. Index sets of segments end with `:`; these do not.
const TOP: &str = "#top";
const FLAT: &str = "#flat";
/// Under [`STATS`]: the set of the instances' snapshot keys.
const LIVE: &str = "#live";

/// Bookkeeping keys of a cache (locks, indexes, generation markers), which
/// pattern deletion never removes. Templates escape `~`, so no cached key
/// has one of these segments.
///
/// ```
/// assert!(cache_redis::is_reserved("app:~idx:user:"));
/// assert!(!cache_redis::is_reserved("app:user:~idx"));
/// ```
pub fn is_reserved(key: &str) -> bool {
    NAMESPACES
        .iter()
        .any(|ns| key.match_indices(ns).any(|(i, _)| key[..i].ends_with(':')))
}

/// The key names of one cache (one prefix) in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `prefix:`, or empty without a prefix.
    head: String,
    sequence: String,
    channel: String,
    everything: String,
}

impl Layout {
    /// The layout under `prefix` (empty for none).
    pub fn new(prefix: &str) -> Layout {
        let (head, channel, everything) = if prefix.is_empty() {
            (String::new(), "__backplane".to_owned(), "*".to_owned())
        } else {
            (
                format!("{prefix}:"),
                format!("{prefix}:__backplane"),
                format!("{prefix}:*"),
            )
        };
        Layout {
            sequence: format!("{head}{GENERATION}#seq"),
            head,
            channel,
            everything,
        }
    }

    /// The backplane's pub/sub channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The pattern of every key of this cache (`prefix:*`).
    pub fn everything(&self) -> &str {
        &self.everything
    }

    /// The invalidation sequence.
    pub fn sequence(&self) -> &str {
        &self.sequence
    }

    /// `key` without the cache's prefix, if it has it.
    pub fn rest<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.head.as_str())
    }

    /// The stampede lock of `key` (a full key): beside the cache's keys, not
    /// under them, so an invalidation of `user:42:*` never removes a lock.
    pub fn lock_key(&self, key: &str) -> String {
        self.beside(LOCK, self.rest(key).unwrap_or(key))
    }

    /// The index set of a segment prefix (`user:42:`, without the cache's prefix).
    pub fn index_key(&self, segment: &str) -> String {
        self.beside(INDEX, segment)
    }

    /// The set that counts `key` among the cache's entries: for a key with
    /// segments, the set of top-level index sets (its member is the key's
    /// top-level index set, the first of [`indexes`](Self::indexes)); for a
    /// key without, the set of such keys (its member is the key).
    ///
    /// ```
    /// let layout = cache_redis::Layout::new("app");
    /// assert_eq!(layout.registry("app:user:42"), "app:~idx:#top");
    /// assert_eq!(layout.registry("app:answer"), "app:~idx:#flat");
    /// ```
    pub fn registry(&self, key: &str) -> String {
        let rest = self.rest(key).unwrap_or(key);
        self.beside(INDEX, if rest.contains(':') { TOP } else { FLAT })
    }

    /// The set of top-level index sets (see [`registry`](Self::registry)).
    pub fn top_indexes(&self) -> String {
        self.beside(INDEX, TOP)
    }

    /// The set of keys without a segment (see [`registry`](Self::registry)).
    pub fn flat_keys(&self) -> String {
        self.beside(INDEX, FLAT)
    }

    /// The top-level segment (`user:`) of a top-level index set's name, if it is one.
    pub fn segment_of_index<'k>(&self, index: &'k str) -> Option<&'k str> {
        self.rest(index)?
            .strip_prefix(INDEX)
            .filter(|s| s.ends_with(':'))
    }

    /// Where the instance `instance` keeps its stats snapshot.
    pub fn stats_key(&self, instance: &str) -> String {
        self.beside(STATS, instance)
    }

    /// The set of the live instances' snapshot keys.
    pub fn stats_live(&self) -> String {
        self.beside(STATS, LIVE)
    }

    /// The generation marker of a segment prefix (`""` for the root).
    pub fn marker_key(&self, segment: &str) -> String {
        self.beside(GENERATION, segment)
    }

    /// The generation marker of one key (a full key).
    pub fn key_marker(&self, key: &str) -> String {
        self.beside(KEY_MARKER, self.rest(key).unwrap_or(key))
    }

    /// The markers a value of `key` depends on: the root, each segment
    /// prefix, the key itself.
    pub fn markers(&self, key: &str) -> Vec<String> {
        let rest = self.rest(key).unwrap_or(key);
        std::iter::once(self.marker_key(""))
            .chain(segment_prefixes(rest).map(|s| self.marker_key(s)))
            .chain(std::iter::once(self.key_marker(key)))
            .collect()
    }

    /// The index sets `key` belongs to: one per segment prefix.
    pub fn indexes(&self, key: &str) -> Vec<String> {
        let rest = self.rest(key).unwrap_or(key);
        segment_prefixes(rest).map(|s| self.index_key(s)).collect()
    }

    /// The segment prefix a prefix pattern's literal part (`prefix:user:42:`)
    /// drains from its index set, if it is at a segment boundary and
    /// indexed (at most [`MAX_DEPTH`] deep).
    pub fn indexed_segment<'k>(&self, literal: &'k str) -> Option<&'k str> {
        self.rest(literal)
            .filter(|s| s.ends_with(':') && s.matches(':').count() <= MAX_DEPTH)
    }

    /// The deepest indexed segment prefix of a pattern's leading literal
    /// (`""`, the root, when it has none): the marker an invalidation by
    /// that pattern stamps.
    pub fn covering_segment<'k>(&self, literal: &'k str) -> &'k str {
        self.rest(literal)
            .and_then(|rest| segment_prefixes(rest).last())
            .unwrap_or("")
    }

    fn beside(&self, namespace: &str, rest: &str) -> String {
        let mut s = String::with_capacity(self.head.len() + namespace.len() + rest.len());
        s.push_str(&self.head);
        s.push_str(namespace);
        s.push_str(rest);
        s
    }
}

/// The segment prefixes of a key (without the cache prefix): `user:` and
/// `user:42:` for `user:42:profile`, at most [`MAX_DEPTH`].
fn segment_prefixes(rest: &str) -> impl Iterator<Item = &str> {
    rest.match_indices(':')
        .take(MAX_DEPTH)
        .map(move |(i, _)| &rest[..=i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_a_prefix() {
        let l = Layout::new("p");
        assert_eq!(l.channel(), "p:__backplane");
        assert_eq!(l.everything(), "p:*");
        assert_eq!(l.sequence(), "p:~gen:#seq");
        assert_eq!(l.lock_key("p:a:b"), "p:~lock:a:b");
        assert_eq!(l.key_marker("p:a:b"), "p:~key:a:b");
        assert_eq!(
            l.markers("p:a:b:c"),
            ["p:~gen:", "p:~gen:a:", "p:~gen:a:b:", "p:~key:a:b:c"]
        );
        assert_eq!(l.indexes("p:a"), Vec::<String>::new());
        assert_eq!(l.indexed_segment("p:a:b:"), Some("a:b:"));
        assert_eq!(
            l.indexed_segment("p:a:b"),
            None,
            "not at a segment boundary"
        );
        assert_eq!(l.indexed_segment("q:a:"), None, "another prefix");
        assert_eq!(l.covering_segment("p:a:b:c"), "a:b:");
        assert_eq!(l.covering_segment("p:a"), "");
    }

    #[test]
    fn registries_are_not_index_sets_of_segments() {
        let l = Layout::new("p");
        assert_eq!(l.registry("p:a:b"), l.top_indexes());
        assert_eq!(l.registry("p:a"), l.flat_keys());
        assert_eq!(l.segment_of_index(&l.index_key("user:")), Some("user:"));
        assert_eq!(l.segment_of_index(&l.top_indexes()), None);
        assert_eq!(l.segment_of_index(&l.flat_keys()), None);
        // A segment is never `#top` or `#flat`: its index set ends with `:`.
        assert_ne!(l.index_key("#top:"), l.top_indexes());
    }

    #[test]
    fn names_without_a_prefix() {
        let l = Layout::new("");
        assert_eq!(l.channel(), "__backplane");
        assert_eq!(l.everything(), "*");
        assert_eq!(l.sequence(), "~gen:#seq");
        assert_eq!(l.lock_key("a:b"), "~lock:a:b");
        assert_eq!(l.indexes("a:b:c"), ["~idx:a:", "~idx:a:b:"]);
    }

    #[test]
    fn indexing_stops_at_max_depth() {
        let l = Layout::new("p");
        let deep = format!("p:{}leaf", "s:".repeat(MAX_DEPTH + 3));
        assert_eq!(l.indexes(&deep).len(), MAX_DEPTH);
        let too_deep = format!("p:{}", "s:".repeat(MAX_DEPTH + 1));
        assert_eq!(l.indexed_segment(&too_deep), None);
        let deepest = format!("p:{}", "s:".repeat(MAX_DEPTH));
        assert!(l.indexed_segment(&deepest).is_some());
    }

    #[test]
    fn every_bookkeeping_name_is_reserved() {
        let l = Layout::new("p");
        for k in [
            l.lock_key("p:a"),
            l.index_key("a:"),
            l.marker_key(""),
            l.key_marker("p:a"),
            l.sequence().to_owned(),
            l.top_indexes(),
            l.flat_keys(),
            l.stats_key("00ff"),
            l.stats_live(),
        ] {
            assert!(is_reserved(&k), "{k}");
        }
        assert!(!is_reserved("p:a:b"));
        assert!(!is_reserved("p:a%7Elock:b"));
    }
}
