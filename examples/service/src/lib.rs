//! An employee API on axum and SQLite, cached with `#[cached]` and
//! `#[invalidates]`: the service our users run, with Redis shared by its
//! instances, Prometheus metrics and the cache's admin routes.
//!
//! ```text
//! GET  /employees/{id}          one employee (cached: employee:<id>)
//! GET  /employees?page=&size=   a page, size 1..=100 (cached: employees:page:<page>:size:<size>)
//! PUT  /employees/{id}          {"name", "title", "department"}; drops employee:<id> and employees:*
//! GET  /metrics                 Prometheus text
//! GET  /healthz                 database, cache backend, backplane
//! /admin/cache/...              the cache's admin routes, with CACHE_ADMIN_TOKEN only, behind its token
//! /admin/cache/dashboard        the cache's dashboard page (a browser asks for the token as a password)
//! ```
//!
//! Configuration, from the environment:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PORT` | port to listen on (`0`: any free one) | `3000` |
//! | `HOST` | address to listen on | `127.0.0.1` |
//! | `DATABASE_PATH` | the SQLite file, created and seeded with 200 employees if empty | `employees.sqlite3` in the temporary directory |
//! | `REDIS_URL` | Redis shared by the instances (and the other `CACHE_*` variables of [`cache_core::CacheBuilder`]) | none: in-process cache only |
//! | `CACHE_ADMIN_TOKEN` | bearer token of `/admin/cache` (or HTTP Basic's password, for the dashboard in a browser) | none: the admin routes are not mounted |
//! | `WARM_ON_START` | run the `first_page` warmer (page 1 and its employees) at start; it also runs every 10 minutes (one instance among those sharing Redis), from `POST /admin/cache/warm` and from the dashboard | `true` |
//! | `RUST_LOG` | log filter (logs go to stderr) | `info` |
//!
//! Once listening it prints one line to stdout, `listening on http://ADDR`,
//! and it stops gracefully on Ctrl-C or SIGTERM.
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod auth;
pub mod db;
pub mod routes;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use cache_core::{Cache, Warmer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

pub use auth::AdminToken;
use db::{Db, DbError, Repository};
use routes::AppState;

/// Histogram buckets of `cache_origin_duration_seconds`: the queries, from
/// half a millisecond to 10 s.
pub const ORIGIN_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Histogram buckets of `cache_redis_command_duration_seconds`: Redis
/// commands, from 100 µs to past the 100 ms command timeout.
pub const REDIS_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
];

/// How long requests in flight may take to finish once a shutdown signal came.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long the cache may take to flush what it queued during an outage.
const CACHE_SHUTDOWN: Duration = Duration::from_secs(5);

/// How often the Prometheus recorder's histograms are compacted.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// An environment variable has a value the service refuses.
    #[error("invalid {name}={value:?}: {reason}")]
    Config {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// The cache could not be built or installed.
    #[error("cache: {0}")]
    Cache(#[from] cache_core::Error),
    /// The database could not be opened.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// The Prometheus recorder could not be installed.
    #[error("metrics: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    /// Listening or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The service's settings (the cache reads its own, `REDIS_URL` and
/// `CACHE_*`, through [`cache_core::CacheBuilder::from_env`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`HOST`).
    pub host: IpAddr,
    /// Port to listen on (`PORT`; 0 picks a free one).
    pub port: u16,
    /// The SQLite file (`DATABASE_PATH`).
    pub database_path: PathBuf,
    /// The admin routes' token (`CACHE_ADMIN_TOKEN`); `None`: not mounted.
    pub admin_token: Option<AdminToken>,
    /// Whether the `first_page` warmer runs at start (`WARM_ON_START`,
    /// default true); it runs every [`WARM_EVERY`] and when asked either way.
    pub warm_on_start: bool,
}

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    ///
    /// [`ServiceError::Config`] naming a variable whose value is refused.
    pub fn from_env() -> Result<Config, ServiceError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (empty values count as unset).
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ServiceError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let port = match get("PORT") {
            None => 3000,
            Some(v) => v.trim().parse().map_err(|_| ServiceError::Config {
                name: "PORT",
                value: v.clone(),
                reason: "expected a port number, 0 to 65535".into(),
            })?,
        };
        let host = match get("HOST") {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(v) => v.trim().parse().map_err(|_| ServiceError::Config {
                name: "HOST",
                value: v.clone(),
                reason: "expected an IP address, e.g. 127.0.0.1 or 0.0.0.0".into(),
            })?,
        };
        let database_path = get("DATABASE_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("employees.sqlite3"));
        let admin_token = get("CACHE_ADMIN_TOKEN").and_then(|t| AdminToken::new(&t));
        let warm_on_start = match get("WARM_ON_START").as_deref().map(str::trim) {
            None | Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(v) => {
                return Err(ServiceError::Config {
                    name: "WARM_ON_START",
                    value: v.to_owned(),
                    reason: "expected true or false".into(),
                });
            }
        };
        Ok(Config {
            host,
            port,
            database_path,
            admin_token,
            warm_on_start,
        })
    }
}

