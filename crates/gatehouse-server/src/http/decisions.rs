//! The decision routes: `/v1/is_authorized`, `/v1/is_authorized/batch`,
//! `/v1/allowed_actions`, and the query plans of `/v1/plan`. Each takes the live snapshot once and answers with it, counts each
//! decision and writes its decision-log line.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::body::{
    ActionDiagnostics, AllowedBody, Batch, BatchBody, BatchResult, DecisionBody, PlanBody,
    PositionBody,
};
use super::error::ErrorBody;
use super::error::{ApiError, ErrorCode};
use super::{AppState, HotAnswer, HotCache};
use crate::decide::allowed::{ActionsQuestion, allowed_actions as decide_actions};
use crate::decide::question::uid_text;
use crate::decide::{Decision, EntityList, Question, Verdict};
use crate::plan::PlanQuestion;
use crate::shadow::Input;
use crate::telemetry::Source;
use crate::telemetry::decision_log::{DecisionLine, Full};

/// Parses a JSON body into `T`, or a 400 saying what is wrong. The body must be a JSON
/// object: serde would read a struct from a positional array too
/// (`["User::\"vera\"", "edit", "Project::\"p1\""]`), which no client means.
pub fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body?;
    super::strict::read_object(&body, "the body")
}

/// Refuses a request carrying more than `max` entities in `lists`.
pub(crate) fn check_entities(max: usize, lists: &[Option<&EntityList>]) -> Result<(), ApiError> {
    let count: usize = lists.iter().flatten().map(|l| l.len()).sum();
    if count > max {
        return Err(ApiError::new(
            ErrorCode::TooManyEntities,
            format!("the request carries {count} entities; at most {max} are allowed"),
        )
        .with_field("entities"));
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

/// A decision's body; `at`, the entity database's position it was decided as of.
fn decision_body(decision: &Decision, version: &str, at: Option<String>) -> DecisionBody {
    DecisionBody {
        entities_at: at,
        ..DecisionBody::new(decision, version)
    }
}

/// Who asked what about which resource, for the decision log.
pub(crate) enum Who<'a> {
    /// Already written out (a hot answer keeps them).
    Text(&'a [String; 3]),
    /// Written out only when a line is logged: reading a uid costs microseconds, and a batch
    /// would pay it for every question.
    Question(&'a Question),
}

/// One decision to count and log.
pub(crate) struct Record<'a> {
    source: Source,
    who: Who<'a>,
    decision: &'a Decision,
    policy_version: &'a str,
    /// `None` when no cache was asked (`allowed_actions`).
    cache_hit: Option<bool>,
    /// The question's context, own entities and a batch's shared entities, logged with
    /// `--decision-log-full`.
    full: Full<'a>,
}

impl<'a> Record<'a> {
    /// The record of `question`'s decision; `shared` are its batch's shared entities.
    pub(crate) fn of(
        source: Source,
        question: &'a Question,
        (decision, policy_version): (&'a Decision, &'a str),
        cache_hit: Option<bool>,
        shared: Option<&'a EntityList>,
    ) -> Self {
        Self {
            source,
            who: Who::Question(question),
            decision,
            policy_version,
            cache_hit,
            full: (
                question.context.as_ref(),
                question.entities.as_ref(),
                shared,
            ),
        }
    }
}

/// Counts a decision and writes its decision-log line.
pub(crate) fn count_and_log(
    state: &AppState,
    request_id: &str,
    started: Instant,
    record: Record<'_>,
) {
    state
        .metrics
        .count_decision(record.decision.decision, record.source);
    if let Some(hit) = record.cache_hit {
        state.metrics.count_cache_lookup(hit);
    }
    let Some(log) = &state.log else {
        return;
    };
    let written_out;
    let [principal, action, resource] = match record.who {
        Who::Text(who) => who,
        Who::Question(question) => {
            written_out = who(question);
            &written_out
        }
    };
    let (context, entities, shared_entities) = if log.full {
        record.full
    } else {
        (None, None, None)
    };
    let line = DecisionLine {
        time: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        request_id,
        principal: principal.as_str(),
        action: action.as_str(),
        resource: resource.as_str(),
        decision: record.decision,
        policy_version: record.policy_version,
        cache_hit: record.cache_hit.unwrap_or(false),
        latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        context,
        entities,
        shared_entities,
    };
    log.write_json(&line);
}

fn who(question: &Question) -> [String; 3] {
    [&question.principal, &question.action, &question.resource].map(uid_text)
}

/// `POST /v1/is_authorized`. A body seen before under the live policy set is answered from
/// the hot cache by the digest of its bytes, before any parsing.
#[utoipa::path(post, path = "/v1/is_authorized", tag = "decisions",
    request_body = Question,
    responses(
        (status = 200, description = "The decision and the deciding policies", body = DecisionBody),
        (status = 400, description = "The question cannot be asked; `error.field` names the offending field", body = ErrorBody),
    ))]
