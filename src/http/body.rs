//! The bodies of the API as Rust types: the responses the handlers render and the OpenAPI
//! document describes are the same structs, so the contract cannot drift from what is sent.
//!
//! Requests that the handlers read as typed structs ([`crate::decide::Question`],
//! [`crate::decide::allowed::ActionsQuestion`], [`crate::plan::PlanQuestion`]) are described
//! from those structs; the shapes that are read by hand for better error messages (uids in
//! either form, Cedar entities, AuthZEN's bodies) are described by the types below, each
//! named `…Doc` when it only describes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ErrorBody;
use crate::decide::{Decision, Verdict};
use crate::plan::Plan;
use crate::policy::store::{LoadResult, ReloadStatus};
use crate::policy::{PolicyInfo, ProblemReport};

/// An entity uid: Cedar's `{"type": "User", "id": "vera"}`, or the string `User::"vera"`
/// (`User::vera` when the id is a plain word). An action may be its id alone: `"view"`.
#[derive(ToSchema)]
#[schema(as = Uid)]
#[serde(untagged)]
pub enum UidDoc {
    /// `User::"vera"`, or an action's id alone.
    Text(String),
    /// `{"type", "id"}`.
    Object(UidObjectDoc),
}

/// Cedar's uid object.
#[derive(ToSchema)]
#[schema(as = UidObject)]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct UidObjectDoc {
    /// The entity type, e.g. `User`.
    #[schema(rename = "type")]
    kind: String,
    /// The entity id.
    id: String,
}

/// A Cedar entity: `uid`, `attrs` (checked against the schema: `GET /v1/schema` gives a
/// JSON Schema per type) and `parents` (uids).
#[derive(ToSchema)]
#[schema(as = Entity)]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct EntityDoc {
    /// The entity's uid.
    uid: UidDoc,
    /// Its attributes.
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    attrs: Option<Value>,
    /// Its parents' uids.
    parents: Option<Vec<UidDoc>>,
}

/// Why a decision was made, and what it was made without.
#[derive(Debug, Serialize, ToSchema)]
pub struct Diagnostics {
    /// The deciding policy ids: the matching permits on Allow, the matching forbids on Deny
    /// (empty when nothing permitted).
    pub reason: Vec<String>,
    /// Evaluation errors, each naming its policy. Non-empty means Deny.
    pub errors: Vec<String>,
    /// Entities the question names or the deciding path reads that were neither sent nor
    /// stored.
    pub missing: Vec<String>,
}

/// One decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionBody {
    /// `Allow` or `Deny`.
    pub decision: Verdict,
    /// Why.
    pub diagnostics: Diagnostics,
    /// The version of the policy set that decided.
    pub policy_version: String,
}

impl DecisionBody {
    /// The body of `decision`, made by the set `version`.
    pub fn new(decision: &Decision, version: &str) -> Self {
        Self {
            decision: decision.decision,
            diagnostics: Diagnostics {
                reason: decision.reasons.clone(),
                errors: decision.errors.clone(),
                missing: decision.missing.clone(),
            },
            policy_version: version.to_string(),
        }
    }
}

/// A batch's request.
#[derive(ToSchema)]
#[schema(as = BatchRequest, example = json!({"requests": [{"principal": "User::\"vic\"", "action": "view", "resource": "Project::\"p1\""}, {"principal": "User::\"vic\"", "action": "edit", "resource": "Project::\"p1\""}]}))]
#[expect(dead_code, reason = "describes the request `Batch` reads")]
pub struct BatchDoc {
    /// Entities shared by every question.
    entities: Option<Vec<EntityDoc>>,
    /// The questions, at most `--max-batch`.
    requests: Vec<crate::decide::Question>,
    /// Every question strict.
    strict_entities: Option<bool>,
}

/// One result of a batch: a decision, or the error of a question that could not be asked
/// (with its `index`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    /// The question's decision.
    Decision(DecisionBody),
    /// Why the question could not be asked.
    Error(ErrorBody),
}

/// A batch's answers, in the questions' order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchBody {
    /// One per question.
    pub results: Vec<BatchResult>,
}

