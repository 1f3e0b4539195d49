//! The list routes: `/v1/list` ("which resources of this type may she …?") and
//! `/v1/list/subjects` ("who may … this resource?").
//!
//! Each makes a plan (the resource unknown, or the principal), and with an entity database
//! runs its condition as SQL through the mapping, a page at a time by keyset, in the
//! database's order of ids: the page is exactly the ids one-by-one decisions would allow,
//! read in one statement. A plan whose condition the SQL cannot express, or a sidecar without
//! a database (its stored entities file), is answered by deciding the candidates one by one
//! in id order until the page is full, and the answer says so (`listed_by`). With
//! `Accept: application/x-ndjson` every id is streamed, a line each, ended by a line that
//! says the list is complete.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use gatehouse_api::Consistency;
use gatehouse_source::list::ListError;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::decisions::parse_body;
use super::error::{ApiError, ErrorBody, ErrorCode};
use crate::authzen::{decode_token, encode_token};
use crate::cedar_json::{Part, read_uid};
use crate::decide::{EntityList, Question, Verdict};
use crate::plan::{Condition, Plan, PlanKind, PlanQuestion, SubjectsQuestion};
use crate::policy::{ActionInfo, Snapshot};
use crate::sourced::Sourced;
use gatehouse_api::Uid;
use gatehouse_api::condition::{Literal, Uid as ConditionUid};

/// Ids per page unless `page.size` says otherwise.
pub const DEFAULT_SIZE: u64 = 100;
/// The largest `page.size`.
pub const MAX_SIZE: u64 = 1000;
/// Candidates read per step when deciding one by one.
const CHUNK: u64 = 1000;
/// Ids read per step of a stream: one statement for most lists (each step reads its ids in
/// one query, then sends them a thousand lines at a time).
const STREAM_CHUNK: u64 = 100_000;

/// A list's `page`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPage {
    /// How many ids at most, 1 to 1000; 100 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Where the previous page stopped: its answer's `next_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `POST /v1/list`: `{"principal", "action", "resource_type", "in"?, "context"?, "page"?,
/// "consistency"?}`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"principal": "User::\"vic\"", "action": "view", "resource_type": "Project", "page": {"size": 50}}))]
pub struct ListQuestion {
    /// The principal's uid (object or string form).
    #[serde(deserialize_with = "Uid::principal")]
    pub principal: Uid,
    /// The action's uid, or its id alone.
    #[serde(deserialize_with = "Uid::action")]
    pub action: Uid,
    /// The type of the resources listed, e.g. `Project`.
    pub resource_type: String,
    /// Only the resources in this entity (Cedar's `in`: it, or one of their ancestors), as
    /// `resource in Project::"p1"` reads: the items of one project.
    #[serde(
        rename = "in",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "scope"
    )]
    pub within: Option<Uid>,
    /// The context record; absent, empty for an action that declares no context keys.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::json_keys::strict_option"
    )]
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    pub context: Option<Value>,
    /// Which page.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "page_object"
    )]
    pub page: Option<ListPage>,
    /// With an entity database: how fresh the entities decided on must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
}

/// `POST /v1/list/subjects`: `{"action" | "actions", "resource", "principal_type",
/// "context"?, "page"?, "consistency"?}`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"actions": ["view", "edit", "share"], "resource": "Project::\"p1\"", "principal_type": "User"}))]
pub struct SubjectsListQuestion {
    /// The action (a uid, or its id alone); or `actions`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "one_action"
    )]
    pub action: Option<Uid>,
    /// Several actions at once: the subjects that may do any of them, each with those it
    /// may do (`subjects`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "Uid::actions"
    )]
    pub actions: Option<Vec<Uid>>,
    /// The resource's uid (object or string form).
    #[serde(deserialize_with = "Uid::resource")]
    pub resource: Uid,
    /// The type of the principals listed, e.g. `User`.
    pub principal_type: String,
    /// The context record, as for `/v1/list`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::json_keys::strict_option"
    )]
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    pub context: Option<Value>,
    /// Which page.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "page_object"
    )]
    pub page: Option<ListPage>,
    /// With an entity database: how fresh the entities decided on must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
}

/// A `page`: an object (or `null`), never the positional array serde would read a struct
/// from.
fn page_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ListPage>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(page @ Value::Object(_)) => ListPage::deserialize(page)
            .map(Some)
            .map_err(|e| D::Error::custom(format!("`page`: {e}"))),
        Some(other) => Err(D::Error::custom(format!(
            "`page` must be an object {{\"size\", \"token\"}}, got `{other}`"
        ))),
    }
}

