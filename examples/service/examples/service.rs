//! The employee service: axum + SQLite, cached with `#[cached]` and
//! `#[invalidates]`, with Prometheus metrics and the cache's admin routes.
//!
//! ```sh
//! cargo run --example service
//! PORT=8080 REDIS_URL=redis://127.0.0.1:6379/0 CACHE_ADMIN_TOKEN=s3cret cargo run --example service
//! ```
//!
//! Configuration and routes: the `example-service` crate's docs and
//! `examples/README.md`.

fn main() -> std::process::ExitCode {
    example_service::main()
}
