//! Request extraction with the JSON error shape: bodies are size-limited (413), read within
//! `--body-read-timeout-ms` (408, so a client trickling its body cannot hold a request slot),
//! must be JSON (400), path parameters must decode (400), and unknown fields are refused (400)
//! so typos never silently change meaning. (The JSON content type is checked earlier, by
//! `guard`, for every POST route.)

use super::error::ApiError;
use super::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// Largest accepted request body. A batch of ~4k commands fits; larger is refused with 413.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;

/// JSON body extractor with typed errors.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request("malformed_json", e.to_string()))
    }
}

/// The body of a route that takes no fields (`/v1/transfers/{id}/post`, `.../freeze`, ...):
/// empty or an empty JSON object; anything else is a 400, so a misplaced field is never ignored.
pub struct EmptyBody;

/// No fields at all.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

impl FromRequest<AppState> for EmptyBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(EmptyBody);
        }
        serde_json::from_slice::<NoFields>(&bytes)
            .map(|_| EmptyBody)
            .map_err(|e| {
                ApiError::bad_request("malformed_json", format!("this route takes no fields: {e}"))
            })
    }
}

/// Reads the whole body within the size limit (413) and `--body-read-timeout-ms` (408).
async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let timeout = state.limits.body_read_timeout;
    let read = tokio::time::timeout(timeout, Bytes::from_request(req, state))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_read_timeout",
                format!("the request body was not received within {timeout:?}"),
            )
        })?;
    read.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request body is over {BODY_BYTES_MAX} bytes"),
            )
        } else {
            ApiError::bad_request("malformed_request", e.body_text())
        }
    })
}

/// Query-string extractor with typed errors.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::bad_request("malformed_query", e.body_text()))
    }
}

/// Path-parameter extractor with the JSON error shape (400 `malformed_path`, e.g. a
/// percent-encoded id that is not UTF-8).
pub struct PathParam<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e| {
                let code = if e.status().is_client_error() {
                    "malformed_path"
                } else {
                    "internal_error"
                };
                ApiError::new(e.status(), code, e.body_text())
            })
    }
}

/// The `Idempotency-Key` header, if present (validated; reserved ids refused, see `ids`).
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.headers.get("idempotency-key") {
            None => Ok(Self(None)),
            Some(v) => {
                let s = v.to_str().map_err(|_| {
                    ApiError::bad_request("invalid_id", "Idempotency-Key must be ASCII")
                })?;
                super::ids::client_id(s)?;
                Ok(Self(Some(s.to_owned())))
            }
        }
    }
}

/// Chooses the command id from the header and the body `id`; they must agree when both given.
pub fn command_id(header: &IdempotencyKey, body_id: Option<&str>) -> Result<String, ApiError> {
    match (&header.0, body_id) {
        (Some(h), Some(b)) if h != b => Err(ApiError::bad_request(
            "id_mismatch",
            format!("Idempotency-Key {h:?} differs from body id {b:?}"),
        )),
        (Some(h), _) => Ok(h.clone()),
        (None, Some(b)) => {
            super::ids::client_id(b)?;
            Ok(b.to_owned())
        }
        (None, None) => Err(ApiError::bad_request(
            "missing_id",
            "every command needs an id: the body `id` or an Idempotency-Key header",
        )),
    }
}