fn one_action<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Uid>, D::Error> {
    Uid::action(deserializer).map(Some)
}

/// `in`: a uid, or `null` for none.
fn scope<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Uid>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        given => Uid::entity_for("in", given)
            .map(Some)
            .map_err(|e| D::Error::custom(e.to_string())),
    }
}

/// How a list was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListedBy {
    /// The plan's condition, run as SQL in the entity database.
    Sql,
    /// Candidates decided one by one, in id order (a plan the SQL cannot express, or no
    /// entity database: the stored entities file).
    Decisions,
}

/// One subject and the actions it may take, of those asked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubjectActions {
    /// The subject's id.
    pub id: String,
    /// The actions (their ids: `view`) it may take on the resource.
    pub actions: Vec<String>,
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListBody {
    /// The ids allowed, of the listed type, in the database's order of ids.
    pub ids: Vec<String>,
    /// With `actions`: each id of `ids` with the actions it may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Vec<SubjectActions>>,
    /// Where the next page starts (`page.token`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// How the list was answered.
    pub listed_by: ListedBy,
    /// Why the SQL could not answer, when decisions did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// The version of the policy set that made it.
    pub policy_version: String,
    /// With an entity database: the position the plan's entities are as of, at least (a
    /// token for `consistency.at_least`); the SQL reads the database as it is then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities_at: Option<String>,
}

/// `POST /v1/list`: the ids of the resources of `resource_type` the principal may take the
/// action on, a page at a time.
#[utoipa::path(post, path = "/v1/list", tag = "decisions",
    request_body = ListQuestion,
    responses(
        (status = 200, description = "A page of the ids allowed; with `Accept: application/x-ndjson`, every id, a JSON line each, then `{\"done\": true, …}`", body = ListBody),
        (status = 400, description = "The question cannot be asked; `error.field` names the offending field", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let question: ListQuestion = parse_body(body)?;
    let page = Paging::of(question.page.as_ref())?;
    let lister = Lister::resources(
        &state,
        state.store.current(),
        &question.principal,
        &question.action,
        &question.resource_type,
        question.context.as_ref(),
        question.consistency.as_ref(),
        None,
    )
    .await?
    .within(question.within.as_ref())?;
    answer(state, lister, page, &headers, false).await
}

/// `POST /v1/list/subjects`: the ids of the principals of `principal_type` that may take
/// the action (or any of `actions`) on the resource, a page at a time: "who has access?".
#[utoipa::path(post, path = "/v1/list/subjects", tag = "decisions",
    request_body = SubjectsListQuestion,
    responses(
        (status = 200, description = "A page of the subjects allowed (with `actions`, each with the actions it may take); with `Accept: application/x-ndjson`, every one, a JSON line each, then `{\"done\": true, …}`", body = ListBody),
        (status = 400, description = "The question cannot be asked; `error.field` names the offending field", body = ErrorBody),
    ))]
pub async fn subjects(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let question: SubjectsListQuestion = parse_body(body)?;
    let page = Paging::of(question.page.as_ref())?;
    let (actions, several) = match (&question.action, &question.actions) {
        (Some(action), None) => (vec![action.clone()], false),
        (None, Some(actions)) if !actions.is_empty() => (actions.clone(), true),
        (None, Some(_)) => {
            return Err(invalid(
                "actions",
                "`actions` must name at least one action",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(invalid("actions", "give `action` or `actions`, not both"));
        }
        (None, None) => return Err(invalid("action", "`action` (or `actions`) is required")),
    };
    let lister = Lister::subjects(
        &state,
        state.store.current(),
        &actions,
        &question.resource,
        &question.principal_type,
        question.context.as_ref(),
        question.consistency.as_ref(),
        None,
    )
    .await?;
    answer(state, lister, page, &headers, several).await
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message.to_string()).with_field(field)
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone)]
struct Paging {
    after: Option<String>,
    size: u64,
}

