//! Bearer-token auth for the cache's admin routes, which carry no auth of
//! their own.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

/// The admin token (`CACHE_ADMIN_TOKEN`). Its `Debug` output hides it.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl AdminToken {
    /// A token, or `None` for an empty or blank one (which would let anyone
    /// in with `Authorization: Bearer `).
    pub fn new(token: &str) -> Option<AdminToken> {
        let token = token.trim();
        (!token.is_empty()).then(|| AdminToken(token.into()))
    }

    /// Whether `candidate` is the token, in time that does not depend on
    /// where they differ (only on their lengths).
    fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// `router` behind the token: every request to it, including paths it does
/// not route, needs `Authorization: Bearer <token>`, else 401.
pub(crate) fn protect(router: Router, token: AdminToken) -> Router {
    router.layer(middleware::from_fn_with_state(token, require_token))
}

/// The credentials of `Authorization: Bearer <credentials>` (scheme
/// case-insensitive), if the header is there and well formed.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    Some(rest.trim_ascii())
}

async fn require_token(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    match bearer(request.headers()) {
        Some(candidate) if token.matches(candidate) => next.run(request).await,
        given => {
            let message = if given.is_some() {
                "invalid admin token"
            } else {
                "missing admin token: send Authorization: Bearer <CACHE_ADMIN_TOKEN>"
            };
            let mut response = (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "error": message })),
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cache-admin\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    #[test]
    fn parses_bearer_credentials() {
        assert_eq!(bearer(&headers("Bearer s3cret")), Some(&b"s3cret"[..]));
        assert_eq!(bearer(&headers("bearer s3cret ")), Some(&b"s3cret"[..]));
        assert_eq!(bearer(&headers("Basic czNjcmV0")), None);
        assert_eq!(bearer(&headers("Bearers3cret")), None);
        assert_eq!(bearer(&headers("Bear")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn compares_whole_tokens() {
        let Some(token) = AdminToken::new("s3cret") else {
            panic!("a non-empty token");
        };
        assert!(token.matches(b"s3cret"));
        assert!(!token.matches(b"s3cre"));
        assert!(!token.matches(b"s3cretx"));
        assert!(!token.matches(b""));
        assert!(AdminToken::new("  ").is_none());
        assert_eq!(format!("{token:?}"), "AdminToken(<redacted>)");
    }
}
