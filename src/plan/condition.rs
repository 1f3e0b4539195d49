//! The condition language of a plan: a small JSON tree over the attributes of one unknown
//! resource, that a host turns into a database filter (see the README, "The condition
//! language").
//!
//! Every leaf reads a *path* from the resource: `[]` is the resource's own uid, `["owner"]`
//! its `owner` attribute, `["organization", "admins"]` the `admins` attribute of the entity
//! that its `organization` attribute references. Leaves are two-valued: a leaf whose path
//! is absent (an optional attribute not set, anywhere along the path) is false, and `not`
//! of it is true. Under strict validation every policy guards an optional attribute with
//! `has` before reading it, so this only fixes what a guarded leaf means on its own.

use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy::{Entities, EvalResult, Expression, Request};
use serde::{Deserialize, Serialize};

/// Attribute names from the resource: `["organization", "admins"]`.
pub type Path = Vec<String>;

/// A condition on the resource. `{"op": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Condition {
    /// Holds for every resource.
    True,
    /// Holds for no resource.
    False,
    /// Every one of `args` holds.
    And {
        /// The conjuncts.
        args: Vec<Condition>,
    },
    /// At least one of `args` holds.
    Or {
        /// The disjuncts.
        args: Vec<Condition>,
    },
    /// `arg` does not hold.
    Not {
        /// The negated condition.
        arg: Box<Condition>,
    },
    /// The optional attribute at `path` is present.
    Has {
        /// The attribute.
        path: Path,
    },
    /// The value at `path` equals the operand.
    Eq(Comparison),
    /// The value at `path` differs from the operand.
    Ne(Comparison),
    /// `path < operand` (longs, datetimes, durations).
    Lt(Comparison),
    /// `path <= operand`.
    Le(Comparison),
    /// `path > operand`.
    Gt(Comparison),
    /// `path >= operand`.
    Ge(Comparison),
    /// The value at `path` is one of `values`.
    InSet {
        /// The attribute.
        path: Path,
        /// The accepted values.
        values: Vec<Literal>,
    },
    /// The set at `path` holds `value`.
    Contains {
        /// The set attribute.
        path: Path,
        /// The value it must hold.
        value: Literal,
    },
}

/// A path compared with a literal (`"value"`) or with another path of the same resource
/// (`"other"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The attribute compared.
    pub path: Path,
    /// What it is compared with.
    #[serde(flatten)]
    pub operand: Operand,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operand {
    /// A literal value.
    Value(Literal),
    /// The value at another path of the same resource.
    Other(Path),
}

/// A literal: a JSON bool, number (a Cedar `Long`), string, entity uid `{"type", "id"}`, or
/// extension value `{"fn": "datetime", "arg": "2026-01-01"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    /// `true` or `false`.
    Bool(bool),
    /// A Cedar `Long`.
    Long(i64),
    /// A string.
    String(String),
    /// An entity uid.
    Entity(Uid),
    /// An extension value, by its constructor and argument.
    Extension(Extension),
}

/// An entity uid, `{"type": "User", "id": "vera"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Uid {
    /// The entity type, fully qualified.
    #[serde(rename = "type")]
    pub ty: String,
    /// The entity id.
    pub id: String,
}

/// An extension value, `{"fn": "datetime", "arg": "2026-01-01T00:00:00Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    /// The constructor: `datetime`, `duration`, `decimal` or `ip`.
    #[serde(rename = "fn")]
    pub function: String,
    /// Its string argument.
    pub arg: String,
}

impl Condition {
    /// The conjunction of `args`, folded: `false` if one is false, `true` if none.
    pub fn and(args: impl IntoIterator<Item = Condition>) -> Condition {
        let mut flat = Vec::new();
        for arg in args {
            match arg {
                Condition::True => {}
                Condition::False => return Condition::False,
                Condition::And { args } => flat.extend(args),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Condition::True,
            1 => flat.remove(0),
            _ => Condition::And { args: flat },
        }
    }

    /// The disjunction of `args`, folded: `true` if one is true, `false` if none.
    pub fn or(args: impl IntoIterator<Item = Condition>) -> Condition {
        let mut flat = Vec::new();
        for arg in args {
            match arg {
                Condition::False => {}
                Condition::True => return Condition::True,
                Condition::Or { args } => flat.extend(args),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Condition::False,
            1 => flat.remove(0),
            _ => Condition::Or { args: flat },
        }
    }

    /// The negation of `arg`, folded.
    #[expect(
        clippy::should_implement_trait,
        reason = "a constructor beside `and` and `or`, not an operator on conditions"
    )]
    pub fn not(arg: Condition) -> Condition {
        match arg {
            Condition::True => Condition::False,
            Condition::False => Condition::True,
            Condition::Not { arg } => *arg,
            other => Condition::Not {
                arg: Box::new(other),
            },
        }
    }