impl Paging {
    fn of(page: Option<&ListPage>) -> Result<Self, ApiError> {
        let page = page.cloned().unwrap_or_default();
        let size = page.size.unwrap_or(DEFAULT_SIZE);
        if !(1..=MAX_SIZE).contains(&size) {
            return Err(invalid(
                "page.size",
                &format!("`page.size` must be from 1 to {MAX_SIZE}, got {size}"),
            ));
        }
        let after = match page.token.as_deref() {
            None | Some("") => None,
            Some(token) => Some(decode_token(token).ok_or_else(|| {
                invalid(
                    "page.token",
                    &format!("`page.token` `{token}` is not a token this sidecar gave"),
                )
            })?),
        };
        Ok(Self { after, size })
    }
}

/// What is unknown in a list's plans, and what the one-by-one questions are made of.
#[derive(Debug, Clone)]
enum Unknown {
    /// The resource; the principal is this.
    Resource(Uid),
    /// The principal; the resource is this.
    Principal(Uid),
}

/// A list to answer: its plans (one per action asked) and what deciding a candidate needs.
pub struct Lister {
    /// The listed entity type.
    listed: String,
    unknown: Unknown,
    plans: Vec<(Uid, Arc<Plan>)>,
    /// Each plan's action by its id (`view`, however it was asked), as answers name it.
    names: Vec<String>,
    /// The context of each plan's action.
    contexts: Vec<Option<Value>>,
    /// The known entities, as read from the database (the principal's or the resource's).
    entities: Option<EntityList>,
    /// `in`: only the ids of entities in this one, as a condition (`[] in` it), and as Cedar's.
    scope: Option<(Condition, cedar_policy::EntityUid)>,
    consistency: Option<Consistency>,
    snapshot: Arc<Snapshot>,
    at: Option<String>,
}

/// One page as found: the ids, with the actions of each (one set per id), whether more
/// follow, and how.
pub struct Found {
    /// The ids allowed.
    pub ids: Vec<String>,
    actions: Vec<Vec<usize>>,
    /// Whether more follow.
    pub more: bool,
    listed_by: ListedBy,
    unsupported: Option<String>,
}

