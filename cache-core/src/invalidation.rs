//! Guards against the stale-set race in the process.
//!
//! A value computed from data read before an invalidation must not be stored
//! after it. Every invalidation (pattern, `delete`, `clear`) is recorded here
//! with an epoch; a computation notes the epoch when it starts and, before
//! and after storing, asks whether an invalidation since then matched its
//! key. If one did, the value is not stored (or is removed again). The log is
//! bounded: a computation older than the oldest record assumes it was
//! invalidated.
//!
//! Every invalidation is recorded twice, through [`InvalidationLog::begin`]:
//! before it removes anything, and again when the returned guard is dropped,
//! once its removals (in-process and in Redis) are done or abandoned. A
//! computation that starts between the two could still read what is being
//! removed: the second record is after its start, so its value is not
//! handed to callers that joined it after the invalidation returned, and
//! is not stored from then on; one it stored before the second record is
//! removed by a second in-process removal right after it (the engine's
//! `after_shared_removal`).
//!
//! In-process stores go through [`InvalidationLog::insert_unless_invalidated`],
//! which checks and inserts while holding the lock that [`record`] takes:
//! either the insert comes first (and the invalidation's removal, which runs
//! after `record`, deletes it), or the check sees the record. So once an
//! invalidation has returned, no racing computation's value is visible.
//!
//! [`record`]: InvalidationLog::record

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst, fence};
use std::sync::{Arc, Mutex, PoisonError};

use crate::glob::Glob;

const KEEP: usize = 1024;

/// What an invalidation matched: keys by pattern, or the entries of a tag.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Glob(Arc<Glob>),
    Tag(Arc<str>),
}

impl Matcher {
    fn matches(&self, key: &str, tags: &[String]) -> bool {
        match self {
            Matcher::Glob(g) => g.matches(key),
            Matcher::Tag(t) => tags.iter().any(|x| **x == **t),
        }
    }
}

impl From<Arc<Glob>> for Matcher {
    fn from(glob: Arc<Glob>) -> Self {
        Matcher::Glob(glob)
    }
}

#[derive(Debug, Default)]
pub(crate) struct InvalidationLog {
    epoch: AtomicU64,
    recent: Mutex<VecDeque<(u64, Matcher)>>,
}

impl InvalidationLog {
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    /// Records an invalidation; call before removing the entries it matches.
    pub(crate) fn record(&self, what: impl Into<Matcher>) {
        let what = what.into();
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let epoch = self.epoch.fetch_add(1, SeqCst) + 1;
        recent.push_back((epoch, what));
        if recent.len() > KEEP {
            recent.pop_front();
        }
        drop(recent);
        fence(SeqCst);
    }

    /// Starts an invalidation: records it now and again when the guard is
    /// dropped, after the caller's removals (see the module docs).
    pub(crate) fn begin(&self, what: impl Into<Matcher>) -> Recording<'_> {
        let what = what.into();
        self.record(what.clone());
        Recording { log: self, what }
    }

    /// Whether an invalidation recorded after `start` matched `key` (or one
    /// of its `tags`).
    pub(crate) fn invalidated_since(&self, start: u64, key: &str, tags: &[String]) -> bool {
        fence(SeqCst);
        if self.epoch.load(SeqCst) == start {
            return false;
        }
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        Self::matched(&recent, start, key, tags)
    }

    /// Runs `insert` unless an invalidation since `start` matched `key` (or
    /// one of its `tags`), atomically with respect to [`record`](Self::record).
    /// Returns whether it ran.
    pub(crate) fn insert_unless_invalidated(
        &self,
        start: u64,
        key: &str,
        tags: &[String],
        insert: impl FnOnce(),
    ) -> bool {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if self.epoch.load(SeqCst) != start && Self::matched(&recent, start, key, tags) {
            return false;
        }
        insert();
        true
    }

    fn matched(recent: &VecDeque<(u64, Matcher)>, start: u64, key: &str, tags: &[String]) -> bool {
        match recent.front() {
            // Records after `start` were dropped: assume the worst.
            Some((oldest, _)) if *oldest > start + 1 => true,
            _ => recent
                .iter()
                .any(|(e, m)| *e > start && m.matches(key, tags)),
        }
    }
}

/// An invalidation under way; recorded again when dropped.
pub(crate) struct Recording<'a> {
    log: &'a InvalidationLog,
    what: Matcher,
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.log.record(self.what.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_later_records() {
        let log = InvalidationLog::default();
        log.record(Arc::new(Glob::new("a:*")));
        let start = log.epoch();
        assert!(!log.invalidated_since(start, "a:1", &[]));
        log.record(Arc::new(Glob::new("b:*")));
        assert!(!log.invalidated_since(start, "a:1", &[]));
        assert!(log.invalidated_since(start, "b:1", &[]));
        log.record(Matcher::Tag("tenant:7".into()));
        assert!(!log.invalidated_since(start, "a:1", &["tenant:8".into()]));
        assert!(log.invalidated_since(start, "a:1", &["x".into(), "tenant:7".into()]));
    }

    #[test]
    fn overflow_is_conservative() {
        let log = InvalidationLog::default();
        let start = log.epoch();
        for i in 0..(KEEP + 5) {
            log.record(Arc::new(Glob::new(&format!("x:{i}"))));
        }
        assert!(log.invalidated_since(start, "unrelated", &[]));
        let later = log.epoch();
        assert!(!log.invalidated_since(later, "unrelated", &[]));
    }
}
