//! Where `redis-server` is (and, for the dashboard's browser test,
//! `chromedriver` and Chromium). Shared by `build.rs`, which decides from it
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
    program("redis-server")
}

/// The first file named `name` in [`search_dirs`].
pub(crate) fn program(name: &str) -> Option<PathBuf> {
    search_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `chromedriver` and the browser it drives: `CHROMEDRIVER` and
/// `CHROME_BIN` when set, else the first found of each (Debian's
/// `chromium-driver` and `chromium` packages, or Google Chrome's names).
#[allow(dead_code)] // not every includer uses it
pub(crate) fn browser() -> Option<(PathBuf, PathBuf)> {
    let set = |var: &str| {
        std::env::var_os(var)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    };
    let driver = set("CHROMEDRIVER").or_else(|| program("chromedriver"))?;
    let browser = set("CHROME_BIN").or_else(|| {
        [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ]
        .into_iter()
        .find_map(program)
    })?;
    Some((driver, browser))
}