impl Lister {
    /// The resources of `resource_type` `principal` may take `action` on: the plan, made on
    /// the principal's entities as the database holds them (with `entities`, the request's
    /// own, AuthZEN's `properties`).
    #[expect(
        clippy::too_many_arguments,
        reason = "a list question's parts, each its own"
    )]
    pub async fn resources(
        state: &AppState,
        snapshot: Arc<Snapshot>,
        principal: &Uid,
        action: &Uid,
        resource_type: &str,
        context: Option<&Value>,
        consistency: Option<&Consistency>,
        entities: Option<EntityList>,
    ) -> Result<Self, ApiError> {
        let mut plan = PlanQuestion {
            principal: principal.clone(),
            action: action.clone(),
            resource_type: resource_type.to_string(),
            context: context.cloned(),
            entities,
            consistency: consistency.cloned(),
            condition_version: None,
        };
        let mut at = None;
        if let Some(sourced) = state.sourced()? {
            let roots = crate::sourced::roots(&[&plan.principal], plan.context.as_ref());
            at = sourced
                .fill(roots, &mut plan.entities, plan.consistency.as_ref())
                .await?;
        }
        let (made, _hit) = state.planner.plan(&state.decider, &snapshot, &plan)?;
        let names = names(
            std::slice::from_ref(action),
            &[action_info(&snapshot, action)],
        );
        Ok(Self {
            listed: resource_type.to_string(),
            unknown: Unknown::Resource(principal.clone()),
            names,
            plans: vec![(action.clone(), made)],
            contexts: vec![plan.context],
            entities: plan.entities,
            scope: None,
            consistency: plan.consistency,
            snapshot,
            at,
        })
    }

    /// The principals of `principal_type` that may take any of `actions` on `resource`: a
    /// subjects plan per action, made on the resource's entities as the database holds them
    /// (with `entities`, the request's own). With several actions, an action's error names
    /// it as `actions[i]`.
    #[expect(
        clippy::too_many_arguments,
        reason = "a list question's parts, each its own"
    )]
    pub async fn subjects(
        state: &AppState,
        snapshot: Arc<Snapshot>,
        actions: &[Uid],
        resource: &Uid,
        principal_type: &str,
        context: Option<&Value>,
        consistency: Option<&Consistency>,
        mut entities: Option<EntityList>,
    ) -> Result<Self, ApiError> {
        let mut at = None;
        if let Some(sourced) = state.sourced()? {
            let roots = crate::sourced::roots(&[resource], context);
            at = sourced.fill(roots, &mut entities, consistency).await?;
        }
        let mut plans = Vec::with_capacity(actions.len());
        let mut contexts = Vec::with_capacity(actions.len());
        let several = actions.len() > 1;
        let infos: Vec<Option<&ActionInfo>> =
            actions.iter().map(|a| action_info(&snapshot, a)).collect();
        for (index, (action, info)) in actions.iter().zip(&infos).enumerate() {
            // Several actions: each gets the context keys it declares (as allowed actions).
            let own = match (several, context) {
                (true, Some(Value::Object(keys))) => {
                    let declared = info.map(|info| &info.context);
                    Some(Value::Object(
                        keys.iter()
                            .filter(|(k, _)| declared.is_some_and(|d| d.contains_key(*k)))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ))
                }
                _ => context.cloned(),
            };
            contexts.push(own.clone());
            let asked = SubjectsQuestion {
                action: action.clone(),
                resource: resource.clone(),
                principal_type: principal_type.to_string(),
                context: own,
                entities: entities.clone(),
            };
            let (made, _hit) = state
                .planner
                .subjects(&state.decider, &snapshot, &asked)
                .map_err(|e| {
                    let error = ApiError::from(e);
                    match (actions.len() > 1, error.field.as_deref()) {
                        (true, Some("action")) => error.with_field(format!("actions[{index}]")),
                        _ => error,
                    }
                })?;
            plans.push((action.clone(), made));
        }
        if let (true, Some(Value::Object(keys))) = (several, context) {
            let declared = |key: &str| {
                infos
                    .iter()
                    .flatten()
                    .any(|info| info.context.contains_key(key))
            };
            if let Some(key) = keys.keys().find(|key| !declared(key)) {
                return Err(invalid(
                    &format!("context.{key}"),
                    &format!("no action asked declares the context key `{key}`"),
                ));
            }
        }
        let names = names(actions, &infos);
        Ok(Self {
            listed: principal_type.to_string(),
            unknown: Unknown::Principal(resource.clone()),
            names,
            plans,
            contexts,
            entities,
            scope: None,
            consistency: consistency.cloned(),
            snapshot,
            at,
        })
    }

    /// Only the ids of entities in `ancestor` (a list's `in`), when given: refused (naming
    /// `in`) unless it is a uid of a type the schema declares.
    pub fn within(mut self, ancestor: Option<&Uid>) -> Result<Self, ApiError> {
        let Some(ancestor) = ancestor else {
            return Ok(self);
        };
        let catalog = &self.snapshot.catalog;
        let uid = read_uid(catalog, Part::Resource, "in", ancestor)?;
        let ty = uid.type_name().to_string();
        if catalog.declared_type(&ty).is_none() {
            return Err(invalid(
                "in",
                &format!("`in` names the type `{ty}`, which the schema does not declare"),
            ));
        }
        let condition = Condition::In {
            path: Vec::new(),
            value: Literal::Entity(ConditionUid {
                ty,
                id: uid.id().unescaped().to_string(),
            }),
        };
        self.scope = Some((condition, uid));
        Ok(self)
    }

    /// The page of at most `size` ids after `after`.
    pub async fn page(
        &self,
        state: &AppState,
        after: Option<&str>,
        size: u64,
    ) -> Result<Found, ApiError> {
        let sourced = state.sourced()?;
        let unsupported = match (sourced, self.condition()) {
            (Some(sourced), Ok(condition)) => {
                match self.by_sql(state, sourced, &condition, after, size).await? {
                    Ok(found) => return Ok(found),
                    Err(reason) => Some(reason),
                }
            }
            (_, Err(reason)) => reason,
            (None, Ok(_)) => None,
        };
        if let Some(reason) = &unsupported {
            tracing::info!(listed = %self.listed, %reason, "a list is decided one by one");
        }
        let mut found = self.by_decisions(state, sourced, after, size).await?;
        found.unsupported = unsupported;
        Ok(found)
    }

    /// Some plan's condition holds: the union of the actions'. `Err` with the reason when
    /// one is not filterable (`None`: no reason given).
    fn condition(&self) -> Result<Condition, Option<String>> {
        let mut any = Vec::with_capacity(self.plans.len());
        for (_, plan) in &self.plans {
            match (&plan.kind, &plan.condition) {
                (PlanKind::AlwaysDenied, _) => {}
                (_, Some(condition)) => any.push(condition.clone()),
                (_, None) => return Err(plan.unsupported.clone()),
            }
        }
        Ok(match &self.scope {
            Some((within, _)) => Condition::and(vec![within.clone(), Condition::or(any)]),
            None => Condition::or(any),
        })
    }

    /// The page by SQL: the ids where the union of the actions' conditions holds, read a
    /// page and one more at a time; each one with a dangling reference (where SQL may
    /// allow what a decision denies: [`gatehouse_sql::Mapping::dangling`]) decided by id,
    /// and dropped unless allowed; with several actions, which of them each may take. `Ok(Err)`
    /// when the condition has no SQL, with the reason.
    async fn by_sql(
        &self,
        state: &AppState,
        sourced: &Sourced,
        condition: &Condition,
        after: Option<&str>,
        size: u64,
    ) -> Result<Result<Found, String>, ApiError> {
        let source = sourced.source();
        let wanted = usize::try_from(size)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let (mut ids, mut actions) = (Vec::new(), Vec::new());
        let reads: Vec<Vec<String>> = self
            .plans
            .iter()
            .flat_map(|(_, plan)| plan.reads.iter().cloned())
            .collect();
        let mut from = after.map(str::to_string);
        let sql = |e: ListError| match e {
            ListError::Untranslatable(e) => Ok(e.to_string()),
            ListError::Source(e) => Err(unavailable(&e)),
        };
        while ids.len() < wanted && *condition != Condition::False {
            let asked = wanted - ids.len();
            let marked = match source
                .list(
                    condition,
                    &self.listed,
                    from.as_deref(),
                    asked as u64,
                    &reads,
                )
                .await
            {
                Ok(marked) => marked,
                Err(e) => return sql(e).map(Err),
            };
            let (batch, dangles): (Vec<String>, Vec<bool>) = marked.into_iter().unzip();
            let mut allowed: Vec<Vec<usize>> = vec![vec![0]; batch.len()];
            if self.plans.len() > 1 {
                allowed = vec![Vec::new(); batch.len()];
                for (index, (_, plan)) in self.plans.iter().enumerate() {
                    let Some(condition) = plan
                        .condition
                        .as_ref()
                        .filter(|_| plan.kind != PlanKind::AlwaysDenied)
                    else {
                        continue;
                    };
                    let which = match source.which(condition, &self.listed, &batch).await {
                        Ok(which) => which,
                        Err(e) => return sql(e).map(Err),
                    };
                    for (id, of) in batch.iter().zip(allowed.iter_mut()) {
                        if which.contains(id) {
                            of.push(index);
                        }
                    }
                }
            }
            let full = batch.len() == asked;
            from = batch.last().cloned();
            for ((id, mut may), dangles) in batch.into_iter().zip(allowed).zip(dangles) {
                if dangles {
                    may = self.decide(state, Some(sourced), &id).await?;
                }
                if !may.is_empty() {
                    ids.push(id);
                    actions.push(may);
                }
            }
            if !full {
                break;
            }
        }
        let more = ids.len() == wanted;
        ids.truncate(wanted - 1);
        actions.truncate(wanted - 1);
        Ok(Ok(Found {
            ids,
            actions,
            more,
            listed_by: ListedBy::Sql,
            unsupported: None,
        }))
    }

    /// Candidates in id order (the database's table, or the stored entities file), each
    /// decided for every action, until `size` and one more are allowed.
    async fn by_decisions(
        &self,
        state: &AppState,
        sourced: Option<&Sourced>,
        after: Option<&str>,
        size: u64,
    ) -> Result<Found, ApiError> {
        let wanted = usize::try_from(size).unwrap_or(usize::MAX);
        let mut ids = Vec::new();
        let mut actions = Vec::new();
        let mut from = after.map(str::to_string);
        let mut more = false;
        'candidates: loop {
            let candidates = match (sourced, &self.scope) {
                (Some(sourced), None) => sourced
                    .source()
                    .candidates(&self.listed, from.as_deref(), CHUNK)
                    .await
                    .map_err(|e| self.refused(e, None))?,
                // `in`: the candidates are the ids in the ancestor, by SQL.
                (Some(sourced), Some((within, _))) => sourced
                    .source()
                    .list(within, &self.listed, from.as_deref(), CHUNK, &[])
                    .await
                    .map_err(|e| self.refused(e, Some("in")))?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect(),
                (None, scope) => {
                    let mut all = self.snapshot.stored_ids(&self.listed, from.as_deref());
                    if let Some((_, ancestor)) = scope {
                        self.keep_stored_within(&mut all, ancestor);
                    }
                    all.truncate(CHUNK as usize);
                    all
                }
            };
            let Some(last) = candidates.last() else { break };
            from = Some(last.clone());
            let exhausted = (candidates.len() as u64) < CHUNK;
            for id in candidates {
                let allowed = self.decide(state, sourced, &id).await?;
                if allowed.is_empty() {
                    continue;
                }
                if ids.len() == wanted {
                    more = true;
                    break 'candidates;
                }
                ids.push(id);
                actions.push(allowed);
            }
            if exhausted {
                break;
            }
        }
        Ok(Found {
            ids,
            actions,
            more,
            listed_by: ListedBy::Decisions,
            unsupported: None,
        })
    }

    /// Why candidates could not be read: what was asked has no SQL (named as `field`, or else
    /// as the list's type: it has no table), or the database failed.
    fn refused(&self, error: ListError, field: Option<&str>) -> ApiError {
        match (error, field) {
            (ListError::Untranslatable(e), Some(field)) => invalid(field, &e.to_string()),
            (ListError::Untranslatable(e), None) => invalid_type(&self.unknown, &e.to_string()),
            (ListError::Source(e), _) => unavailable(&e),
        }
    }

    /// Keeps the ids (of the listed type, in the stored entities file) of the entities that
    /// are `ancestor` or have it among their ancestors.
    fn keep_stored_within(&self, ids: &mut Vec<String>, ancestor: &cedar_policy::EntityUid) {
        let Some(ty) = self.snapshot.catalog.type_name(&self.listed) else {
            ids.clear();
            return;
        };
        ids.retain(|id| {
            let uid = cedar_policy::EntityUid::from_type_name_and_id(
                ty.clone(),
                cedar_policy::EntityId::new(id),
            );
            uid == *ancestor
                || self
                    .snapshot
                    .entities
                    .ancestors(&uid)
                    .is_some_and(|mut up| up.any(|a| a == ancestor))
        });
    }

    /// The actions (by index) the candidate `id` is allowed, each decided as a question by
    /// id would be. Deciding fails closed: an error is a Deny.
    async fn decide(
        &self,
        state: &AppState,
        sourced: Option<&Sourced>,
        id: &str,
    ) -> Result<Vec<usize>, ApiError> {
        let mut allowed = Vec::new();
        for (index, ((action, _), context)) in self.plans.iter().zip(&self.contexts).enumerate() {
            let candidate = Uid::new(self.listed.clone(), id.to_string());
            let (principal, resource) = match &self.unknown {
                Unknown::Resource(principal) => (principal.clone(), candidate),
                Unknown::Principal(resource) => (candidate, resource.clone()),
            };
            let mut question = Question {
                principal,
                action: action.clone(),
                resource,
                context: context.clone(),
                entities: self.entities.clone(),
                strict_entities: false,
                consistency: self.consistency.clone(),
            };
            if let Some(sourced) = sourced {
                sourced.question(&mut question).await?;
            }
            let answer = state.decider.answer(&self.snapshot, &question, None)?;
            if answer.decision.decision == Verdict::Allow {
                allowed.push(index);
            }
        }
        Ok(allowed)
    }

    fn body(&self, found: Found, with_actions: bool) -> ListBody {
        let next_token = found
            .more
            .then(|| found.ids.last().map(|id| encode_token(id)))
            .flatten();
        let subjects = with_actions.then(|| {
            found
                .ids
                .iter()
                .zip(&found.actions)
                .map(|(id, actions)| SubjectActions {
                    id: id.clone(),
                    actions: actions
                        .iter()
                        .filter_map(|&i| self.action_name(i))
                        .collect(),
                })
                .collect()
        });
        ListBody {
            ids: found.ids,
            subjects,
            next_token,
            listed_by: found.listed_by,
            unsupported: found.unsupported,
            policy_version: self.snapshot.version.clone(),
            entities_at: self.at.clone(),
        }
    }

    /// The `index`th action's id (`view`, however it was asked).
    fn action_name(&self, index: usize) -> Option<String> {
        self.names.get(index).cloned()
    }
}

