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
pub mod input;
pub mod question;
pub mod slice;

use cedar_policy::{Authorizer, Entities, EntityUid, PolicySet, Request};
use serde::Serialize;

use crate::policy::Snapshot;

pub use input::{InputError, Part};
pub use question::{Answer, BatchEntities, Decider, Question};

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum Verdict {
    /// The request is permitted.
    Allow,
    /// The request is not permitted.
    Deny,
}

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
}

/// Evaluates `request` against the snapshot's policies that can apply to it (the index),
/// failing closed.
pub fn decide(snapshot: &Snapshot, request: &Request, entities: &Entities) -> Decision {
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
    }
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
