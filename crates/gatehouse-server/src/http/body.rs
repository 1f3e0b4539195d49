//! The bodies of the API as Rust types: the responses the handlers render and the OpenAPI
//! document describes are the same structs, so the contract cannot drift from what is sent.
//!
//! Requests are described from the structs the handlers read them into
//! ([`crate::decide::Question`], [`crate::decide::allowed::ActionsQuestion`],
//! [`crate::plan::PlanQuestion`], [`Batch`]): their uids are `gatehouse-api`'s typed
//! [`gatehouse_api::Uid`], their entity lists described as lists of [`gatehouse_api::Entity`]
//! (they are read as text, each entity parsed once against the schema). AuthZEN's bodies,
//! read by hand so that errors name AuthZEN's fields, are described in
//! [`crate::authzen::body`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ErrorBody;

use crate::decide::{Decision, EntityList, Verdict};
use crate::policy::PolicyInfo;
use crate::policy::store::{LoadResult, ReloadStatus};

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
    /// With an entity database: the position of its changes the entities decided on are as
    /// of, at least (a token for `consistency.at_least`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities_at: Option<String>,
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
            entities_at: None,
        }
    }
}

/// A batch's request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BatchRequest, example = json!({"requests": [{"principal": "User::\"vic\"", "action": "view", "resource": "Project::\"p1\""}, {"principal": "User::\"vic\"", "action": "edit", "resource": "Project::\"p1\""}]}))]
pub struct Batch {
    /// Entities shared by every question.
    #[serde(default)]
    #[schema(value_type = Option<Vec<gatehouse_api::Entity>>)]
    pub entities: Option<EntityList>,
    /// The questions, at most `--max-batch`.
    // Each as its text, read one by one, so that one that cannot be read is that item's
    // error.
    #[schema(value_type = Vec<crate::decide::Question>)]
    pub requests: Vec<Box<RawValue>>,
    /// Every question strict.
    // An item may also say so itself.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub strict_entities: bool,
    /// With an entity database: how fresh the entities every question is decided on must
    /// be.
    #[serde(default)]
    pub consistency: Option<gatehouse_api::Consistency>,
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
    /// With an entity database: the position of its changes the entities decided on are as
    /// of, at least (a token for `consistency.at_least`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities_at: Option<String>,
}

/// A plan and the version of the set that made it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanBody {
    /// The plan, in the condition language's version asked.
    #[serde(flatten)]
    pub plan: gatehouse_api::WrittenPlan,
    /// The version of the policy set that made it.
    pub policy_version: String,
    /// With an entity database: the position of its changes the entities decided on are as
    /// of, at least (a token for `consistency.at_least`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities_at: Option<String>,
}

/// Where the entity database's changes stand.
#[derive(Debug, Serialize, ToSchema)]
pub struct PositionBody {
    /// The position of the database's last committed change: after a write, ask with
    /// `"consistency": {"at_least": position}` to be decided on it.
    pub position: String,
    /// The position of the last change the sidecar has applied to its cache.
    pub applied: String,
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
