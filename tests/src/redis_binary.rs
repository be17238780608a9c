//! Where `redis-server` is. Shared by `build.rs`, which decides from it
//! whether the Redis tests are reported as ignored, and by
//! [`RedisServer`](crate::redis_server::RedisServer), which starts it: both
//! look in the same places.

use std::path::PathBuf;

/// The directories searched, in order: those of `PATH`, then `/usr/sbin` and
/// `/usr/local/sbin` (where some distributions put servers).
pub(crate) fn search_dirs() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .collect()
}

/// `REDIS_SERVER_BIN` when it is set and not empty (taken as given, so that
/// a wrong setting fails loudly rather than skips), else the first
/// `redis-server` file in [`search_dirs`].
pub(crate) fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REDIS_SERVER_BIN").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    search_dirs()
        .into_iter()
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}
