//! Redis Cluster hash slots: [`key_slot`], and the bucket tags the
//! [`Layout`](crate::Layout) puts in keys on a cluster.
//!
//! Hand-written because redis-rs computes slots only privately: the cluster
//! specification defines the slot as CRC16 (XMODEM) of the key, or of its
//! hash tag (the text between the first `{` and the next `}`, if not
//! empty), modulo 16384. The tests check it against values Redis gives.

/// Hash slots of a cluster.
pub const SLOTS: u16 = 16384;

/// Buckets a cache's keys are spread over on a cluster: each bucket is one
/// hash tag, so one slot, and holds a complete layout (values, index sets,
/// markers, sequence, locks) that scripts can touch together.
pub const BUCKETS: usize = 256;

/// The hash slot of `key`, as Redis Cluster computes it.
///
/// ```
/// assert_eq!(cache_redis::key_slot(b"foo"), 12182);
/// assert_eq!(cache_redis::key_slot(b"{user1000}.following"), cache_redis::key_slot(b"user1000"));
/// ```
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS
}

/// CRC16/XMODEM (polynomial 0x1021, initial value 0).
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash tag of each bucket: for bucket `i`, the shortest decimal
/// number whose slot lies in the `i`th of [`BUCKETS`] equal ranges of the
/// slot space. Clusters assign slots in contiguous ranges (as
/// `redis-cli --cluster create` does, equal ranges per master), so the
/// buckets, and with them the keys, spread evenly over the masters.
pub(crate) fn bucket_tags() -> &'static [String] {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| {
        let width = usize::from(SLOTS) / BUCKETS;
        let mut tags: Vec<Option<String>> = vec![None; BUCKETS];
        let mut missing = BUCKETS;
        let mut n: u32 = 0;
        while missing > 0 {
            let tag = n.to_string();
            let bucket = usize::from(crc16(tag.as_bytes()) % SLOTS) / width;
            if let Some(slot @ None) = tags.get_mut(bucket) {
                *slot = Some(tag);
                missing -= 1;
            }
            n += 1;
        }
        tags.into_iter().map(Option::unwrap_or_default).collect()
    })
}

/// The bucket of a key's grouping part (its first two segments, see the
/// layout): CRC16 of it, modulo [`BUCKETS`].
pub(crate) fn bucket_of(group: &str) -> usize {
    usize::from(crc16(group.as_bytes())) % BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // From `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"{foo}bar"), key_slot(b"foo"));
        assert_eq!(
            key_slot(b"{}foo"),
            key_slot(b"{}foo"),
            "an empty tag hashes the key"
        );
        assert_ne!(key_slot(b"{}foo"), key_slot(b""));
        assert_eq!(key_slot(b"a{b}{c}"), key_slot(b"b"), "the first tag");
    }

    #[test]
    fn every_bucket_has_a_tag_in_its_own_slot_range() {
        let tags = bucket_tags();
        assert_eq!(tags.len(), BUCKETS);
        let width = usize::from(SLOTS) / BUCKETS;
        for (i, tag) in tags.iter().enumerate() {
            assert!(!tag.is_empty());
            assert_eq!(usize::from(key_slot(tag.as_bytes())) / width, i, "{tag}");
        }
    }
}
