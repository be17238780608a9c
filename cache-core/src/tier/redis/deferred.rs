//! What the outage queue holds: an invalidation that has not reached
//! Redis yet, and which reads it holds back. Shared by the queue and its
//! journal.

/// An invalidation that has not reached Redis yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Deferred {
    Key(String),
    Pattern(String),
    /// A prefix pattern's share in one bucket of a cluster.
    PatternIn(usize, String),
    /// A tag, in every bucket.
    Tag(String),
    /// A tag's share in one bucket of a cluster.
    TagIn(usize, String),
}

/// Which reads an item holds back until it is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Every read.
    All,
    /// Reads of one cluster bucket.
    Bucket(usize),
}
