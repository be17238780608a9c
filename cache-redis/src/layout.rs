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
//! | `P:~tag:tenant:7`, `P:~tgen:tenant:7` | a tag's set of keys and its generation marker |
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
const TAG_INDEX: &str = "~tag:";
const TAG_MARKER: &str = "~tgen:";
const WARM: &str = "~warm:";
const NAMESPACES: [&str; 8] = [
    LOCK, INDEX, GENERATION, KEY_MARKER, STATS, TAG_INDEX, TAG_MARKER, WARM,
];
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
    NAMESPACES.iter().any(|ns| {
        key.match_indices(ns).any(|(i, _)| {
            let before = &key[..i];
            // `P:~idx:…`, or on a cluster `P:{tag}~idx:…`.
            before.ends_with(':')
                || before.strip_suffix('}').is_some_and(|b| {
                    b.rfind('{')
                        .is_some_and(|j| b[..j].ends_with(':') && !b[j..].contains(':'))
                })
        })
    })
}

/// A cluster bucket (see [`Layout::cluster`]); `None` on a single node.
pub type Bucket = Option<usize>;

/// The key names of one cache (one prefix) in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `prefix:`, or empty without a prefix.
    head: String,
    sequence: String,
    channel: String,
    everything: String,
    /// Keys carry bucket hash tags (Redis Cluster).
    cluster: bool,
}

