//! Health, metrics and the admin routes (`/v1/status`, `/v1/policies`, `/v1/reload`), the
//! latter behind the admin token when one is set.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::policy::ReloadOutcome;
use crate::policy::store::ProblemReport;

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: a validated policy set is loaded (always, once serving: start-up refuses
/// to serve without one, and a failed reload keeps the last good set).
pub async fn readyz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ready", "policy_version": state.store.current().version}))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /v1/status`
pub async fn status(State(state): State<AppState>) -> Json<Value> {
    let snapshot = state.store.current();
    let sources = state.store.sources();
    Json(json!({
        "policy_version": snapshot.version,
        "loaded_at": humantime::format_rfc3339_millis(snapshot.loaded_at).to_string(),
        "policy_count": snapshot.info.len(),
        "files": snapshot.files,
        "schema": sources.schema,
        "entities": {"file": sources.entities, "count": snapshot.stored_entities},
        "last_reload": state.store.status(),
        "cache": {"entries": state.decider.cache().len()},
    }))
}

/// `GET /v1/policies`
pub async fn policies(State(state): State<AppState>) -> Json<Value> {
    let snapshot = state.store.current();
    Json(json!({"policy_version": snapshot.version, "policies": snapshot.info}))
}

/// `POST /v1/reload`: 200 when the files load (swapped or unchanged), 422 with every
/// problem when they do not (the last good set stays live).
pub async fn reload(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let outcome = tokio::task::spawn_blocking(move || store.reload())
        .await
        .map_err(ApiError::internal)?;
    let version = state.store.current().version.clone();
    Ok(match outcome {
        ReloadOutcome::Swapped(_) => {
            Json(json!({"result": "ok", "policy_version": version})).into_response()
        }
        ReloadOutcome::Unchanged => {
            Json(json!({"result": "unchanged", "policy_version": version})).into_response()
        }
        ReloadOutcome::Failed(error) => {
            let problems: Vec<ProblemReport> =
                error.problems.iter().map(ProblemReport::from).collect();
            let first = problems.first().map(|p| p.text.clone()).unwrap_or_default();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({
                    "error": {"code": "reload_failed", "message": format!("the policy files do not load; the last good set stays live: {first}")},
                    "errors": problems,
                    "policy_version": version,
                })),
            )
                .into_response()
        }
    })
}

/// Requires `Authorization: Bearer <token>` when an admin token is configured. The compare
/// is constant-time: both sides are hashed with blake3, whose digest equality is
/// constant-time, so neither the content nor the length of the token leaks.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.config.admin_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok =
            given.is_some_and(|g| blake3::hash(g.as_bytes()) == blake3::hash(token.as_bytes()));
        if !ok {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}
