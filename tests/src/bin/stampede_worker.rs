//! One "service instance" for the multi-process stampede suite
//! (`tests/multi_process.rs`): the worker of [`tests::stampede`], as a
//! process. Builds a cache over the given Redis, prints `ready`, waits for
//! `go` on stdin, then calls one cold key from many tasks at once and prints
//! a JSON report.
//!
//! ```text
//! stampede_worker <redis-url> <prefix> <key> <tasks> <origin-ms> <lock-ttl-ms> <ttl-ms> [locked|unlocked|aside] [hold]
//! ```

use tests::stampede::{WorkerArgs, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    serve(WorkerArgs::parse(&args)?).await
}
