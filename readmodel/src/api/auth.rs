//! Operator authentication: every `/admin` and `/admin/*` request (any method, known route or
//! not) must carry `Authorization: Bearer <token>` matching `--admin-token`; otherwise 401 in
//! the JSON error shape with `WWW-Authenticate: Bearer`. Without a configured token (allowed
//! only on loopback or with `--insecure`, see `crate::access::admin`) the routes are open.

use super::error::ApiError;
use super::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Whether `path` is an admin path.
fn is_admin(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// Middleware enforcing the admin token on admin paths.
pub async fn require_admin(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = s.admin.as_ref().filter(|_| is_admin(req.uri().path())) else {
        return next.run(req).await;
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token);
    let refusal = match presented {
        Some(p) if token.matches(p.trim()) => return next.run(req).await,
        Some(_) => "wrong admin token",
        None => "missing Authorization: Bearer <admin token>",
    };
    tracing::warn!(
        path = req.uri().path(),
        reason = refusal,
        "readmodel.admin_unauthorized"
    );
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", refusal).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}
