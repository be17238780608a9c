//! Decides whether the Redis tests run. When `redis-server` is not found
//! (see `src/redis_binary.rs`) and `CACHE_REQUIRE_REDIS` is not `1`, it sets
//! the cfg `skip_redis`, under which every test that needs the server is
//! `#[ignore]`d with the reason: libtest then reports them as ignored in its
//! summary, instead of passing tests that checked nothing. With
//! `CACHE_REQUIRE_REDIS=1` they run, and fail with the install hint.

#[path = "src/redis_binary.rs"]
mod redis_binary;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(skip_redis)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/redis_binary.rs");
    println!("cargo::rerun-if-env-changed=REDIS_SERVER_BIN");
    println!("cargo::rerun-if-env-changed=PATH");
    if let Some(binary) = redis_binary::find() {
        // Probe again if it goes away. (Whether CACHE_REQUIRE_REDIS is set
        // does not matter while it is there: no rebuild when it changes.)
        if binary.exists() {
            println!("cargo::rerun-if-changed={}", binary.display());
        }
        return;
    }
    println!("cargo::rerun-if-env-changed=CACHE_REQUIRE_REDIS");
    // Probe again when one of the searched directories changes (an install).
    for dir in redis_binary::search_dirs() {
        if dir.is_dir() {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
    }
    if std::env::var("CACHE_REQUIRE_REDIS").as_deref() == Ok("1") {
        return;
    }
    println!("cargo::rustc-cfg=skip_redis");
    println!(
        "cargo::warning=redis-server not found: the tests that need it are reported as ignored \
         (install it or set REDIS_SERVER_BIN; CACHE_REQUIRE_REDIS=1 makes this a failure)"
    );
}
