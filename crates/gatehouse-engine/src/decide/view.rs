//! A question's own entities laid over the snapshot's stored entities, read in place: the
//! store the compiled evaluator ([`super::eval`]) decides a single question on, without
//! assembling one.
//!
//! Assembling a Cedar store for a question copies its entities and computes their transitive
//! closure; with the stored entities already closed, what a question adds can be read where
//! it lies. A stored entity's ancestors are then what the store recorded, and an own
//! entity's are its parents and, through them, their ancestors (own parents followed,
//! stored parents' recorded ancestors taken). That is the store Cedar would assemble when
//! the own entities change no stored entity's ancestors and form no cycle, which
//! [`View::new`] checks; anything else is left to assembling, as before. Questions of a
//! batch are decided on the batch's store, assembled once.
//!
//! The view spans the whole stored set rather than the question's slice: the slice only
//! makes assembling cheaper, and a question decided on its slice is decided as on the whole
//! store (`tests/it/properties.rs`, `tests/it/stores.rs` hold both to Cedar over the whole
//! store).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cedar_policy::Entity;
use cedar_policy_core::ast;
use cedar_policy_core::entities::{Dereference, Entities};
use foldhash::fast::RandomState;

use super::entities::Parsed;
use super::eval::{GiveUp, Store};
use crate::policy::Snapshot;

/// Own entities over the stored ones.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    stored: &'a Entities,
    own: &'a [&'a ast::Entity],
}

/// More own entities than this are assembled as before: the checks and lookups here go
/// through the list, and the walks along own parents (acyclic) recurse at most this deep.
pub const MAX_OWN: usize = 32;

impl<'a> View<'a> {
    /// The own entities of `parsed` (resolved, so their uids are distinct), as a list the
    /// view borrows, or `None` when assembling is needed: more than [`MAX_OWN`], one with the
    /// uid of a stored entity or of a stored entity's ancestor that is not stored, or a cycle
    /// along own parents.
    #[expect(clippy::indexing_slicing, reason = "`i` ranges over `own`'s positions")]
    pub fn entities(
        snapshot: &Snapshot,
        parsed: &'a [Arc<Parsed>],
    ) -> Option<Vec<&'a ast::Entity>> {
        if parsed.len() > MAX_OWN {
            return None;
        }
        let own: Vec<&ast::Entity> = parsed.iter().map(|p| p.entity.as_ref()).collect();
        for (i, parsed) in parsed.iter().enumerate() {
            let uid = own[i].uid();
            // `named` is `None` for an entity with a stored entity's uid.
            if parsed.named.is_none() || snapshot.reach.is_dangling(uid) {
                return None;
            }
        }
        let mut state = vec![Visit::New; own.len()];
        for i in 0..own.len() {
            if !acyclic(i, &own, &mut state) {
                return None;
            }
        }
        Some(own)
    }

    /// The view of `own` (from [`View::entities`]) over the snapshot's stored entities.
    pub fn new(snapshot: &'a Snapshot, own: &'a [&'a ast::Entity]) -> Self {
        Self {
            stored: snapshot.entities.as_ref(),
            own,
        }
    }

    fn own(&self, uid: &ast::EntityUID) -> Option<&'a ast::Entity> {
        self.own.iter().find(|e| e.uid() == uid).copied()
    }

    fn stored(&self, uid: &ast::EntityUID) -> Option<&'a ast::Entity> {
        stored(self.stored, uid)
    }

    /// Whether own entity `entity` has `ancestor` among its parents or theirs (own parents
    /// are acyclic by [`View::entities`], so the walk ends).
    fn own_descends(&self, entity: &ast::Entity, ancestor: &ast::EntityUID) -> bool {
        entity.parents().any(|parent| {
            parent == ancestor
                || match self.own(parent) {
                    Some(own) => self.own_descends(own, ancestor),
                    None => self
                        .stored(parent)
                        .is_some_and(|stored| stored.is_descendant_of(ancestor)),
                }
        })
    }
}

impl<'a> Store<'a> for View<'a> {
    fn entity(&self, uid: &ast::EntityUID) -> Result<Option<&'a ast::Entity>, GiveUp> {
        Ok(self.own(uid).or_else(|| self.stored(uid)))
    }

    fn is_descendant(
        &self,
        entity: &'a ast::Entity,
        ancestor: &ast::EntityUID,
    ) -> Result<bool, GiveUp> {
        if self.own.iter().any(|e| std::ptr::eq(*e, entity)) {
            Ok(self.own_descends(entity, ancestor))
        } else {
            // A stored entity, closed in the store; no own entity changes its ancestors.
            Ok(entity.is_descendant_of(ancestor))
        }
    }
}

/// The stored entity with `uid`.
fn stored<'a>(stored: &'a Entities, uid: &ast::EntityUID) -> Option<&'a ast::Entity> {
    match stored.entity(uid) {
        Dereference::Data(entity) => Some(entity),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    Open,
    Done,
}

/// Whether no cycle runs through own entity `i` along own parents.
#[expect(
    clippy::indexing_slicing,
    reason = "`i` and the parents' positions index `own`, for which `state` was made the same length"
)]
fn acyclic(i: usize, own: &[&ast::Entity], state: &mut [Visit]) -> bool {
    match state[i] {
        Visit::Done => return true,
        Visit::Open => return false,
        Visit::New => {}
    }
    state[i] = Visit::Open;
    for parent in own[i].parents() {
        if let Some(j) = own.iter().position(|e| e.uid() == parent)
            && !acyclic(j, own, state)
        {
            return false;
        }
    }
    state[i] = Visit::Done;
    true
}

