//! An admin API for a cache, as an [`axum::Router`] the application mounts
//! under any path (feature `axum`).
//!
//! | method and path | what |
//! |---|---|
//! | `GET /stats` | this instance's [`Stats`](crate::Stats) |
//! | `GET /stats?scope=all` | every live instance and their sum ([`ClusterStats`](crate::ClusterStats)) |
//! | `GET /health` | the [`Health`](crate::Health) probe: 200 when healthy (or switched off), 503 when degraded |
//! | `POST /invalidate` | `{"patterns": ["user:42:*", "employee:7"], "tags": ["tenant:7"]}` (either list may be left out): removes them as [`Cache::invalidate`] and [`Cache::invalidate_tag`] do (every tier, every instance, kept through an outage); answers the count per pattern or tag and whether it is queued; 200 when done, 202 when part of it waits for Redis |
//! | `DELETE /clear?confirm=true` | every entry of the cache ([`Cache::clear`]); 200 when done, 202 when it waits for Redis |
//! | `GET /namespaces` | entries per top-level prefix ([`Cache::namespaces`]) |
//! | `GET /warmers` | the registered warmers' names ([`Cache::warmers`]) |
//! | `GET /dashboard` | (feature `dashboard`) a page over these endpoints: every live instance with its hit rate and breaker, hit-rate and Redis-latency charts of the last minutes, the per-function table, namespaces, warmers with a "warm now" button, and an invalidate form that asks for confirmation. Its assets are embedded; it is served with a Content-Security-Policy that allows only them, and it shows keys and labels as text |
//! | `POST /warm` | `{"names": ["products"]}`: runs those warmers now, here ([`Cache::warm`]); answers a report each (`written`, `error`, `duration_ms`) and how many failed; 400 on an unknown name, listing the known ones |
//!
//! Everything is JSON. A request the router refuses gets a 400 with
//! `{"error": "..."}` naming the problem, and changes nothing: malformed
//! JSON, unknown fields, an empty pattern list, an empty pattern, a pattern
//! longer than [`MAX_KEY_LEN`], more than [`MAX_PATTERNS`] patterns, a
//! pattern of wildcards only (that is `/clear`), an unknown `scope`, a
//! `/clear` without `confirm=true`. When Redis cannot be read (for `stats?scope=all`,
//! `namespaces`) or, in strict mode, written, the answer is a 503 with the reason.
//!
//! [`read_only`] serves `/stats` and `/health` alone, for exposing beside
//! the application's public routes.
//!
//! # Auth
//!
//! The router carries no auth of its own: that is the application's. Put
//! a layer on the router before nesting it, with `.layer` (not
//! `.route_layer`), so unknown paths under it are refused too:
//!
//! ```
//! use axum::extract::Request;
//! use axum::http::{StatusCode, header};
//! use axum::middleware::{self, Next};
//! use axum::response::Response;
//!
//! async fn bearer(request: Request, next: Next) -> Result<Response, StatusCode> {
//!     let expected = std::env::var("CACHE_ADMIN_TOKEN").map_err(|_| StatusCode::UNAUTHORIZED)?;
//!     let given = request
//!         .headers()
//!         .get(header::AUTHORIZATION)
//!         .and_then(|v| v.to_str().ok())
//!         .and_then(|v| v.strip_prefix("Bearer "));
//!     // Compare in constant time in production (e.g. the `subtle` crate).
//!     if given != Some(expected.as_str()) {
//!         return Err(StatusCode::UNAUTHORIZED);
//!     }
//!     Ok(next.run(request).await)
//! }
//!
//! # async fn app() -> Result<(), cache_core::Error> {
//! let cache = cache_core::Cache::builder().build().await?;
//! let app: axum::Router = axum::Router::new()
//!     // ... the application's routes ...
//!     .nest(
//!         "/admin/cache",
//!         cache_core::admin::router(cache.clone()).layer(middleware::from_fn(bearer)),
//!     )
//!     .nest("/cache", cache_core::admin::read_only(cache));
//! # let _ = app; Ok(()) }
//! ```

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::error::Error;
use crate::key::MAX_KEY_LEN;
use crate::stats::HealthStatus;

