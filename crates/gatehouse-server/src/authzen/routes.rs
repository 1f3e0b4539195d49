//! The AuthZEN Authorization API 1.0 routes (see [`crate::authzen`]): one evaluation, many
//! evaluations with their `evaluations_semantic`, the three searches, and the PDP metadata.
//!
//! Errors of the whole request are the API's one error shape with an AuthZEN field name
//! (`subject.type`); an error of one item of `/evaluations` is that item's closed decision
//! with `context.error`, as the specification's "Errors" section asks.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::body::{
    ActionSearchBody, AuthzenConfiguration, AuthzenDecision, AuthzenDecisions, DecisionContext,
    EvaluationsBody, Found, FoundAction, ItemError, PageAnswer, Reason, SearchBody,
};
use super::{
    Act, Evaluation, PREFIX, Page, Party, Semantic, actions_question, collect, context,
    encode_token, rename_field,
};
use crate::decide::allowed::allowed_actions as decide_actions;
use crate::decide::{Answer, Decision, EntityList, InputError, Question, Verdict};
use crate::http::AppState;
use crate::http::decisions::{Record, check_entities, count_and_log, parse_body, request_id};
use crate::http::error::{ApiError, ErrorBody, ErrorCode};
use crate::http::lists::Lister;
use crate::json_keys::StrictObject;
use crate::policy::Snapshot;
use crate::shadow::Input;
use crate::telemetry::Source;
use gatehouse_api::Uid;

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

/// Decides one evaluation, counts and logs it: the AuthZEN decision object and whether
/// it allows. With an entity database, what the evaluation names is read from it first.
async fn evaluate(
    state: &AppState,
    snapshot: &Arc<Snapshot>,
    evaluation: &Evaluation,
    (request, started): (&str, Instant),
) -> Result<(AuthzenDecision, bool), ApiError> {
    let (mut question, origins) = evaluation
        .question(snapshot)
        .map_err(|e| authzen_error(e, &[]))?;
    check_entities(state.limits.max_entities, &[question.entities.as_ref()])?;
    if let Some(sourced) = state.sourced()? {
        sourced.question(&mut question).await?;
    }
    let answer = state
        .decider
        .answer(snapshot, &question, None)
        .map_err(|e| authzen_error(e, &origins))?;
    state.check_missing(false, &answer.decision.missing)?;
    let decided = (&*answer.decision, answer.policy_version.as_str());
    let hit = Some(answer.cache_hit);
    let record = Record::of(Source::Authzen, &question, decided, hit, None);
    count_and_log(state, request, started, record);
    let decision = decision_object(&answer.decision, &answer.policy_version);
    let allowed = decision.decision;
    state.shadow(request, snapshot, || {
        (
            Input::Question(Box::new(question)),
            vec![Some(answer.decision)],
        )
    });
    Ok((decision, allowed))
}

/// Whether `evaluation` is allowed, for a search: neither counted nor logged (a search
/// asks every candidate, as a plan does).
fn allows(
    state: &AppState,
    snapshot: &Snapshot,
    evaluation: &Evaluation,
) -> Result<bool, ApiError> {
    let (_, answer) = answer(state, snapshot, evaluation)?;
    Ok(answer.decision.decision == Verdict::Allow)
}

/// The question `evaluation` asks and its answer, errors named by their AuthZEN field.
fn answer(
    state: &AppState,
    snapshot: &Snapshot,
    evaluation: &Evaluation,
) -> Result<(Question, Answer), ApiError> {
    let (question, origins) = evaluation
        .question(snapshot)
        .map_err(|e| authzen_error(e, &[]))?;
    check_entities(state.limits.max_entities, &[question.entities.as_ref()])?;
    let answer = state
        .decider
        .answer(snapshot, &question, None)
        .map_err(|e| authzen_error(e, &origins))?;
    Ok((question, answer))
}

