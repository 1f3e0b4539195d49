//! What a question can reach among a snapshot's entities (the stored ones and the schema's
//! actions), so that each question is decided on its own slice of the store instead of a copy
//! of all of it: with thousands of stored entities, copying the store and repairing its
//! transitive closure for every question would cost more than deciding.
//!
//! Cedar's evaluator only touches entities it can name: the request's principal, action and
//! resource, uids in the context, entity literals in the policies, and uids held in the
//! attributes or tags of an entity it touched; `in` reads the left entity's ancestors, which
//! the store keeps transitively closed. So a question can touch exactly the stored entities
//! reachable from those roots through attribute references and ancestors. The walk is
//! conservative: anything in a JSON value shaped like a uid counts, which may add an entity
//! that is never read but never leaves out one that is.

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{Entities, EntityUid, PolicySet};
use serde_json::Value;

/// The snapshot's entities as a graph of "may lead to" edges.
#[derive(Debug, Default)]
pub struct Reach {
    /// Entity type, then id, to the node's index.
    by_name: HashMap<String, HashMap<String, usize>>,
    nodes: Vec<Node>,
    /// The nodes the policies name as literals: reachable by every question.
    literals: Vec<usize>,
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
            let ancestors: Vec<usize> = entities
                .ancestors(&reach.nodes[at].uid)
                .into_iter()
                .flatten()
                .filter_map(|a| reach.index_of_uid(a))
                .collect();
            reach.nodes[at].edges = ancestors;
        }
        for item in stored.and_then(Value::as_array).into_iter().flatten() {
            let Some(at) = item.get("uid").and_then(|uid| reach.index_of_json(uid)) else {
                continue;
            };
            let mut named = Vec::new();
            names(item, &mut |ty, id| named.extend(reach.index_of(ty, id)));
            reach.nodes[at].edges.extend(named);
        }
        // Only a condition can read an entity: the scope compares uids and reads the left
        // side's ancestors, never the entity it names.
        for policy in policies.policies() {
            if let Ok(json) = policy.to_json() {
                let mut named = Vec::new();
                names(&json["conditions"], &mut |ty, id| {
                    named.extend(reach.index_of(ty, id))
                });
                reach.literals.extend(named);
            }
        }
        reach.literals.sort_unstable();
        reach.literals.dedup();
        reach
    }

    /// Starts collecting one question's slice.
    pub fn slice(&self) -> Slice<'_> {
        let mut slice = Slice {
            reach: self,
            marked: vec![false; self.nodes.len()],
            stack: Vec::new(),
        };
        for &at in &self.literals {
            slice.mark(at);
        }
        slice
    }

    /// The store entities that request entities `items` name, or `None` when one of them has
    /// the uid of a store entity (it replaces that entity, which the slice does not model:
    /// such a question is decided on the whole store).
    pub fn named_by_entities(&self, items: &[Value]) -> Option<Vec<usize>> {
        let mut named = Vec::new();
        for item in items {
            if item
                .get("uid")
                .and_then(|uid| self.index_of_json(uid))
                .is_some()
            {
                return None;
            }
            names(item, &mut |ty, id| named.extend(self.index_of(ty, id)));
        }
        Some(named)
    }

    fn index_of(&self, ty: &str, id: &str) -> Option<usize> {
        self.by_name.get(ty)?.get(id).copied()
    }

    fn index_of_uid(&self, uid: &EntityUid) -> Option<usize> {
        self.index_of(&uid.type_name().to_string(), uid.id().unescaped())
    }

    fn index_of_json(&self, uid: &Value) -> Option<usize> {
        let mut found = None;
        names(uid, &mut |ty, id| found = found.or(self.index_of(ty, id)));
        found
    }
}

/// One question's slice in the making: mark what the question names, then take the closure.
#[derive(Debug)]
pub struct Slice<'a> {
    reach: &'a Reach,
    marked: Vec<bool>,
    stack: Vec<usize>,
}

impl<'a> Slice<'a> {
    /// Marks every entity of the store that `json` names (a uid, a context, an entity).
    pub fn json(&mut self, json: &Value) {
        let reach = self.reach;
        names(json, &mut |ty, id| {
            if let Some(at) = reach.index_of(ty, id) {
                self.mark(at);
            }
        });
    }

    /// Marks entities found by [`Reach::named_by_entities`].
    pub fn marks(&mut self, named: &[usize]) {
        for &at in named {
            self.mark(at);
        }
    }

    fn mark(&mut self, at: usize) {
        if !self.marked[at] {
            self.marked[at] = true;
            self.stack.push(at);
        }
    }

    /// The uids of every store entity reachable from what was marked.
    pub fn finish(mut self) -> Vec<&'a EntityUid> {
        let mut reached = Vec::new();
        while let Some(at) = self.stack.pop() {
            let node = &self.reach.nodes[at];
            reached.push(&node.uid);
            for &next in &node.edges {
                self.mark(next);
            }
        }
        reached
    }
}

/// Calls `found` with the type and id of everything in `json` shaped like a uid: an object
/// with string `type` and `id` (Cedar's uid JSON, also inside `__entity`), or a string
/// `Type::"id"`.
fn names(json: &Value, found: &mut dyn FnMut(&str, &str)) {
    match json {
        Value::Object(map) => {
            if let (Some(Value::String(ty)), Some(Value::String(id))) =
                (map.get("type"), map.get("id"))
            {
                found(ty, id);
            }
            for value in map.values() {
                names(value, found);
            }
        }
        Value::Array(items) => {
            for item in items {
                names(item, found);
            }
        }
        Value::String(text) if text.contains("::") => {
            if let Ok(uid) = EntityUid::from_str(text) {
                found(&uid.type_name().to_string(), uid.id().unescaped());
            }
        }
        _ => {}
    }
}
