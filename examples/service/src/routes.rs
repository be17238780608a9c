//! The HTTP API: routes, request validation and JSON errors.
//!
//! Every rejection is a JSON body `{"error": "..."}` with a 4xx status:
//! the extractors' own rejections (bad path, query or body) are mapped here
//! rather than left as axum's plain-text ones.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;

use crate::db::{DbError, Employee, EmployeeUpdate, Page, Repository};

/// Largest page size `GET /employees` accepts.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Page size when the query does not give one.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page number accepted (keeps offsets far from overflow).
pub const MAX_PAGE: u32 = 1_000_000;
/// Longest name, title or department, in characters.
pub const MAX_FIELD_CHARS: usize = 100;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The cached queries.
    pub repo: Repository,
    /// The cache (for `/healthz` and the gauges refreshed by `/metrics`).
    pub cache: cache_core::Cache,
    /// The Prometheus recorder's handle, rendered by `/metrics`.
    pub metrics: PrometheusHandle,
}

/// An error answered as `{"error": "..."}` with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A path, query or body the API refuses (400, or 415 for a body that is not JSON).
    #[error("{message}")]
    BadRequest {
        /// 400 or 415.
        status: StatusCode,
        /// Says what was wrong.
        message: String,
    },
    /// No such employee (404).
    #[error("employee {0} not found")]
    NotFound(i64),
    /// The database failed (500; the detail goes to the log only).
    #[error("internal error")]
    Internal(#[source] DbError),
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            DbError::NotFound(id) => ApiError::NotFound(id),
            e => ApiError::Internal(e),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::bad_request(format!("invalid path: {}", r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::bad_request(format!("invalid query: {}", r.body_text()))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let status = match r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::BadRequest {
            status,
            message: r.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest { status, .. } => *status,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// The API's routes (without the admin router, which `lib.rs` mounts).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/employees", get(list_employees))
        .route("/employees/{id}", get(get_employee).put(update_employee))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

fn employee_id(path: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = path?;
    if id < 1 {
        return Err(ApiError::bad_request(
            "employee id must be a positive integer",
        ));
    }
    Ok(id)
}

async fn get_employee(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<Employee>, ApiError> {
    let id = employee_id(path)?;
    match state.repo.employee(id).await? {
        Some(e) => Ok(Json(e)),
        None => Err(ApiError::NotFound(id)),
    }
}

/// `?page=&size=`, both optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageParams {
    page: Option<u32>,
    size: Option<u32>,
}

async fn list_employees(
    State(state): State<AppState>,
    query: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(params) = query?;
    let page = params.page.unwrap_or(1);
    let size = params.size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ApiError::bad_request(format!(
            "page must be between 1 and {MAX_PAGE}"
        )));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(ApiError::bad_request(format!(
            "size must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    Ok(Json(state.repo.employees(page, size).await?))
}

/// The body of `PUT /employees/{id}`: every field required, no others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    name: String,
    title: String,
    department: String,
}

impl UpdateBody {
    fn validate(self) -> Result<EmployeeUpdate, ApiError> {
        let field = |name: &str, value: String| -> Result<String, ApiError> {
            let value = value.trim().to_owned();
            if value.is_empty() {
                return Err(ApiError::bad_request(format!("{name} must not be empty")));
            }
            if value.chars().count() > MAX_FIELD_CHARS {
                return Err(ApiError::bad_request(format!(
                    "{name} must be at most {MAX_FIELD_CHARS} characters"
                )));
            }
            if value.chars().any(char::is_control) {
                return Err(ApiError::bad_request(format!(
                    "{name} must not contain control characters"
                )));
            }
            Ok(value)
        };
        Ok(EmployeeUpdate {
            name: field("name", self.name)?,
            title: field("title", self.title)?,
            department: field("department", self.department)?,
        })
    }
}

async fn update_employee(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Json<Employee>, ApiError> {
    let id = employee_id(path)?;
    let Json(body) = body?;
    let update = body.validate()?;
    Ok(Json(state.repo.update_employee(id, update).await?))
}

/// Prometheus text. Runs `stats()` first, which sets the gauges
/// (`cache_entries`, `cache_breaker_state`, ...) to their current values.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.cache.stats().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// 200 when the database answers (503 otherwise), with the cache's backend
/// and, with Redis, whether the backplane subscription is active.
async fn healthz(State(state): State<AppState>) -> Response {
    let backplane = state.cache.backplane().map(|rx| {
        let s = *rx.borrow();
        json!({ "connected": s.connected, "subscriptions": s.subscriptions })
    });
    let (status, database) = match state.repo.ping().await {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ok" } else { "unavailable" },
        "database": database,
        "cache_backend": state.cache.backend(),
        "backplane": backplane,
    });
    (status, Json(body)).into_response()
}

/// 404 with a JSON body, for paths no route matches.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "no such route" })),
    )
        .into_response()
}

/// 405 with a JSON body, for methods a route does not serve.
pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": "method not allowed on this route" })),
    )
        .into_response()
}