/// The AuthZEN decision: `decision`, and a `context` saying why (the deciding policies,
/// `reason_admin` for people, evaluation errors and missing entities when any).
fn decision_object(decision: &Decision, policy_version: &str) -> AuthzenDecision {
    let allowed = decision.decision == Verdict::Allow;
    let listed = |ids: &[String]| {
        ids.iter()
            .map(|id| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let why = if allowed {
        format!("permitted by {}", listed(&decision.reasons))
    } else if !decision.errors.is_empty() {
        format!(
            "denied: {} evaluation error(s), and errors fail closed",
            decision.errors.len()
        )
    } else if !decision.reasons.is_empty() {
        format!("forbidden by {}", listed(&decision.reasons))
    } else {
        "denied: no policy permits this request".to_string()
    };
    AuthzenDecision {
        decision: allowed,
        context: DecisionContext {
            reason_admin: Some(Reason { en: why }),
            policies: Some(decision.reasons.clone()),
            errors: decision.errors.clone(),
            missing: decision.missing.clone(),
            policy_version: Some(policy_version.to_string()),
            error: None,
        },
    }
}

/// An item of `/evaluations` that could not be asked: a closed decision whose context
/// carries the error, as the specification's "Errors" section shows.
fn error_decision(error: &ApiError, field: Option<String>) -> AuthzenDecision {
    AuthzenDecision {
        decision: false,
        context: DecisionContext {
            error: Some(ItemError {
                status: error.code.status().as_u16(),
                code: error.code,
                message: error.message.clone(),
                field,
            }),
            ..DecisionContext::default()
        },
    }
}

/// `POST /access/v1/evaluation`: one decision, `{"decision": bool, "context": {...}}`.
#[utoipa::path(post, path = "/access/v1/evaluation", tag = "authzen",
    request_body = super::body::EvaluationDoc,
    responses(
        (status = 200, description = "The decision", body = AuthzenDecision),
        (status = 400, description = "A field is missing or wrong; `error.field` names it (`subject.type`)", body = ErrorBody),
    ))]
pub async fn evaluation(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AuthzenDecision>, ApiError> {
    let started = Instant::now();
    let body: Map<String, Value> = parse_body::<StrictObject>(body)?.0;
    let snapshot = state.store.current();
    let evaluation = parse_evaluation(&state, &snapshot, |key| body.get(key).cloned())?;
    let id = request_id(&headers);
    let (decision, _) = evaluate(&state, &snapshot, &evaluation, (id, started)).await?;
    Ok(Json(decision))
}

/// `POST /access/v1/evaluations`: the top-level `subject`, `action`, `resource` and
/// `context` are defaults that each item of `evaluations` may replace; the answers come in
/// the items' order, up to the one that stops an `evaluations_semantic` other than
/// `execute_all`. Without items (absent or empty) it answers as `/evaluation` does.
#[utoipa::path(post, path = "/access/v1/evaluations", tag = "authzen",
    request_body = super::body::EvaluationsDoc,
    responses(
        (status = 200, description = "One decision per item evaluated (an item that could not be asked is a `false` decision with `context.error`); without items, the top-level decision", body = EvaluationsBody),
        (status = 400, description = "The body, `options` or `evaluations` is wrong, or (without items) a field of the tuple", body = ErrorBody),
    ))]
pub async fn evaluations(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EvaluationsBody>, ApiError> {
    let started = Instant::now();
    let mut body: Map<String, Value> = parse_body::<StrictObject>(body)?.0;
    let semantic = Semantic::parse(body.get("options")).map_err(ApiError::from)?;
    let items = match body.remove("evaluations") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
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
        let (decision, _) = evaluate(&state, &snapshot, &evaluation, (id, started)).await?;
        return Ok(Json(EvaluationsBody::One(decision)));
    }
    let mut results = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let answered = match item {
            Value::Object(own) => {
                let get = |key: &str| own.get(key).or_else(|| body.get(key)).cloned();
                match parse_evaluation(&state, &snapshot, get) {
                    Ok(evaluation) => evaluate(&state, &snapshot, &evaluation, (id, started))
                        .await
                        .map_err(|error| (error, own)),
                    Err(error) => Err((error, own)),
                }
            }
            other => Err((
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("`evaluations[{i}]` must be an object, got `{other}`"),
                )
                .with_field(format!("evaluations[{i}]")),
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
                (error_decision(&error, field), false)
            }
        };
        results.push(decision);
        if semantic.stops_after(allowed) {
            break;
        }
    }
    Ok(Json(EvaluationsBody::Many(AuthzenDecisions {
        evaluations: results,
    })))
}

/// The search body's parts that every search shares.
struct Search {
    body: Map<String, Value>,
    page: Page,
}

