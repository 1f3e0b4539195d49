//! Deciding: JSON questions become Cedar requests and entities ([`input`]), Cedar evaluates
//! them against a snapshot, and the answer fails closed. [`question`] is the one path the
//! sidecar and `gatehouse check` answer through, with the decision [`cache`] in front.
//!
//! Fail closed: Cedar skips a policy whose evaluation errors (a missing entity, a missing
//! attribute), which could let a `permit` through when a `forbid` failed to evaluate. Here
//! any evaluation error turns the decision into Deny, with the error in the answer.

pub mod allowed;
pub mod cache;
pub mod entities;
pub mod eval;
pub mod input;
pub mod question;
pub mod raw;
pub mod slice;
pub mod view;

use cedar_policy::{
    AuthorizationError, Authorizer, Entities, EntityUid, EvaluationError, PolicySet, Request,
};
use serde::Serialize;

use crate::policy::Snapshot;

pub use gatehouse_api::{Uid, Verdict};
pub use input::{InputError, Part};
pub use question::{Answer, BatchEntities, Decider, Question};
pub use raw::EntityList;

/// A decision with the policies that made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Decision {
    /// Allow only when a permit matched, no forbid matched and nothing failed to evaluate.
    pub decision: Verdict,
    /// The deciding policy ids, sorted: the matching permits on Allow, the matching forbids
    /// on Deny (empty when nothing permitted).
    pub reasons: Vec<String>,
    /// Evaluation errors, each naming its policy. Non-empty means Deny.
    pub errors: Vec<String>,
    /// The entities the question names or the deciding path dereferences that are neither in
    /// the question nor stored, sorted: the principal or the resource unknown (which Cedar
    /// decides as an entity with no attributes and no groups), or an entity a policy read
    /// (`resource.organization`) that failed to evaluate for it.
    pub missing: Vec<String>,
}

/// Evaluates `request` against the snapshot's policies that can apply to it (the index),
/// failing closed: with their compiled program ([`eval`]) when it answers, else with Cedar.
pub fn decide(snapshot: &Snapshot, request: &Request, entities: &Entities) -> Decision {
    decide_compiled(snapshot, request, entities.as_ref())
        .unwrap_or_else(|| decide_with_cedar(snapshot, request, entities))
}

/// [`decide`] over a question's entities laid on the stored ones ([`view::View`], or a
/// batch's [`view::Closed`]), by the compiled program only: `None` when it gives up (the
/// question then needs a store).
pub fn decide_viewed<'a, S: eval::Store<'a> + Copy>(
    snapshot: &'a Snapshot,
    request: &'a Request,
    view: S,
) -> Option<Decision> {
    decide_compiled(snapshot, request, view)
}

/// What the compiled program of `request`'s index entry decides over `store`, if it has a
/// program and it answers without giving up (so without errors).
fn decide_compiled<'a, S: eval::Store<'a> + Copy>(
    snapshot: &'a Snapshot,
    request: &'a Request,
    store: S,
) -> Option<Decision> {
    let core: &cedar_policy_core::ast::Request = request.as_ref();
    let (action, resource) = (core.action().uid()?, core.resource().uid()?);
    let program = snapshot.index.program(action, resource.entity_type())?;
    let outcome = eval::decide(program, core, store).ok()?;
    let mut missing: Vec<String> = [core.principal().uid(), Some(resource)]
        .into_iter()
        .flatten()
        .filter(|uid| matches!(store.entity(uid), Ok(None)))
        .map(ToString::to_string)
        .collect();
    missing.sort();
    missing.dedup();
    Some(Decision {
        decision: if outcome.allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        },
        reasons: outcome.reasons,
        errors: Vec::new(),
        missing,
    })
}

/// [`decide`] by Cedar's authorizer alone. Public so that tests can compare the two.
pub fn decide_with_cedar(snapshot: &Snapshot, request: &Request, entities: &Entities) -> Decision {
    let response =
        Authorizer::new().is_authorized(request, policies_for(snapshot, request), entities);
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(|e| e.to_string())
        .collect();
    let cedar_allowed = response.decision() == cedar_policy::Decision::Allow;
    let decision = if cedar_allowed && errors.is_empty() {
        Verdict::Allow
    } else {
        Verdict::Deny
    };
    // On a fail-closed Deny the matching permits did not decide anything: report no reason.
    let mut reasons: Vec<String> = if cedar_allowed && decision == Verdict::Deny {
        Vec::new()
    } else {
        response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect()
    };
    reasons.sort();
    Decision {
        decision,
        reasons,
        errors,
        missing: missing(request, entities, &response),
    }
}

/// Those of `uids` that `entities` does not hold, as text.
pub fn absent<'a>(
    uids: impl IntoIterator<Item = &'a EntityUid>,
    entities: &Entities,
) -> Vec<String> {
    let mut absent: Vec<String> = uids
        .into_iter()
        .filter(|uid| entities.get(uid).is_none())
        .map(ToString::to_string)
        .collect();
    absent.sort();
    absent.dedup();
    absent
}

/// [`Decision::missing`].
fn missing(
    request: &Request,
    entities: &Entities,
    response: &cedar_policy::Response,
) -> Vec<String> {
    let named = [request.principal(), request.resource()];
    let mut missing: std::collections::BTreeSet<String> =
        absent(named.into_iter().flatten(), entities)
            .into_iter()
            .collect();
    for error in response.diagnostics().errors() {
        let AuthorizationError::PolicyEvaluationError(error) = error;
        if let EvaluationError::EntityDoesNotExist(e) = error.inner() {
            // The uid is not public on the error; its message is `entity `<uid>` does not exist`.
            let text = e.to_string();
            if let Some(uid) = text
                .strip_prefix("entity `")
                .and_then(|t| t.strip_suffix("` does not exist"))
            {
                missing.insert(uid.to_string());
            }
        }
    }
    missing.into_iter().collect()
}

/// The policies that can apply to `request`: its entry of the snapshot's index, or the whole
/// set for a request the index does not cover. Public so that tests can compare it with the
/// whole set.
pub fn policies_for<'a>(snapshot: &'a Snapshot, request: &Request) -> &'a PolicySet {
    match (request.action(), request.resource()) {
        (Some(action), Some(resource)) => {
            indexed(snapshot, action, &resource.type_name().to_string())
        }
        _ => &snapshot.policies,
    }
}

/// The policies that can apply to `action` on resources of `resource_type`: their entry of
/// the snapshot's index, or the whole set when the index has none. What partial evaluation
/// runs on too.
pub fn indexed<'a>(
    snapshot: &'a Snapshot,
    action: &EntityUid,
    resource_type: &str,
) -> &'a PolicySet {
    snapshot
        .index
        .get(action, resource_type)
        .unwrap_or(&snapshot.policies)
}
