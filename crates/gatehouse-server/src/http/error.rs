//! The one error type of the API. [`ErrorCode::status`] is the only place where an error
//! becomes a status code: handlers, extractors, the 404/405 fallbacks, the timeout, load
//! shedding and the reload's 422s all answer an [`ApiError`].
//!
//! Client errors keep their message, which names the offending field and value; an internal
//! error answers a generic message and carries its detail to the tracking middleware, which
//! logs it with the request id.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::decide::{InputError, Part};
use crate::policy::GateFailure;
use crate::policy::store::ProblemReport;

/// The machine-readable cause of an error, as clients match on it (`snake_case` on the
/// wire, see [`ErrorCode::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not valid JSON.
    MalformedJson,
    /// The body is JSON of the wrong shape (a missing or unknown field, a wrong type).
    InvalidRequest,
    /// The principal is not a uid, or not of a type the action applies to.
    InvalidPrincipal,
    /// The action is not a uid, or not a requestable action of the schema.
    InvalidAction,
    /// The resource is not a uid, or not of a type the action applies to.
    InvalidResource,
    /// The context is not an object, or not what the action declares.
    InvalidContext,
    /// An entity list, or one of its entities, does not conform to the schema.
    InvalidEntities,
    /// Strict entities (`--strict-entities` or the question's `strict_entities`): an entity
    /// the question names or the deciding path reads is neither sent nor stored.
    MissingEntity,
    /// More entities than `--max-entities`.
    TooManyEntities,
    /// More questions in a batch than `--max-batch`.
    BatchTooLarge,
    /// A body over `--max-body`.
    BodyTooLarge,
    /// The body could not be read.
    UnreadableBody,
    /// An admin route without the admin token.
    Unauthorized,
    /// No such route.
    NotFound,
    /// The route does not take this method.
    MethodNotAllowed,
    /// The request took longer than `--request-timeout`.
    RequestTimeout,
    /// More requests in flight than `--max-concurrency`: retry after a second.
    Overloaded,
    /// The entity database (`--entities-db`) did not answer: retry after a second.
    EntitiesUnavailable,
    /// A question's `consistency.at_least` names a position the sidecar has not applied
    /// within `--consistency-wait`: retry after a second.
    StaleEntities,
    /// `GET /v1/entities/position` on a sidecar without an entity database
    /// (`--entities-db`): it has no positions.
    NotFollowing,
    /// `/v1/reload`: the files do not load; the last good set stays live.
    ReloadFailed,
    /// `/v1/reload`: the files load, but a reload gate refused the set; the last good set
    /// stays live.
    ReloadRefused,
    /// A fault of gatehouse's: see its log.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order the README lists them.
    pub const ALL: [ErrorCode; 23] = [
        Self::MalformedJson,
        Self::InvalidRequest,
        Self::InvalidPrincipal,
        Self::InvalidAction,
        Self::InvalidResource,
        Self::InvalidContext,
        Self::InvalidEntities,
        Self::MissingEntity,
        Self::TooManyEntities,
        Self::BatchTooLarge,
        Self::BodyTooLarge,
        Self::UnreadableBody,
        Self::Unauthorized,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::RequestTimeout,
        Self::Overloaded,
        Self::EntitiesUnavailable,
        Self::StaleEntities,
        Self::NotFollowing,
        Self::ReloadFailed,
        Self::ReloadRefused,
        Self::Internal,
    ];

    /// The HTTP status of this code: the only mapping from errors to status codes.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::MalformedJson
            | Self::InvalidRequest
            | Self::InvalidPrincipal
            | Self::InvalidAction
            | Self::InvalidResource
            | Self::InvalidContext
            | Self::InvalidEntities
            | Self::MissingEntity
            | Self::TooManyEntities
            | Self::BatchTooLarge
            | Self::UnreadableBody => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::NotFollowing => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ReloadFailed | Self::ReloadRefused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Overloaded | Self::EntitiesUnavailable | Self::StaleEntities => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidPrincipal => "invalid_principal",
            Self::InvalidAction => "invalid_action",
            Self::InvalidResource => "invalid_resource",
            Self::InvalidContext => "invalid_context",
            Self::InvalidEntities => "invalid_entities",
            Self::MissingEntity => "missing_entity",
            Self::TooManyEntities => "too_many_entities",
            Self::BatchTooLarge => "batch_too_large",
            Self::BodyTooLarge => "body_too_large",
            Self::UnreadableBody => "unreadable_body",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::Overloaded => "overloaded",
            Self::EntitiesUnavailable => "entities_unavailable",
            Self::StaleEntities => "stale_entities",
            Self::NotFollowing => "not_following",
            Self::ReloadFailed => "reload_failed",
            Self::ReloadRefused => "reload_refused",
            Self::Internal => "internal",
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "What went wrong, for programs; each code has one HTTP status (see the README)",
            ))
            .enum_values(Some(Self::ALL.iter().map(|code| code.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

/// Every error's body: `{"error": {...}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// One error: its code, a message naming the offending field and value, and that field.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorObject {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// The offending field, as a path into the body (`entities[3].uid`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The batch item at fault, inside a batch's `results`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Every problem of the policy files, for `reload_failed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProblemReport>,
    /// Every reason the reload gates gave, for `reload_refused`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<GateFailure>,
}

impl From<Part> for ErrorCode {
    fn from(part: Part) -> Self {
        match part {
            Part::Principal => Self::InvalidPrincipal,
            Part::Action => Self::InvalidAction,
            Part::Resource => Self::InvalidResource,
            Part::Context => Self::InvalidContext,
            Part::Entities => Self::InvalidEntities,
        }
    }
}

/// `{"error": {"code", "message", "field"?, "index"?, "problems"?}}` with the code's status.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people: names the offending field and value.
    pub message: String,
    /// The offending field, as a path into the body (`entities[3].uid`), when known.
    pub field: Option<String>,
    /// The batch item at fault, for an error inside a batch's `results`.
    pub index: Option<usize>,
    /// Every problem of the policy files (`reload_failed`) or reason of the reload gates
    /// (`reload_refused`); boxed, as it is rare and an error travels in every `Result`.
    pub reload: Option<Box<(Vec<ProblemReport>, Vec<GateFailure>)>>,
    /// What to log (never answered): the detail of an internal error.
    internal: Option<String>,
}

/// An internal error's detail, left in the response's extensions for the tracking
/// middleware to log with the request id.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            index: None,
            reload: None,
            internal: None,
        }
    }

    /// Names the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Marks the error as batch item `index`'s.
    pub fn at_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }

    /// Strict entities: `missing` (uids as text, sorted) are neither sent nor stored.
    pub fn missing_entities(missing: &[String]) -> Self {
        let list = missing
            .iter()
            .map(|uid| format!("`{uid}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Self::new(
            ErrorCode::MissingEntity,
            format!("strict entities: the question needs {list}, neither in `entities` nor stored"),
        )
        .with_field("entities")
    }

    /// The request needs the admin token.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "this route needs `Authorization: Bearer <admin token>`",
        )
    }

    /// A fault of ours: answered generically, its detail logged by the middleware.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let mut error = Self::new(ErrorCode::Internal, "internal error; see the sidecar's log");
        error.internal = Some(detail.to_string());
        error
    }

    /// A body that is not valid JSON, or valid JSON of the wrong shape.
    pub fn from_json(error: &serde_json::Error) -> Self {
        if error.is_data() {
            Self::new(ErrorCode::InvalidRequest, error.to_string())
        } else {
            Self::new(
                ErrorCode::MalformedJson,
                format!("the body is not valid JSON: {error}"),
            )
        }
    }

    /// The policy files do not load.
    pub fn reload_failed(problems: Vec<ProblemReport>) -> Self {
        let first = problems.first().map(|p| p.text.clone()).unwrap_or_default();
        let mut error = Self::new(
            ErrorCode::ReloadFailed,
            format!("the policy files do not load; the last good set stays live: {first}"),
        );
        error.reload = Some(Box::new((problems, Vec::new())));
        error
    }

    /// The files load, but the reload gates refuse the set.
    pub fn reload_refused(refusals: Vec<GateFailure>) -> Self {
        let first = refusals
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        let mut error = Self::new(
            ErrorCode::ReloadRefused,
            format!(
                "the reload gates refuse the policy files; the last good set stays live: {first}"
            ),
        );
        error.reload = Some(Box::new((Vec::new(), refusals)));
        error
    }

    /// The error object, as a batch's results carry it and as the body wraps it.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                code: self.code,
                message: self.message.clone(),
                field: self.field.clone(),
                index: self.index,
                problems: self
                    .reload
                    .as_ref()
                    .map(|r| r.0.clone())
                    .unwrap_or_default(),
                refusals: self
                    .reload
                    .as_ref()
                    .map(|r| r.1.clone())
                    .unwrap_or_default(),
            },
        }
    }
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        Self::new(error.part.into(), error.message).with_field(error.field)
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            // A body of no announced length, cut off at the limit while read.
            return Self::new(
                ErrorCode::BodyTooLarge,
                "the body is over the limit `--max-body` sets (1 MiB by default)",
            );
        }
        Self::new(ErrorCode::UnreadableBody, rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), Json(self.body())).into_response();
        let headers = response.headers_mut();
        match self.code {
            ErrorCode::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ErrorCode::Overloaded | ErrorCode::EntitiesUnavailable | ErrorCode::StaleEntities => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        if let Some(detail) = self.internal {
            response.extensions_mut().insert(InternalDetail(detail));
        }
        response
    }
}