/// What the schema says of `action`; `None` for one it does not know (its plan has refused
/// it already).
fn action_info<'s>(snapshot: &'s Snapshot, action: &Uid) -> Option<&'s ActionInfo> {
    let uid = crate::decide::input::read_action(snapshot, "action", action).ok()?;
    snapshot.catalog.get(&uid)
}

/// Each action's id, as answers name it (the text as asked for one the schema does not know).
fn names(actions: &[Uid], infos: &[Option<&ActionInfo>]) -> Vec<String> {
    actions
        .iter()
        .zip(infos)
        .map(|(action, info)| match info {
            Some(info) => info.name.clone(),
            None => crate::decide::question::uid_text(action),
        })
        .collect()
}

fn unavailable(e: &gatehouse_source::SourceError) -> ApiError {
    ApiError::new(
        ErrorCode::EntitiesUnavailable,
        format!("the entity database did not answer: {e}"),
    )
}

/// A listed type the database has no table for: its ids cannot be listed.
fn invalid_type(unknown: &Unknown, reason: &str) -> ApiError {
    let field = match unknown {
        Unknown::Resource(_) => "resource_type",
        Unknown::Principal(_) => "principal_type",
    };
    invalid(
        field,
        &format!("`{field}`: {reason}, so its ids cannot be listed"),
    )
}