/// Why each action was decided as it was.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionDiagnostics {
    /// The deciding policies by action id.
    pub reasons: BTreeMap<String, Vec<String>>,
    /// Evaluation errors by action id (only actions with errors).
    pub errors: BTreeMap<String, Vec<String>>,
    /// Entities missing for any action.
    pub missing: Vec<String>,
}

/// Every applicable action, decided or set apart.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllowedBody {
    /// The allowed action ids, in the schema's order.
    pub allowed: Vec<String>,
    /// The denied action ids.
    pub denied: Vec<String>,
    /// Actions whose required context keys were not given, which some context allows and
    /// some denies.
    pub needs_context: Vec<String>,
    /// Why.
    pub diagnostics: ActionDiagnostics,
    /// The version of the policy set that decided.
    pub policy_version: String,
}

/// A plan and the version of the set that made it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanBody {
    /// The plan.
    #[serde(flatten)]
    #[schema(value_type = Plan)]
    pub plan: Arc<Plan>,
    /// The version of the policy set that made it.
    pub policy_version: String,
}

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Ready, with the live set's version.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// The live policy version.
    pub policy_version: String,
}

/// The stored-entities file and how many entities it holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoredEntities {
    /// The file, when one is configured.
    pub file: Option<String>,
    /// How many entities it holds.
    pub count: usize,
}

/// The decision cache.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheStatus {
    /// Decisions cached.
    pub entries: u64,
}

/// The live set, its files and the last reload.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    /// The live policy version.
    pub policy_version: String,
    /// When the live set was loaded (RFC 3339).
    pub loaded_at: String,
    /// How many policies it has.
    pub policy_count: usize,
    /// Its policy files.
    pub files: Vec<String>,
    /// Its schema file.
    pub schema: String,
    /// The stored entities.
    pub entities: StoredEntities,
    /// The last reload attempt.
    pub last_reload: ReloadStatus,
    /// The decision cache.
    pub cache: CacheStatus,
    /// The shadow (candidate) set, with `--shadow-policies`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowStatus>,
    /// The decision log's health, with `--decision-log`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_log: Option<crate::telemetry::decision_log::LogStatus>,
}

/// The candidate set every decision is also asked of (`--shadow-policies`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowStatus {
    /// Its policy version.
    pub policy_version: String,
    /// When it was loaded (RFC 3339).
    pub loaded_at: String,
    /// How many policies it has.
    pub policy_count: usize,
    /// Its policy files.
    pub files: Vec<String>,
    /// Its schema file.
    pub schema: String,
    /// Its last reload attempt.
    pub last_reload: ReloadStatus,
}

/// Every policy of the live set.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoliciesBody {
    /// The live policy version.
    pub policy_version: String,
    /// Each policy's id, effect and place.
    pub policies: Vec<PolicyInfo>,
}

/// What a reload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadBody {
    /// `ok` (a new set is live) or `unchanged`.
    pub result: LoadResult,
    /// The live policy version.
    pub policy_version: String,
}

/// The schema a host integrates against.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaBody {
    /// The live policy version.
    pub policy_version: String,
    /// The Cedar schema in Cedar's JSON form, every type reference fully qualified.
    #[schema(value_type = BTreeMap<String, serde_json::Value>)]
    pub cedar: Value,
    /// A JSON Schema (draft 2020-12) of each entity type's JSON, by type name: the `uid`,
    /// the `attrs` with their types, and the parent types allowed.
    #[schema(value_type = BTreeMap<String, BTreeMap<String, serde_json::Value>>)]
    pub entity_types: Map<String, Value>,
    /// Each requestable action by id: the principal and resource types it applies to, and
    /// its context keys.
    pub actions: BTreeMap<String, ActionSchema>,
}

/// What the schema says of one action.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionSchema {
    /// The action's uid.
    pub uid: String,
    /// Principal types.
    pub principals: Vec<String>,
    /// Resource types.
    pub resources: Vec<String>,
    /// The context keys a request must send.
    pub required_context: Vec<String>,
}

/// Keeps `ProblemReport` in the document's components (it is part of `reload_failed`).
#[derive(ToSchema)]
#[expect(dead_code, reason = "names a schema")]
pub struct ProblemsDoc {
    problems: Vec<ProblemReport>,
}