/// Installs the Prometheus recorder, with buckets for the cache's two
/// histograms. Do it before building the cache: its metric handles are
/// registered when it is built, and handles made without a recorder record
/// nothing.
///
/// # Errors
///
/// When a recorder is already installed.
pub fn install_metrics() -> Result<PrometheusHandle, ServiceError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("cache_origin_duration_seconds".into()),
            ORIGIN_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("cache_redis_command_duration_seconds".into()),
            REDIS_BUCKETS,
        )?
        .install_recorder()?;
    Ok(handle)
}

/// How often the first page is warmed (one instance per period).
pub const WARM_EVERY: Duration = Duration::from_secs(600);

/// The warmer `first_page`: the first page of employees and each employee
/// on it, written under the keys `GET /employees` and `GET /employees/{id}`
/// read, at start (with `on_start`) and every [`WARM_EVERY`] (by one
/// instance among those sharing Redis).
pub fn first_page_warmer(repo: Repository, on_start: bool) -> Warmer {
    let warmer = Warmer::new("first_page", move |w| {
        let repo = repo.clone();
        async move {
            let page = w.call(repo.employees(1, routes::DEFAULT_PAGE_SIZE)).await?;
            for e in &page.items {
                w.call(repo.employee(e.id)).await?;
            }
            Ok::<_, DbError>(())
        }
    })
    .every(WARM_EVERY);
    if on_start { warmer.on_start() } else { warmer }
}

/// The whole application: the API, and the cache's admin routes under
/// `/admin/cache` behind `admin_token` (not mounted without one).
pub fn app(state: AppState, admin_token: Option<AdminToken>) -> Router {
    let cache = state.cache.clone();
    let api = routes::router(state);
    match admin_token {
        Some(token) => api.nest("/admin/cache", auth::protect(admin_router(cache), token)),
        None => api,
    }
}

/// The cache's admin router, with the API's JSON 404 and 405 for paths and
/// methods it does not route (set before the auth layer, so those need the
/// token too).
fn admin_router(cache: Cache) -> Router {
    cache_core::admin::router(cache)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
}

