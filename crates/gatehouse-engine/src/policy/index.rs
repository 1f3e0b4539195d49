//! The policy index: for each requestable action and resource type, the policies whose scope
//! can match such a request.
//!
//! Cedar's cost grows with the number of policies even when their scope does not match, so
//! deciding with only the policies that can apply is a large win. It changes no answer: Cedar
//! checks a policy's scope before its conditions, so a policy whose action or resource scope
//! cannot match is never satisfied and never errors. The index is conservative: a scope it
//! cannot rule out (`resource in …`, any principal scope) keeps the policy. Property tests check
//! it against the full set.

use std::collections::{HashMap, HashSet};

use cedar_policy::{ActionConstraint, EntityUid, PolicySet, ResourceConstraint, Schema};
use cedar_policy_core::ast;

use super::catalog::ActionCatalog;
use super::program::Program;

/// `(action uid, resource type)` -> the policies that can apply.
#[derive(Debug, Default)]
pub struct PolicyIndex {
    sets: HashMap<(String, String), PolicySet>,
    /// The same entries compiled, by action then resource type (a handful per action), for
    /// [`crate::decide::eval`]; `None` where a policy of the entry is left to Cedar.
    programs: HashMap<ast::EntityUID, Vec<(ast::EntityType, Option<Program>)>>,
}

impl PolicyIndex {
    /// Builds the index of `policies` over every action and resource type of the catalog.
    pub fn build(policies: &PolicySet, schema: &Schema, catalog: &ActionCatalog) -> Self {
        let ancestors = action_ancestors(schema);
        let mut sets = HashMap::new();
        let mut programs: HashMap<ast::EntityUID, Vec<_>> = HashMap::new();
        for action in catalog.iter() {
            let groups = ancestors.get(&action.uid).cloned().unwrap_or_default();
            for resource in &action.resources {
                let mut set = PolicySet::new();
                for policy in policies.policies() {
                    if action_may_match(&policy.action_constraint(), &action.uid, &groups)
                        && resource_may_match(&policy.resource_constraint(), resource)
                    {
                        // INVARIANT: ids are unique in `policies`, so `add` cannot fail.
                        let _ = set.add(policy.clone());
                    }
                }
                if let Ok(resource_type) = resource.parse::<cedar_policy::EntityTypeName>() {
                    let resource_type: &ast::EntityType = resource_type.as_ref();
                    programs
                        .entry(action.uid.as_ref().clone())
                        .or_default()
                        .push((resource_type.clone(), Program::compile(set.policies())));
                }
                sets.insert((action.uid.to_string(), resource.clone()), set);
            }
        }
        Self { sets, programs }
    }

    /// The compiled policies of `action` on a resource of type `resource_type`, or `None`
    /// for a combination the schema does not declare or whose policies are left to Cedar.
    pub fn program(
        &self,
        action: &ast::EntityUID,
        resource_type: &ast::EntityType,
    ) -> Option<&Program> {
        self.programs
            .get(action)?
            .iter()
            .find(|(t, _)| t == resource_type)?
            .1
            .as_ref()
    }

    /// How many entries have a program, and how many entries there are.
    pub fn compiled(&self) -> (usize, usize) {
        let entries = || self.programs.values().flatten();
        let compiled = entries().filter(|(_, p)| p.is_some()).count();
        (compiled, entries().count())
    }

    /// The policies that can apply to `action` on a resource of type `resource_type`, or
    /// `None` for a combination the schema does not declare.
    pub fn get(&self, action: &EntityUid, resource_type: &str) -> Option<&PolicySet> {
        self.sets
            .get(&(action.to_string(), resource_type.to_string()))
    }

    /// How many policies the largest entry holds, and the mean.
    pub fn sizes(&self) -> (usize, f64) {
        let sizes: Vec<usize> = self.sets.values().map(|s| s.policies().count()).collect();
        let max = sizes.iter().copied().max().unwrap_or(0);
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
        (max, mean)
    }
}

fn action_may_match(
    constraint: &ActionConstraint,
    action: &EntityUid,
    groups: &HashSet<EntityUid>,
) -> bool {
    match constraint {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => a == action,
        ActionConstraint::In(list) => list.iter().any(|a| a == action || groups.contains(a)),
    }
}

fn resource_may_match(constraint: &ResourceConstraint, resource_type: &str) -> bool {
    match constraint {
        ResourceConstraint::Any | ResourceConstraint::In(_) => true,
        ResourceConstraint::Eq(uid) => uid.type_name().to_string() == resource_type,
        ResourceConstraint::Is(t) | ResourceConstraint::IsIn(t, _) => {
            t.to_string() == resource_type
        }
    }
}

/// Every action's groups, transitively.
fn action_ancestors(schema: &Schema) -> HashMap<EntityUid, HashSet<EntityUid>> {
    let Ok(actions) = schema.action_entities() else {
        return HashMap::new();
    };
    actions
        .iter()
        .map(|action| {
            let uid = action.uid();
            let ancestors = actions
                .ancestors(&uid)
                .map(|a| a.cloned().collect())
                .unwrap_or_default();
            (uid, ancestors)
        })
        .collect()
}
