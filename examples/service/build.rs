//! Decides whether the Redis tests run, exactly as `tests/build.rs` does
//! (and with the same probe, `tests/src/redis_binary.rs`, included rather
//! than copied): when `redis-server` is not found and `CACHE_REQUIRE_REDIS`
//! is not `1`, it sets the cfg `skip_redis`, under which the tests that need
//! the server are `#[ignore]`d with the reason. Likewise `skip_browser` for
//! the dashboard's browser test, without `chromedriver` and Chromium and
//! without `CACHE_REQUIRE_BROWSER=1`.

#[path = "../../tests/src/redis_binary.rs"]
mod redis_binary;

fn main() {
    browser();
    println!("cargo::rustc-check-cfg=cfg(skip_redis)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../../tests/src/redis_binary.rs");
    println!("cargo::rerun-if-env-changed=REDIS_SERVER_BIN");
    println!("cargo::rerun-if-env-changed=PATH");
    if let Some(binary) = redis_binary::find() {
        if binary.exists() {
            println!("cargo::rerun-if-changed={}", binary.display());
        }
        return;
    }
    println!("cargo::rerun-if-env-changed=CACHE_REQUIRE_REDIS");
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
        "cargo::warning=redis-server not found: the service's Redis test is reported as ignored \
         (install it or set REDIS_SERVER_BIN; CACHE_REQUIRE_REDIS=1 makes this a failure)"
    );
}

fn browser() {
    println!("cargo::rustc-check-cfg=cfg(skip_browser)");
    println!("cargo::rerun-if-env-changed=CHROMEDRIVER");
    println!("cargo::rerun-if-env-changed=CHROME_BIN");
    println!("cargo::rerun-if-env-changed=CACHE_REQUIRE_BROWSER");
    if redis_binary::browser().is_some() {
        return;
    }
    for dir in redis_binary::search_dirs() {
        if dir.is_dir() {
            println!("cargo::rerun-if-changed={}", dir.display());
        }
    }
    if std::env::var("CACHE_REQUIRE_BROWSER").as_deref() == Ok("1") {
        return;
    }
    println!("cargo::rustc-cfg=skip_browser");
    println!(
        "cargo::warning=chromedriver or Chromium not found: the dashboard's browser test is \
         reported as ignored (apt-get install chromium chromium-driver; CACHE_REQUIRE_BROWSER=1 \
         makes this a failure)"
    );
}