/// Builds everything from the environment and serves until Ctrl-C or
/// SIGTERM. Prints `listening on http://ADDR` to stdout once listening.
///
/// # Errors
///
/// When the configuration is refused, or the cache, the database, the
/// metrics recorder or the listener cannot be set up.
pub async fn run() -> Result<(), ServiceError> {
    let config = Config::from_env()?;
    // Before the cache: its metric handles are registered when it is built.
    let metrics = install_metrics()?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_UPKEEP);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });

    let cache = Cache::builder().from_env().build().await?;
    cache.clone().install()?;
    let db = Db::open(&config.database_path).await?;
    tracing::info!(
        database = %config.database_path.display(),
        cache_backend = cache.backend(),
        admin = config.admin_token.is_some(),
        "starting"
    );
    let repo = Repository::new(db);
    cache.add_warmer(first_page_warmer(repo.clone(), config.warm_on_start))?;
    let state = AppState {
        repo,
        cache: cache.clone(),
        metrics,
    };
    let app = app(state, config.admin_token.clone());

    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Io {
            context: format!("cannot listen on {addr}"),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServiceError::Io {
        context: "local address".into(),
        source,
    })?;
    let shutdown = shutdown_signal()?;
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping.send(());
    });
    announce(local)?;
    // Requests in flight get SHUTDOWN_GRACE to finish; a connection that
    // stays open longer does not keep the process alive.
    let grace = async {
        match stopped.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = server => served.map_err(|source| ServiceError::Io {
            context: "serving".into(),
            source,
        })?,
        () = grace => tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open: stopping anyway"),
    }
    // Releases this instance's stampede locks and flushes invalidations
    // queued during a Redis outage, if Redis answers in time.
    let report = cache.shutdown(CACHE_SHUTDOWN).await;
    if !report.unflushed.is_empty() {
        tracing::warn!(unflushed = ?report.unflushed, "invalidations that did not reach Redis");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The one line on stdout (tests and scripts read the port from it).
fn announce(addr: SocketAddr) -> Result<(), ServiceError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")
        .and_then(|()| out.flush())
        .map_err(|source| ServiceError::Io {
            context: "stdout".into(),
            source,
        })
}

/// A future that completes on Ctrl-C (SIGINT), or SIGTERM on Unix. On
/// Unix the handlers are registered here, before the service announces
/// itself, so a signal sent as soon as it is listening is not missed.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServiceError> {
    use tokio::signal::unix::{SignalKind, signal};
    let io = |source| ServiceError::Io {
        context: "cannot listen for signals".into(),
        source,
    };
    let mut interrupt = signal(SignalKind::interrupt()).map_err(io)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(io)?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down: finishing requests in flight");
    })
}

/// A future that completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServiceError> {
    Ok(async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: finishing requests in flight");
    })
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Already set (embedded in a program that has one): keep that one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The binary's and the example's `main`: logs, a runtime, [`run`], and the
/// error (if any) on stderr with a failing exit code.
pub fn main() -> ExitCode {
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("employee-service: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "employee-service failed");
            eprintln!("employee-service: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ServiceError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults() -> Result<(), ServiceError> {
        let c = config(&[])?;
        assert_eq!(c.port, 3000);
        assert_eq!(c.host, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            c.database_path,
            std::env::temp_dir().join("employees.sqlite3")
        );
        assert!(c.admin_token.is_none());
        assert!(c.warm_on_start);
        Ok(())
    }

    #[test]
    fn reads_and_checks_variables() -> Result<(), ServiceError> {
        let c = config(&[
            ("PORT", "0"),
            ("HOST", "0.0.0.0"),
            ("DATABASE_PATH", "/tmp/x.db"),
            ("CACHE_ADMIN_TOKEN", "t"),
        ])?;
        assert_eq!(c.port, 0);
        assert_eq!(c.host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.database_path, PathBuf::from("/tmp/x.db"));
        assert!(c.admin_token.is_some());
        assert!(config(&[("CACHE_ADMIN_TOKEN", " ")])?.admin_token.is_none());
        assert!(!config(&[("WARM_ON_START", "false")])?.warm_on_start);
        let err = config(&[("WARM_ON_START", "maybe")])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid WARM_ON_START=\"maybe\": expected true or false")
        );
        let err = config(&[("PORT", "70000")]).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid PORT=\"70000\": expected a port number, 0 to 65535")
        );
        assert!(config(&[("HOST", "localhost:1")]).is_err());
        Ok(())
    }
}
