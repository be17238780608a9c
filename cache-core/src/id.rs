//! Random identifiers: an instance's id on the backplane, a lock's token.
//!
//! Hand-written over std's `RandomState` (seeded per process by the OS)
//! rather than a `rand` dependency: these need to differ between processes
//! and calls, not to resist an adversary (a lock token only guards against
//! another holder's mistakes, never against an attacker with Redis access).

use std::hash::{BuildHasher, RandomState};

/// A random 64-bit id.
pub(crate) fn random_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    RandomState::new().hash_one((
        nanos,
        std::process::id(),
        std::sync::Arc::as_ptr(&std::sync::Arc::new(0u8)) as usize,
    ))
}

/// A random lock token: which holder a lock belongs to (128 bits, hex).
pub(crate) fn token() -> String {
    format!("{:016x}{:016x}", random_id(), random_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens_differ() {
        let ids: std::collections::HashSet<u64> = (0..1000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 1000);
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