    /// Whether the condition holds for the request's resource, read from `entities`: each
    /// leaf is evaluated by Cedar as the expression [`Condition::leaf_expression`] writes
    /// (an error, such as an absent attribute, makes it false), and `and`, `or`, `not`
    /// combine them. The reference a database filter is tested against.
    pub fn holds(&self, request: &Request, entities: &Entities) -> Result<bool, String> {
        Ok(match self {
            Condition::True => true,
            Condition::False => false,
            Condition::And { args } => {
                for arg in args {
                    if !arg.holds(request, entities)? {
                        return Ok(false);
                    }
                }
                true
            }
            Condition::Or { args } => {
                for arg in args {
                    if arg.holds(request, entities)? {
                        return Ok(true);
                    }
                }
                false
            }
            Condition::Not { arg } => !arg.holds(request, entities)?,
            leaf => {
                let text = leaf.leaf_expression().unwrap_or_default();
                let expression = Expression::from_str(&text)
                    .map_err(|e| format!("the leaf `{text}` is not Cedar: {e}"))?;
                matches!(
                    cedar_policy::eval_expression(request, entities, &expression),
                    Ok(EvalResult::Bool(true))
                )
            }
        })
    }

    /// A leaf as a Cedar expression over `resource`, e.g.
    /// `["p1.editors", "acme.editors"].contains(resource["editors"])`; `None` for `true`,
    /// `false`, `and`, `or` and `not`.
    pub fn leaf_expression(&self) -> Option<String> {
        let comparison = |op: &str, c: &Comparison| {
            let right = match &c.operand {
                Operand::Value(v) => v.to_cedar(),
                Operand::Other(p) => path_expression(p),
            };
            format!("{} {op} {right}", path_expression(&c.path))
        };
        Some(match self {
            Condition::True
            | Condition::False
            | Condition::And { .. }
            | Condition::Or { .. }
            | Condition::Not { .. } => return None,
            Condition::Has { path } => match path.split_last() {
                Some((last, init)) => format!("{} has {}", path_expression(init), quoted(last)),
                None => "true".to_string(),
            },
            Condition::Eq(c) => comparison("==", c),
            Condition::Ne(c) => comparison("!=", c),
            Condition::Lt(c) => comparison("<", c),
            Condition::Le(c) => comparison("<=", c),
            Condition::Gt(c) => comparison(">", c),
            Condition::Ge(c) => comparison(">=", c),
            Condition::InSet { path, values } => {
                let values: Vec<String> = values.iter().map(Literal::to_cedar).collect();
                format!(
                    "[{}].contains({})",
                    values.join(", "),
                    path_expression(path)
                )
            }
            Condition::Contains { path, value } => {
                format!("{}.contains({})", path_expression(path), value.to_cedar())
            }
        })
    }
}

impl Literal {
    /// The literal in Cedar's syntax.
    pub fn to_cedar(&self) -> String {
        match self {
            Literal::Bool(b) => b.to_string(),
            Literal::Long(n) => n.to_string(),
            Literal::String(s) => quoted(s),
            Literal::Entity(uid) => format!("{}::{}", uid.ty, quoted(&uid.id)),
            Literal::Extension(e) => format!("{}({})", e.function, quoted(&e.arg)),
        }
    }
}

/// `resource["a"]["b"]`.
fn path_expression(path: &[String]) -> String {
    let mut text = String::from("resource");
    for step in path {
        let _ = write!(text, "[{}]", quoted(step));
    }
    text
}

/// A Cedar string literal: Cedar's escapes are Rust's.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.escape_default())
}
