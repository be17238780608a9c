//! Holds the `crate = "..."` override test; see `tests/rename.rs`.
