//! Health, metrics and the admin routes (`/v1/status`, `/v1/policies`, `/v1/reload`), the
//! latter behind the admin token when one is set (see [`super::middleware::require_admin`]).

use super::AppState;
use super::body::{
    ActionSchema, CacheStatus, Health, PoliciesBody, Ready, ReloadBody, SchemaBody, ShadowStatus,
    StatusBody, StoredEntities,
};
use super::error::{ApiError, ErrorBody};
use crate::policy::json_schema::entity_schemas;
use crate::policy::{ProblemReport, ReloadOutcome};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// `GET /readyz`: 200 whenever the sidecar serves. It always has a validated set: start-up
/// refuses to serve without one, and a failed reload keeps the last good set (an operator
/// learns of a failed reload from `/v1/status` and `gatehouse_policy_files_valid`, not from
/// readiness, which would take every replica out of service for one bad edit). With
/// `--entities-db`, 503 `entities_unavailable` until the database has been reached (it was
/// unreachable at start), saying why.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Serving a validated set", body = Ready),
        (status = 503, description = "`entities_unavailable`: the entity database has not been reached yet", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    state.sourced()?;
    Ok(Json(Ready {
        status: "ready".into(),
        policy_version: state.store.current().version.clone(),
    }))
}

/// `GET /metrics`: Prometheus text. The cache sizes are read now.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "The metrics, in the OpenMetrics text format",
        content_type = "application/openmetrics-text", body = String)))]
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
    if let Some(sourced) = state.entity_db.as_ref().and_then(|db| db.ready()) {
        metrics.entities.cached.set(gauge(sourced.cached()));
        metrics
            .entities
            .unread_seconds
            .set(sourced.unread().as_secs_f64());
    }
    let [decisions, entities, stores] = state.decider.cached_bytes();
    for (cache, bytes) in [
        ("decisions", decisions),
        ("hot", state.hot_bytes()),
        ("entities", entities),
        ("stores", stores),
        ("plans", state.planner.cached_bytes()),
    ] {
        metrics.set_cache_bytes(cache, bytes);
    }
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
#[utoipa::path(get, path = "/v1/status", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "The live set, its files and the last reload", body = StatusBody),
        (status = 401, description = "The admin token is set and was not sent", body = ErrorBody),
    ))]
pub async fn status(State(state): State<AppState>) -> Json<StatusBody> {
    let snapshot = state.store.current();
    let sources = state.store.sources();
    let path = |p: &std::path::Path| p.display().to_string();
    Json(StatusBody {
        policy_version: snapshot.version.clone(),
        loaded_at: humantime::format_rfc3339_millis(snapshot.loaded_at).to_string(),
        policy_count: snapshot.info.len(),
        files: snapshot.files.iter().map(|f| path(f)).collect(),
        schema: path(&sources.schema),
        entities: StoredEntities {
            file: sources.entities.as_deref().map(path),
            count: snapshot.stored_entities,
        },
        last_reload: state.store.status(),
        cache: CacheStatus {
            entries: state.decider.cache().len(),
        },
        shadow: state.shadow.as_ref().map(|shadow| {
            let store = shadow.store();
            let candidate = store.current();
            ShadowStatus {
                policy_version: candidate.version.clone(),
                loaded_at: humantime::format_rfc3339_millis(candidate.loaded_at).to_string(),
                policy_count: candidate.info.len(),
                files: candidate.files.iter().map(|f| path(f)).collect(),
                schema: path(&store.sources().schema),
                last_reload: store.status(),
            }
        }),
        decision_log: state
            .log
            .as_ref()
            .map(crate::telemetry::DecisionLog::status),
    })
}

/// `GET /v1/policies`
#[utoipa::path(get, path = "/v1/policies", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "Every policy of the live set", body = PoliciesBody),
        (status = 401, description = "The admin token is set and was not sent", body = ErrorBody),
    ))]
pub async fn policies(State(state): State<AppState>) -> Json<PoliciesBody> {
    let snapshot = state.store.current();
    Json(PoliciesBody {
        policy_version: snapshot.version.clone(),
        policies: snapshot.info.clone(),
    })
}

/// `GET /v1/schema`: the live schema in Cedar's JSON form, a JSON Schema of each entity
/// type's JSON, and each action's principal, resource and context: what a host checks its
/// entities and questions against before sending them.
#[utoipa::path(get, path = "/v1/schema", tag = "decisions",
    responses((status = 200, description = "The live schema", body = SchemaBody)))]
pub async fn schema(State(state): State<AppState>) -> Json<SchemaBody> {
    let snapshot = state.store.current();
    let catalog = &snapshot.catalog;
    let actions = catalog
        .iter()
        .map(|action| {
            let schema = ActionSchema {
                uid: action.uid.to_string(),
                principals: action.principals.clone(),
                resources: action.resources.clone(),
                required_context: action.required_context().map(str::to_string).collect(),
            };
            (action.name.clone(), schema)
        })
        .collect();
    Json(SchemaBody {
        policy_version: snapshot.version.clone(),
        cedar: catalog.schema_json().clone(),
        entity_types: entity_schemas(catalog),
        actions,
    })
}

/// `POST /v1/reload`: 200 when the files load (swapped or unchanged), 422
/// `reload_failed` with every problem when they do not, 422 `reload_refused` with every
/// refusal when a reload gate refuses them (the last good set stays live either way).
#[utoipa::path(post, path = "/v1/reload", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "The files load: a new set is live, or the live one is unchanged", body = ReloadBody),
        (status = 401, description = "The admin token is set and was not sent", body = ErrorBody),
        (status = 422, description = "`reload_failed`: the files do not load (every problem listed); `reload_refused`: they load, but a reload gate refused the set (every refusal listed); the last good set stays live", body = ErrorBody),
    ))]
pub async fn reload(State(state): State<AppState>) -> Result<Json<ReloadBody>, ApiError> {
    let store = state.store.clone();
    let outcome = tokio::task::spawn_blocking(move || store.reload())
        .await
        .map_err(ApiError::internal)?;
    let version = state.store.current().version.clone();
    match outcome {
        ReloadOutcome::Failed(error) => Err(ApiError::reload_failed(
            error.problems.iter().map(ProblemReport::from).collect(),
        )),
        ReloadOutcome::Refused { failures, .. } => Err(ApiError::reload_refused(failures)),
        ok => Ok(Json(ReloadBody {
            result: ok.result(),
            policy_version: version,
        })),
    }
}
