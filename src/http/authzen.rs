//! The AuthZEN Authorization API 1.0 routes (see [`crate::authzen`]): one evaluation, many
//! evaluations with their `evaluations_semantic`, the three searches, and the PDP metadata.
//!
//! Errors of the whole request are the API's one error shape with an AuthZEN field name
//! (`subject.type`); an error of one item of `/evaluations` is that item's closed decision
//! with `context.error`, as the specification's "Errors" section asks.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::AppState;
use super::decisions::{Record, check_entities, parse_body, request_id};
use super::error::{ApiError, ErrorCode};
use crate::authzen::{
    Act, Evaluation, Page, Party, Semantic, collect, configuration as metadata, context,
    decision_object, error_decision, rename_field, stored_ids,
};
use crate::decide::{InputError, Verdict};
use crate::policy::Snapshot;
use crate::telemetry::Source;

/// An error of the decision path, with the AuthZEN field it came from.
fn authzen_error(error: InputError, origins: &[String]) -> ApiError {
    let field = rename_field(&error.field, origins);
    ApiError::from(error).with_field(field)
}

/// One request's parts, parsed from the body (and, for `/evaluations`, its defaults).
fn parse_evaluation(
    state: &AppState,
    snapshot: &Snapshot,
    get: impl Fn(&str) -> Option<Value>,
) -> Result<Evaluation, ApiError> {
    let types = &state.authzen.types;
    let party = |field| Party::parse(snapshot, types, field, get(field).as_ref(), false);
    Ok(Evaluation {
        subject: party("subject")?,
        action: Act::parse(get("action").as_ref())?,
        resource: party("resource")?,
        context: context(get("context").as_ref())?,
    })
}

impl AppState {
    /// Decides one evaluation, counts and logs it: the AuthZEN decision object and whether
    /// it allows.
    fn evaluate(
        &self,
        snapshot: &Snapshot,
        evaluation: &Evaluation,
        (request, started): (&str, Instant),
    ) -> Result<(Value, bool), ApiError> {
        let (question, origins) = evaluation
            .question(snapshot)
            .map_err(|e| authzen_error(e, &[]))?;
        check_entities(self.limits.max_entities, &[question.entities.as_ref()])?;
        let answer = self
            .decider
            .answer(snapshot, &question, None)
            .map_err(|e| authzen_error(e, &origins))?;
        self.check_missing(false, &answer.decision.missing)?;
        let decided = (&*answer.decision, answer.policy_version.as_str());
        let hit = Some(answer.cache_hit);
        let record = Record::of(Source::Authzen, &question, decided, hit, None);
        self.record(request, started, record);
        let allowed = answer.decision.decision == Verdict::Allow;
        Ok((decision_object(&answer.decision, &answer.policy_version), allowed))
    }

    /// Whether `evaluation` is allowed, for a search: neither counted nor logged (a search
    /// asks every candidate, as a plan does).
    fn allows(&self, snapshot: &Snapshot, evaluation: &Evaluation) -> Result<bool, ApiError> {
        let (question, origins) = evaluation
            .question(snapshot)
            .map_err(|e| authzen_error(e, &[]))?;
        let answer = self
            .decider
            .answer(snapshot, &question, None)
            .map_err(|e| authzen_error(e, &origins))?;
        Ok(answer.decision.decision == Verdict::Allow)
    }
}

/// `POST /access/v1/evaluation`: one decision, `{"decision": bool, "context": {...}}`.
pub async fn evaluation(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let body: Map<String, Value> = parse_body(body)?;
    let snapshot = state.store.current();
    let evaluation = parse_evaluation(&state, &snapshot, |key| body.get(key).cloned())?;
    let id = request_id(&headers);
    let (decision, _) = state.evaluate(&snapshot, &evaluation, (id, started))?;
    Ok(Json(decision))
}

/// `POST /access/v1/evaluations`: the top-level `subject`, `action`, `resource` and
/// `context` are defaults that each item of `evaluations` may replace; the answers come in
/// the items' order, up to the one that stops an `evaluations_semantic` other than
/// `execute_all`. Without items (absent or empty) it answers as `/evaluation` does.
pub async fn evaluations(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let body: Map<String, Value> = parse_body(body)?;
    let semantic = Semantic::parse(body.get("options")).map_err(ApiError::from)?;
    let items = match body.get("evaluations") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("`evaluations` must be an array, got `{other}`"),
            )
            .with_field("evaluations"));
        }
    };
    let max = state.limits.max_batch;
    if items.len() > max {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "`evaluations` has {} items; at most {max} are allowed",
                items.len()
            ),
        )
        .with_field("evaluations"));
    }
    let snapshot = state.store.current();
    let id = request_id(&headers);
    if items.is_empty() {
        let evaluation = parse_evaluation(&state, &snapshot, |key| body.get(key).cloned())?;
        let (decision, _) = state.evaluate(&snapshot, &evaluation, (id, started))?;
        return Ok(Json(decision));
    }
    let mut results = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let answered = match item {
            Value::Object(own) => {
                let get = |key: &str| own.get(key).or_else(|| body.get(key)).cloned();
                parse_evaluation(&state, &snapshot, get)
                    .and_then(|evaluation| state.evaluate(&snapshot, &evaluation, (id, started)))
                    .map_err(|error| (error, own))
            }
            other => Err((
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("`evaluations[{i}]` must be an object, got `{other}`"),
                ),
                &Map::new(),
            )),
        };
        let (decision, allowed) = match answered {
            Ok(answered) => answered,
            Err((error, own)) => {
                // The field is the item's when the item carried it, the default's otherwise.
                let field = error.field.as_deref().map(|field| {
                    let root = field.split(['.', '[']).next().unwrap_or(field);
                    if own.contains_key(root) {
                        format!("evaluations[{i}].{field}")
                    } else {
                        field.to_string()
                    }
                });
                let status = error.code.status().as_u16();
                let decision =
                    error_decision(status, error.code.as_str(), &error.message, field.as_deref());
                (decision, false)
            }
        };
        results.push(decision);
        if semantic.stops_after(allowed) {
            break;
        }
    }
    Ok(Json(json!({ "evaluations": results })))
}

