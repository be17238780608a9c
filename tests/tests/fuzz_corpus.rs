//! The fuzz targets' committed corpora (`fuzz/corpus/<target>/`), replayed
//! on stable Rust through the same entry points the fuzzers call, so every
//! input a fuzzer kept (and every crash it found, once fixed and added)
//! stays a regression test. The fuzzers themselves run with
//! `cargo +nightly fuzz run <target>` (README, "Fuzzing").

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| {
            let path = f.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    let files = corpus(target);
    assert!(files.len() >= 10, "{target}: {} inputs", files.len());
    for (path, bytes) in files {
        let outcome = std::panic::catch_unwind(|| run(&bytes));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
    }
}

#[test]
fn envelope_corpus() {
    replay("envelope", cache_core::__fuzz::envelope);
    for seed in cache_core::__fuzz::envelope_seeds() {
        cache_core::__fuzz::envelope(&seed);
    }
}

#[test]
fn keys_corpus() {
    replay("keys", cache_core::__fuzz::keys);
}

#[test]
fn glob_corpus() {
    replay("glob", cache_core::__fuzz::glob);
}

/// Writes the envelope fuzzer's seeds (valid entries of every kind) into
/// its corpus: `cargo test -p tests --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes files: run by hand to reseed the corpus"]
fn write_envelope_seeds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/envelope");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, seed) in cache_core::__fuzz::envelope_seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
    }
}
