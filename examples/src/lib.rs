//! Runnable examples for cache-core; see `examples/README.md`.
