//! The guard every POST route runs before its handler: the request must declare a JSON body
//! (`Content-Type: application/json`, parameters such as `charset` allowed), else 415
//! `unsupported_media_type` and nothing is read or proposed.
//!
//! Why: a browser sends a cross-site "simple" POST (an HTML form or `fetch` without a CORS
//! preflight) only with `text/plain`, `application/x-www-form-urlencoded` or
//! `multipart/form-data`. Requiring `application/json` forces a preflight, which this API never
//! answers, so no other site can make a visitor's browser move money. The routes without a body
//! (`/v1/transfers/{id}/post|void`, `/v1/accounts/{id}/freeze|unfreeze|close`) need the header
//! too for the same reason; their body may be empty or `{}`.
//!
//! A POST takes no query parameters: any query string is a 400 `malformed_query`, as an unknown
//! query field is on every read.

use super::error::ApiError;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// True for `application/json` and `application/<anything>+json`, with any parameters.
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    let essence = essence.to_ascii_lowercase();
    match essence.strip_prefix("application/") {
        Some("json") => true,
        Some(sub) => sub.len() > "+json".len() && sub.ends_with("+json"),
        None => false,
    }
}

/// Refuses a command request that does not declare a JSON body or that has a query string.
pub fn check_command_request(req: &Request) -> Result<(), ApiError> {
    if let Some(q) = req.uri().query().filter(|q| !q.is_empty()) {
        return Err(ApiError::bad_request(
            "malformed_query",
            "POST routes take no query parameters (nothing was applied)",
        )
        .with_details(serde_json::json!({ "query": q })));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("<not ascii>"));
    match declared {
        Some(v) if is_json_content_type(v) => Ok(()),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "POST requests need Content-Type: application/json (nothing was applied)",
        )
        .with_details(serde_json::json!({ "content_type": other }))),
    }
}

/// Middleware (route layer of every POST route): [`check_command_request`], then the handler.
pub async fn command_request(req: Request, next: Next) -> Response {
    match check_command_request(&req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_json_content_type;

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/+json",
            "text/json",
        ] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }
}
