//! Residual Cedar expressions (as Cedar's policy syntax tree) to the condition language.
//!
//! What is translated, and why it is exact (every residual comes from a policy that passed
//! strict validation, so it is well typed and guards optional attributes with `has`):
//! - `&&`, `||`, `!`, `if c then a else b` (as `c && a || !c && b`), `true`, `false`.
//! - `resource.a.b` compared (`==`, `!=`, `<`, `<=`, `>`, `>=`) with a literal or with
//!   another path; a boolean path `resource.archived` is `archived == true`.
//! - `resource has a`, `resource.a has b`.
//! - `E in resource.a` with `E` a known entity: Cedar's `in` holds when the two are equal or
//!   `resource.a` is an ancestor of `E`, so it is `resource.a ∈ {E} ∪ ancestors(E)`, the
//!   ancestors read from the known entities, kept to the attribute's type. For a set
//!   attribute, the set holds one of them.
//! - `[..].contains(resource.a)` (`in_set`), `resource.a.contains(v)` (`contains`),
//!   `containsAny` and `containsAll` with a literal set.
//! - `resource in E` (`in`), `resource in [E, F]` (one of them): the ancestors are the
//!   database's, so the leaf names the ancestor sought.
//! - `resource is T`: the resource's type is known.
//!
//! The unknown is `resource` in a plan and `principal` in a subjects plan ("who may do this
//! to this resource?"): everything said of `resource` here is said of it.
//!
//! Anything else (arithmetic, `like`, tags, an unknown context, an expression that Cedar
//! knows will error) is refused with its text: the plan is then not filterable, never
//! guessed.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::str::FromStr;

use cedar_policy::pst::{self, BinaryOp, Expr, UnaryOp, Var};
use cedar_policy::{Entities, EntityId, EntityTypeName, EntityUid};

use super::condition::{Comparison, Condition, Extension, Literal, Operand, Path, Uid};
use crate::policy::{ActionCatalog, AttrType};

/// A construct the condition language cannot express, with the expression's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// What the residuals are read against.
pub struct Translator<'a> {
    /// The unknown of the partial evaluation: `resource` for a plan, `principal` for the
    /// subjects of one resource. Paths are read from it; every other variable is known.
    pub unknown: Var,
    /// Its entity type.
    pub unknown_type: &'a str,
    /// Attribute types.
    pub catalog: &'a ActionCatalog,
    /// The known entities: where the ancestors of a known entity come from.
    pub entities: &'a Entities,
    /// Every path read through a reference (two steps or more), as met.
    pub reads: RefCell<BTreeSet<Path>>,
}

/// An operand: a path of the resource, a literal, or a set of literals.
enum Term {
    Path(Path),
    Value(Literal),
    Set(Vec<Literal>),
}

