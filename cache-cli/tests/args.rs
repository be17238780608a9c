//! The binary without a Redis to talk to: bad arguments and unreachable
//! servers are one line on stderr and a non-zero exit, never a panic. (The
//! commands against a live Redis are tested in the workspace's `tests`
//! crate, `tests/cli.rs`, which starts its own servers.)

use std::process::{Command, Output};

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cache-cli"))
        .args(args)
        .env_remove("REDIS_URL")
        .env_remove("REDIS_HOST")
        .env_remove("CACHE_KEY_PREFIX")
        .output()
        .unwrap()
}

fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    assert!(!err.contains("panicked"), "{err:?}");
    err
}

#[test]
fn help_lists_the_commands() {
    let out = cli(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "stats",
        "namespaces",
        "inspect",
        "invalidate",
        "clear",
        "health",
        "watch",
    ] {
        assert!(help.contains(command), "{command} in {help}");
    }
}

#[test]
fn without_a_redis_url_it_says_how_to_give_one() {
    let out = cli(&["stats"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("set REDIS_URL or pass --url"));
}

#[test]
fn a_malformed_url_is_refused() {
    let out = cli(&["--url", "http://nope", "stats"]);
    assert_eq!(out.status.code(), Some(2));
    one_line_error(&out);
}

#[test]
fn an_unreachable_redis_is_exit_code_2() {
    // Port 1 on loopback: nothing listens there.
    for command in ["stats", "namespaces"] {
        let out = cli(&["--url", "redis://127.0.0.1:1", command]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(one_line_error(&out).contains("Redis does not answer"));
    }
    let out = cli(&["--url", "redis://127.0.0.1:1", "health"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("unreachable"));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = cli(&["namespaces", "--depth", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
