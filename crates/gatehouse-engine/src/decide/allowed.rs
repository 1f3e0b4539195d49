//! "Which buttons may this user press?": every action of the schema that applies to the
//! principal's and resource's types (or the ones asked for), each asked as a single question
//! is ([`Decider::answer`]). An action whose required context keys were not given is
//! decided by partial evaluation with the context unknown, over one store assembled for all
//! of those: when every context gives the same decision (a viewer may `share` with no role
//! at all), that is its decision; otherwise it is listed in `needs_context`, never guessed.

use std::collections::BTreeMap;
use std::sync::Arc;

use cedar_policy::{Entities, EntityUid};
use gatehouse_api::Uid;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::entities::Layer;
use super::input::{InputError, Part, context_object, read_action, read_uid};
use super::question::Question;
use super::{Decider, Decision, Verdict};
use crate::plan::{ForAnyContext, for_any_context};
use crate::policy::{ActionInfo, Snapshot};

/// `{"principal", "resource", "context"?, "entities"?}`: the question without an action.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"principal": "User::\"vic\"", "resource": "Project::\"p1\""})))]
pub struct ActionsQuestion {
    /// The principal's uid.
    #[serde(deserialize_with = "Uid::principal")]
    pub principal: Uid,
    /// The resource's uid.
    #[serde(deserialize_with = "Uid::resource")]
    pub resource: Uid,
    /// Context keys; each action gets the keys it declares.
    #[serde(default, deserialize_with = "crate::json_keys::strict_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, serde_json::Value>>))]
    pub context: Option<Value>,
    /// Entities for this question, in Cedar's entity JSON.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<gatehouse_api::Entity>>))]
    pub entities: Option<crate::decide::EntityList>,
    /// Only these actions (ids such as `"view"`, or uids); every applicable one when absent.
    #[serde(default, deserialize_with = "Uid::actions")]
    pub actions: Option<Vec<Uid>>,
    /// Answer 400 `missing_entity` rather than decide without an entity the question names
    /// or the deciding path reads.
    #[serde(default)]
    pub strict_entities: bool,
    /// With an entity database: how fresh the entities decided on must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<gatehouse_api::Consistency>,
}

/// One action's decision, with the question it answered (for the decision log).
#[derive(Debug)]
pub struct ActionDecision {
    /// The action's id, e.g. `view`.
    pub action: String,
    /// The question as asked for this action: the action's own context keys only.
    pub question: Question,
    /// The decision.
    pub decision: Arc<Decision>,
}

/// Every applicable action, decided or set apart.
#[derive(Debug)]
pub struct AllowedActions {
    /// Each decided action, in the schema's order.
    pub decided: Vec<ActionDecision>,
    /// Actions whose required context keys were not given, and that some context allows
    /// and some denies.
    pub needs_context: Vec<String>,
}

impl AllowedActions {
    /// The ids of the actions with this verdict.
    pub fn with(&self, verdict: Verdict) -> Vec<&str> {
        self.decided
            .iter()
            .filter(|d| d.decision.decision == verdict)
            .map(|d| d.action.as_str())
            .collect()
    }

    /// The deciding policies by action id: the permits of an allowed action, the forbids of a
    /// denied one (none when nothing permits it).
    pub fn reasons(&self) -> BTreeMap<&str, &[String]> {
        self.decided
            .iter()
            .map(|d| (d.action.as_str(), d.decision.reasons.as_slice()))
            .collect()
    }

