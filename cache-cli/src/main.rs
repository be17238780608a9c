//! `cache-cli`: a terminal for a cache-rs cache in Redis.
//!
//! It connects as the library does (`REDIS_URL` or `--url`, the prefix from
//! `CACHE_KEY_PREFIX` or `--prefix`) and works through the library itself,
//! so it reads and changes only the bookkeeping the library keeps (index
//! sets, markers, stats snapshots, the backplane): it never runs `KEYS`, and
//! an invalidation from here reaches every instance's in-process tier.
//!
//! The CLI's own cache does not count as an instance: it writes no stats
//! snapshot, keeps nothing in-process and subscribes to nothing. It runs in
//! strict mode, so a write that cannot reach Redis is an error here rather
//! than a queued invalidation that would die with the process.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use cache_core::{Cache, ClusterStats, Error, HealthStatus, NamespaceStats, Removal, Stats};
use clap::{Parser, Subcommand};

mod view;
mod watch;

#[derive(Parser, Debug)]
#[command(
    name = "cache-cli",
    version,
    about = "Inspect and operate a cache-rs cache in Redis",
    after_help = "Exit codes: 0 done (health: healthy), 1 failed (health: degraded), 2 Redis unreachable or bad arguments."
)]
struct Cli {
    /// Redis URL (`redis://`, `rediss://`); defaults to REDIS_URL, else
    /// REDIS_HOST / REDIS_PORT as the library reads them.
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    url: Option<String>,
    /// The cache's key prefix; defaults to CACHE_KEY_PREFIX, else the library's default.
    #[arg(long, env = "CACHE_KEY_PREFIX", global = true)]
    prefix: Option<String>,
    /// JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every live instance and their total: hit rate, hits by tier, misses,
    /// errors, per-function table; Redis memory and key count.
    Stats,
    /// Entries per key prefix, largest first.
    Namespaces {
        /// How many segments deep (`user:42:` is 2).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
        depth: u16,
    },
    /// What Redis holds under KEY: TTL, size, format, compression, type
    /// fingerprint, freshness window, and the value when it is JSON or MessagePack.
    Inspect {
        /// The key, without the cache's prefix.
        key: String,
    },
    /// Removes keys and patterns (`user:42:*`) as the library does: every
    /// tier, every instance.
    Invalidate {
        /// Keys or glob patterns, without the cache's prefix.
        patterns: Vec<String>,
        /// Tags (`#[cached(tags = [...])]`) to invalidate as well.
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Removes every entry of the cache (this prefix), on every instance.
    Clear {
        /// Confirms it.
        #[arg(long)]
        yes: bool,
    },
    /// Exit code 0 healthy, 1 degraded (an instance's breaker open,
    /// invalidations waiting for Redis), 2 Redis unreachable.
    Health,
    /// A live view: every instance's rates over the last interval. `q`,
    /// Esc or Ctrl-C quits.
    Watch {
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stops after this many refreshes (default: until quit).
        #[arg(long)]
        iterations: Option<u64>,
    },
}

/// Why a command failed: one line, and its exit code.
#[derive(Debug)]
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    fn unreachable(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match e {
            Error::Config(_) => Failure {
                message: e.to_string(),
                code: 2,
            },
            Error::Unavailable { .. } => Failure::unreachable(e.to_string()),
            _ => Failure::new(e.to_string()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Multi-threaded (one worker): `watch` waits for keys with a blocking call.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}

/// The CLI's cache: strict, nothing in-process, no snapshot, no subscription.
async fn connect(cli: &Cli) -> Result<Cache, Failure> {
    let mut builder = Cache::builder()
        .from_env()
        .l1_enabled(false)
        .backplane(false)
        .stats_interval(Duration::ZERO)
        .distributed_lock(false)
        .strict(true);
    if let Some(url) = &cli.url {
        builder = builder.redis_url(url.as_str());
    }
    if let Some(prefix) = &cli.prefix {
        builder = builder.key_prefix(prefix.as_str());
    }
    let cache = builder.build().await?;
    if cache.backend() != "redis" {
        return Err(Failure {
            message: "no Redis to connect to: set REDIS_URL or pass --url redis://host:port".into(),
            code: 2,
        });
    }
    Ok(cache)
}

/// Fails with the reason when Redis does not answer a `PING`.
async fn reachable(cache: &Cache) -> Result<(), Failure> {
    let health = cache.health().await;
    match health.error {
        Some(reason) => Err(Failure::unreachable(format!(
            "Redis does not answer: {reason}"
        ))),
        None => Ok(()),
    }
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    let cache = connect(&cli).await?;
    if !matches!(cli.command, Command::Health) {
        reachable(&cache).await?;
    }
    match &cli.command {
        Command::Stats => {
            let all = others(cache.stats_all().await?);
            print(&cli, &all, view::stats);
        }
        Command::Namespaces { depth } => {
            let ns: Vec<NamespaceStats> = cache.namespaces_at(usize::from(*depth)).await?;
            print(&cli, &ns, view::namespaces);
        }
        Command::Inspect { key } => match cache.inspect(key).await? {
            Some(info) => print(&cli, &info, view::entry),
            None => {
                return Err(Failure::new(format!(
                    "no key {key:?} under prefix {:?}",
                    cache.key_prefix()
                )));
            }
        },
        Command::Invalidate { patterns, tags } => {
            if patterns.is_empty() && tags.is_empty() {
                return Err(Failure {
                    message: "name at least one key, pattern (user:42:*) or --tag".into(),
                    code: 2,
                });
            }
            let mut done = Vec::new();
            for p in patterns {
                if p.is_empty() || p.chars().all(|c| c == '*') {
                    return Err(Failure {
                        message: format!("{p:?} would match every entry: use `clear --yes`"),
                        code: 2,
                    });
                }
                done.push(view::Invalidated::pattern(p, cache.invalidate(p).await?));
            }
            for t in tags {
                done.push(view::Invalidated::tag(t, cache.invalidate_tag(t).await?));
            }
            print(&cli, &done, view::invalidated);
        }
        Command::Clear { yes } => {
            if !yes {
                return Err(Failure {
                    message: format!(
                        "clear removes every entry under prefix {:?} on every instance: add --yes",
                        cache.key_prefix()
                    ),
                    code: 2,
                });
            }
            let removal: Removal = cache.clear().await?;
            print(&cli, &view::Cleared::from(removal), view::cleared);
        }
        Command::Health => return health(&cli, &cache).await,
        Command::Watch {
            interval,
            iterations,
        } => {
            if !(interval.is_finite() && *interval >= 0.1) {
                return Err(Failure {
                    message: format!("--interval {interval}: at least 0.1 (seconds)"),
                    code: 2,
                });
            }
            let every = Duration::from_secs_f64(*interval);
            let tty = std::io::stdout().is_terminal() && !cli.json;
            watch::run(&cache, every, *iterations, tty, cli.json).await?;
        }
    }
    Ok(0)
}

/// The live instances, without the CLI's own (always first).
fn others(mut all: ClusterStats) -> ClusterStats {
    if !all.instances.is_empty() {
        all.instances.remove(0);
    }
    all
}

async fn health(cli: &Cli, cache: &Cache) -> Result<u8, Failure> {
    let probe = cache.health().await;
    let mut report = view::HealthReport {
        status: "healthy",
        redis_latency_us: probe.latency.as_secs_f64() * 1e6,
        instances: 0,
        problems: Vec::new(),
    };
    if let Some(reason) = probe.error {
        report.status = "unreachable";
        report
            .problems
            .push(format!("Redis does not answer: {reason}"));
    } else if probe.status == HealthStatus::Disabled {
        report
            .problems
            .push("the cache is switched off (CACHE_ENABLED=false)".into());
    } else {
        match cache.stats_all().await {
            Ok(all) => {
                let all = others(all);
                report.instances = all.instances.len();
                for i in &all.instances {
                    let who = view::who(i);
                    problems_of(&who, &i.stats, &mut report.problems);
                }
                if !report.problems.is_empty() {
                    report.status = "degraded";
                }
            }
            Err(e) => {
                report.status = "unreachable";
                report.problems.push(e.to_string());
            }
        }
    }
    print(cli, &report, view::health);
    Ok(match report.status {
        "healthy" => 0,
        "degraded" => 1,
        _ => 2,
    })
}

fn problems_of(who: &str, s: &Stats, out: &mut Vec<String>) {
    match s.breaker {
        Some(cache_core::BreakerState::Open) => out.push(format!("{who}: circuit breaker open")),
        Some(cache_core::BreakerState::HalfOpen) => {
            out.push(format!("{who}: circuit breaker half-open"));
        }
        _ => {}
    }
    if s.pending_invalidations > 0 {
        out.push(format!(
            "{who}: {} invalidations waiting for Redis",
            s.pending_invalidations
        ));
    }
    if s.backplane.is_some_and(|b| !b.connected) {
        out.push(format!("{who}: backplane disconnected"));
    }
}

/// Prints `value` as JSON (`--json`) or with `human`.
fn print<T: serde::Serialize>(cli: &Cli, value: &T, human: fn(&T) -> String) {
    if cli.json {
        match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: cannot write JSON: {e}"),
        }
    } else {
        print!("{}", human(value));
    }
}