/// The most patterns one `POST /invalidate` takes.
pub const MAX_PATTERNS: usize = 1000;

/// The whole admin API over `cache`; see the [module docs](self).
///
/// ```
/// # async fn app() -> Result<(), cache_core::Error> {
/// let cache = cache_core::Cache::builder().build().await?;
/// let app: axum::Router = axum::Router::new().nest("/admin/cache", cache_core::admin::router(cache));
/// # let _ = app; Ok(()) }
/// ```
pub fn router(cache: Cache) -> Router {
    let router = Router::new()
        .route("/stats", get(stats))
        .route("/health", get(health))
        .route("/invalidate", post(invalidate))
        .route("/clear", delete(clear))
        .route("/namespaces", get(namespaces))
        .route("/warmers", get(warmers))
        .route("/warm", post(warm));
    #[cfg(feature = "dashboard")]
    let router = router
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style));
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(cache)
}

/// `GET /stats` and `GET /health` only: nothing that changes the cache.
///
/// ```
/// # async fn app() -> Result<(), cache_core::Error> {
/// let cache = cache_core::Cache::builder().build().await?;
/// let app: axum::Router = axum::Router::new().nest("/cache", cache_core::admin::read_only(cache));
/// # let _ = app; Ok(()) }
/// ```
pub fn read_only(cache: Cache) -> Router {
    Router::new()
        .route("/stats", get(stats))
        .route("/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(cache)
}

async fn not_found() -> Refusal {
    Refusal {
        status: StatusCode::NOT_FOUND,
        message: "no such endpoint: the admin API serves /stats, /health, /invalidate, /clear and /namespaces".into(),
    }
}

async fn method_not_allowed() -> Refusal {
    Refusal {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "method not allowed: GET /stats, GET /health, POST /invalidate, DELETE /clear, GET /namespaces, GET /warmers, POST /warm".into(),
    }
}

#[cfg(feature = "dashboard")]
mod dashboard {
    //! The dashboard page and its assets, embedded in the binary.

    use axum::http::header;
    use axum::response::IntoResponse;

    /// Only the page's own script, style and API calls; no inline script,
    /// no framing, no form posts elsewhere.
    const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'";

    fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CONTENT_SECURITY_POLICY, POLICY),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
    }

    pub(super) async fn page() -> impl IntoResponse {
        asset(
            "text/html; charset=utf-8",
            include_str!("admin/dashboard.html"),
        )
    }

    pub(super) async fn script() -> impl IntoResponse {
        asset(
            "text/javascript; charset=utf-8",
            include_str!("admin/dashboard.js"),
        )
    }

    pub(super) async fn style() -> impl IntoResponse {
        asset(
            "text/css; charset=utf-8",
            include_str!("admin/dashboard.css"),
        )
    }
}

/// A refusal or failure: its status and `{"error": message}`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        let status = match e {
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refusal {
            status,
            message: e.to_string(),
        }
    }
}

impl From<QueryRejection> for Refusal {
    fn from(e: QueryRejection) -> Refusal {
        Refusal::bad_request(e.body_text())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (
            self.status,
            axum::Json(Body {
                error: self.message,
            }),
        )
            .into_response()
    }
}

type Answer = Result<Response, Refusal>;

fn json<T: Serialize>(status: StatusCode, body: &T) -> Answer {
    Ok((status, axum::Json(body)).into_response())
}

