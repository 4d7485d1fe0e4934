//! The one HTTP error shape: `{"error": {"code", "message", "details"}}` with 400 (malformed),
//! 401 (unauthenticated), 403 (forbidden), 404, 408, 409, 413, 422 (business rejection) or
//! 503 + `Retry-After`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger::Rejection;
use serde_json::{json, Value};

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_S: u64 = 1;

/// An API error; renders as the JSON error shape.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Extra fields.
    pub details: Value,
    /// `X-Ledger-Index` to attach, when known.
    pub index: Option<u64>,
}

impl ApiError {
    /// A new error with empty details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: json!({}),
            index: None,
        }
    }

    /// 400 malformed request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 503 + Retry-After.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// 401 `unauthenticated`: missing or unknown credentials (admin token, API key).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// Attaches details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Attaches the log index.
    pub fn with_index(mut self, index: u64) -> Self {
        self.index = Some(index);
        self
    }

    /// A replicated business rejection.
    pub fn rejection(r: &Rejection, command_id: &str, index: u64) -> Self {
        let status =
            StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
        let mut details = json!({ "id": command_id, "index": index });
        if let Rejection::BatchAborted {
            failed_index,
            failed_code,
        } = r
        {
            details["failed_index"] = json!(failed_index);
            details["failed_code"] = json!(failed_code);
        }
        Self {
            status,
            code: r.code(),
            message: rejection_message(r),
            details,
            index: Some(index),
        }
    }
}

fn rejection_message(r: &Rejection) -> String {
    match r {
        Rejection::InsufficientFunds => "the debit account lacks available funds".into(),
        Rejection::AccountNotFound => "an account in the command does not exist".into(),
        Rejection::IdempotencyKeyReused => {
            "this id was used before with a different request body".into()
        }
        Rejection::BatchAborted {
            failed_index,
            failed_code,
        } => {
            format!("atomic batch aborted: command {failed_index} was rejected with {failed_code}")
        }
        other => other.code().replace('_', " "),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(RETRY_AFTER_S));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still be trickling in: close rather than read it.
            resp.headers_mut()
                .insert("connection", HeaderValue::from_static("close"));
        }
        if let Some(i) = self.index {
            resp.headers_mut()
                .insert("x-ledger-index", HeaderValue::from(i));
        }
        resp
    }
}

impl From<ledger::ValidationError> for ApiError {
    fn from(e: ledger::ValidationError) -> Self {
        let code = match e {
            ledger::ValidationError::AccountId(_) => "invalid_account_id",
            ledger::ValidationError::Currency(_) => "invalid_currency",
            ledger::ValidationError::UnknownCurrency(_) => "unknown_currency",
            ledger::ValidationError::CommandId(_) => "invalid_id",
            ledger::ValidationError::Amount(_) => "amount_must_be_positive",
            ledger::ValidationError::TooLong { .. } => "field_too_long",
            ledger::ValidationError::Other(_) => "malformed_request",
        };
        Self::bad_request(code, e.to_string())
    }
}

impl From<crate::proposer::ProposeError> for ApiError {
    fn from(e: crate::proposer::ProposeError) -> Self {
        use crate::proposer::ProposeError as P;
        match e {
            P::TooLarge { bytes, max } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "entry_too_large",
                format!("{e}; split the request (nothing was applied)"),
            )
            .with_details(json!({"bytes": bytes, "entry_bytes_max": max})),
            P::Overloaded => Self::unavailable(
                "overloaded",
                format!("{e}; nothing was applied, retry after the Retry-After delay"),
            ),
            P::Timeout { timeout_ms } => Self::unavailable(
                "write_outcome_unknown",
                format!("{e}; retry with the same id, it is safe"),
            )
            .with_details(json!({"write_timeout_ms": timeout_ms})),
            P::NoLeader | P::LeaderUnavailable(_) | P::Fatal(_) => {
                let code = match e {
                    P::NoLeader => "no_leader",
                    P::LeaderUnavailable(_) => "leader_unavailable",
                    _ => "not_ready",
                };
                Self::unavailable(code, format!("{e}; retry with the same id, it is safe"))
            }
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            e.to_string(),
        )
    }
}
