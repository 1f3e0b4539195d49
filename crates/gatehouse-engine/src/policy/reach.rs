//! The snapshot's entities (the stored ones and the schema's actions) as a graph of "may
//! lead to" edges, built once per snapshot, so that each question can be decided on its own
//! slice of the store instead of a copy of all of it (the walk itself is per question, in
//! [`crate::decide::slice`]): with thousands of stored entities, copying the store and
//! repairing its transitive closure for every question would cost more than deciding.
//!
//! Cedar's evaluator only touches entities it can name: the request's principal, action and
//! resource, uids in the context, entity literals in the policies, and uids held in the
//! attributes or tags of an entity it touched; `in` reads the left entity's ancestors, which
//! the store keeps transitively closed. So a question can touch exactly the stored entities
//! reachable from those roots through attribute references and ancestors. The walk is
//! conservative: anything in a JSON value shaped like a uid counts, which may add an entity
//! that is never read but never leaves out one that is.

use std::collections::HashMap;

use cedar_policy::{Entities, EntityUid, PolicySet};
use serde_json::Value;

use crate::cedar_json::uid_shapes;

/// The snapshot's entities as a graph of "may lead to" edges.
#[derive(Debug, Default)]
pub struct Reach {
    /// Entity type, then id, to the node's index.
    by_name: HashMap<String, HashMap<String, usize>>,
    nodes: Vec<Node>,
    /// Whether each node is reachable from the policies' literals, hence by every question.
    always: Vec<bool>,
    /// The same nodes, as a list.
    always_list: Vec<usize>,
    /// Whether a request entity can name a node that is not among `always`: false when
    /// every such node's type is one no entity data can refer to (the schema's actions,
    /// when nothing is stored), so that the walk of request entities finds nothing.
    entities_can_name: bool,
    /// The uids the stored entities have as ancestors that are not stored: a request entity
    /// with one of them would change stored entities' ancestors.
    dangling: std::collections::HashSet<cedar_policy_core::ast::EntityUID>,
}

#[derive(Debug)]
struct Node {
    uid: EntityUid,
    /// Ancestors and every uid named in the entity's JSON, as node indices.
    edges: Vec<usize>,
}

impl Reach {
    /// The graph of `entities`, with the attribute references read from `stored` (the stored
    /// entities' JSON; the schema's actions have no attributes) and the literals of
    /// `policies`.
    #[expect(
        clippy::indexing_slicing,
        reason = "`at` is a node's position handed out when it was pushed, and `always` is as long as `nodes`; serde_json::Value's index reads Null for a missing key, never panics"
    )]
    pub fn build(entities: &Entities, stored: Option<&Value>, policies: &PolicySet) -> Self {
        let mut reach = Self::default();
        for entity in entities.iter() {
            let uid = entity.uid();
            let (ty, id) = (
                uid.type_name().to_string(),
                uid.id().unescaped().to_string(),
            );
            let at = reach.nodes.len();
            reach.by_name.entry(ty).or_default().insert(id, at);
            reach.nodes.push(Node {
                uid,
                edges: Vec::new(),
            });
        }
        for at in 0..reach.nodes.len() {
            let mut ancestors = Vec::new();
            for ancestor in entities
                .ancestors(&reach.nodes[at].uid)
                .into_iter()
                .flatten()
            {
                // The nodes are the stored entities: an ancestor without one is dangling.
                match reach.index_of_uid(ancestor) {
                    Some(node) => ancestors.push(node),
                    None => {
                        reach.dangling.insert(ancestor.as_ref().clone());
                    }
                }
            }
            reach.nodes[at].edges = ancestors;
        }
        for item in stored.and_then(Value::as_array).into_iter().flatten() {
            let Some(at) = item.get("uid").and_then(|uid| reach.index_of_json(uid)) else {
                continue;
            };
            let mut named = Vec::new();
            uid_shapes(item, &mut |ty, id| named.extend(reach.index_of(ty, id)));
            reach.nodes[at].edges.extend(named);
        }
        // Only a condition can read an entity: the scope compares uids and reads the left
        // side's ancestors, never the entity it names.
        // Their closure is computed here, once, not by every question.
        let mut literals = Vec::new();
        for policy in policies.policies() {
            if let Ok(json) = policy.to_json() {
                uid_shapes(&json["conditions"], &mut |ty, id| {
                    literals.extend(reach.index_of(ty, id))
                });
            }
        }
        reach.always = vec![false; reach.nodes.len()];
        while let Some(at) = literals.pop() {
            if !reach.always[at] {
                reach.always[at] = true;
                reach.always_list.push(at);
                literals.extend_from_slice(&reach.nodes[at].edges);
            }
        }
        // Until `with_referable_types` says otherwise, request entities are walked.
        reach.entities_can_name = true;
        reach
    }

    /// Records which entity types request entities can refer to (see
    /// [`crate::policy::ActionCatalog::referable_types`]).
    #[expect(clippy::indexing_slicing, reason = "`always` is as long as `nodes`")]
    pub fn with_referable_types(mut self, referable: &std::collections::BTreeSet<&str>) -> Self {
        self.entities_can_name = self.nodes.iter().enumerate().any(|(at, node)| {
            !self.always[at] && referable.contains(node.uid.type_name().to_string().as_str())
        });
        self
    }

    /// Whether a request entity can name a store entity a question would not reach anyway.
    pub fn entities_can_name(&self) -> bool {
        self.entities_can_name
    }

    /// Whether a stored entity has `uid` as an ancestor while no stored entity has that uid.
    pub fn is_dangling(&self, uid: &cedar_policy_core::ast::EntityUID) -> bool {
        !self.dangling.is_empty() && self.dangling.contains(uid)
    }

    /// The node of the entity with this type and id.
    pub fn index_of(&self, ty: &str, id: &str) -> Option<usize> {
        self.by_name.get(ty)?.get(id).copied()
    }

    /// The uid of node `at`.
    #[expect(
        clippy::indexing_slicing,
        reason = "node positions are handed out by `build`, which pushes every node"
    )]
    pub fn uid(&self, at: usize) -> &EntityUid {
        &self.nodes[at].uid
    }

    /// The nodes node `at` may lead to: its ancestors and the uids named in its attributes.
    #[expect(
        clippy::indexing_slicing,
        reason = "node positions are handed out by `build`, which pushes every node"
    )]
    pub fn edges(&self, at: usize) -> &[usize] {
        &self.nodes[at].edges
    }

    /// The nodes every question reaches (from the policies' literals), closed under edges.
    pub fn always(&self) -> &[usize] {
        &self.always_list
    }

    /// Whether node `at` is among [`Reach::always`].
    #[expect(
        clippy::indexing_slicing,
        reason = "node positions are handed out by `build`, and `always` is as long as `nodes`"
    )]
    pub fn is_always(&self, at: usize) -> bool {
        self.always[at]
    }

    fn index_of_uid(&self, uid: &EntityUid) -> Option<usize> {
        self.index_of(&uid.type_name().to_string(), uid.id().unescaped())
    }

    /// The node of the entity whose uid `uid` (JSON, any of Cedar's forms) names.
    pub fn index_of_json(&self, uid: &Value) -> Option<usize> {
        let mut found = None;
        uid_shapes(uid, &mut |ty, id| found = found.or(self.index_of(ty, id)));
        found
    }
}
