//! Entries of several builds under one key: what lets two builds of a
//! service share one Redis during a rolling deploy.
//!
//! A value written through [`RedisStore::write`](crate::RedisStore::write)
//! carries a *variant*: the 8 bytes at [`VARIANT_AT`] of a value that starts
//! with [`ENTRY_MAGIC`] (in `cache-core`'s envelope, the type fingerprint:
//! its type's shape and its function's `version`). While every writer of a
//! key has one variant, the key holds that one value, byte for byte. When a
//! computed value ([`WriteGuard::Unchanged`](crate::WriteGuard::Unchanged))
//! of another variant is written to a key that holds a live value, the write
//! keeps both, so that neither build destroys the other's entry and each
//! keeps hitting its own. Both are as fresh as their TTLs say: an
//! invalidation of the key removes the key, so an entry still there has not
//! been invalidated since it was written. An explicit write
//! ([`WriteGuard::Bump`](crate::WriteGuard::Bump), `Cache::set`) says what
//! the key holds from now on, so it replaces every variant:
//!
//! ```text
//! offset  size  field
//! 0       2     magic  0xCA 0xC5
//! 2       1     count (2 to MAX_VARIANTS), the newest write first
//! then per entry:
//!         8     variant
//!         8     ends: how long before the key's expiry the entry expires, ms, little-endian
//!         4     length, little-endian
//!         ..    the value as written
//! ```
//!
//! The key lives as long as its longest-lived entry; an entry is live while
//! the key's `PTTL` is above its `ends` (Redis's clock only, as with every
//! freshness rule here). A computed write keeps the other variants' live
//! entries (at most [`MAX_VARIANTS`] in all, the longest-lived first) and
//! replaces its own. Removing the key (an invalidation) removes every
//! variant at once.
//!
//! The merge runs inside the write script, in Lua; [`select`] reads the
//! layout back. A container that does not parse is dropped by the next
//! write and read as [`Stored::Malformed`].

use std::time::Duration;

/// The first two bytes of a single value that has a variant.
pub const ENTRY_MAGIC: [u8; 2] = [0xCA, 0xC4];
/// Where a single value keeps its variant.
pub const VARIANT_AT: std::ops::Range<usize> = 5..13;
/// The first two bytes of a key that holds entries of several variants.
pub const SHARED_MAGIC: [u8; 2] = [0xCA, 0xC5];
/// How many variants one key holds at most.
pub const MAX_VARIANTS: usize = 4;

/// What a key holds for one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stored<'a> {
    /// A single value (of this variant or another: the reader checks).
    Single(&'a [u8]),
    /// This variant's entry among several, and how long before the key's
    /// expiry it expires.
    Shared {
        /// The entry.
        value: &'a [u8],
        /// Subtract from the key's `PTTL` for the entry's own.
        ends_before: Duration,
    },
    /// Entries of other variants only.
    Absent,
    /// A container that does not parse.
    Malformed,
}

/// Finds `variant`'s entry in what a key holds.
///
/// ```
/// use cache_redis::variants::{select, Stored};
/// assert_eq!(select(b"plain", 7), Stored::Single(b"plain"));
/// ```
pub fn select(stored: &[u8], variant: u64) -> Stored<'_> {
    if stored.get(..2) != Some(&SHARED_MAGIC[..]) {
        return Stored::Single(stored);
    }
    let Some(&count) = stored.get(2) else {
        return Stored::Malformed;
    };
    let want = variant.to_le_bytes();
    let mut rest = &stored[3..];
    let mut found = None;
    for _ in 0..count {
        let Some((head, tail)) = rest.split_first_chunk::<20>() else {
            return Stored::Malformed;
        };
        let (v, lens) = head.split_at(8);
        let (ends, len) = lens.split_at(8);
        let ends = u64::from_le_bytes(ends.try_into().unwrap_or_default());
        let len = u32::from_le_bytes(len.try_into().unwrap_or_default()) as usize;
        if tail.len() < len {
            return Stored::Malformed;
        }
        let (value, after) = tail.split_at(len);
        if v == want && found.is_none() {
            found = Some(Stored::Shared {
                value,
                ends_before: Duration::from_millis(ends),
            });
        }
        rest = after;
    }
    if !rest.is_empty() {
        return Stored::Malformed;
    }
    found.unwrap_or(Stored::Absent)
}