/// The search body's parts that every search shares.
struct Search {
    body: Map<String, Value>,
    page: Page,
}

impl Search {
    fn parse(body: Result<Bytes, BytesRejection>) -> Result<Self, ApiError> {
        let body: Map<String, Value> = parse_body(body)?;
        let page = Page::parse(body.get("page"))?;
        Ok(Self { body, page })
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.body.get(key)
    }

    /// The response: `results` and `page` (`next_token` empty on the last page).
    fn answer(results: Vec<Value>, next_token: String) -> Json<Value> {
        let count = results.len();
        Json(json!({
            "results": results,
            "page": {"next_token": next_token, "count": count},
        }))
    }
}

/// An action the schema does not know is allowed to nobody: a search for it finds nothing
/// (the search interop scenario asks for a valid empty answer, not an error).
fn known_action(snapshot: &Snapshot, action: &Act) -> bool {
    action.uid(snapshot).is_ok()
}

/// `POST /access/v1/search/subject`: the stored subjects of `subject.type` that may do
/// `action` on `resource`, in id order.
pub async fn search_subject(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let search = Search::parse(body)?;
    let snapshot = state.store.current();
    let types = &state.authzen.types;
    let subject = Party::parse(&snapshot, types, "subject", search.get("subject"), true)?;
    let action = Act::parse(search.get("action"))?;
    let resource = Party::parse(&snapshot, types, "resource", search.get("resource"), false)?;
    let context = context(search.get("context"))?;
    if !known_action(&snapshot, &action) {
        return Ok(Search::answer(Vec::new(), String::new()));
    }
    let candidates = stored_ids(&snapshot, &subject.cedar_type, search.page.after.as_deref());
    let found = collect(candidates, search.page.limit, |id| {
        let evaluation = Evaluation {
            subject: subject.with_id(id.to_string()),
            action: action.clone(),
            resource: resource.clone(),
            context: context.clone(),
        };
        state.allows(&snapshot, &evaluation)
    })?;
    let results = found
        .ids
        .into_iter()
        .map(|id| json!({"type": subject.kind, "id": id}))
        .collect();
    Ok(Search::answer(results, found.next_token))
}

/// `POST /access/v1/search/resource`: the stored resources of `resource.type` on which
/// `subject` may do `action`, in id order.
pub async fn search_resource(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let search = Search::parse(body)?;
    let snapshot = state.store.current();
    let types = &state.authzen.types;
    let subject = Party::parse(&snapshot, types, "subject", search.get("subject"), false)?;
    let action = Act::parse(search.get("action"))?;
    let resource = Party::parse(&snapshot, types, "resource", search.get("resource"), true)?;
    let context = context(search.get("context"))?;
    if !known_action(&snapshot, &action) {
        return Ok(Search::answer(Vec::new(), String::new()));
    }
    let candidates = stored_ids(&snapshot, &resource.cedar_type, search.page.after.as_deref());
    let found = collect(candidates, search.page.limit, |id| {
        let evaluation = Evaluation {
            subject: subject.clone(),
            action: action.clone(),
            resource: resource.with_id(id.to_string()),
            context: context.clone(),
        };
        state.allows(&snapshot, &evaluation)
    })?;
    let results = found
        .ids
        .into_iter()
        .map(|id| json!({"type": resource.kind, "id": id}))
        .collect();
    Ok(Search::answer(results, found.next_token))
}

/// `POST /access/v1/search/action`: the actions of the schema that apply to the subject's
/// and the resource's types and that `subject` may do on `resource`, by name.
pub async fn search_action(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let search = Search::parse(body)?;
    let snapshot = state.store.current();
    let types = &state.authzen.types;
    let subject = Party::parse(&snapshot, types, "subject", search.get("subject"), false)?;
    let resource = Party::parse(&snapshot, types, "resource", search.get("resource"), false)?;
    let context = context(search.get("context"))?;
    let mut names: Vec<String> = snapshot
        .catalog
        .applicable(&subject.cedar_type, &resource.cedar_type)
        .map(|a| a.name.clone())
        .filter(|name| {
            search
                .page
                .after
                .as_deref()
                .is_none_or(|after| name.as_str() > after)
        })
        .collect();
    names.sort();
    names.dedup();
    let found = collect(names, search.page.limit, |name| {
        let evaluation = Evaluation {
            subject: subject.clone(),
            action: Act {
                name: name.to_string(),
            },
            resource: resource.clone(),
            context: context.clone(),
        };
        state.allows(&snapshot, &evaluation)
    })?;
    let results = found
        .ids
        .into_iter()
        .map(|name| json!({ "name": name }))
        .collect();
    Ok(Search::answer(results, found.next_token))
}

/// `GET /.well-known/authzen-configuration`: the PDP metadata, with endpoints under
/// `--public-url` (or `http://` and the request's `Host`).
pub async fn configuration(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = match &state.authzen.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    Json(metadata(&base))
}