async fn stats(
    State(cache): State<Cache>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer {
    let Query(query) = query?;
    match query.get("scope").map(String::as_str) {
        None | Some("instance") => json(StatusCode::OK, &cache.stats().await),
        Some("all") => json(StatusCode::OK, &cache.stats_all().await?),
        Some(other) => Err(Refusal::bad_request(format!(
            "unknown scope {other:?}: use `scope=all` for every live instance, or leave it out for this one"
        ))),
    }
}

async fn health(State(cache): State<Cache>) -> Answer {
    let health = cache.health().await;
    let status = match health.status {
        HealthStatus::Healthy | HealthStatus::Disabled => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    json(status, &health)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmRequest {
    names: Vec<String>,
}

#[derive(Serialize)]
struct WarmAnswer {
    name: String,
    written: u64,
    error: Option<String>,
    duration_ms: f64,
}

async fn warmers(State(cache): State<Cache>) -> Answer {
    #[derive(Serialize)]
    struct Warmers {
        warmers: Vec<String>,
    }
    json(
        StatusCode::OK,
        &Warmers {
            warmers: cache.warmers(),
        },
    )
}

async fn warm(State(cache): State<Cache>, body: Bytes) -> Answer {
    let known = cache.warmers();
    let WarmRequest { names } = serde_json::from_slice(&body).map_err(|e| {
        Refusal::bad_request(format!(
            "the body must be JSON like {{\"names\": [\"products\"]}} (known warmers: {}): {e}",
            known.join(", ")
        ))
    })?;
    if names.is_empty() {
        return Err(Refusal::bad_request(format!(
            "`names` is empty: name at least one warmer (known: {})",
            known.join(", ")
        )));
    }
    if let Some(unknown) = names.iter().find(|n| !known.contains(n)) {
        return Err(Refusal::bad_request(format!(
            "no warmer named {unknown:?} (known: {})",
            known.join(", ")
        )));
    }
    let mut reports = Vec::with_capacity(names.len());
    for name in &names {
        let r = cache.warm(name).await?;
        reports.push(WarmAnswer {
            name: r.name,
            written: r.written,
            error: r.error,
            duration_ms: r.duration.as_secs_f64() * 1000.0,
        });
    }
    #[derive(Serialize)]
    struct Warmed {
        reports: Vec<WarmAnswer>,
        failed: usize,
    }
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    json(StatusCode::OK, &Warmed { reports, failed })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidateRequest {
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Serialize)]
struct Removed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    removed: u64,
    /// Redis could not be reached: replayed when it answers.
    queued: bool,
}

#[derive(Serialize)]
struct InvalidateResponse {
    removed: Vec<Removed>,
    total: u64,
    /// Invalidations waiting for Redis after these (they are replayed
    /// when it answers; until then the counts cover the in-process tier).
    pending_invalidations: u64,
    warnings: Vec<String>,
}

/// Why `pattern` (the `n`th, from 1) is refused, if it is.
fn refuse_pattern(n: usize, pattern: &str) -> Option<String> {
    if pattern.is_empty() {
        return Some(format!("pattern {n} is empty"));
    }
    if pattern.len() > MAX_KEY_LEN {
        return Some(format!(
            "pattern {n} is {} bytes long; keys and patterns are at most {MAX_KEY_LEN}",
            pattern.len()
        ));
    }
    if pattern.chars().all(|c| matches!(c, '*' | '?')) {
        return Some(format!(
            "pattern {n} ({pattern:?}) matches every entry: use DELETE /clear?confirm=true to clear the cache"
        ));
    }
    None
}

async fn invalidate(State(cache): State<Cache>, body: Bytes) -> Answer {
    let request: InvalidateRequest = serde_json::from_slice(&body).map_err(|e| {
        Refusal::bad_request(format!(
            "the body must be JSON like {{\"patterns\": [\"user:42:*\"]}}: {e}"
        ))
    })?;
    let InvalidateRequest { patterns, tags } = request;
    if patterns.is_empty() && tags.is_empty() {
        return Err(Refusal::bad_request(
            "`patterns` and `tags` are empty: name at least one key, pattern or tag, e.g. {\"patterns\": [\"user:42:*\"]} or {\"tags\": [\"tenant:7\"]}",
        ));
    }
    if patterns.len() + tags.len() > MAX_PATTERNS {
        return Err(Refusal::bad_request(format!(
            "{} patterns and tags in one request; at most {MAX_PATTERNS}",
            patterns.len() + tags.len()
        )));
    }
    if let Some((n, t)) = tags
        .iter()
        .enumerate()
        .find(|(_, t)| t.is_empty() || t.len() > MAX_KEY_LEN)
    {
        return Err(Refusal::bad_request(format!(
            "tag {} is {} bytes long; tags are 1 to {MAX_KEY_LEN} bytes",
            n + 1,
            t.len()
        )));
    }
    if let Some(message) = patterns
        .iter()
        .enumerate()
        .find_map(|(i, p)| refuse_pattern(i + 1, p))
    {
        return Err(Refusal::bad_request(message));
    }
    let prefix = cache.key_prefix();
    let warnings = patterns
        .iter()
        .filter(|p| !prefix.is_empty() && p.strip_prefix(prefix).is_some_and(|r| r.starts_with(':')))
        .map(|p| {
            format!(
                "{p:?} starts with the cache's prefix {prefix:?}: patterns are relative to it, so this one matches keys under \"{prefix}:{p}\""
            )
        })
        .collect();
    let mut removed = Vec::with_capacity(patterns.len() + tags.len());
    let mut total = 0;
    let mut queued = false;
    for pattern in patterns {
        let done = cache.invalidate(&pattern).await?;
        total += done.removed;
        queued |= done.queued;
        removed.push(Removed {
            pattern: Some(pattern),
            tag: None,
            removed: done.removed,
            queued: done.queued,
        });
    }
    for tag in tags {
        let done = cache.invalidate_tag(&tag).await?;
        total += done.removed;
        queued |= done.queued;
        removed.push(Removed {
            pattern: None,
            tag: Some(tag),
            removed: done.removed,
            queued: done.queued,
        });
    }
    json(
        status_of(queued),
        &InvalidateResponse {
            removed,
            total,
            pending_invalidations: cache.pending_invalidations(),
            warnings,
        },
    )
}

async fn clear(
    State(cache): State<Cache>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Answer {
    let Query(query) = query?;
    if query.get("confirm").map(String::as_str) != Some("true") {
        return Err(Refusal::bad_request(
            "clearing removes every entry of the cache, on every instance: add ?confirm=true",
        ));
    }
    let done = cache.clear().await?;
    #[derive(Serialize)]
    struct Cleared {
        /// False while part of it waits for Redis.
        cleared: bool,
        removed: u64,
        queued: bool,
        pending_invalidations: u64,
    }
    json(
        status_of(done.queued),
        &Cleared {
            cleared: done.is_done(),
            removed: done.removed,
            queued: done.queued,
            pending_invalidations: cache.pending_invalidations(),
        },
    )
}

/// 200 when a removal is done; 202 (accepted) when part of it waits for
/// Redis and is replayed once it answers.
fn status_of(queued: bool) -> StatusCode {
    if queued {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

async fn namespaces(State(cache): State<Cache>) -> Answer {
    let namespaces = cache.namespaces().await?;
    #[derive(Serialize)]
    struct Namespaces {
        total: u64,
        exact: bool,
        namespaces: Vec<crate::stats::NamespaceStats>,
    }
    json(
        StatusCode::OK,
        &Namespaces {
            total: namespaces.iter().map(|n| n.entries).sum(),
            exact: namespaces.iter().all(|n| n.exact),
            namespaces,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_refused_with_a_reason() {
        assert_eq!(refuse_pattern(1, "user:42:*"), None);
        assert!(
            refuse_pattern(2, "")
                .unwrap()
                .contains("pattern 2 is empty")
        );
        assert!(refuse_pattern(1, "*").unwrap().contains("/clear"));
        assert!(refuse_pattern(1, "**?").unwrap().contains("/clear"));
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(refuse_pattern(3, &long).unwrap().contains("at most"));
        assert_eq!(refuse_pattern(1, &"k".repeat(MAX_KEY_LEN)), None);
    }
}
