//! Shared pieces of the runnable examples and benchmarks; see `examples/README.md`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// An employee record of about 1 KB, the value the benchmarks cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Employee {
    /// Primary key.
    pub id: u64,
    /// Full name.
    pub name: String,
    /// Work e-mail.
    pub email: String,
    /// Job title.
    pub title: String,
    /// Department name.
    pub department: String,
    /// Free text, the bulk of the record.
    pub bio: String,
    /// A few tags.
    pub skills: Vec<String>,
    /// Manager's id.
    pub manager: Option<u64>,
    /// Still employed.
    pub active: bool,
}

impl Employee {
    /// A deterministic record for `id` (about 1 KB when serialized).
    pub fn sample(id: u64) -> Employee {
        Employee {
            id,
            name: format!("Employee Number {id}"),
            email: format!("employee.{id}@example.com"),
            title: "Senior Software Engineer".into(),
            department: "Platform Engineering".into(),
            bio: "Builds and runs the services that keep payroll and scheduling fast. ".repeat(12),
            skills: vec![
                "rust".into(),
                "redis".into(),
                "postgres".into(),
                "kubernetes".into(),
            ],
            manager: Some(id / 10),
            active: true,
        }
    }
}

/// Same-run comparison of two operations: alternating rounds, medians.
#[derive(Debug)]
pub struct Comparison {
    /// Median time per operation of the measured path.
    pub ours: Duration,
    /// Median time per operation of the building block.
    pub raw: Duration,
}

impl Comparison {
    /// `ours / raw`.
    pub fn ratio(&self) -> f64 {
        self.ours.as_secs_f64() / self.raw.as_secs_f64()
    }
}

/// Runs `rounds` alternating rounds of `iters` operations of each closure
/// (each closure runs `iters` operations and returns the elapsed time),
/// after a warm-up, and returns the medians per operation.
pub fn compare(
    rounds: usize,
    iters: u32,
    mut ours: impl FnMut(u32) -> Duration,
    mut raw: impl FnMut(u32) -> Duration,
) -> Comparison {
    ours(iters);
    raw(iters);
    let (mut a, mut b) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        // Alternate which goes first, so drift and cache warmth even out.
        if round % 2 == 0 {
            a.push(ours(iters) / iters);
            b.push(raw(iters) / iters);
        } else {
            b.push(raw(iters) / iters);
            a.push(ours(iters) / iters);
        }
    }
    Comparison {
        ours: median(a),
        raw: median(b),
    }
}

/// The median of `values`: the middle one once sorted (of an even count, the
/// upper of the two middle ones), so it is always a measured value. For
/// times, counts and rates alike.
///
/// # Panics
///
/// If `values` is empty or holds a value that does not compare (NaN).
pub fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).expect("no NaN among measurements"));
    values[values.len() / 2]
}

/// The value at quantile `q` (0 to 1) of `sorted` (ascending): p50 is `0.5`,
/// p99 `0.99`. Zero when `sorted` is empty.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or_default()
}

/// Times `f` once.
pub fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}