pub async fn is_authorized(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body?;
    let snapshot = state.store.current();
    let id = request_id(&headers);
    let hot_key = state.hot().map(|_| HotCache::key(&snapshot.inputs, &body));
    if let (Some(hot), Some(key)) = (state.hot(), &hot_key)
        && let Some(answer) = hot.get(key)
        && hot_holds(&state, &answer)?
    {
        let record = Record {
            source: Source::Question,
            who: Who::Text(&answer.who),
            decision: &answer.decision,
            policy_version: &snapshot.version,
            cache_hit: Some(true),
            full: (None, None, None),
        };
        count_and_log(&state, id, started, record);
        state.shadow(id, &snapshot, || {
            (Input::Body(body), vec![Some(Arc::clone(&answer.decision))])
        });
        return Ok(json_response(answer.body.clone()));
    }
    // A reference count, for the shadow evaluation.
    let mut received = state.shadow.is_some().then(|| Input::Body(body.clone()));
    let mut question: Question = parse_body(Ok(body))?;
    check_entities(state.limits.max_entities, &[question.entities.as_ref()])?;
    let (mut at, mut read) = (None, None);
    let sourced = state.sourced()?;
    if let Some(sourced) = sourced {
        (at, read) = sourced.question_read(&mut question).await?;
        // The candidate decides on what the live set decided on.
        received = received.map(|_| Input::Question(Box::new(question.clone())));
    }
    let answer = state.decider.answer(&snapshot, &question, None)?;
    state.check_missing(question.strict_entities, &answer.decision.missing)?;
    // The hot answer keeps the uids written out; without it they are written only if logged.
    let who = hot_key.is_some().then(|| who(&question));
    let decided = (&*answer.decision, answer.policy_version.as_str());
    let mut record = Record::of(
        Source::Question,
        &question,
        decided,
        Some(answer.cache_hit),
        None,
    );
    if let Some(who) = &who {
        record.who = Who::Text(who);
    }
    count_and_log(&state, id, started, record);
    let rendered = Bytes::from(
        serde_json::to_vec(&decision_body(&answer.decision, &answer.policy_version, at))
            .map_err(ApiError::internal)?,
    );
    if let Some(input) = received {
        state.shadow(id, &snapshot, || {
            (input, vec![Some(Arc::clone(&answer.decision))])
        });
    }
    // From a database, only an answer made through the cache is kept (not a `"full"` one),
    // with what it read.
    if let (Some(hot), Some(key), Some(who)) = (state.hot(), hot_key, who)
        && (sourced.is_none() || read.is_some())
    {
        let answer = HotAnswer {
            body: rendered.clone(),
            decision: answer.decision,
            who,
            read,
        };
        hot.insert(key, answer);
    }
    Ok(json_response(rendered))
}

/// Whether a hot answer may be served: always without an entity database; with one, while
/// no change to an entity it read has been applied since it was made.
fn hot_holds(state: &AppState, answer: &HotAnswer) -> Result<bool, ApiError> {
    Ok(match (state.sourced()?, &answer.read) {
        (None, _) => true,
        (Some(sourced), Some(read)) => sourced.still_holds(read),
        (Some(_), None) => false,
    })
}

/// A batch item read from its text (valid JSON, as the batch was read), or its error as
/// reading it from the batch's tree words it: without a position, which would be within the
/// item.
fn item(text: &str) -> Result<Question, ApiError> {
    if !text.starts_with('{') {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "each item of `requests` must be a JSON object",
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        let refused = super::strict::refused::<Question>(text.as_bytes(), &e);
        if refused.field.is_some() {
            return refused;
        }
        let message = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&at).unwrap_or(&message);
        ApiError::new(ErrorCode::InvalidRequest, message.to_string())
    })
}

fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `POST /v1/is_authorized/batch`. An item that cannot be asked gets an error object of its
/// own (with its `index`); the others are answered.
#[utoipa::path(post, path = "/v1/is_authorized/batch", tag = "decisions",
    request_body = Batch,
    responses(
        (status = 200, description = "One result per question, in order: a decision, or the error of a question that could not be asked", body = BatchBody),
        (status = 400, description = "The batch cannot be read, has too many questions, or its shared entities are wrong", body = ErrorBody),
    ))]