// --- AuthZEN ---------------------------------------------------------------------------

/// An AuthZEN subject or resource: `type` (mapped to a Cedar entity type), `id`, and
/// `properties` (the entity's attributes for this question, laid over the stored ones).
#[derive(ToSchema)]
#[schema(as = AuthzenEntity)]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct AuthzenEntityDoc {
    /// The AuthZEN type, e.g. `user`.
    #[schema(rename = "type")]
    kind: String,
    /// The id (a number is read as its decimal text).
    id: AuthzenIdDoc,
    /// Attributes, checked against the schema.
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    properties: Option<Value>,
}

/// An AuthZEN id: a string, or an integer read as its decimal text (the search interop
/// sends record ids as numbers).
#[derive(ToSchema)]
#[schema(as = AuthzenId)]
#[serde(untagged)]
pub enum AuthzenIdDoc {
    /// The id.
    Text(String),
    /// An integer id.
    Integer(i64),
}

/// A searched AuthZEN subject or resource: its `type` (an `id` is ignored).
#[derive(ToSchema)]
#[schema(as = AuthzenSearched)]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct AuthzenSearchedDoc {
    /// The AuthZEN type.
    #[schema(rename = "type")]
    kind: String,
}

/// An AuthZEN action: a Cedar action id.
#[derive(ToSchema)]
#[schema(as = AuthzenAction)]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct AuthzenActionDoc {
    /// The action id, e.g. `view`.
    name: String,
}

/// `POST /access/v1/evaluation`.
#[derive(ToSchema)]
#[schema(as = AuthzenEvaluationRequest, example = json!({"subject": {"type": "user", "id": "vic"}, "action": {"name": "view"}, "resource": {"type": "project", "id": "p1"}}))]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct EvaluationDoc {
    subject: AuthzenEntityDoc,
    action: AuthzenActionDoc,
    resource: AuthzenEntityDoc,
    /// The Cedar context record.
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    context: Option<Value>,
}

/// One item of `evaluations`: replaces the top-level defaults it names.
#[derive(ToSchema)]
#[schema(as = AuthzenEvaluationItem)]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct EvaluationItemDoc {
    subject: Option<AuthzenEntityDoc>,
    action: Option<AuthzenActionDoc>,
    resource: Option<AuthzenEntityDoc>,
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    context: Option<Value>,
}

/// `evaluations_semantic`.
#[derive(ToSchema)]
#[schema(as = AuthzenSemantic)]
#[expect(non_camel_case_types, reason = "the wire names")]
pub enum SemanticDoc {
    /// Every evaluation (the default).
    execute_all,
    /// Stop after the first denial.
    deny_on_first_deny,
    /// Stop after the first permit.
    permit_on_first_permit,
}

/// `options` of `/evaluations`.
#[derive(ToSchema)]
#[schema(as = AuthzenOptions)]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct OptionsDoc {
    evaluations_semantic: Option<SemanticDoc>,
}

/// `POST /access/v1/evaluations`: the top-level tuple are defaults.
#[derive(ToSchema)]
#[schema(as = AuthzenEvaluationsRequest, example = json!({"subject": {"type": "user", "id": "vic"}, "resource": {"type": "project", "id": "p1"}, "evaluations": [{"action": {"name": "view"}}, {"action": {"name": "edit"}}], "options": {"evaluations_semantic": "execute_all"}}))]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct EvaluationsDoc {
    subject: Option<AuthzenEntityDoc>,
    action: Option<AuthzenActionDoc>,
    resource: Option<AuthzenEntityDoc>,
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    context: Option<Value>,
    /// At most `--max-batch`; absent or empty: one evaluation of the top-level tuple.
    evaluations: Option<Vec<EvaluationItemDoc>>,
    options: Option<OptionsDoc>,
}

/// `page` of a search request.
#[derive(ToSchema)]
#[schema(as = AuthzenPageRequest)]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct PageRequestDoc {
    /// The `next_token` of the previous page.
    token: Option<String>,
    /// Most results, 1 to 1000 (default 100).
    #[schema(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `POST /access/v1/search/subject`.