/// Whether the caller asked for the streamed form.
fn streamed(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/x-ndjson"))
}

/// The page asked, or (`Accept: application/x-ndjson`) every id from it on.
async fn answer(
    state: AppState,
    lister: Lister,
    page: Paging,
    headers: &HeaderMap,
    with_actions: bool,
) -> Result<Response, ApiError> {
    if streamed(headers) {
        return stream(state, lister, page.after, with_actions).await;
    }
    let found = lister
        .page(&state, page.after.as_deref(), page.size)
        .await?;
    Ok(Json(lister.body(found, with_actions)).into_response())
}

/// Every id from `after` on, a JSON line each (`{"id": …}`, with `actions` when asked),
/// read a chunk at a time; then `{"done": true, "count", "listed_by", "policy_version",
/// "entities_at"}`. The first chunk is read before answering, so that a question that
/// cannot be asked gets its 4xx; an error after that ends the stream with `{"error": …}`
/// and no `done` line: a reader knows the list is whole only when it sees `done`.
async fn stream(
    state: AppState,
    lister: Lister,
    after: Option<String>,
    with_actions: bool,
) -> Result<Response, ApiError> {
    let first = lister.page(&state, after.as_deref(), STREAM_CHUNK).await?;
    let (lines, received) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut found = first;
        let mut count: u64 = 0;
        loop {
            let mut chunk = Vec::new();
            for (n, (id, actions)) in found.ids.iter().zip(&found.actions).enumerate() {
                if n > 0
                    && n % 1000 == 0
                    && lines
                        .send(Bytes::from(std::mem::take(&mut chunk)))
                        .await
                        .is_err()
                {
                    return;
                }
                let line = if with_actions {
                    let names: Vec<String> = actions
                        .iter()
                        .filter_map(|&i| lister.action_name(i))
                        .collect();
                    serde_json::json!({"id": id, "actions": names})
                } else {
                    serde_json::json!({"id": id})
                };
                chunk.extend_from_slice(&ndjson(&line));
            }
            count += found.ids.len() as u64;
            if !chunk.is_empty() && lines.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            let after = match (found.more, found.ids.last()) {
                (true, Some(last)) => last.clone(),
                _ => break,
            };
            let listed_by = found.listed_by;
            found = match lister.page(&state, Some(&after), STREAM_CHUNK).await {
                Ok(next) => next,
                Err(error) => {
                    let line = serde_json::to_value(error.body()).unwrap_or_default();
                    let _ = lines.send(ndjson(&line)).await;
                    return;
                }
            };
            // The summary says `decisions` when any chunk was decided one by one.
            if listed_by == ListedBy::Decisions {
                found.listed_by = ListedBy::Decisions;
            }
        }
        let done = serde_json::json!({
            "done": true,
            "count": count,
            "listed_by": found.listed_by,
            "policy_version": lister.snapshot.version,
            "entities_at": lister.at,
        });
        let _ = lines.send(ndjson(&done)).await;
    });
    let body = futures_util::stream::unfold(received, |mut received| async move {
        received
            .recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line), received))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

fn ndjson(value: &Value) -> Bytes {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}
