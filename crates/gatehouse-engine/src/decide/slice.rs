//! One question's slice of the store: the stored entities it can reach from what it names
//! (see [`crate::policy::Reach`] for why that is all Cedar can read). The walk costs what the
//! slice holds, not what the store holds: marks live in a set, and the entities every
//! question reaches (those the policies name) were closed over once, when the snapshot was
//! built.

use std::collections::HashSet;

use cedar_policy::EntityUid;
use serde_json::Value;

use super::raw::{PlainText, Scalar, UidText};
use crate::cedar_json::{text_uid_shape, uid_shapes};
use crate::policy::Reach;

/// A slice in the making: mark what the question names, then take the closure.
#[derive(Debug)]
pub struct Slice<'a> {
    reach: &'a Reach,
    marked: HashSet<usize>,
    stack: Vec<usize>,
}

impl<'a> Slice<'a> {
    /// An empty slice of `reach`'s store.
    pub fn new(reach: &'a Reach) -> Self {
        Self {
            reach,
            marked: HashSet::new(),
            stack: Vec::new(),
        }
    }

    /// Marks every entity of the store that `json` names (a uid, a context, an entity).
    pub fn json(&mut self, json: &Value) {
        let reach = self.reach;
        uid_shapes(json, &mut |ty, id| {
            if let Some(at) = reach.index_of(ty, id) {
                self.mark(at);
            }
        });
    }

    /// Marks the entity with this uid, if the store has it.
    pub fn uid(&mut self, uid: &EntityUid) {
        if let Some(at) = self
            .reach
            .index_of(&uid.type_name().to_string(), uid.id().unescaped())
        {
            self.mark(at);
        }
    }

    /// Marks entities found by [`named_by_entity`].
    pub fn marks(&mut self, named: &[usize]) {
        for &at in named {
            self.mark(at);
        }
    }

    fn mark(&mut self, at: usize) {
        if !self.reach.is_always(at) && self.marked.insert(at) {
            self.stack.push(at);
        }
    }

    /// The store indices of every entity reachable from what was marked, and of those every
    /// question reaches, sorted (so that equal slices are equal vectors).
    pub fn finish(mut self) -> Vec<usize> {
        let reach = self.reach;
        let mut reached: Vec<usize> = reach.always().to_vec();
        while let Some(at) = self.stack.pop() {
            reached.push(at);
            for &next in reach.edges(at) {
                self.mark(next);
            }
        }
        reached.sort_unstable();
        reached
    }
}

/// The store entities that a request entity `item` names, or `None` when it has the uid of
/// a store entity (it replaces that entity, which a slice does not model: such a question is
/// decided on the whole store).
pub fn named_by_entity(reach: &Reach, item: &Value) -> Option<Vec<usize>> {
    if item
        .get("uid")
        .and_then(|uid| reach.index_of_json(uid))
        .is_some()
    {
        return None;
    }
    let mut named = Vec::new();
    // Schema-checked entity data refers only to the types the schema lets it: when no store
    // entity outside those every question reaches has one, there is nothing to find.
    if reach.entities_can_name() {
        uid_shapes(item, &mut |ty, id| named.extend(reach.index_of(ty, id)));
    }
    Some(named)
}

/// [`named_by_entity`] of an entity read as [`PlainText`], without its tree: what
/// [`uid_shapes`] finds in the tree of such an entity is each uid object, each string that
/// reads as a uid (the uid objects' own strings included), and the `type` and `id`
/// attributes when both are strings. `tests/it/properties.rs` checks the two agree.
pub fn named_by_plain(reach: &Reach, plain: &PlainText<'_>) -> Option<Vec<usize>> {
    let uid = plain.uid.as_ref()?;
    let mut replaces = false;
    uid_text_shapes(uid, &mut |ty, id| {
        replaces |= reach.index_of(ty, id).is_some();
    });
    if replaces {
        return None;
    }
    let mut named = Vec::new();
    if !reach.entities_can_name() {
        return Some(named);
    }
    let found = &mut |ty: &str, id: &str| named.extend(reach.index_of(ty, id));
    uid_text_shapes(uid, found);
    if let Some(attrs) = &plain.attrs {
        let text = |key: &str| {
            attrs.iter().find_map(|(name, value)| match value {
                Scalar::Str(s) if name == key => Some(s.as_ref()),
                _ => None,
            })
        };
        if let (Some(ty), Some(id)) = (text("type"), text("id")) {
            found(ty, id);
        }
        for (_, value) in attrs {
            match value {
                Scalar::Str(s) => text_uid_shape(s, found),
                Scalar::Uid(uid) => uid_text_shapes(uid, found),
                Scalar::Bool(_) | Scalar::Long(_) => {}
            }
        }
    }
    for parent in plain.parents.iter().flatten() {
        uid_text_shapes(parent, found);
    }
    Some(named)
}

/// What [`uid_shapes`] finds in a uid object: its uid, and the uids its strings read as.
fn uid_text_shapes(uid: &UidText<'_>, found: &mut dyn FnMut(&str, &str)) {
    found(&uid.ty, &uid.id);
    text_uid_shape(&uid.ty, found);
    text_uid_shape(&uid.id, found);
}
