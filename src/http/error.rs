//! The one error type of the API, and the only place where errors become status codes.
//! Client errors keep their message, which names the offending field and value; internal
//! errors answer a generic message and are logged.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::decide::InputError;

/// `{"error": {"code": "...", "message": "..."}}` with a status code.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// A 400 with this code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// The request needs the admin token.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "this route needs `Authorization: Bearer <admin token>`".into(),
        }
    }

    /// A fault of ours: logged in full, answered generically.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; see the sidecar's log".into(),
        }
    }

    /// A body that is not valid JSON, or valid JSON of the wrong shape.
    pub fn from_json(error: &serde_json::Error) -> Self {
        if error.is_data() {
            Self::bad_request("invalid_request", error.to_string())
        } else {
            Self::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {error}"),
            )
        }
    }

    /// The body as JSON, for batch items that fail alone.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        let code = match error.field.split(['[', '.']).next().unwrap_or_default() {
            "action" => "invalid_action",
            "principal" => "invalid_principal",
            "resource" => "invalid_resource",
            "context" => "invalid_context",
            "entities" | "fixtures" => "invalid_entities",
            _ => "invalid_request",
        };
        Self::bad_request(code, error.message)
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "unreadable_body"
        };
        Self {
            status,
            code,
            message: rejection.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
