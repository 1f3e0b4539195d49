//! The decision routes: `/v1/is_authorized`, `/v1/is_authorized/batch`,
//! `/v1/allowed_actions`. Each takes the live snapshot once and answers with it.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::{AppState, HotAnswer};
use crate::decide::entities::Layer;
use crate::decide::input::{build_request, parse_uid};
use crate::decide::question::uid_text;
use crate::decide::{Answer, Decision, Question, decide};
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Parses a JSON body into `T`, or a 400 saying what is wrong.
pub fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body?;
    serde_json::from_slice(&body).map_err(|e| {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if e.is_data() && first != Some(&b'{') {
            ApiError::bad_request("invalid_request", "the body must be a JSON object")
        } else {
            ApiError::from_json(&e)
        }
    })
}

/// Refuses a request carrying more than `max` entities in `lists`.
fn check_entities(max: usize, lists: &[Option<&Value>]) -> Result<(), ApiError> {
    let count: usize = lists
        .iter()
        .flatten()
        .filter_map(|l| l.as_array())
        .map(Vec::len)
        .sum();
    if count > max {
        return Err(ApiError::bad_request(
            "too_many_entities",
            format!("the request carries {count} entities; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// The request id the request-id layer set (or the caller sent).
pub fn request_id(headers: &HeaderMap) -> &str {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn decision_body(decision: &Decision, version: &str) -> Value {
    json!({
        "decision": decision.decision,
        "diagnostics": {"reason": decision.reasons, "errors": decision.errors},
        "policy_version": version,
    })
}

/// `POST /v1/is_authorized`. A body seen before under the live policy set is answered from
/// the hot cache by the digest of its bytes, before any parsing.
pub async fn is_authorized(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body?;
    let snapshot = state.store.current();
    let hot_key = state.hot().map(|_| {
        let mut h = blake3::Hasher::new();
        h.update(snapshot.version.as_bytes());
        h.update(&body);
        *h.finalize().as_bytes()
    });
    if let (Some(hot), Some(key)) = (state.hot(), &hot_key)
        && let Some(answer) = hot.0.get(key)
    {
        state.record_hot(request_id(&headers), &answer, &snapshot.version, started);
        return Ok(json_response(answer.body.clone()));
    }
    let question: Question = parse_body(Ok(body))?;
    check_entities(state.config.max_entities, &[question.entities.as_ref()])?;
    let answer = state.decider.answer(&snapshot, &question, None)?;
    state.record(request_id(&headers), &question, None, &answer, started);
    let rendered = Bytes::from(
        serde_json::to_vec(&decision_body(&answer.decision, &answer.policy_version))
            .map_err(ApiError::internal)?,
    );
    if let (Some(hot), Some(key)) = (state.hot(), hot_key) {
        let who = [&question.principal, &question.action, &question.resource].map(uid_text);
        hot.0.insert(
            key,
            std::sync::Arc::new(HotAnswer {
                body: rendered.clone(),
                decision: answer.decision,
                who,
            }),
        );
    }
    Ok(json_response(rendered))
}

fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    #[serde(default)]
    entities: Option<Value>,
    requests: Vec<Value>,
}

/// `POST /v1/is_authorized/batch`
pub async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let batch: Batch = parse_body(body)?;
    let max = state.config.max_batch;
    if batch.requests.len() > max {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!(
                "`requests` has {} items; at most {max} are allowed",
                batch.requests.len()
            ),
        ));
    }
    let max_entities = state.config.max_entities;
    check_entities(max_entities, &[batch.entities.as_ref()])?;
    let snapshot = state.store.current();
    // Shared entities are parsed once; wrong, they are the whole batch's fault.
    let shared = batch
        .entities
        .as_ref()
        .map(|json| state.decider.shared(&snapshot, json))
        .transpose()?;
    let id = request_id(&headers);
    let results: Vec<Value> = batch
        .requests
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let question: Question = match serde_json::from_value(item) {
                Ok(q) => q,
                Err(e) => {
                    let mut error = ApiError::from_json(&e);
                    error.message = format!("`requests[{i}]`: {}", error.message);
                    return error.body();
                }
            };
            if let Err(mut error) = check_entities(
                max_entities,
                &[batch.entities.as_ref(), question.entities.as_ref()],
            ) {
                error.message = format!("`requests[{i}]`: {}", error.message);
                return error.body();
            }
            match state.decider.answer(&snapshot, &question, shared.as_ref()) {
                Ok(answer) => {
                    state.record(id, &question, batch.entities.as_ref(), &answer, started);
                    decision_body(&answer.decision, &answer.policy_version)
                }
                Err(e) => {
                    let mut error = ApiError::from(e);
                    error.message = format!("`requests[{i}]`: {}", error.message);
                    error.body()
                }
            }
        })
        .collect();
    Ok(Json(json!({"results": results})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowedQuestion {
    principal: Value,
    resource: Value,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    entities: Option<Value>,
}

/// `POST /v1/allowed_actions`: every action of the schema that applies to the principal and
/// resource types and is allowed. An action whose required context keys are missing is
/// listed in `needs_context`, never guessed.
pub async fn allowed_actions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let question: AllowedQuestion = parse_body(body)?;
    check_entities(state.config.max_entities, &[question.entities.as_ref()])?;
    let snapshot = state.store.current();
    let principal = parse_uid("principal", &question.principal)?;
    let resource = parse_uid("resource", &question.resource)?;
    let context: Map<String, Value> = match &question.context {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_context",
                format!("`context` must be a JSON object, got `{other}`"),
            ));
        }
    };
    let (ptype, rtype) = (
        principal.type_name().to_string(),
        resource.type_name().to_string(),
    );
    let actions: Vec<_> = snapshot.catalog.applicable(&ptype, &rtype).collect();
    if actions.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "no action of the schema applies to principal `{principal}` and resource `{resource}`"
            ),
        ));
    }
    let own = question
        .entities
        .as_ref()
        .map(|json| Layer::digest("entities", json))
        .transpose()?;
    let entities = state
        .decider
        .entities(&snapshot, None, own.as_ref(), None)?;
    let (mut allowed, mut denied, mut needs_context, mut errors) =
        (vec![], vec![], vec![], Map::new());
    for action in actions {
        if action
            .required_context()
            .any(|key| !context.contains_key(key))
        {
            needs_context.push(action.name.clone());
            continue;
        }
        // Each action gets the keys it declares; the others belong to other actions.
        let own: Map<String, Value> = context
            .iter()
            .filter(|(k, _)| action.context.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let own = Value::Object(own);
        let request = build_request(
            &snapshot,
            principal.clone(),
            action.uid.clone(),
            resource.clone(),
            Some(&own),
        )?;
        let decision = decide(&snapshot, &request, &entities);
        let logged = Question {
            principal: question.principal.clone(),
            action: json!({"type": "Action", "id": action.name}),
            resource: question.resource.clone(),
            context: Some(own),
            entities: question.entities.clone(),
        };
        let answer = Answer {
            decision: std::sync::Arc::new(decision),
            policy_version: snapshot.version.clone(),
            cache_hit: false,
        };
        state.record(request_id(&headers), &logged, None, &answer, started);
        if !answer.decision.errors.is_empty() {
            errors.insert(action.name.clone(), json!(answer.decision.errors));
        }
        match answer.decision.decision {
            crate::decide::Verdict::Allow => allowed.push(action.name.clone()),
            crate::decide::Verdict::Deny => denied.push(action.name.clone()),
        }
    }
    Ok(Json(json!({
        "allowed": allowed,
        "denied": denied,
        "needs_context": needs_context,
        "diagnostics": {"errors": errors},
        "policy_version": snapshot.version,
    })))
}