/// Every entry a key holds, as (variant, `ends_before`, value): one for a
/// plain value (its variant read at [`VARIANT_AT`], 0 if it is too short),
/// several for a container; `None` for a container that does not parse.
///
/// ```
/// use cache_redis::variants::{entries, shared};
/// let both = shared(&[(1, 0, b"a"), (2, 500, b"b")]);
/// let found = entries(&both).unwrap();
/// assert_eq!(found.len(), 2);
/// assert_eq!((found[1].0, found[1].1.as_millis(), found[1].2), (2, 500, &b"b"[..]));
/// ```
pub fn entries(stored: &[u8]) -> Option<Vec<(u64, Duration, &[u8])>> {
    if stored.get(..2) != Some(&SHARED_MAGIC[..]) {
        let variant = stored
            .get(VARIANT_AT)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        return Some(vec![(variant, Duration::ZERO, stored)]);
    }
    let count = *stored.get(2)?;
    let mut rest = &stored[3..];
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let (head, tail) = rest.split_first_chunk::<20>()?;
        let (v, lens) = head.split_at(8);
        let (ends, len) = lens.split_at(8);
        let v = u64::from_le_bytes(v.try_into().ok()?);
        let ends = u64::from_le_bytes(ends.try_into().ok()?);
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        if tail.len() < len {
            return None;
        }
        let (value, after) = tail.split_at(len);
        out.push((v, Duration::from_millis(ends), value));
        rest = after;
    }
    rest.is_empty().then_some(out)
}

/// Builds a container (what the write script builds), for tests of readers.
///
/// ```
/// use cache_redis::variants::{select, shared, Stored};
/// use std::time::Duration;
/// let both = shared(&[(1, 0, b"one"), (2, 500, b"two")]);
/// assert_eq!(
///     select(&both, 2),
///     Stored::Shared { value: b"two", ends_before: Duration::from_millis(500) },
/// );
/// assert_eq!(select(&both, 3), Stored::Absent);
/// ```
pub fn shared(entries: &[(u64, u64, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&SHARED_MAGIC);
    out.push(u8::try_from(entries.len()).unwrap_or(u8::MAX));
    for (variant, ends, value) in entries {
        out.extend_from_slice(&variant.to_le_bytes());
        out.extend_from_slice(&ends.to_le_bytes());
        out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// The merge, in the write script (KEYS[1] the key, ARGV[1] the value,
/// ARGV[4] the guard's mode, `px` the time to live): leaves `px` at the
/// key's new time to live.
pub(crate) const MERGE_LUA: &str = "\
local value = ARGV[1] \
local kept = {} \
if ARGV[4] == 'check' and string.sub(value, 1, 2) == '\\202\\196' and #value >= 13 then \
    local mine = string.sub(value, 6, 13) \
    local head = redis.pcall('GETRANGE', KEYS[1], 0, 12) \
    local left = 0 \
    if type(head) == 'string' and #head >= 3 then left = redis.call('PTTL', KEYS[1]) end \
    if left > 0 and string.sub(head, 1, 2) == '\\202\\196' and #head == 13 then \
        if string.sub(head, 6, 13) ~= mine then \
            kept[1] = {string.sub(head, 6, 13), left, redis.call('GET', KEYS[1])} \
        end \
    elseif left > 0 and string.sub(head, 1, 2) == '\\202\\197' then \
        local old = redis.call('GET', KEYS[1]) \
        local pos = 4 \
        for i = 1, string.byte(old, 3) do \
            if pos + 19 > #old then kept = {} break end \
            local ends, len = struct.unpack('<I8I4', string.sub(old, pos + 8, pos + 19)) \
            if pos + 19 + len > #old then kept = {} break end \
            local v = string.sub(old, pos, pos + 7) \
            if v ~= mine and ends < left then \
                kept[#kept + 1] = {v, left - ends, string.sub(old, pos + 20, pos + 19 + len)} \
            end \
            pos = pos + 20 + len \
        end \
    end \
    if #kept > 0 then \
        table.sort(kept, function(a, b) return a[2] > b[2] end) \
        while #kept > MAX_OTHERS do table.remove(kept) end \
        local e = px \
        for _, k in ipairs(kept) do if k[2] > e then e = k[2] end end \
        local parts = {'\\202\\197', string.char(#kept + 1), mine, struct.pack('<I8I4', e - px, #value), value} \
        for _, k in ipairs(kept) do \
            parts[#parts + 1] = k[1] \
            parts[#parts + 1] = struct.pack('<I8I4', e - k[2], #k[3]) \
            parts[#parts + 1] = k[3] \
        end \
        value = table.concat(parts) \
        px = e \
    end \
end \
redis.call('SET', KEYS[1], value, 'PX', px) ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_containers_are_told_apart() {
        let good = shared(&[(1, 0, b"one"), (2, 9, b"two")]);
        for cut in 3..good.len() {
            assert_eq!(select(&good[..cut], 1), Stored::Malformed, "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(select(&trailing, 1), Stored::Malformed);
        assert_eq!(select(&SHARED_MAGIC, 1), Stored::Malformed);
        assert_eq!(
            select(&good, 1),
            Stored::Shared {
                value: b"one",
                ends_before: Duration::ZERO
            }
        );
    }
}
