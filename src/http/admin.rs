//! Health, metrics and the admin routes (`/v1/status`, `/v1/policies`, `/v1/reload`), the
//! latter behind the admin token when one is set (see [`super::middleware::require_admin`]).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::policy::{ProblemReport, ReloadOutcome};

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 whenever the sidecar serves. It always has a validated set: start-up
/// refuses to serve without one, and a failed reload keeps the last good set (an operator
/// learns of a failed reload from `/v1/status` and `gatehouse_policy_files_valid`, not from
/// readiness, which would take every replica out of service for one bad edit).
pub async fn readyz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ready", "policy_version": state.store.current().version}))
}

/// `GET /metrics`: Prometheus text. The cache sizes are read now.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    metrics
        .decision_cache_entries
        .set(gauge(state.decider.cache().len()));
    metrics
        .entity_cache_entries
        .set(gauge(state.decider.cached_entities()));
    metrics.hot_cache_entries.set(gauge(state.hot_entries()));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
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

/// `POST /v1/reload`: 200 when the files load (swapped or unchanged), 422
/// `reload_failed` with every problem when they do not (the last good set stays live).
pub async fn reload(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let outcome = tokio::task::spawn_blocking(move || store.reload())
        .await
        .map_err(ApiError::internal)?;
    let version = state.store.current().version.clone();
    match outcome {
        ReloadOutcome::Failed(error) => Err(ApiError::reload_failed(
            error.problems.iter().map(ProblemReport::from).collect(),
        )),
        ok => Ok(Json(
            json!({"result": ok.result(), "policy_version": version}),
        )),
    }
}