pub async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchBody>, ApiError> {
    let started = Instant::now();
    let body = body?;
    // A reference count, for the shadow evaluation.
    let mut received = state.shadow.is_some().then(|| body.clone());
    let Batch {
        entities,
        requests,
        strict_entities,
        consistency,
    } = parse_body(Ok(body))?;
    check_batch_size(state.limits.max_batch, requests.len())?;
    let max_entities = state.limits.max_entities;
    check_entities(max_entities, &[entities.as_ref()])?;
    let snapshot = state.store.current();
    let mut questions: Vec<Result<Question, ApiError>> =
        requests.iter().map(|raw| item(raw.get())).collect();
    // What every question sent is checked against the limit before the database adds its own.
    for question in questions.iter_mut() {
        if let Ok(read) = question
            && let Err(error) =
                check_entities(max_entities, &[entities.as_ref(), read.entities.as_ref()])
        {
            *question = Err(error);
        }
    }
    let (entities, at) = match state.sourced()? {
        None => (entities, None),
        Some(sourced) => {
            let read: Vec<&mut Question> = questions.iter_mut().flatten().collect();
            let (shared, at) = sourced
                .batch(read, entities.as_ref(), consistency.as_ref())
                .await?;
            // The candidate decides on what the live set decided on.
            if received.is_some() {
                let asked: Vec<Value> = questions
                    .iter()
                    .map(|q| q.as_ref().map_or(Value::Null, |q| serde_json::json!(q)))
                    .collect();
                let body = serde_json::json!({"entities": shared, "requests": asked});
                received = serde_json::to_vec(&body).ok().map(Bytes::from);
            }
            (shared, at)
        }
    };
    // Shared entities are parsed once; wrong, they are the whole batch's fault.
    let shared = entities
        .as_ref()
        .map(|json| {
            let read = questions.iter().filter_map(|q| q.as_ref().ok());
            state.decider.batch(&snapshot, json, read)
        })
        .transpose()?;
    let id = request_id(&headers);
    let answer_one =
        |question: Result<Question, ApiError>| -> Result<(DecisionBody, Arc<Decision>), ApiError> {
            let question = question?;
            let answer = state
                .decider
                .answer(&snapshot, &question, shared.as_ref())?;
            let strict = strict_entities || question.strict_entities;
            state.check_missing(strict, &answer.decision.missing)?;
            let decided = (&*answer.decision, answer.policy_version.as_str());
            let hit = Some(answer.cache_hit);
            let record = Record::of(Source::Batch, &question, decided, hit, entities.as_ref());
            count_and_log(&state, id, started, record);
            let body = decision_body(&answer.decision, &answer.policy_version, at.clone());
            Ok((body, answer.decision))
        };
    // The live decisions, kept only for the shadow evaluation.
    let mut decisions = received
        .as_ref()
        .map(|_| Vec::with_capacity(requests.len()));
    let results = questions
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let (result, decision) = match answer_one(item) {
                Ok((body, decision)) => (BatchResult::Decision(body), Some(decision)),
                Err(error) => (BatchResult::Error(error.at_index(i).body()), None),
            };
            if let Some(decisions) = &mut decisions {
                decisions.push(decision);
            }
            result
        })
        .collect();
    if let (Some(body), Some(decisions)) = (received, decisions) {
        state.shadow(id, &snapshot, || (Input::Batch(body), decisions));
    }
    Ok(Json(BatchBody { results }))
}

/// A batch of `len` questions is refused beyond `max` (`--max-batch`).
fn check_batch_size(max: usize, len: usize) -> Result<(), ApiError> {
    if len <= max {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::BatchTooLarge,
        format!("`requests` has {len} items; at most {max} are allowed"),
    )
    .with_field("requests"))
}

/// `POST /v1/allowed_actions`: every action of the schema that applies to the principal and
/// resource types (or those of `actions`), decided, with the deciding policies. An action
/// whose required context keys are missing is decided when every context decides it alike,
/// and listed in `needs_context` otherwise, never guessed.
#[utoipa::path(post, path = "/v1/allowed_actions", tag = "decisions",
    request_body = ActionsQuestion,
    responses(
        (status = 200, description = "Every applicable action, allowed, denied or needing context", body = AllowedBody),
        (status = 400, description = "The question cannot be asked; `error.field` names the offending field", body = ErrorBody),
    ))]