impl Layout {
    /// The layout under `prefix` (empty for none), for a single node.
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
            cluster: false,
        }
    }

    /// The layout under `prefix` on a Redis Cluster.
    ///
    /// A script may only touch keys of one hash slot, and a write touches
    /// its value, index sets, markers and the invalidation sequence. So on
    /// a cluster every key is put in one of [`BUCKETS`](crate::BUCKETS)
    /// buckets, a hash tag right after the prefix, and each bucket holds
    /// a complete single-node layout of its own: `P:{17}user:42:profile`,
    /// `P:{17}~idx:user:42:`, `P:{17}~gen:#seq`, … A key's bucket is chosen
    /// by its first two segments (`user:42`), so everything under
    /// `user:42:` is in one bucket: its prefix invalidation drains one set
    /// on one shard. A namespace (`user:`) spreads over every bucket, so
    /// over every master: `user:*` drains its set in every bucket
    /// (O(matching keys + buckets)). Bucket tags are chosen so the buckets
    /// fall in equal slot ranges, and spread evenly over masters that own
    /// equal ranges.
    ///
    /// ```
    /// use cache_redis::Layout;
    ///
    /// let layout = Layout::cluster("app");
    /// let key = layout.physical("app:user:42:profile");
    /// let tag = &key[4..key.find('}').unwrap() + 1];
    /// assert_eq!(key, format!("app:{tag}user:42:profile"));
    /// // Its lock, index sets and sequence share its slot.
    /// let slot = cache_redis::key_slot(key.as_bytes());
    /// assert_eq!(cache_redis::key_slot(layout.lock_key("app:user:42:profile").as_bytes()), slot);
    /// assert_eq!(cache_redis::key_slot(layout.sequence_for("app:user:42:x").as_bytes()), slot);
    /// assert_eq!(layout.logical(&key).as_deref(), Some("app:user:42:profile"));
    /// ```
    pub fn cluster(prefix: &str) -> Layout {
        Layout {
            cluster: true,
            ..Layout::new(prefix)
        }
    }

    /// True for a cluster layout.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The buckets a fan-out visits: every bucket on a cluster, the one
    /// `None` on a single node.
    pub fn buckets(&self) -> impl Iterator<Item = Bucket> + use<> {
        let n = if self.cluster {
            crate::slot::BUCKETS
        } else {
            0
        };
        let single = (!self.cluster).then_some(None);
        single.into_iter().chain((0..n).map(Some))
    }

    /// The bucket of a full key (`None` on a single node): by its first two
    /// segments, or the whole key if it has fewer.
    pub fn key_bucket(&self, key: &str) -> Bucket {
        if !self.cluster {
            return None;
        }
        let rest = self.rest(key).unwrap_or(key);
        let group = match rest.match_indices(':').nth(1) {
            Some((i, _)) => &rest[..i],
            None => rest,
        };
        Some(crate::slot::bucket_of(group))
    }

    /// The buckets holding keys under a segment prefix (`user:42:` →
    /// its one bucket; `user:` or the root `""` → every bucket).
    pub fn segment_buckets(&self, segment: &str) -> Vec<Bucket> {
        if !self.cluster {
            return vec![None];
        }
        match segment.match_indices(':').nth(1) {
            Some((i, _)) => vec![Some(crate::slot::bucket_of(&segment[..i]))],
            None => self.buckets().collect(),
        }
    }

    /// The name Redis stores `key` (a full key) under: the key itself on a
    /// single node, with its bucket's tag after the prefix on a cluster.
    pub fn physical<'k>(&self, key: &'k str) -> std::borrow::Cow<'k, str> {
        match self.key_bucket(key) {
            None => std::borrow::Cow::Borrowed(key),
            Some(b) => {
                std::borrow::Cow::Owned(self.beside_in(Some(b), "", self.rest(key).unwrap_or(key)))
            }
        }
    }

    /// The full key a physical name stands for (its bucket tag removed on a
    /// cluster); `None` for a name that is not one of this layout's.
    pub fn logical<'k>(&self, physical: &'k str) -> Option<std::borrow::Cow<'k, str>> {
        if !self.cluster {
            return Some(std::borrow::Cow::Borrowed(physical));
        }
        let rest = physical.strip_prefix(self.head.as_str())?;
        let tagged = rest.strip_prefix('{')?;
        let close = tagged.find('}')?;
        let mut key = String::with_capacity(physical.len());
        key.push_str(&self.head);
        key.push_str(&tagged[close + 1..]);
        Some(std::borrow::Cow::Owned(key))
    }

    /// A `SCAN MATCH` pattern for the physical names of the keys a pattern
    /// (over full keys) may match. On a cluster it is wider (any bucket):
    /// check each name found with [`logical`](Self::logical).
    pub fn scan_pattern(&self, pattern: &str) -> String {
        if !self.cluster {
            return pattern.to_owned();
        }
        match pattern.strip_prefix(self.head.as_str()) {
            Some(rest) => format!("{}{{*}}{rest}", self.head),
            None => pattern.to_owned(),
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

    /// The invalidation sequence of a single node (on a cluster, of its
    /// first bucket: use [`sequence_for`](Self::sequence_for)).
    pub fn sequence(&self) -> &str {
        &self.sequence
    }

    /// The invalidation sequence `key` (a full key) is guarded by
    /// (borrowed on a single node: no allocation on a miss or a write).
    pub fn sequence_for(&self, key: &str) -> std::borrow::Cow<'_, str> {
        self.sequence_in(self.key_bucket(key))
    }

    /// The invalidation sequence of a bucket.
    pub fn sequence_in(&self, bucket: Bucket) -> std::borrow::Cow<'_, str> {
        match bucket {
            None => std::borrow::Cow::Borrowed(&self.sequence),
            Some(_) => std::borrow::Cow::Owned(self.beside_in(bucket, GENERATION, "#seq")),
        }
    }

    /// `key` without the cache's prefix, if it has it.
    pub fn rest<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.head.as_str())
    }

    /// The stampede lock of `key` (a full key): beside the cache's keys, not
    /// under them, so an invalidation of `user:42:*` never removes a lock.
    pub fn lock_key(&self, key: &str) -> String {
        self.beside_in(self.key_bucket(key), LOCK, self.rest(key).unwrap_or(key))
    }

    /// The index set of a segment prefix (`user:42:`, without the cache's
    /// prefix) on a single node.
    pub fn index_key(&self, segment: &str) -> String {
        self.beside(INDEX, segment)
    }

    /// The index set of a segment prefix within a bucket.
    pub fn index_in(&self, bucket: Bucket, segment: &str) -> String {
        self.beside_in(bucket, INDEX, segment)
    }

    /// The generation marker of a segment prefix within a bucket.
    pub fn marker_in(&self, bucket: Bucket, segment: &str) -> String {
        self.beside_in(bucket, GENERATION, segment)
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
        self.beside_in(
            self.key_bucket(key),
            INDEX,
            if rest.contains(':') { TOP } else { FLAT },
        )
    }

    /// The set of top-level index sets of a bucket (see [`registry`](Self::registry)).
    pub fn top_indexes_in(&self, bucket: Bucket) -> String {
        self.beside_in(bucket, INDEX, TOP)
    }

    /// The set of keys without a segment in a bucket (see [`registry`](Self::registry)).
    pub fn flat_keys_in(&self, bucket: Bucket) -> String {
        self.beside_in(bucket, INDEX, FLAT)
    }

    /// The set of top-level index sets on a single node.
    pub fn top_indexes(&self) -> String {
        self.top_indexes_in(None)
    }

    /// The set of keys without a segment on a single node.
    pub fn flat_keys(&self) -> String {
        self.flat_keys_in(None)
    }

    /// The top-level segment (`user:`) of a top-level index set's name, if it is one.
    pub fn segment_of_index<'k>(&self, index: &'k str) -> Option<&'k str> {
        let mut rest = self.rest(index)?;
        if self.cluster {
            rest = &rest[rest.strip_prefix('{')?.find('}')? + 2..];
        }
        rest.strip_prefix(INDEX).filter(|s| s.ends_with(':'))
    }

    /// Where the instance `instance` keeps its stats snapshot (on a
    /// cluster, all of them in the first bucket, beside their list).
    pub fn stats_key(&self, instance: &str) -> String {
        self.beside_in(self.cluster.then_some(0), STATS, instance)
    }

    /// The claim on one period of the warmer `name`: the instance that sets
    /// it runs the warmer, the others skip that period.
    ///
    /// ```
    /// let layout = cache_redis::Layout::new("app");
    /// assert_eq!(layout.warm_claim("products"), "app:~warm:products");
    /// ```
    pub fn warm_claim(&self, name: &str) -> String {
        self.beside_in(self.cluster.then_some(0), WARM, name)
    }

    /// The set of the live instances' snapshot keys.
    pub fn stats_live(&self) -> String {
        self.beside_in(self.cluster.then_some(0), STATS, LIVE)
    }

    /// The generation marker of a segment prefix (`""` for the root).
    pub fn marker_key(&self, segment: &str) -> String {
        self.beside(GENERATION, segment)
    }

    /// The generation marker of one key (a full key).
    pub fn key_marker(&self, key: &str) -> String {
        self.beside_in(
            self.key_bucket(key),
            KEY_MARKER,
            self.rest(key).unwrap_or(key),
        )
    }

    /// The markers a value of `key` depends on: the root, each segment
    /// prefix, the key itself (on a cluster, those of the key's bucket).
    pub fn markers(&self, key: &str) -> Vec<String> {
        let rest = self.rest(key).unwrap_or(key);
        let b = self.key_bucket(key);
        std::iter::once(self.marker_in(b, ""))
            .chain(segment_prefixes(rest).map(|s| self.marker_in(b, s)))
            .chain(std::iter::once(self.key_marker(key)))
            .collect()
    }

    /// The set of the keys tagged `tag` within a bucket (on a cluster, each
    /// bucket holds the share of its own keys).
    ///
    /// ```
    /// let layout = cache_redis::Layout::new("app");
    /// assert_eq!(layout.tag_index_in(None, "tenant:7"), "app:~tag:tenant:7");
    /// assert!(cache_redis::is_reserved(&layout.tag_index_in(None, "t")));
    /// ```
    pub fn tag_index_in(&self, bucket: Bucket, tag: &str) -> String {
        self.beside_in(bucket, TAG_INDEX, tag)
    }

    /// The generation marker of `tag` within a bucket: stamped when the tag
    /// is invalidated, so values computed before are refused.
    pub fn tag_marker_in(&self, bucket: Bucket, tag: &str) -> String {
        self.beside_in(bucket, TAG_MARKER, tag)
    }

    /// The sets of `tags` that a value of `key` joins (in the key's bucket).
    pub fn tag_indexes(&self, key: &str, tags: &[String]) -> Vec<String> {
        let b = self.key_bucket(key);
        tags.iter().map(|t| self.tag_index_in(b, t)).collect()
    }

    /// The markers of `tags` that a value of `key` depends on (in the key's bucket).
    pub fn tag_markers(&self, key: &str, tags: &[String]) -> Vec<String> {
        let b = self.key_bucket(key);
        tags.iter().map(|t| self.tag_marker_in(b, t)).collect()
    }

    /// The index sets `key` belongs to: one per segment prefix (on a
    /// cluster, those of the key's bucket).
    pub fn indexes(&self, key: &str) -> Vec<String> {
        let rest = self.rest(key).unwrap_or(key);
        let b = self.key_bucket(key);
        segment_prefixes(rest)
            .map(|s| self.index_in(b, s))
            .collect()
    }

    /// The prefix of `rest` (a key without the cache's prefix) `depth`
    /// segments deep, or as deep as it goes (`""` for a key without one).
    ///
    /// ```
    /// assert_eq!(cache_redis::Layout::segment_at("user:42:profile", 2), "user:42:");
    /// assert_eq!(cache_redis::Layout::segment_at("user:7", 2), "user:");
    /// assert_eq!(cache_redis::Layout::segment_at("answer", 2), "");
    /// ```
    pub fn segment_at(rest: &str, depth: usize) -> &str {
        segment_prefixes(rest)
            .take(depth.max(1))
            .last()
            .unwrap_or("")
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
        self.beside_in(None, namespace, rest)
    }

    /// `head` + the bucket's tag (on a cluster) + `namespace` + `rest`.
    fn beside_in(&self, bucket: Bucket, namespace: &str, rest: &str) -> String {
        let tag = bucket.and_then(|b| crate::slot::bucket_tags().get(b));
        let mut s = String::with_capacity(
            self.head.len() + tag.map_or(0, |t| t.len() + 2) + namespace.len() + rest.len(),
        );
        s.push_str(&self.head);
        if let Some(t) = tag {
            s.push('{');
            s.push_str(t);
            s.push('}');
        }
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
    fn a_cluster_layout_keeps_a_key_and_its_bookkeeping_in_one_slot() {
        let l = Layout::cluster("p");
        let slot = |k: &str| crate::key_slot(k.as_bytes());
        for key in ["p:user:42:profile", "p:user:42", "p:answer", "p:a:b:c:d:e"] {
            let s = slot(&l.physical(key));
            let mut names = l.indexes(key);
            names.extend(l.markers(key));
            names.push(l.lock_key(key));
            names.push(l.registry(key));
            names.push(l.sequence_for(key).into_owned());
            for n in &names {
                assert_eq!(slot(n), s, "{n} beside {key}");
                assert!(is_reserved(n), "{n}");
            }
            assert!(!is_reserved(&l.physical(key)));
            assert_eq!(l.logical(&l.physical(key)).as_deref(), Some(key));
        }
        // Everything under `user:42:` in one bucket; a namespace in all.
        assert_eq!(l.key_bucket("p:user:42:a"), l.key_bucket("p:user:42:b:c"));
        assert_eq!(
            l.segment_buckets("user:42:"),
            vec![l.key_bucket("p:user:42:x")]
        );
        assert_eq!(l.segment_buckets("user:").len(), crate::BUCKETS);
        assert_eq!(l.segment_buckets("").len(), crate::BUCKETS);
        let b = l.key_bucket("p:user:42:a");
        assert_eq!(l.segment_of_index(&l.index_in(b, "user:")), Some("user:"));
        assert_eq!(l.segment_of_index(&l.top_indexes_in(b)), None);
        assert_eq!(slot(&l.stats_key("x")), slot(&l.stats_live()));
        assert_eq!(l.scan_pattern("p:user:*"), "p:{*}user:*");
        assert_eq!(l.logical("q:{1}x"), None, "another prefix");
    }

    /// 100,000 users × 5 keys and 10 small namespaces, on 3 masters with
    /// the slot ranges `redis-cli --cluster create` gives them.
    #[test]
    fn namespaces_spread_over_the_masters() {
        let l = Layout::cluster("app");
        let ranges = [(0u16, 5460u16), (5461, 10922), (10923, 16383)];
        let mut per_master = [0u64; 3];
        let mut count = |key: &str| {
            let slot = crate::key_slot(l.physical(key).as_bytes());
            if let Some(m) = ranges.iter().position(|(a, b)| (*a..=*b).contains(&slot)) {
                per_master[m] += 1;
            }
        };
        for id in 0..100_000 {
            for part in ["profile", "roles", "settings", "avatar", "teams"] {
                count(&format!("app:user:{id}:{part}"));
            }
        }
        for ns in 0..10 {
            for i in 0..100 {
                count(&format!("app:ns{ns}:{i}"));
            }
        }
        let total: u64 = per_master.iter().sum();
        assert_eq!(total, 501_000);
        let mean = total as f64 / 3.0;
        let max = per_master.iter().copied().max().unwrap_or(0) as f64;
        assert!(
            max / mean <= 1.25,
            "{per_master:?}: max/mean {:.3}",
            max / mean
        );
        eprintln!("keys per master {per_master:?}, max/mean {:.3}", max / mean);
    }

    #[test]
    fn a_single_node_layout_has_no_tags() {
        let l = Layout::new("p");
        assert_eq!(l.physical("p:a:b"), "p:a:b");
        assert_eq!(l.buckets().collect::<Vec<_>>(), vec![None]);
        assert_eq!(l.sequence_for("p:a"), l.sequence());
        assert_eq!(l.segment_buckets("a:"), vec![None]);
        assert_eq!(l.scan_pattern("p:*"), "p:*");
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
