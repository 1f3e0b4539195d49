//! "Which resources may she …?": a query plan for one principal, one action and every
//! resource of one type, from Cedar's type-aware partial evaluation (`PolicySet::tpe`).
//!
//! The resource is unknown; the principal, the context and the entities the host sends
//! (the principal's slice: the user, her groups) are known. Cedar folds what is known and
//! leaves, per policy, a residual over the resource's attributes. The plan is
//! - `kind`: `always_allowed`, `always_denied`, or `conditional`;
//! - `residuals`: every residual policy that can still hold, as Cedar text: plain Cedar
//!   deciding with them on a concrete resource (and its entities) answers as the full set;
//! - `condition`: the same, in the [`condition`] language a host turns into a database
//!   filter: allowed iff some permit's residual holds and no forbid's does. A residual the
//!   language cannot express makes the plan `filterable: false` (with the construct named
//!   in `unsupported`), never a guess: the host then decides resource by resource.
//!
//! Fail closed: a policy that Cedar knows will error for every resource makes every
//! decision a Deny (see [`crate::decide`]), so the plan is `always_denied` with the error.
//! Exactness assumes what decisions assume: the entities a resource references exist
//! (a database's foreign keys), and the principal's slice as sent is the whole truth about
//! the principal's groups.

mod reference;
mod translate;

pub use gatehouse_api::condition;
pub use gatehouse_api::{Plan, PlanKind};
pub use reference::{holds, holds_on};

use std::sync::Arc;
use std::time::Duration;

use cedar_policy::pst::Var;
use cedar_policy::{PartialEntities, PartialEntityUid, PartialRequest, PolicyId, TpeResponse};
use gatehouse_api::Uid;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::decide::cache::{Budget, Key, KeyBuilder, set_digest, weighed};
use crate::decide::entities::Layer;
use crate::decide::indexed;
use crate::decide::input::{Checked, InputError, context_error, innermost};
use crate::decide::{Decider, Decision, Verdict};
use crate::policy::Snapshot;

pub use gatehouse_api::Condition;
use translate::Translator;

/// `{"principal", "action", "resource_type", "context"?, "entities"?}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"principal": "User::\"vic\"", "action": "view", "resource_type": "Project"})))]
pub struct PlanQuestion {
    /// The principal's uid (object or string form).
    #[serde(deserialize_with = "Uid::principal")]
    pub principal: Uid,
    /// The action's uid.
    #[serde(deserialize_with = "Uid::action")]
    pub action: Uid,
    /// The resource's entity type, e.g. `Project`.
    pub resource_type: String,
    /// The context record. Absent: empty for an action that declares no context keys,
    /// unknown otherwise (a residual that reads it is then not filterable).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::json_keys::strict_option"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, serde_json::Value>>))]
    pub context: Option<Value>,
    /// What is known, in Cedar's entity JSON: the principal's slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<gatehouse_api::Entity>>))]
    pub entities: Option<crate::decide::EntityList>,
    /// With an entity database: how fresh the entities decided on must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<gatehouse_api::Consistency>,
    /// The version of the condition language to write the plan in: 2 (the default) names
    /// each value list once in `sets`; 1 writes it in every leaf, for hosts that read only
    /// that (for one release).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_version: Option<u8>,
}

/// `{"action", "resource", "principal_type", "context"?, "entities"?}`: who may take the
/// action on the resource (the principal unknown).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"action": "view", "resource": "Project::\"p1\"", "principal_type": "User"})))]
pub struct SubjectsQuestion {
    /// The action's uid.
    #[serde(deserialize_with = "Uid::action")]
    pub action: Uid,
    /// The resource's uid (object or string form).
    #[serde(deserialize_with = "Uid::resource")]
    pub resource: Uid,
    /// The principals' entity type, e.g. `User`.
    pub principal_type: String,
    /// The context record, as for [`PlanQuestion::context`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::json_keys::strict_option"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, serde_json::Value>>))]
    pub context: Option<Value>,
    /// What is known, in Cedar's entity JSON: the resource's slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<gatehouse_api::Entity>>))]
    pub entities: Option<crate::decide::EntityList>,
}