impl Translator<'_> {
    /// A boolean residual expression as a condition.
    pub fn condition(&self, e: &Expr) -> Result<Condition, Unsupported> {
        Ok(match e {
            Expr::Literal(pst::Literal::Bool(b)) => bool_condition(*b),
            Expr::UnaryOp {
                op: UnaryOp::Not,
                expr,
            } => Condition::not(self.condition(expr)?),
            Expr::BinaryOp {
                op: BinaryOp::And,
                left,
                right,
            } => Condition::and([self.condition(left)?, self.condition(right)?]),
            Expr::BinaryOp {
                op: BinaryOp::Or,
                left,
                right,
            } => Condition::or([self.condition(left)?, self.condition(right)?]),
            Expr::IfThenElse {
                cond,
                then_expr,
                else_expr,
            } => {
                let cond = self.condition(cond)?;
                Condition::or([
                    Condition::and([cond.clone(), self.condition(then_expr)?]),
                    Condition::and([Condition::not(cond), self.condition(else_expr)?]),
                ])
            }
            Expr::HasAttr { expr, attrs } => {
                let Term::Path(mut path) = self.term(expr)? else {
                    return Err(unsupported(e));
                };
                if !path.is_empty() {
                    let mut read = path.clone();
                    read.extend(attrs.iter().map(ToString::to_string));
                    self.read(read);
                }
                // `has a.b` holds when `a` is present and `a` has `b`.
                let mut conjuncts = Vec::new();
                for attr in attrs.iter() {
                    path.push(attr.to_string());
                    conjuncts.push(Condition::Has { path: path.clone() });
                }
                Condition::and(conjuncts)
            }
            Expr::Is {
                expr,
                entity_type,
                in_expr: None,
            } => match self.term(expr)? {
                Term::Path(path) if path.is_empty() => {
                    bool_condition(entity_type.to_string() == self.unknown_type)
                }
                _ => return Err(unsupported(e)),
            },
            Expr::GetAttr { .. } => match self.term(e)? {
                Term::Path(path) if self.path_type(&path) == Some(AttrType::Bool) => {
                    Condition::Eq(Comparison {
                        path,
                        operand: Operand::Value(Literal::Bool(true)),
                    })
                }
                _ => return Err(unsupported(e)),
            },
            Expr::BinaryOp { op, left, right } => self.binary(e, *op, left, right)?,
            _ => return Err(unsupported(e)),
        })
    }

    fn binary(
        &self,
        e: &Expr,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
    ) -> Result<Condition, Unsupported> {
        let (left, right) = (self.term(left)?, self.term(right)?);
        let comparison = |op: BinaryOp, path: Path, operand: Operand| {
            let c = Comparison { path, operand };
            match op {
                BinaryOp::Eq => Some(Condition::Eq(c)),
                BinaryOp::NotEq => Some(Condition::Ne(c)),
                BinaryOp::Less => Some(Condition::Lt(c)),
                BinaryOp::LessEq => Some(Condition::Le(c)),
                BinaryOp::Greater => Some(Condition::Gt(c)),
                BinaryOp::GreaterEq => Some(Condition::Ge(c)),
                _ => None,
            }
        };
        let translated = match (op, left, right) {
            (
                BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Less
                | BinaryOp::LessEq
                | BinaryOp::Greater
                | BinaryOp::GreaterEq,
                left,
                right,
            ) => match (left, right) {
                (Term::Path(p), Term::Value(v)) => comparison(op, p, Operand::Value(v)),
                (Term::Value(v), Term::Path(p)) => comparison(flipped(op), p, Operand::Value(v)),
                (Term::Path(p), Term::Path(q)) => comparison(op, p, Operand::Other(q)),
                _ => None,
            },
            (BinaryOp::In, Term::Value(Literal::Entity(uid)), Term::Path(path)) => {
                self.in_path(uid, path)
            }
            // Both known (a context's entity that no store holds, which partial evaluation
            // leaves): its ancestors are the known entities', as Cedar reads them.
            (
                BinaryOp::In,
                Term::Value(Literal::Entity(uid)),
                Term::Value(Literal::Entity(ancestor)),
            ) => self
                .with_ancestors(&uid)
                .map(|known| bool_condition(known.contains(&ancestor))),
            // The unknown's ancestors live in the database: the leaf says which to look for.
            (BinaryOp::In, Term::Path(path), Term::Value(value @ Literal::Entity(_))) => {
                Some(Condition::In { path, value })
            }
            (BinaryOp::In, Term::Path(path), Term::Set(values))
                if values.iter().all(|v| matches!(v, Literal::Entity(_))) =>
            {
                Some(Condition::or(values.into_iter().map(|value| {
                    Condition::In {
                        path: path.clone(),
                        value,
                    }
                })))
            }
            (BinaryOp::Contains, Term::Path(path), Term::Value(value)) => {
                Some(Condition::Contains { path, value })
            }
            (BinaryOp::Contains, Term::Set(values), Term::Path(path)) => {
                Some(Condition::InSet { path, values })
            }
            (BinaryOp::ContainsAny, Term::Path(path), Term::Set(values))
            | (BinaryOp::ContainsAny, Term::Set(values), Term::Path(path)) => {
                Some(Condition::or(values.into_iter().map(|value| {
                    Condition::Contains {
                        path: path.clone(),
                        value,
                    }
                })))
            }
            (BinaryOp::ContainsAll, Term::Path(path), Term::Set(values)) => {
                Some(Condition::and(values.into_iter().map(|value| {
                    Condition::Contains {
                        path: path.clone(),
                        value,
                    }
                })))
            }
            _ => None,
        };
        translated.ok_or_else(|| unsupported(e))
    }

    /// `uid in resource.path`: the attribute is `uid` or one of its ancestors.
    fn in_path(&self, uid: Uid, path: Path) -> Option<Condition> {
        let (target, is_set) = match self.path_type(&path)? {
            AttrType::Entity(ty) => (ty, false),
            AttrType::Set(inner) => match *inner {
                AttrType::Entity(ty) => (ty, true),
                _ => return None,
            },
            _ => return None,
        };
        let values: Vec<Literal> = self
            .with_ancestors(&uid)?
            .into_iter()
            .filter(|candidate| candidate.ty == target)
            .map(Literal::Entity)
            .collect();
        Some(if is_set {
            Condition::or(values.into_iter().map(|value| Condition::Contains {
                path: path.clone(),
                value,
            }))
        } else if values.is_empty() {
            Condition::False
        } else {
            Condition::InSet { path, values }
        })
    }

    /// `uid` and its ancestors among the known entities (none when it is not known: Cedar
    /// then reads `uid in x` as `uid == x`).
    fn with_ancestors(&self, uid: &Uid) -> Option<BTreeSet<Uid>> {
        let cedar = EntityUid::from_type_name_and_id(
            EntityTypeName::from_str(&uid.ty).ok()?,
            EntityId::new(&uid.id),
        );
        let mut all = BTreeSet::from([uid.clone()]);
        if let Some(ancestors) = self.entities.ancestors(&cedar) {
            all.extend(ancestors.map(uid_of));
        }
        Some(all)
    }

    fn read(&self, path: Path) {
        self.reads.borrow_mut().insert(path);
    }

    /// The declared type at `path` of the unknown.
    fn path_type(&self, path: &[String]) -> Option<AttrType> {
        let mut ty = AttrType::Entity(self.unknown_type.to_string());
        for step in path {
            ty = match ty {
                AttrType::Entity(entity) => self.catalog.entity_attr(&entity, step)?.ty.clone(),
                AttrType::Record(attrs) => attrs.get(step)?.ty.clone(),
                _ => return None,
            };
        }
        Some(ty)
    }

    fn term(&self, e: &Expr) -> Result<Term, Unsupported> {
        Ok(match e {
            Expr::Var(var) if *var == self.unknown => Term::Path(Vec::new()),
            Expr::GetAttr { expr, attr } => match self.term(expr)? {
                Term::Path(mut path) => {
                    path.push(attr.to_string());
                    if path.len() > 1 {
                        self.read(path.clone());
                    }
                    Term::Path(path)
                }
                _ => return Err(unsupported(e)),
            },
            Expr::Literal(literal) => {
                Term::Value(literal_of(literal).ok_or_else(|| unsupported(e))?)
            }
            Expr::Set(items) => Term::Set(
                items
                    .iter()
                    .map(|item| match self.term(item)? {
                        Term::Value(v) => Ok(v),
                        _ => Err(unsupported(e)),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Expr::BinaryOp {
                op: BinaryOp::Offset,
                left,
                right,
            } => Term::Value(datetime_value(left, right).ok_or_else(|| unsupported(e))?),
            Expr::UnaryOp { op, expr } => match (extension_name(*op), expr.as_ref()) {
                (Some(function), Expr::Literal(pst::Literal::String(arg))) => {
                    Term::Value(Literal::Extension(Extension {
                        function: function.to_string(),
                        arg: arg.to_string(),
                    }))
                }
                _ => return Err(unsupported(e)),
            },
            _ => return Err(unsupported(e)),
        })
    }
}

fn bool_condition(b: bool) -> Condition {
    if b { Condition::True } else { Condition::False }
}

fn unsupported(e: &Expr) -> Unsupported {
    Unsupported(e.to_string())
}

/// `a < b` is `b > a`.
fn flipped(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Less => BinaryOp::Greater,
        BinaryOp::LessEq => BinaryOp::GreaterEq,
        BinaryOp::Greater => BinaryOp::Less,
        BinaryOp::GreaterEq => BinaryOp::LessEq,
        other => other,
    }
}

/// A known datetime, which Cedar writes `datetime("1970-01-01").offset(duration("<ms>ms"))`,
/// as `{"fn": "datetime", "arg": "2027-01-15T08:00:00.000Z"}`. `None` for any other offset,
/// and for a time before 1970 (not written by this translation).
fn datetime_value(left: &Expr, right: &Expr) -> Option<Literal> {
    let string = |e: &Expr, op: UnaryOp| match e {
        Expr::UnaryOp { op: found, expr } if *found == op => match expr.as_ref() {
            Expr::Literal(pst::Literal::String(s)) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    };
    if string(left, UnaryOp::Datetime)? != "1970-01-01" {
        return None;
    }
    let ms: u64 = string(right, UnaryOp::Duration)?
        .strip_suffix("ms")?
        .parse()
        .ok()?;
    let time = std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(ms))?;
    Some(Literal::Extension(Extension {
        function: "datetime".to_string(),
        arg: humantime::format_rfc3339_millis(time).to_string(),
    }))
}

fn extension_name(op: UnaryOp) -> Option<&'static str> {
    match op {
        UnaryOp::Datetime => Some("datetime"),
        UnaryOp::Duration => Some("duration"),
        UnaryOp::Decimal => Some("decimal"),
        UnaryOp::Ip => Some("ip"),
        _ => None,
    }
}

/// `None` for a kind of literal added by a later Cedar (`pst::Literal` is non-exhaustive).
fn literal_of(literal: &pst::Literal) -> Option<Literal> {
    Some(match literal {
        pst::Literal::Bool(b) => Literal::Bool(*b),
        pst::Literal::Long(n) => Literal::Long(*n),
        pst::Literal::String(s) => Literal::String(s.to_string()),
        pst::Literal::EntityUID(uid) => Literal::Entity(Uid {
            ty: uid.ty.to_string(),
            id: uid.eid.to_string(),
        }),
        _ => return None,
    })
}

fn uid_of(uid: &EntityUid) -> Uid {
    Uid {
        ty: uid.type_name().to_string(),
        id: uid.id().unescaped().to_string(),
    }
}