impl Search {
    fn parse(body: Result<Bytes, BytesRejection>) -> Result<Self, ApiError> {
        let body: Map<String, Value> = parse_body::<StrictObject>(body)?.0;
        let page = Page::parse(body.get("page"))?;
        Ok(Self { body, page })
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.body.get(key)
    }

    /// The page of an answer with `count` results (`next_token` empty on the last page).
    fn page(count: usize, next_token: String) -> PageAnswer {
        PageAnswer { next_token, count }
    }

    /// The answer of a subject or resource search: `results` of type `kind`, and `page`.
    fn found(kind: &str, ids: Vec<String>, next_token: String) -> Json<SearchBody> {
        Json(SearchBody {
            page: Self::page(ids.len(), next_token),
            results: ids
                .into_iter()
                .map(|id| Found {
                    kind: kind.to_string(),
                    id,
                })
                .collect(),
        })
    }
}

/// An action the schema does not know is allowed to nobody: a search for it finds nothing
/// (the search interop scenario asks for a valid empty answer, not an error).
fn known_action(snapshot: &Snapshot, action: &Act) -> bool {
    action.uid(snapshot).is_ok()
}

/// Which party a subject or resource search looks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sought {
    Subject,
    Resource,
}

/// The stored entities of the sought party's type that the rest of the question allows, in
/// id order, one page.
async fn search_entities(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
    sought: Sought,
) -> Result<Json<SearchBody>, ApiError> {
    let search = Search::parse(body)?;
    let snapshot = state.store.current();
    let types = &state.authzen.types;
    let party =
        |field, searched| Party::parse(&snapshot, types, field, search.get(field), searched);
    let subject = party("subject", sought == Sought::Subject)?;
    let action = Act::parse(search.get("action"))?;
    let resource = party("resource", sought == Sought::Resource)?;
    let context = context(search.get("context"))?;
    let target = match sought {
        Sought::Subject => &subject,
        Sought::Resource => &resource,
    };
    if !known_action(&snapshot, &action) {
        return Ok(Search::found(&target.kind, Vec::new(), String::new()));
    }
    let after = search.page.after.as_deref();
    if state.sourced()?.is_some() {
        // From the entity database: the list's plan run as SQL (or its candidates decided
        // one by one), the known party's `properties` laid over its stored entity.
        let action_uid = Uid::Text(
            action
                .uid(&snapshot)
                .map_err(|e| authzen_error(e, &[]))?
                .to_string(),
        );
        let known = match sought {
            Sought::Subject => &resource,
            Sought::Resource => &subject,
        };
        let entities = known
            .entity(&snapshot)
            .map(|entity| EntityList::from(Value::Array(vec![entity])));
        let lister = match sought {
            Sought::Subject => {
                Lister::subjects(
                    state,
                    Arc::clone(&snapshot),
                    &[action_uid],
                    &resource.uid(),
                    &subject.cedar_type,
                    context.as_ref(),
                    None,
                    entities,
                )
                .await
            }
            Sought::Resource => {
                Lister::resources(
                    state,
                    Arc::clone(&snapshot),
                    &subject.uid(),
                    &action_uid,
                    &resource.cedar_type,
                    context.as_ref(),
                    None,
                    entities,
                )
                .await
            }
        }?;
        let found = lister.page(state, after, search.page.limit as u64).await?;
        let next = match (found.more, found.ids.last()) {
            (true, Some(last)) => encode_token(last),
            _ => String::new(),
        };
        return Ok(Search::found(&target.kind, found.ids, next));
    }
    let candidates = snapshot.stored_ids(&target.cedar_type, after);
    let found = collect(candidates, search.page.limit, |id| {
        let mut evaluation = Evaluation {
            subject: subject.clone(),
            action: action.clone(),
            resource: resource.clone(),
            context: context.clone(),
        };
        let slot = match sought {
            Sought::Subject => &mut evaluation.subject,
            Sought::Resource => &mut evaluation.resource,
        };
        slot.id = Some(id.to_string());
        allows(state, &snapshot, &evaluation)
    })?;
    Ok(Search::found(&target.kind, found.ids, found.next_token))
}

/// `POST /access/v1/search/subject`: the stored subjects of `subject.type` that may do
/// `action` on `resource`, in id order.
#[utoipa::path(post, path = "/access/v1/search/subject", tag = "authzen",
    request_body = super::body::SubjectSearchDoc,
    responses(
        (status = 200, description = "A page of subjects (none for an action the schema does not know)", body = SearchBody),
        (status = 400, description = "A field is missing or wrong; `error.field` names it", body = ErrorBody),
    ))]
