//! Compile-time checks of the attributes: one mistake per file under
//! `tests/ui/<topic>/`, with the expected message in the `.stderr` beside it.
//! Regenerate with `TRYBUILD=overwrite cargo test -p tests --test compile_fail`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*/*.rs");
}
