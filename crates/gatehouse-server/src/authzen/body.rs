//! AuthZEN's bodies: the shapes the routes read by hand (described for the document) and
//! the answers they render.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

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
    pub code: crate::http::error::ErrorCode,
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