pub async fn search_subject(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SearchBody>, ApiError> {
    search_entities(&state, body, Sought::Subject).await
}

/// `POST /access/v1/search/resource`: the stored resources of `resource.type` on which
/// `subject` may do `action`, in id order.
#[utoipa::path(post, path = "/access/v1/search/resource", tag = "authzen",
    request_body = super::body::ResourceSearchDoc,
    responses(
        (status = 200, description = "A page of resources (none for an action the schema does not know)", body = SearchBody),
        (status = 400, description = "A field is missing or wrong; `error.field` names it", body = ErrorBody),
    ))]
pub async fn search_resource(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SearchBody>, ApiError> {
    search_entities(&state, body, Sought::Resource).await
}

/// `POST /access/v1/search/action`: the actions of the schema that apply to the subject's
/// and the resource's types and that `subject` may do on `resource`, by name.
///
/// Each action is asked with the context keys it declares; one whose required keys are absent
/// is found only when every context would allow it, as `/v1/allowed_actions` decides it.
#[utoipa::path(post, path = "/access/v1/search/action", tag = "authzen",
    request_body = super::body::ActionSearchDoc,
    responses(
        (status = 200, description = "A page of actions", body = ActionSearchBody),
        (status = 400, description = "A field is missing or wrong; `error.field` names it", body = ErrorBody),
    ))]
pub async fn search_action(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ActionSearchBody>, ApiError> {
    let search = Search::parse(body)?;
    let snapshot = state.store.current();
    let types = &state.authzen.types;
    let subject = Party::parse(&snapshot, types, "subject", search.get("subject"), false)?;
    let resource = Party::parse(&snapshot, types, "resource", search.get("resource"), false)?;
    let context = context(search.get("context"))?;
    if snapshot
        .catalog
        .applicable(&subject.cedar_type, &resource.cedar_type)
        .next()
        .is_none()
    {
        return Ok(Json(ActionSearchBody {
            page: Search::page(0, String::new()),
            results: Vec::new(),
        }));
    }
    // As `/v1/allowed_actions`: each action decided with the context keys it declares, and
    // one whose required keys are absent found only when every context would allow it.
    let (mut question, origins) = actions_question(&snapshot, &subject, &resource, context);
    check_entities(state.limits.max_entities, &[question.entities.as_ref()])?;
    if let Some(sourced) = state.sourced()? {
        let roots = crate::sourced::roots(
            &[&question.principal, &question.resource],
            question.context.as_ref(),
        );
        sourced.fill(roots, &mut question.entities, None).await?;
    }
    let answer = decide_actions(&state.decider, &snapshot, &question)
        .map_err(|e| authzen_error(e, &origins))?;
    let mut names: Vec<String> = answer
        .with(Verdict::Allow)
        .into_iter()
        .filter(|name| {
            search
                .page
                .after
                .as_deref()
                .is_none_or(|after| *name > after)
        })
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    let found = collect(names, search.page.limit, |_| Ok::<_, ApiError>(true))?;
    Ok(Json(ActionSearchBody {
        page: Search::page(found.ids.len(), found.next_token),
        results: found
            .ids
            .into_iter()
            .map(|name| FoundAction { name })
            .collect(),
    }))
}

/// `GET /.well-known/authzen-configuration`: the PDP metadata, with endpoints under
/// `--public-url` (or `http://` and the request's `Host`).
#[utoipa::path(get, path = "/.well-known/authzen-configuration", tag = "authzen",
    responses((status = 200, description = "The PDP metadata", body = AuthzenConfiguration)))]
pub async fn configuration(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Json<AuthzenConfiguration> {
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
    let endpoint = |path: &str| format!("{base}{PREFIX}/{path}");
    Json(AuthzenConfiguration {
        access_evaluation_endpoint: endpoint("evaluation"),
        access_evaluations_endpoint: endpoint("evaluations"),
        search_subject_endpoint: endpoint("search/subject"),
        search_resource_endpoint: endpoint("search/resource"),
        search_action_endpoint: endpoint("search/action"),
        policy_decision_point: base,
    })
}
