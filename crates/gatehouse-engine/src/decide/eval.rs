//! Runs a compiled [`Program`] (one index entry's policies) over Cedar's own request and
//! entity store, as Cedar's evaluator would, or gives up.
//!
//! Values are borrowed from the program, the request and the store; nothing is cloned or
//! allocated but the list of a set literal whose elements are not all literals (and the
//! reasons). Wherever
//! Cedar would report an error (an entity or attribute that does not exist, an operand of the
//! wrong type, an overflow) or meets what this evaluator leaves to it (an extension value,
//! equality of two sets or two records, a residual), evaluation stops with [`GiveUp`] and
//! the caller asks Cedar, which decides the question and words the error. So an answer from
//! here is always an answer without errors, and it is Cedar's: a permit or forbid whose
//! condition holds, decided as Cedar decides (any forbid denies, else any permit allows).
//! `tests/it/eval.rs` holds it to Cedar's authorizer on generated policies and entities.

use std::collections::BTreeMap;

use cedar_policy_core::ast::{self, BinaryOp, Literal, UnaryOp, ValueKind, Var};
use cedar_policy_core::entities::{Dereference, Entities};
use smol_str::SmolStr;

use crate::policy::program::{Node, Program};

/// Evaluation stopped where Cedar would report an error or where this evaluator does not
/// follow Cedar: ask Cedar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiveUp;

/// What the program's policies decided, without errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// A permit holds and no forbid does.
    pub allowed: bool,
    /// The forbids that hold when one does, else the permits that hold; sorted.
    pub reasons: Vec<String>,
}

/// Where the evaluator reads entities: Cedar's store, or a question's entities laid over the
/// snapshot's ([`super::view::View`]).
pub trait Store<'a> {
    /// The entity with this uid, `None` when there is none.
    fn entity(&self, uid: &ast::EntityUID) -> Result<Option<&'a ast::Entity>, GiveUp>;

    /// Whether `entity` (from [`Store::entity`]) is a descendant of `ancestor`.
    fn is_descendant(
        &self,
        entity: &'a ast::Entity,
        ancestor: &ast::EntityUID,
    ) -> Result<bool, GiveUp>;
}

impl<'a> Store<'a> for &'a Entities {
    fn entity(&self, uid: &ast::EntityUID) -> Result<Option<&'a ast::Entity>, GiveUp> {
        match Entities::entity(self, uid) {
            Dereference::Data(entity) => Ok(Some(entity)),
            Dereference::NoSuchEntity => Ok(None),
            Dereference::Residual(_) => Err(GiveUp),
        }
    }

    fn is_descendant(
        &self,
        entity: &'a ast::Entity,
        ancestor: &ast::EntityUID,
    ) -> Result<bool, GiveUp> {
        // Cedar's stores are closed: every ancestor is recorded on the entity.
        Ok(entity.is_descendant_of(ancestor))
    }
}

/// Decides `request` with `program` over `entities`, or gives up (see the module's doc).
pub fn decide<'a>(
    program: &'a Program,
    request: &'a ast::Request,
    entities: impl Store<'a>,
) -> Result<Outcome, GiveUp> {
    let env = Env {
        principal: request.principal().uid().ok_or(GiveUp)?,
        action: request.action().uid().ok_or(GiveUp)?,
        resource: request.resource().uid().ok_or(GiveUp)?,
        context: match request.context() {
            Some(ast::Context::Value(record)) => record,
            _ => return Err(GiveUp),
        },
        entities,
        seen: Default::default(),
    };
    let mut permits = Vec::new();
    let mut forbids = Vec::new();
    for policy in &program.policies {
        let V::Bool(holds) = env.eval(&policy.condition)? else {
            return Err(GiveUp);
        };
        if holds {
            if policy.permit {
                permits.push(policy.id.as_str());
            } else {
                forbids.push(policy.id.as_str());
            }
        }
    }
    let allowed = forbids.is_empty() && !permits.is_empty();
    let mut reasons: Vec<String> = if forbids.is_empty() { permits } else { forbids }
        .into_iter()
        .map(str::to_string)
        .collect();
    reasons.sort();
    Ok(Outcome { allowed, reasons })
}

struct Env<'a, S> {
    principal: &'a ast::EntityUID,
    action: &'a ast::EntityUID,
    resource: &'a ast::EntityUID,
    context: &'a BTreeMap<SmolStr, ast::Value>,
    entities: S,
    /// The last entities looked up, by the address of the uid they were looked up with: the
    /// policies of an entry read the principal, the resource and its organization again and
    /// again, and each lookup in Cedar's store hashes the uid. Nothing is mutated while a
    /// question is evaluated, so a uid at the same address is the same uid.
    seen: std::cell::RefCell<Seen<'a>>,
}

/// How many lookups [`Env::seen`] remembers.
const SEEN: usize = 4;

