//! [`Options`]: the per-function settings of a cached call, one type for
//! the attribute sites (`#[cached(...)]`, built in a `const`) and the
//! manual API. A new option is a field here, a setter on the site, and the
//! attribute that sets it.

use std::time::Duration;

use crate::codec::{Compression, Format};
use crate::ttl::{Refresh, Ttl};

/// How one function (or one manual call) caches its values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) ttl: Ttl,
    /// `cache_none`: `None` results are stored too.
    pub(crate) cache_none: bool,
    pub(crate) format: Option<Format>,
    pub(crate) compression: Option<Compression>,
    /// `version = N`: part of the stored type's fingerprint.
    pub(crate) version: u32,
    /// `l1_ttl`: a cap on in-process copies.
    pub(crate) l1_ttl: Option<Duration>,
    /// The stampede lock, if the function says (else the cache's setting).
    pub(crate) lock: Option<bool>,
    /// `stale_if_error`: how long an expired value is kept as a fallback.
    pub(crate) stale: Option<Duration>,
    /// `timeout`: how long the origin may take while a stale value is at hand.
    pub(crate) timeout: Option<Duration>,
    /// `refresh`: when values are refreshed in the background.
    pub(crate) refresh: Option<Refresh>,
}

impl Options {
    /// The defaults, with `ttl`.
    pub(crate) const fn new(ttl: Ttl) -> Options {
        Options {
            ttl,
            cache_none: false,
            format: None,
            compression: None,
            version: 0,
            l1_ttl: None,
            lock: None,
            stale: None,
            timeout: None,
            refresh: None,
        }
    }

    /// Whether the stale window and the origin's time travel with the value.
    pub(crate) fn keeps_meta(&self) -> bool {
        self.stale.is_some() || self.refresh.is_some()
    }
}
