//! Token auth for the cache's admin routes, which carry no auth of their
//! own: `Authorization: Bearer <token>` for scripts, or HTTP Basic with the
//! token as the password (any user name) for a browser, which asks for it
//! once and then sends it with the dashboard's requests.

use std::sync::Arc;

use base64::Engine as _;

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
/// not route, needs the token (Bearer, or Basic's password), else 401.
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

/// The password of `Authorization: Basic base64(user:password)`, if the
/// header is there and well formed.
fn basic_password(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

async fn require_token(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let given = match bearer(headers) {
        Some(b) => Some(b.to_vec()),
        None => basic_password(headers),
    };
    match given {
        Some(candidate) if token.matches(&candidate) => next.run(request).await,
        given => {
            let message = if given.is_some() {
                "invalid admin token"
            } else {
                "missing admin token: send Authorization: Bearer <CACHE_ADMIN_TOKEN> (or Basic, the token as the password)"
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
            // Browsers ask for Basic credentials (and then keep sending them).
            response.headers_mut().append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cache-admin\", charset=\"UTF-8\""),
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
    fn parses_basic_passwords() {
        // admin:s3cret, :s3cret, and a password with a colon.
        assert_eq!(
            basic_password(&headers("Basic YWRtaW46czNjcmV0")),
            Some(b"s3cret".to_vec())
        );
        assert_eq!(
            basic_password(&headers("basic OnMzY3JldA==")),
            Some(b"s3cret".to_vec())
        );
        assert_eq!(
            basic_password(&headers("Basic dTphOmI=")),
            Some(b"a:b".to_vec())
        );
        assert_eq!(basic_password(&headers("Basic czNjcmV0")), None); // no colon
        assert_eq!(basic_password(&headers("Basic !!")), None);
        assert_eq!(basic_password(&headers("Bearer s3cret")), None);
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
