//! A project-sharing host application that asks gatehouse before every action.
//!
//! The caller is named by the `x-user` header (a stand-in for real authentication). Every
//! handler asks by id alone (`User::"ana"` may `edit` `Project::"p1"`): gatehouse serves
//! this app's own database (`--entities-db` on it, `--entities-map` naming `mapping.toml`)
//! and reads the entities a decision needs from it, so the app builds none. It answers 403
//! with the deciding policies on Deny.
//!
//! Read your own writes: after every request that may have written (any but GET), the app
//! takes the database's position from gatehouse (`GET /v1/entities/position`) and asks
//! every later question with `"consistency": {"at_least": position}`, so that no answer is
//! decided on entities older than the app's last write: a revoke is never undone by a
//! follower that has not seen it yet (the "new enemy"). One mark per process: replicas of
//! the app would carry it in the user's session instead.
//!
//! It fails closed: if gatehouse cannot be reached or
//! does not answer in time the answer is 503 `authorization_unavailable`; if gatehouse
//! refuses the question (a 4xx: the host built a bad question, a bug of the host's) the
//! refusal is logged and the answer is 500 `authorization_error`, never a guess. Errors use
//! gatehouse's own shape: `{"error": {"code", "message", ...}}`.

mod db;
mod lists;
pub mod mapping;
mod projects;
mod sharing;

use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use gatehouse_client::{Client, ClientError, Decision, Question, Uid};
use serde_json::{Value, json};

pub use db::{ProjectRec, Store};

/// The app's state: its records and its gatehouse client.
#[derive(Clone)]
pub struct App(Arc<Inner>);

/// What [`App`] shares.
pub struct Inner {
    /// The records.
    pub store: Store,
    /// The sidecar.
    gatehouse: Client,
    /// The database's position after the app's last write, once there was one: every
    /// question asks at least it.
    written: Mutex<Option<String>>,
    /// Held while a position is read, so that positions are recorded in the order read.
    reading: tokio::sync::Mutex<()>,
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    /// The app on the database at `database` (see [`Store::connect`]), asking `gatehouse`.
    pub async fn connect(gatehouse: Client, database: &str) -> Result<Self, sqlx::Error> {
        Ok(Self(Arc::new(Inner {
            store: Store::connect(database).await?,
            gatehouse,
            written: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
        })))
    }

    /// The sidecar, asking at least at the app's last write.
    pub fn gatehouse(&self) -> Client {
        let written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        match written.as_deref() {
            Some(token) => self.gatehouse.at_least(token),
            None => self.gatehouse.clone(),
        }
    }

    /// Records the database's position after a write of the app's. Positions only grow,
    /// and they are read one at a time: the last recorded is the newest. If gatehouse
    /// cannot say, the write stands and the failure is logged; the next question will most
    /// likely fail closed the same way.
    async fn wrote(&self) {
        let _reading = self.reading.lock().await;
        match self.gatehouse.position().await {
            Ok(answer) => {
                *self.written.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(answer.body.position);
            }
            Err(e) => eprintln!("gatehouse did not give the position after a write: {e}"),
        }
    }

    /// Asks gatehouse; Deny becomes a 403 naming the action and the deciding policies.
    pub async fn authorize(&self, question: Question) -> Result<Decision, AppError> {
        let action = question.action.id.clone();
        let answer = self.gatehouse().is_authorized(&question).await?;
        if answer.body.allowed() {
            Ok(answer.body)
        } else {
            Err(AppError::Forbidden {
                action,
                reasons: answer.body.reasons,
                errors: answer.body.errors,
            })
        }
    }
}

/// The app's routes.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/users", post(sharing::create_user))
        .route("/orgs", post(sharing::create_org))
        .route(
            "/orgs/{org}/members/{user}",
            put(sharing::set_org_role).delete(sharing::remove_org_member),
        )
        .route("/projects", post(projects::create))
        .route("/projects/import", post(projects::import))
        .route(
            "/projects/{id}",
            get(projects::show)
                .patch(projects::rename)
                .delete(projects::delete),
        )
        .route("/projects/{id}/buttons", get(projects::buttons))
        .route("/projects/{id}/copy", post(projects::copy))
        .route("/projects/{id}/export", get(projects::export))
        .route("/projects/{id}/archive", post(projects::archive))
        .route("/projects/{id}/restore", post(projects::restore))
        .route("/projects/{id}/visibility", put(projects::set_visibility))
        .route("/projects/{id}/settings", put(projects::settings))
        .route("/projects/{id}/advance", post(projects::advance))
        .route("/projects/{id}/processing", post(projects::run_processing))
        .route("/projects/{id}/report", get(projects::report))
        .route("/projects/{id}/download", get(projects::download))
        .route(
            "/projects/{id}/items",
            post(projects::add_item).get(lists::items),
        )
        .route(
            "/items/{id}",
            get(projects::show_item)
                .patch(projects::edit_item)
                .delete(projects::delete_item),
        )
        .route("/items/{id}/download", get(projects::download_item))
        .route("/my/projects", get(lists::my_projects))
        .route("/requests", get(lists::requests_to_answer))
        .route("/projects/{id}/members", get(lists::members))
        .route(
            "/projects/{id}/members/{user}",
            put(sharing::change_role).delete(sharing::remove_member),
        )
        .route("/projects/{id}/leave", post(sharing::leave))
        .route("/projects/{id}/transfer", post(sharing::transfer))
        .route("/projects/{id}/invitations", post(sharing::invite))
        .route("/invitations", get(sharing::my_invitations))
        .route("/invitations/{id}/accept", post(sharing::accept_invitation))
        .route("/invitations/{id}/cancel", post(sharing::cancel_invitation))
        .route("/invitations/{id}/resend", post(sharing::resend_invitation))
        .route("/projects/{id}/tokens", post(sharing::generate_token))
        .route("/tokens/{token}", delete(sharing::stop_sharing))
        .route("/tokens/{token}/requests", post(sharing::request_access))
        .route("/projects/{id}/requests", get(lists::project_requests))
        .route("/requests/{id}/accept", post(sharing::accept_request))
        .route("/requests/{id}/reject", post(sharing::reject_request))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            after_writes,
        ))
        .with_state(app)
}