    /// The entities missing for any action (see [`crate::decide::Decision::missing`]),
    /// sorted.
    pub fn missing(&self) -> Vec<&str> {
        let mut missing: Vec<&str> = self
            .decided
            .iter()
            .flat_map(|d| d.decision.missing.iter().map(String::as_str))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Evaluation errors by action id.
    pub fn errors(&self) -> BTreeMap<&str, &[String]> {
        self.decided
            .iter()
            .filter(|d| !d.decision.errors.is_empty())
            .map(|d| (d.action.as_str(), d.decision.errors.as_slice()))
            .collect()
    }
}

impl ActionsQuestion {
    /// The question of `action` alone, with `context`.
    fn of(&self, action: &EntityUid, context: Option<Value>) -> Question {
        Question {
            principal: self.principal.clone(),
            action: Uid::Text(action.to_string()),
            resource: self.resource.clone(),
            context,
            entities: self.entities.clone(),
            strict_entities: false,
            consistency: None,
        }
    }
}

/// Decides every action of the schema that applies to the question's principal and
/// resource types (or the ones it asks for). An action given the context keys it requires
/// is asked through [`Decider::answer`], as a single question is (the decision cache, the
/// view); one that lacks some is decided by partial evaluation over one store assembled for
/// all of those.
pub fn allowed_actions(
    decider: &Decider,
    snapshot: &Snapshot,
    question: &ActionsQuestion,
) -> Result<AllowedActions, InputError> {
    let catalog = &snapshot.catalog;
    let principal = read_uid(catalog, Part::Principal, "principal", &question.principal)?;
    let resource = read_uid(catalog, Part::Resource, "resource", &question.resource)?;
    let context = context_object(question.context.as_ref())?
        .cloned()
        .unwrap_or_default();
    let actions = asked_actions(snapshot, question, &principal, &resource, &context)?;
    let lacks = |action: &ActionInfo| {
        action
            .required_context()
            .any(|key| !context.contains_key(key))
    };
    let mut answer = AllowedActions {
        decided: Vec::new(),
        needs_context: Vec::new(),
    };
    // Asked about no action, the question's entities are still read: a wrong one is refused
    // as in any question, not accepted unread.
    if actions.is_empty() {
        let none: [&ActionInfo; 0] = [];
        let context = (&principal, &resource, &context);
        lacking_store(decider, snapshot, question, context, none.iter())?;
    }
    // Assembled on the first action that lacks a required key, for all of those.
    let mut store = None;
    for &action in &actions {
        if lacks(action) {
            let entities = match &store {
                Some(entities) => entities,
                None => store.insert(lacking_store(
                    decider,
                    snapshot,
                    question,
                    (&principal, &resource, &context),
                    actions.iter().filter(|a| lacks(a)),
                )?),
            };
            match for_any_context(snapshot, &principal, &action.uid, &resource, entities) {
                ForAnyContext::Decided(decision) => answer.decided.push(ActionDecision {
                    action: action.name.clone(),
                    question: question.of(&action.uid, None),
                    decision: Arc::new(decision),
                }),
                ForAnyContext::Depends => answer.needs_context.push(action.name.clone()),
            }
            continue;
        }
        // Each action gets the keys it declares; the others belong to other actions.
        let own_context = context
            .iter()
            .filter(|(k, _)| action.context.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let question = question.of(&action.uid, Some(Value::Object(own_context)));
        let decision = decider.answer(snapshot, &question, None)?.decision;
        answer.decided.push(ActionDecision {
            action: action.name.clone(),
            question,
            decision,
        });
    }
    Ok(answer)
}

/// The store the actions that lack a required context key are partially evaluated on: the
/// question's entities and the slice of the stored ones its principal, resource, context
/// and those actions reach.
fn lacking_store<'s>(
    decider: &Decider,
    snapshot: &Snapshot,
    question: &ActionsQuestion,
    (principal, resource, context): (&EntityUid, &EntityUid, &Map<String, Value>),
    lacking: impl Iterator<Item = &'s &'s ActionInfo>,
) -> Result<Arc<Entities>, InputError> {
    let own = question
        .entities
        .as_ref()
        .map(|list| Layer::digest(&snapshot.inputs, "entities", list))
        .transpose()?;
    decider.entities(snapshot, None, own.as_ref(), |slice| {
        slice.uid(principal);
        slice.uid(resource);
        slice.json(&Value::Object(context.clone()));
        for action in lacking {
            slice.uid(&action.uid);
        }
    })
}

/// The actions a question asks about: those of the schema that apply to its principal's
/// and resource's types, or the ones it names (each one of those). A context key that no
/// action asked declares is refused, as a single question refuses an undeclared key, rather
/// than silently dropped for every action.
fn asked_actions<'s>(
    snapshot: &'s Snapshot,
    question: &ActionsQuestion,
    principal: &EntityUid,
    resource: &EntityUid,
    context: &Map<String, Value>,
) -> Result<Vec<&'s ActionInfo>, InputError> {
    let (ptype, rtype) = (
        principal.type_name().to_string(),
        resource.type_name().to_string(),
    );
    let mut actions: Vec<_> = snapshot.catalog.applicable(&ptype, &rtype).collect();
    if let Some(wanted) = &question.actions {
        let mut chosen = Vec::with_capacity(wanted.len());
        for (i, action) in wanted.iter().enumerate() {
            let field = format!("actions[{i}]");
            let uid = read_action(snapshot, &field, action)?;
            let Some(info) = actions.iter().find(|a| a.uid == uid) else {
                return Err(InputError::new(
                    Part::Action,
                    field,
                    format!(
                        "`{uid}` is not an action of the schema that applies to principal `{principal}` and resource `{resource}`"
                    ),
                ));
            };
            chosen.push(*info);
        }
        actions = chosen;
    }
    if let Some(key) = context
        .keys()
        .find(|key| !actions.iter().any(|a| a.context.contains_key(*key)))
    {
        return Err(InputError::new(
            Part::Context,
            format!("context.{key}"),
            format!(
                "no action asked declares the context key `{key}` (principal `{principal}`, resource `{resource}`)"
            ),
        ));
    }
    if actions.is_empty() && question.actions.is_none() {
        return Err(InputError::new(
            Part::Resource,
            "resource",
            format!(
                "no action of the schema applies to principal `{principal}` and resource `{resource}`"
            ),
        ));
    }
    Ok(actions)
}