pub async fn allowed_actions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AllowedBody>, ApiError> {
    let started = Instant::now();
    let mut question: ActionsQuestion = parse_body(body)?;
    check_entities(state.limits.max_entities, &[question.entities.as_ref()])?;
    let mut at = None;
    if let Some(sourced) = state.sourced()? {
        let roots = crate::sourced::roots(
            &[&question.principal, &question.resource],
            question.context.as_ref(),
        );
        at = sourced
            .fill(roots, &mut question.entities, question.consistency.as_ref())
            .await?;
    }
    let snapshot = state.store.current();
    let answer = decide_actions(&state.decider, &snapshot, &question)?;
    state.check_missing(question.strict_entities, &answer.missing())?;
    let id = request_id(&headers);
    for decided in &answer.decided {
        let made = (&*decided.decision, snapshot.version.as_str());
        let record = Record::of(Source::AllowedActions, &decided.question, made, None, None);
        count_and_log(&state, id, started, record);
    }
    let owned = |ids: Vec<&str>| ids.into_iter().map(str::to_string).collect();
    let by_action = |map: std::collections::BTreeMap<&str, &[String]>| {
        map.into_iter()
            .map(|(action, ids)| (action.to_string(), ids.to_vec()))
            .collect()
    };
    Ok(Json(AllowedBody {
        allowed: owned(answer.with(Verdict::Allow)),
        denied: owned(answer.with(Verdict::Deny)),
        diagnostics: ActionDiagnostics {
            reasons: by_action(answer.reasons()),
            errors: by_action(answer.errors()),
            missing: owned(answer.missing()),
        },
        needs_context: answer.needs_context,
        policy_version: snapshot.version.clone(),
        entities_at: at,
    }))
}

/// `POST /v1/plan`: which resources of a type the principal may act on, as a condition and
/// as residual policies (the README describes the condition language).
#[utoipa::path(post, path = "/v1/plan", tag = "decisions",
    request_body = PlanQuestion,
    responses(
        (status = 200, description = "The plan: always, never, or where its condition holds", body = PlanBody),
        (status = 400, description = "The question cannot be asked; `error.field` names the offending field", body = ErrorBody),
    ))]
pub async fn plan(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PlanBody>, ApiError> {
    let mut question: PlanQuestion = parse_body(body)?;
    check_entities(state.limits.max_entities, &[question.entities.as_ref()])?;
    let version = match question.condition_version {
        None => gatehouse_api::CONDITION_VERSION,
        Some(version @ (1 | 2)) => version,
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("`condition_version` must be 1 or 2, got {other}"),
            )
            .with_field("condition_version"));
        }
    };
    let mut at = None;
    if let Some(sourced) = state.sourced()? {
        let roots = crate::sourced::roots(&[&question.principal], question.context.as_ref());
        at = sourced
            .fill(roots, &mut question.entities, question.consistency.as_ref())
            .await?;
    }
    let snapshot = state.store.current();
    // Plans are not decisions: neither the decision metrics nor the decision log count them.
    let (plan, _hit) = state.planner.plan(&state.decider, &snapshot, &question)?;
    Ok(Json(PlanBody {
        plan: plan.written(version),
        policy_version: snapshot.version.clone(),
        entities_at: at,
    }))
}

/// `GET /v1/entities/position`: with an entity database that says what changed in commit
/// order, the position of its last committed change and of the last the sidecar has
/// applied. A host that has just written asks with `"consistency": {"at_least": position}`
/// to be decided on its write (a "new enemy" never sees a revoke undone).
#[utoipa::path(get, path = "/v1/entities/position", tag = "decisions",
    responses(
        (status = 200, description = "Where the entity database's changes stand", body = PositionBody),
        (status = 409, description = "`not_following`: the sidecar has no entity database (`--entities-db`), so no positions", body = ErrorBody),
        (status = 503, description = "`entities_unavailable`: the database did not answer", body = ErrorBody),
    ))]
pub async fn entities_position(
    State(state): State<AppState>,
) -> Result<Json<PositionBody>, ApiError> {
    let Some(sourced) = state.sourced()? else {
        return Err(ApiError::new(
            ErrorCode::NotFollowing,
            "this sidecar has no entity database, so no positions: start it with `--entities-db sqlite://…` or `--entities-db postgres://…`",
        ));
    };
    let position = sourced.source().position().await.map_err(|e| {
        ApiError::new(
            ErrorCode::EntitiesUnavailable,
            format!("the entity database did not answer: {e}"),
        )
    })?;
    Ok(Json(PositionBody {
        position: sourced.source().show_position(position),
        applied: sourced.source().show_position(sourced.applied()),
    }))
}