#[derive(ToSchema)]
#[schema(as = AuthzenSubjectSearch, example = json!({"subject": {"type": "user"}, "action": {"name": "view"}, "resource": {"type": "project", "id": "p1"}, "page": {"limit": 5}}))]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct SubjectSearchDoc {
    subject: AuthzenSearchedDoc,
    action: AuthzenActionDoc,
    resource: AuthzenEntityDoc,
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    context: Option<Value>,
    page: Option<PageRequestDoc>,
}

/// `POST /access/v1/search/resource`.
#[derive(ToSchema)]
#[schema(as = AuthzenResourceSearch, example = json!({"subject": {"type": "user", "id": "vic"}, "action": {"name": "view"}, "resource": {"type": "project"}}))]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct ResourceSearchDoc {
    subject: AuthzenEntityDoc,
    action: AuthzenActionDoc,
    resource: AuthzenSearchedDoc,
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    context: Option<Value>,
    page: Option<PageRequestDoc>,
}

/// `POST /access/v1/search/action`.
#[derive(ToSchema)]
#[schema(as = AuthzenActionSearch, example = json!({"subject": {"type": "user", "id": "vic"}, "resource": {"type": "project", "id": "p1"}}))]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct ActionSearchDoc {
    subject: AuthzenEntityDoc,
    resource: AuthzenEntityDoc,
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    context: Option<Value>,
    page: Option<PageRequestDoc>,
}

/// `reason_admin`: a reason for administrators, by language.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reason {
    /// In English.
    pub en: String,
}

/// An item's error, inside `context.error`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemError {
    /// The HTTP status the request would have had alone.
    pub status: u16,
    /// The error code.
    pub code: super::error::ErrorCode,
    /// What is wrong.
    pub message: String,
    /// The offending field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Why a decision was made.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct DecisionContext {
    /// For administrators: what decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_admin: Option<Reason>,
    /// The deciding policy ids: the permits of an allowed request, the forbids of a denied
    /// one (none when nothing permits it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<String>>,
    /// Evaluation errors (each makes the decision `false`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Entities decided without: neither sent nor stored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// The version of the policy set that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// The error of an item of `/evaluations` that could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

/// An AuthZEN decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthzenDecision {
    /// Whether the request may go forward.
    pub decision: bool,
    /// Why.
    pub context: DecisionContext,
}

/// The answers of `/evaluations`, in the items' order (up to the one that stopped a
/// short-circuiting semantic).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthzenDecisions {
    /// One per item evaluated.
    pub evaluations: Vec<AuthzenDecision>,
}

/// `/evaluations` answers one decision without items, a list with them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum EvaluationsBody {
    /// Items were sent.
    Many(AuthzenDecisions),
    /// No items: the top-level tuple's decision.
    One(AuthzenDecision),
}

/// A found subject or resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct Found {
    /// The AuthZEN type, as the request named it.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id.
    pub id: String,
}

/// A found action.
#[derive(Debug, Serialize, ToSchema)]
pub struct FoundAction {
    /// The action id.
    pub name: String,
}

/// `page` of a search answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageAnswer {
    /// The token of the next page; empty on the last.
    pub next_token: String,
    /// Results in this page.
    pub count: usize,
}

/// A page of found subjects or resources.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchBody {
    /// In id order.
    pub results: Vec<Found>,
    /// The paging.
    pub page: PageAnswer,
}

/// A page of found actions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionSearchBody {
    /// In name order.
    pub results: Vec<FoundAction>,
    /// The paging.
    pub page: PageAnswer,
}

/// The PDP metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthzenConfiguration {
    /// This PDP's base URL.
    pub policy_decision_point: String,
    /// `POST` one evaluation.
    pub access_evaluation_endpoint: String,
    /// `POST` many evaluations.
    pub access_evaluations_endpoint: String,
    /// `POST` a subject search.
    pub search_subject_endpoint: String,
    /// `POST` a resource search.
    pub search_resource_endpoint: String,
    /// `POST` an action search.
    pub search_action_endpoint: String,
}