#[derive(Default)]
struct Seen<'a> {
    slots: [Option<(*const ast::EntityUID, Option<&'a ast::Entity>)>; SEEN],
    next: usize,
}

/// A value, borrowed.
#[derive(Debug)]
enum V<'a> {
    Bool(bool),
    Long(i64),
    Str(&'a str),
    Uid(&'a ast::EntityUID),
    Set(Elems<'a>),
    Record(&'a BTreeMap<SmolStr, ast::Value>),
}

/// The elements of a set value.
#[derive(Debug)]
enum Elems<'a> {
    /// A set literal of literals.
    Lits(&'a [Literal]),
    /// A set from the request or the store.
    Stored(&'a ast::Set),
    /// A set literal evaluated here.
    Built(Vec<V<'a>>),
}

impl<'a> V<'a> {
    fn of_literal(lit: &'a Literal) -> Self {
        match lit {
            Literal::Bool(b) => V::Bool(*b),
            Literal::Long(n) => V::Long(*n),
            Literal::String(s) => V::Str(s),
            Literal::EntityUID(uid) => V::Uid(uid),
        }
    }

    fn of_value(value: &'a ast::Value) -> Result<Self, GiveUp> {
        Ok(match value.value_kind() {
            ValueKind::Lit(lit) => V::of_literal(lit),
            ValueKind::Set(set) => V::Set(Elems::Stored(set)),
            ValueKind::Record(record) => V::Record(record),
            ValueKind::ExtensionValue(_) => return Err(GiveUp),
        })
    }

    fn bool(self) -> Result<bool, GiveUp> {
        match self {
            V::Bool(b) => Ok(b),
            _ => Err(GiveUp),
        }
    }

    fn long(self) -> Result<i64, GiveUp> {
        match self {
            V::Long(n) => Ok(n),
            _ => Err(GiveUp),
        }
    }

    fn uid(self) -> Result<&'a ast::EntityUID, GiveUp> {
        match self {
            V::Uid(uid) => Ok(uid),
            _ => Err(GiveUp),
        }
    }

    fn set(self) -> Result<Elems<'a>, GiveUp> {
        match self {
            V::Set(elems) => Ok(elems),
            _ => Err(GiveUp),
        }
    }

    /// Cedar's `==`: values of different kinds are unequal; two sets or two records are left
    /// to Cedar.
    fn equals(&self, other: &V<'_>) -> Result<bool, GiveUp> {
        Ok(match (self, other) {
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::Long(a), V::Long(b)) => a == b,
            (V::Str(a), V::Str(b)) => a == b,
            (V::Uid(a), V::Uid(b)) => a == b,
            (V::Set(_), V::Set(_)) | (V::Record(_), V::Record(_)) => return Err(GiveUp),
            _ => false,
        })
    }
}

impl<'a> Elems<'a> {
    fn is_empty(&self) -> bool {
        match self {
            Elems::Lits(lits) => lits.is_empty(),
            Elems::Stored(set) => set.is_empty(),
            Elems::Built(values) => values.is_empty(),
        }
    }

    /// Calls `f` on each element until it answers `true`; whether one did.
    fn any(&self, mut f: impl FnMut(&V<'_>) -> Result<bool, GiveUp>) -> Result<bool, GiveUp> {
        match self {
            Elems::Lits(lits) => {
                for lit in lits.iter() {
                    if f(&V::of_literal(lit))? {
                        return Ok(true);
                    }
                }
            }
            Elems::Stored(set) => {
                for value in set.iter() {
                    if f(&V::of_value(value)?)? {
                        return Ok(true);
                    }
                }
            }
            Elems::Built(values) => {
                for value in values {
                    if f(value)? {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    fn contains(&self, x: &V<'_>) -> Result<bool, GiveUp> {
        self.any(|e| e.equals(x))
    }

    /// Calls `f` on each element until it answers `true`; whether one did. Every element
    /// must be an entity uid, even past one that answers (Cedar's `get_as_entity_set`), so
    /// they are all checked first.
    fn any_uid(
        &self,
        mut f: impl FnMut(&ast::EntityUID) -> Result<bool, GiveUp>,
    ) -> Result<bool, GiveUp> {
        if self.any(|e| Ok(!matches!(e, V::Uid(_))))? {
            return Err(GiveUp);
        }
        self.any(|e| match e {
            V::Uid(uid) => f(uid),
            _ => Err(GiveUp),
        })
    }
}

impl<'a, S: Store<'a>> Env<'a, S> {
    fn eval(&self, node: &'a Node) -> Result<V<'a>, GiveUp> {
        Ok(match node {
            Node::Lit(lit) => V::of_literal(lit),
            Node::Lits(lits) => V::Set(Elems::Lits(lits)),
            Node::Set(items) => V::Set(Elems::Built(
                items
                    .iter()
                    .map(|item| self.eval(item))
                    .collect::<Result<_, _>>()?,
            )),
            Node::Var(var) => match var {
                Var::Principal => V::Uid(self.principal),
                Var::Action => V::Uid(self.action),
                Var::Resource => V::Uid(self.resource),
                Var::Context => V::Record(self.context),
            },
            Node::And(left, right) => {
                V::Bool(self.eval(left)?.bool()? && self.eval(right)?.bool()?)
            }
            Node::Or(left, right) => V::Bool(self.eval(left)?.bool()? || self.eval(right)?.bool()?),
            Node::If(test, then, otherwise) => {
                if self.eval(test)?.bool()? {
                    self.eval(then)?
                } else {
                    self.eval(otherwise)?
                }
            }
            Node::Unary(op, arg) => {
                let arg = self.eval(arg)?;
                match op {
                    UnaryOp::Not => V::Bool(!arg.bool()?),
                    UnaryOp::Neg => V::Long(arg.long()?.checked_neg().ok_or(GiveUp)?),
                    UnaryOp::IsEmpty => V::Bool(arg.set()?.is_empty()),
                }
            }
            Node::Binary(op, arg1, arg2) => self.binary(*op, self.eval(arg1)?, self.eval(arg2)?)?,
            Node::GetAttr(of, attr) => match self.eval(of)? {
                V::Record(record) => V::of_value(record.get(attr.as_ref()).ok_or(GiveUp)?)?,
                V::Uid(uid) => match self.entity(uid)?.ok_or(GiveUp)?.get(attr).ok_or(GiveUp)? {
                    ast::PartialValue::Value(value) => V::of_value(value)?,
                    ast::PartialValue::Residual(_) => return Err(GiveUp),
                },
                _ => return Err(GiveUp),
            },
            Node::HasAttr(of, attr) => match self.eval(of)? {
                V::Record(record) => V::Bool(record.contains_key(attr.as_ref())),
                V::Uid(uid) => V::Bool(self.entity(uid)?.is_some_and(|e| e.get(attr).is_some())),
                _ => return Err(GiveUp),
            },
            Node::Like(of, pattern) => match self.eval(of)? {
                V::Str(text) => V::Bool(pattern.wildcard_match(text)),
                _ => return Err(GiveUp),
            },
            Node::Is(of, entity_type) => {
                V::Bool(self.eval(of)?.uid()?.entity_type() == entity_type)
            }
        })
    }

    /// The entity `uid` names in the store, `None` when there is none (a residual: give up).
    #[expect(
        clippy::indexing_slicing,
        reason = "`next` is kept below `SEEN`, the length of `slots`"
    )]
    fn entity(&self, uid: &'a ast::EntityUID) -> Result<Option<&'a ast::Entity>, GiveUp> {
        let at: *const ast::EntityUID = uid;
        let mut seen = self.seen.borrow_mut();
        if let Some((_, entity)) = seen.slots.iter().flatten().find(|(a, _)| *a == at) {
            return Ok(*entity);
        }
        let entity = self.entities.entity(uid)?;
        let next = seen.next;
        seen.slots[next] = Some((at, entity));
        seen.next = (next + 1) % SEEN;
        Ok(entity)
    }

    fn binary(&self, op: BinaryOp, a: V<'a>, b: V<'a>) -> Result<V<'a>, GiveUp> {
        Ok(match op {
            BinaryOp::Eq => V::Bool(a.equals(&b)?),
            // Extension values compare too, but never reach here (`of_value` gives up).
            BinaryOp::Less => V::Bool(a.long()? < b.long()?),
            BinaryOp::LessEq => V::Bool(a.long()? <= b.long()?),
            BinaryOp::Add => V::Long(a.long()?.checked_add(b.long()?).ok_or(GiveUp)?),
            BinaryOp::Sub => V::Long(a.long()?.checked_sub(b.long()?).ok_or(GiveUp)?),
            BinaryOp::Mul => V::Long(a.long()?.checked_mul(b.long()?).ok_or(GiveUp)?),
            BinaryOp::In => V::Bool(self.is_in(a.uid()?, b)?),
            BinaryOp::Contains => V::Bool(a.set()?.contains(&b)?),
            BinaryOp::ContainsAll => {
                let (a, b) = (a.set()?, b.set()?);
                // Every element of `b` is in `a`: no element of `b` is missing from it.
                V::Bool(!b.any(|x| Ok(!a.contains(x)?))?)
            }
            BinaryOp::ContainsAny => {
                let (a, b) = (a.set()?, b.set()?);
                V::Bool(b.any(|x| a.contains(x))?)
            }
            BinaryOp::GetTag | BinaryOp::HasTag => return Err(GiveUp),
        })
    }

    /// Cedar's `in`: `uid` is one of the right side's uids or a descendant of one, an entity
    /// not in the store being a descendant of nothing.
    fn is_in(&self, uid: &'a ast::EntityUID, of: V<'_>) -> Result<bool, GiveUp> {
        let entity = self.entity(uid)?;
        let within = |other: &ast::EntityUID| -> Result<bool, GiveUp> {
            Ok(uid == other
                || match entity {
                    Some(entity) => self.entities.is_descendant(entity, other)?,
                    None => false,
                })
        };
        match of {
            V::Uid(other) => within(other),
            V::Set(elems) => elems.any_uid(within),
            _ => Err(GiveUp),
        }
    }
}