/// A batch's shared entities indexed by uid, each with its ancestors: its parents and,
/// through them, theirs (shared parents' closed here, stored parents' as the store recorded
/// them), the closure Cedar computes when it assembles the shared entities with the stored.
#[derive(Debug)]
pub struct Closure {
    /// Position in the shared entities, by uid.
    index: HashMap<ast::EntityUID, usize, RandomState>,
    /// The ancestors of each shared entity, by position.
    ancestors: Vec<HashSet<ast::EntityUID, RandomState>>,
}

impl Closure {
    /// The closure of `shared` (resolved, so their uids are distinct) over the snapshot's
    /// stored entities, or `None` when only assembling gives Cedar's store: one has the uid
    /// of a stored entity (`replaces`) or of a stored entity's ancestor that is not stored,
    /// or the shared entities' parents make a cycle.
    #[expect(
        clippy::indexing_slicing,
        reason = "`i` and `j` are positions in `shared`, for which `ancestors` was made the same length"
    )]
    pub fn new(snapshot: &Snapshot, shared: &[Entity], replaces: bool) -> Option<Self> {
        if replaces {
            return None;
        }
        let mut index = HashMap::with_capacity_and_hasher(shared.len(), RandomState::default());
        for (i, entity) in shared.iter().enumerate() {
            let uid = entity.as_ref().uid();
            if snapshot.reach.is_dangling(uid) {
                return None;
            }
            index.insert(uid.clone(), i);
        }
        let parents: Vec<Vec<usize>> = shared
            .iter()
            .map(|e| {
                let parents = e.as_ref().parents();
                parents.filter_map(|p| index.get(p).copied()).collect()
            })
            .collect();
        let store = snapshot.entities.as_ref();
        let mut ancestors = vec![HashSet::default(); shared.len()];
        // Parents before children, so that a shared parent's ancestors are closed first.
        for i in parents_first(&parents)? {
            let mut closed = HashSet::with_hasher(RandomState::default());
            for parent in shared[i].as_ref().parents() {
                closed.insert(parent.clone());
                match index.get(parent) {
                    Some(&j) => closed.extend(ancestors[j].iter().cloned()),
                    None => closed.extend(
                        stored(store, parent)
                            .into_iter()
                            .flat_map(|e| e.ancestors().cloned()),
                    ),
                }
            }
            ancestors[i] = closed;
        }
        Some(Self { index, ancestors })
    }
}

/// The positions `0..parents.len()` ordered so that each comes after every position in its
/// `parents`, or `None` when they make a cycle. A walk with its own stack: a chain of
/// parents may be as long as a batch has entities.
#[expect(
    clippy::indexing_slicing,
    reason = "every position comes from `parents`, for which `state` was made the same length"
)]
fn parents_first(parents: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut state = vec![Visit::New; parents.len()];
    let mut order = Vec::with_capacity(parents.len());
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..parents.len() {
        if state[root] != Visit::New {
            continue;
        }
        state[root] = Visit::Open;
        stack.push((root, 0));
        while let Some((i, next)) = stack.last_mut() {
            let i = *i;
            match parents[i].get(*next) {
                Some(&parent) => {
                    *next += 1;
                    match state[parent] {
                        Visit::Open => return None,
                        Visit::Done => {}
                        Visit::New => {
                            state[parent] = Visit::Open;
                            stack.push((parent, 0));
                        }
                    }
                }
                None => {
                    state[i] = Visit::Done;
                    order.push(i);
                    stack.pop();
                }
            }
        }
    }
    Some(order)
}

/// A batch's shared entities, closed ([`Closure`]), over the stored ones.
#[derive(Debug, Clone, Copy)]
pub struct Closed<'a> {
    stored: &'a Entities,
    shared: &'a [Entity],
    closure: &'a Closure,
}

impl<'a> Closed<'a> {
    /// `shared` (as given to [`Closure::new`]) with their `closure`, over the snapshot's
    /// stored entities.
    pub fn new(snapshot: &'a Snapshot, shared: &'a [Entity], closure: &'a Closure) -> Self {
        Self {
            stored: snapshot.entities.as_ref(),
            shared,
            closure,
        }
    }

    /// The position of `uid` among the shared entities.
    fn position(&self, uid: &ast::EntityUID) -> Option<usize> {
        self.closure.index.get(uid).copied()
    }
}

impl<'a> Store<'a> for Closed<'a> {
    #[expect(
        clippy::indexing_slicing,
        reason = "indices come from the view's own uid table, built over the same entities"
    )]
    fn entity(&self, uid: &ast::EntityUID) -> Result<Option<&'a ast::Entity>, GiveUp> {
        Ok(match self.position(uid) {
            Some(i) => Some(self.shared[i].as_ref()),
            None => stored(self.stored, uid),
        })
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "indices come from the view's own uid table, built over the same entities"
    )]
    fn is_descendant(
        &self,
        entity: &'a ast::Entity,
        ancestor: &ast::EntityUID,
    ) -> Result<bool, GiveUp> {
        match self.position(entity.uid()) {
            Some(i) if std::ptr::eq(self.shared[i].as_ref(), entity) => {
                Ok(self.closure.ancestors[i].contains(ancestor))
            }
            // A stored entity, closed in the store; no shared entity changes its ancestors.
            _ => Ok(entity.is_descendant_of(ancestor)),
        }
    }
}