/// After a request that may have written (any but GET), the position that covers it: the
/// caller, answered, asks next with the app's later questions seeing its write.
async fn after_writes(State(app): State<App>, request: Request, next: Next) -> Response {
    let writes = request.method() != Method::GET;
    let response = next.run(request).await;
    if writes {
        app.wrote().await;
    }
    response
}

/// What can go wrong, and its status code.
#[derive(Debug)]
pub enum AppError {
    /// No `x-user`, or an unknown one.
    Unauthenticated,
    /// Gatehouse said Deny.
    Forbidden {
        /// The action asked.
        action: String,
        /// The deciding policies (forbids), empty when nothing permitted.
        reasons: Vec<String>,
        /// Evaluation errors, if the decision failed closed.
        errors: Vec<String>,
    },
    /// No such record.
    NotFound(String),
    /// A malformed request.
    BadRequest(String),
    /// A request that conflicts with the state (an invitation no longer pending…).
    Conflict(String),
    /// Gatehouse could not answer (unreachable, timed out, overloaded): fail closed, 503.
    Unavailable(ClientError),
    /// Gatehouse refused the question (a 4xx): the host asked something malformed, a bug of
    /// the host's. Fail closed, 500.
    BadQuestion(ClientError),
    /// The database failed: 500, logged.
    Storage(sqlx::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Storage(e)
    }
}

impl From<ClientError> for AppError {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Rejected { status, .. } if (400..500).contains(status) => {
                AppError::BadQuestion(e)
            }
            _ => AppError::Unavailable(e),
        }
    }
}

/// `{"error": {"code": code, "message": message, ...extra}}`: gatehouse's error shape.
fn error_body(code: &str, message: impl Into<String>, extra: Value) -> Value {
    let mut error = json!({"code": code, "message": message.into()});
    if let (Some(error), Value::Object(extra)) = (error.as_object_mut(), extra) {
        error.extend(extra);
    }
    json!({ "error": error })
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            AppError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                error_body(
                    "unauthenticated",
                    "name a known user in `x-user`",
                    Value::Null,
                ),
            ),
            AppError::Forbidden {
                action,
                reasons,
                errors,
            } => (
                StatusCode::FORBIDDEN,
                error_body(
                    "forbidden",
                    format!("`{action}` is not allowed"),
                    json!({"action": action, "reasons": reasons, "errors": errors}),
                ),
            ),
            AppError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                error_body("not_found", what, Value::Null),
            ),
            AppError::BadRequest(message) => (
                StatusCode::BAD_REQUEST,
                error_body("bad_request", message, Value::Null),
            ),
            AppError::Conflict(message) => (
                StatusCode::CONFLICT,
                error_body("conflict", message, Value::Null),
            ),
            AppError::Unavailable(e) => {
                eprintln!("gatehouse unavailable: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    error_body("authorization_unavailable", e.to_string(), Value::Null),
                )
            }
            AppError::BadQuestion(e) => {
                // A bug of this host's: the question it built was refused. Logged in full
                // for the host's developers; the caller learns only that it failed.
                eprintln!("gatehouse refused a question of this host: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error_body(
                        "authorization_error",
                        "the authorization question could not be asked; see the host's log",
                        Value::Null,
                    ),
                )
            }
            AppError::Storage(e) => {
                eprintln!("database error: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    error_body(
                        "storage_error",
                        "the records could not be read or written; see the host's log",
                        Value::Null,
                    ),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

/// The calling user, from `x-user`.
pub struct Caller(pub String);

impl FromRequestParts<App> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, AppError> {
        let user = parts
            .headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .ok_or(AppError::Unauthenticated)?;
        if app.store.user(user).await?.is_none() {
            return Err(AppError::Unauthenticated);
        }
        Ok(Caller(user.to_string()))
    }
}

/// A JSON body, with a 400 in the app's shape when it is malformed.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = AppError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes)
            .map(Body)
            .map_err(|e| AppError::BadRequest(e.to_string()))
    }
}

/// A question about a project: `user` takes `action` on project `project`, by id alone.
pub fn project_question(
    user: &str,
    action: &str,
    project: &str,
    context: Option<Value>,
) -> Question {
    let question = Question::new(Uid::user(user), action, Uid::project(project));
    match context {
        Some(context) => question.context(context),
        None => question,
    }
}

/// Asks whether `user` may take `action` on project `id` (no context, no other user);
/// returns the project on Allow.
pub async fn guard(app: &App, user: &str, action: &str, id: &str) -> Result<ProjectRec, AppError> {
    let project = find_project(app, id).await?;
    app.authorize(project_question(user, action, id, None))
        .await?;
    Ok(project)
}

/// The project, or a 404.
pub async fn find_project(app: &App, id: &str) -> Result<ProjectRec, AppError> {
    app.store
        .project(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no project `{id}`")))
}

/// The user, or a 404.
pub async fn find_user(app: &App, id: &str) -> Result<db::UserRec, AppError> {
    app.store
        .user(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no user `{id}`")))
}