/// Plans, cached by policy version and the whole question (as decisions are).
#[derive(Clone)]
pub struct Planner {
    cache: moka::sync::Cache<Key, Arc<Plan>>,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl Planner {
    /// A planner caching at most `capacity` plans, whatever their size, each kept at most
    /// `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self::within(
            Budget::new(capacity, capacity.saturating_mul(u64::from(u32::MAX))),
            ttl,
        )
    }

    /// A planner caching plans within `budget` (by their weight: [`Plan::weight`]), each
    /// kept at most `ttl`.
    pub fn within(budget: Budget, ttl: Duration) -> Self {
        Self {
            cache: weighed(budget, |plan: &Arc<Plan>| plan.weight())
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The weight of the plans held, in bytes (as of moka's last housekeeping).
    pub fn cached_bytes(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// The plan for `question` under `snapshot`, and whether it came from the cache.
    /// `decider` parses (and caches) the question's entities as for decisions.
    pub fn plan(
        &self,
        decider: &Decider,
        snapshot: &Snapshot,
        question: &PlanQuestion,
    ) -> Result<(Arc<Plan>, bool), InputError> {
        let own = question
            .entities
            .as_ref()
            .map(|list| Layer::digest(&snapshot.inputs, "entities", list))
            .transpose()?;
        let key = KeyBuilder::new(&snapshot.inputs)
            .value(&json!("plan"))
            .uid(&question.principal)
            .uid(&question.action)
            .value(&json!(question.resource_type))
            .value(question.context.as_ref().unwrap_or(&Value::Null))
            .entity_set(own.as_ref().map(|l| set_digest(&l.digests)).as_ref())
            .finish();
        if let Some(plan) = self.cache.get(&key) {
            return Ok((plan, true));
        }
        let plan = Arc::new(compute(decider, snapshot, question, own.as_ref())?);
        self.cache.insert(key, Arc::clone(&plan));
        Ok((plan, false))
    }

    /// The subjects plan for `question` under `snapshot`: a condition over the principal
    /// (its paths read from `principal`), and whether it came from the cache.
    pub fn subjects(
        &self,
        decider: &Decider,
        snapshot: &Snapshot,
        question: &SubjectsQuestion,
    ) -> Result<(Arc<Plan>, bool), InputError> {
        let own = question
            .entities
            .as_ref()
            .map(|list| Layer::digest(&snapshot.inputs, "entities", list))
            .transpose()?;
        let key = KeyBuilder::new(&snapshot.inputs)
            .value(&json!("subjects"))
            .value(&json!(question.principal_type))
            .uid(&question.action)
            .uid(&question.resource)
            .value(question.context.as_ref().unwrap_or(&Value::Null))
            .entity_set(own.as_ref().map(|l| set_digest(&l.digests)).as_ref())
            .finish();
        if let Some(plan) = self.cache.get(&key) {
            return Ok((plan, true));
        }
        let plan = Arc::new(compute_subjects(decider, snapshot, question, own.as_ref())?);
        self.cache.insert(key, Arc::clone(&plan));
        Ok((plan, false))
    }
}

/// Builds a subjects plan: the resource, the action and the context known, the principal
/// unknown; the residuals read the principal.
fn compute_subjects(
    decider: &Decider,
    snapshot: &Snapshot,
    question: &SubjectsQuestion,
    own: Option<&Layer<'_>>,
) -> Result<Plan, InputError> {
    let checked = Checked::principal_type(
        snapshot,
        &question.principal_type,
        &question.action,
        &question.resource,
    )?;
    let context = checked.known_context(snapshot, question.context.as_ref())?;
    let entities = decider.entities(snapshot, None, own, |slice| {
        slice.uid(&checked.target);
        if let Some(context) = &question.context {
            slice.json(context);
        }
    })?;
    let request = PartialRequest::new(
        PartialEntityUid::new(checked.principal.clone(), None),
        checked.action.clone(),
        PartialEntityUid::from_concrete(checked.target.clone()),
        context,
        &snapshot.schema,
    )
    .map_err(|e| context_error(&checked.action, question.context.as_ref(), &e))?;
    let principal_type = question.principal_type.as_str();
    let translator = Translator {
        unknown: Var::Principal,
        unknown_type: principal_type,
        catalog: &snapshot.catalog,
        entities: &entities,
        reads: Default::default(),
    };
    let resource_type = checked.target.type_name().to_string();
    let missing = crate::decide::absent([&checked.target], &entities);
    Ok(Plan {
        missing,
        ..evaluate(
            snapshot,
            &checked.action,
            &resource_type,
            &request,
            &entities,
            &translator,
            "principal",
        )
    })
}

/// Evaluates `request` partially over the policies indexed for the action and resource
/// type, and translates what is left; `what` names the unknown in errors.
fn evaluate(
    snapshot: &Snapshot,
    action: &cedar_policy::EntityUid,
    resource_type: &str,
    request: &PartialRequest,
    entities: &cedar_policy::Entities,
    translator: &Translator<'_>,
    what: &str,
) -> Plan {
    let partial = match PartialEntities::from_concrete(entities.clone(), &snapshot.schema) {
        Ok(partial) => partial,
        Err(e) => return failed(format!("the known entities: {}", innermost(&e))),
    };
    let policies = indexed(snapshot, action, resource_type);
    let response = match policies.tpe(request, &partial, &snapshot.schema) {
        Ok(response) => response,
        Err(e) => return failed(format!("partial evaluation: {}", innermost(&e))),
    };
    let errors = erroring(&response, what);
    if !errors.is_empty() {
        tracing::warn!(?errors, "a plan fails closed");
        return Plan {
            errors,
            ..failed_plan()
        };
    }
    plan_of(&response, translator)
}

/// Builds the plan: checks the question against the schema, evaluates partially, and
/// translates the residuals.
fn compute(
    decider: &Decider,
    snapshot: &Snapshot,
    question: &PlanQuestion,
    own: Option<&Layer<'_>>,
) -> Result<Plan, InputError> {
    let checked = Checked::resource_type(
        snapshot,
        &question.principal,
        &question.action,
        &question.resource_type,
    )?;
    let context = checked.known_context(snapshot, question.context.as_ref())?;
    let entities = decider.entities(snapshot, None, own, |slice| {
        slice.uid(&checked.principal);
        if let Some(context) = &question.context {
            slice.json(context);
        }
    })?;
    let request = PartialRequest::new(
        PartialEntityUid::from_concrete(checked.principal.clone()),
        checked.action.clone(),
        PartialEntityUid::new(checked.target.clone(), None),
        context,
        &snapshot.schema,
    )
    .map_err(|e| context_error(&checked.action, question.context.as_ref(), &e))?;
    let resource_type = question.resource_type.as_str();
    let translator = Translator {
        unknown: Var::Resource,
        unknown_type: resource_type,
        catalog: &snapshot.catalog,
        entities: &entities,
        reads: Default::default(),
    };
    let missing = crate::decide::absent([&checked.principal], &entities);
    Ok(Plan {
        missing,
        ..evaluate(
            snapshot,
            &checked.action,
            resource_type,
            &request,
            &entities,
            &translator,
            "resource",
        )
    })
}

/// The plan a partial evaluation that did not error answers: its residuals as text and,
/// translated, as one condition (some permit holds and no forbid does).
fn plan_of(response: &TpeResponse<'_>, translator: &Translator<'_>) -> Plan {
    let mut residuals: Vec<(String, String)> = response
        .policies()
        .filter(|p| {
            let id = p.id();
            !response.false_permits().any(|f| f == id) && !response.false_forbids().any(|f| f == id)
        })
        .map(|p| (p.id().to_string(), p.to_string()))
        .collect();
    residuals.sort();
    let residuals = residuals.into_iter().map(|(_, text)| text).collect();
    // A policy that holds for every resource is `true` in its effect's disjunction.
    let mut permits: Vec<Condition> = response.true_permits().map(|_| Condition::True).collect();
    let mut forbids: Vec<Condition> = response.true_forbids().map(|_| Condition::True).collect();
    let mut unsupported = None;
    // In id order: Cedar's order is a hash map's, and equal questions must get equal plans
    // (a host's prepared statements, the suites' expectations).
    let mut residual_policies: Vec<cedar_policy::Policy> = response.residual_policies().collect();
    residual_policies.sort_by_key(|p| p.id().to_string());
    for policy in residual_policies {
        match residual_condition(translator, &policy) {
            Ok(c) if policy.effect() == cedar_policy::Effect::Permit => permits.push(c),
            Ok(c) => forbids.push(c),
            Err(construct) => {
                unsupported.get_or_insert(format!("policy `{}`: `{construct}`", policy.id()));
            }
        }
    }
    let condition = Condition::and([
        Condition::or(permits),
        Condition::not(Condition::or(forbids)),
    ]);
    let (kind, reasons) = match response.decision() {
        Some(cedar_policy::Decision::Allow) => {
            (PlanKind::AlwaysAllowed, sorted_ids(response.true_permits()))
        }
        Some(cedar_policy::Decision::Deny) => {
            (PlanKind::AlwaysDenied, sorted_ids(response.true_forbids()))
        }
        None if unsupported.is_none() && condition == Condition::True => {
            (PlanKind::AlwaysAllowed, Vec::new())
        }
        None if unsupported.is_none() && condition == Condition::False => {
            (PlanKind::AlwaysDenied, Vec::new())
        }
        None => (PlanKind::Conditional, Vec::new()),
    };
    let filterable = unsupported.is_none() || kind != PlanKind::Conditional;
    let reads = match kind {
        PlanKind::AlwaysDenied => Vec::new(),
        _ => translator.reads.take().into_iter().collect(),
    };
    Plan {
        reads,
        kind,
        filterable,
        condition: filterable.then_some(match kind {
            PlanKind::AlwaysAllowed => Condition::True,
            PlanKind::AlwaysDenied => Condition::False,
            PlanKind::Conditional => condition,
        }),
        unsupported: if filterable { None } else { unsupported },
        residuals,
        reasons,
        errors: Vec::new(),
        missing: Vec::new(),
    }
}

/// What an action's decision is when its context is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForAnyContext {
    /// The same decision whatever the context (a Deny of errors included: fail closed).
    Decided(Decision),
    /// Some context allows it, and some denies it (or Cedar could not tell).
    Depends,
}

/// Decides `action` with the context unknown: whether every context gives the same
/// decision. `entities` is the question's store (as assembled for a decision).
pub fn for_any_context(
    snapshot: &Snapshot,
    principal: &cedar_policy::EntityUid,
    action: &cedar_policy::EntityUid,
    resource: &cedar_policy::EntityUid,
    entities: &cedar_policy::Entities,
) -> ForAnyContext {
    let Ok(request) = PartialRequest::new(
        PartialEntityUid::from_concrete(principal.clone()),
        action.clone(),
        PartialEntityUid::from_concrete(resource.clone()),
        None,
        &snapshot.schema,
    ) else {
        return ForAnyContext::Depends;
    };
    let Ok(partial) = PartialEntities::from_concrete(entities.clone(), &snapshot.schema) else {
        return ForAnyContext::Depends;
    };
    let policies = indexed(snapshot, action, &resource.type_name().to_string());
    let Ok(response) = policies.tpe(&request, &partial, &snapshot.schema) else {
        return ForAnyContext::Depends;
    };
    let errors = erroring(&response, "context");
    let missing = crate::decide::absent([principal, resource], entities);
    if !errors.is_empty() {
        return ForAnyContext::Decided(Decision {
            decision: Verdict::Deny,
            reasons: Vec::new(),
            errors,
            missing,
        });
    }
    match response.decision() {
        Some(cedar_policy::Decision::Allow) => ForAnyContext::Decided(Decision {
            decision: Verdict::Allow,
            reasons: sorted_ids(response.true_permits()),
            errors: Vec::new(),
            missing,
        }),
        Some(cedar_policy::Decision::Deny) => ForAnyContext::Decided(Decision {
            decision: Verdict::Deny,
            reasons: sorted_ids(response.true_forbids()),
            errors: Vec::new(),
            missing,
        }),
        None => ForAnyContext::Depends,
    }
}

/// A residual policy's condition: its one `when` clause (the scope is unconstrained).
fn residual_condition(
    translator: &Translator<'_>,
    policy: &cedar_policy::Policy,
) -> Result<Condition, String> {
    let pst = policy.to_pst().map_err(|e| e.to_string())?;
    let mut conjuncts = Vec::new();
    for clause in pst.body().clauses() {
        let c = match clause {
            cedar_policy::pst::Clause::When(e) => translator.condition(e),
            cedar_policy::pst::Clause::Unless(e) => translator.condition(e).map(Condition::not),
        };
        conjuncts.push(c.map_err(|u| u.0)?);
    }
    Ok(Condition::and(conjuncts))
}

/// The policies Cedar knows will error whatever the unknown part (`what`) is, each as an
/// error message: they make every decision a Deny.
fn erroring(response: &cedar_policy::TpeResponse<'_>, what: &str) -> Vec<String> {
    response
        .error_permits()
        .chain(response.error_forbids())
        .map(|id| format!("policy `{id}` errors for every {what}"))
        .collect()
}

/// Policy ids as sorted strings.
fn sorted_ids<'a>(ids: impl Iterator<Item = &'a PolicyId>) -> Vec<String> {
    let mut ids: Vec<String> = ids.map(ToString::to_string).collect();
    ids.sort();
    ids
}

/// The plan of a question whose evaluation failed: every resource denied, with the error.
fn failed(error: String) -> Plan {
    tracing::warn!(%error, "a plan fails closed");
    Plan {
        errors: vec![error],
        ..failed_plan()
    }
}

fn failed_plan() -> Plan {
    Plan {
        kind: PlanKind::AlwaysDenied,
        filterable: true,
        condition: Some(Condition::False),
        unsupported: None,
        residuals: Vec::new(),
        reasons: Vec::new(),
        errors: Vec::new(),
        missing: Vec::new(),
        reads: Vec::new(),
    }
}
