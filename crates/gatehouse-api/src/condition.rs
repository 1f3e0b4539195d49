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

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Attribute names from the resource: `["organization", "admins"]`.
pub type Path = Vec<String>;

/// A condition on the resource. `{"op": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(no_recursion))]
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
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
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
    /// The value at `path` is one of `values`. In a plan's JSON (language 2), `"set":
    /// "set_0"` names the list in the plan's `sets` instead of `values`.
    InSet {
        /// The attribute.
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        path: Path,
        /// The accepted values (or, in a plan's JSON, `set`).
        #[cfg_attr(feature = "openapi", schema(required = false))]
        values: Vec<Literal>,
    },
    /// The set at `path` holds `value`.
    Contains {
        /// The set attribute.
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        path: Path,
        /// The value it must hold.
        value: Literal,
    },
    /// The entity at `path` is `value` or has it among its ancestors (Cedar's `in`): a
    /// user in a group, an item in a project. `[]` is the unknown entity itself.
    In {
        /// The entity.
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        path: Path,
        /// The ancestor, an entity uid.
        value: Literal,
    },
}

/// A condition node as read: every field any operator has. Read into this and then checked,
/// a node is parsed in one pass, where serde's internally tagged enums first buffer the whole
/// node (thousands of literals in an `in_set`) to find its `op`.
#[derive(Deserialize)]
struct Node {
    op: String,
    args: Option<Vec<Condition>>,
    arg: Option<Box<Condition>>,
    path: Option<Path>,
    values: Option<Vec<Literal>>,
    value: Option<Literal>,
    other: Option<Path>,
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let Node {
            op,
            args,
            arg,
            path,
            values,
            value,
            other,
        } = Node::deserialize(deserializer)?;
        let need = |field: &str| D::Error::custom(format!("missing field `{field}` of `{op}`"));
        let comparison = |path: Option<Path>, value, other| -> Result<Comparison, D::Error> {
            let operand = match (value, other) {
                (Some(value), None) => Operand::Value(value),
                (None, Some(other)) => Operand::Other(other),
                _ => {
                    return Err(D::Error::custom(format!(
                        "`{op}` takes exactly one of `value` and `other`"
                    )));
                }
            };
            Ok(Comparison {
                path: path.ok_or_else(|| need("path"))?,
                operand,
            })
        };
        Ok(match op.as_str() {
            "true" => Condition::True,
            "false" => Condition::False,
            "and" => Condition::And {
                args: args.ok_or_else(|| need("args"))?,
            },
            "or" => Condition::Or {
                args: args.ok_or_else(|| need("args"))?,
            },
            "not" => Condition::Not {
                arg: arg.ok_or_else(|| need("arg"))?,
            },
            "has" => Condition::Has {
                path: path.ok_or_else(|| need("path"))?,
            },
            "eq" => Condition::Eq(comparison(path, value, other)?),
            "ne" => Condition::Ne(comparison(path, value, other)?),
            "lt" => Condition::Lt(comparison(path, value, other)?),
            "le" => Condition::Le(comparison(path, value, other)?),
            "gt" => Condition::Gt(comparison(path, value, other)?),
            "ge" => Condition::Ge(comparison(path, value, other)?),
            "in_set" => Condition::InSet {
                path: path.ok_or_else(|| need("path"))?,
                values: values.ok_or_else(|| need("values"))?,
            },
            "contains" => Condition::Contains {
                path: path.ok_or_else(|| need("path"))?,
                value: value.ok_or_else(|| need("value"))?,
            },
            "in" => Condition::In {
                path: path.ok_or_else(|| need("path"))?,
                value: value.ok_or_else(|| need("value"))?,
            },
            unknown => {
                return Err(D::Error::unknown_variant(
                    unknown,
                    &[
                        "true", "false", "and", "or", "not", "has", "eq", "ne", "lt", "le", "gt",
                        "ge", "in_set", "contains", "in",
                    ],
                ));
            }
        })
    }
}

/// A path compared with a literal (`"value"`) or with another path of the same resource
/// (`"other"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Comparison {
    /// The attribute compared.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub path: Path,
    /// What it is compared with.
    #[serde(flatten)]
    pub operand: Operand,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Operand {
    /// A literal value.
    Value(Literal),
    /// The value at another path of the same resource.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    Other(Path),
}

/// A literal: a JSON bool, number (a Cedar `Long`), string, entity uid `{"type", "id"}`, or
/// extension value `{"fn": "datetime", "arg": "2026-01-01"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// Read as `#[serde(untagged)]` would (a bool, a Long, a string, then a uid, then an
/// extension value), without buffering each literal to try the variants in turn: a plan
/// naming a user's thousand groups holds tens of thousands of literals.
impl<'de> Deserialize<'de> for Literal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LiteralVisitor)
    }
}

struct LiteralVisitor;

impl<'de> serde::de::Visitor<'de> for LiteralVisitor {
    type Value = Literal;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            r#"a bool, a Long, a string, a uid {"type", "id"} or an extension value {"fn", "arg"}"#,
        )
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Literal, E> {
        Ok(Literal::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Literal, E> {
        Ok(Literal::Long(n))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Literal, E> {
        i64::try_from(n)
            .map(Literal::Long)
            .map_err(|_| E::custom(format!("{n} is outside a Long's range")))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Literal, E> {
        Ok(Literal::String(s.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Literal, E> {
        Ok(Literal::String(s))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Literal, A::Error> {
        // A uid ignores other keys; an extension value allows none.
        let (mut ty, mut id, mut function, mut arg, mut others) = (None, None, None, None, 0);
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_str() {
                "type" => &mut ty,
                "id" => &mut id,
                "fn" => &mut function,
                "arg" => &mut arg,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    others += 1;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
            }
            *slot = Some(map.next_value::<serde_json::Value>()?);
        }
        let text = |v: Option<serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        if let (Some(ty), Some(id)) = (text(ty.clone()), text(id.clone())) {
            return Ok(Literal::Entity(Uid { ty, id }));
        }
        match (ty, id, text(function), text(arg), others) {
            (None, None, Some(function), Some(arg), 0) => {
                Ok(Literal::Extension(Extension { function, arg }))
            }
            _ => Err(serde::de::Error::custom(
                "data did not match any variant of untagged enum Literal",
            )),
        }
    }
}

/// An entity uid, `{"type": "User", "id": "vera"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = EntityUid))]
pub struct Uid {
    /// The entity type, fully qualified.
    #[serde(rename = "type")]
    pub ty: String,
    /// The entity id.
    pub id: String,
}

/// An extension value, `{"fn": "datetime", "arg": "2026-01-01T00:00:00Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = ExtensionValue))]
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

    /// A leaf as a Cedar expression over `resource`, e.g.
    /// `["p1.editors", "acme.editors"].contains(resource["editors"])`; `None` for `true`,
    /// `false`, `and`, `or` and `not`.
    pub fn leaf_expression(&self) -> Option<String> {
        self.leaf_expression_over("resource")
    }

    /// A leaf as a Cedar expression over `variable` (`resource` for a list of resources,
    /// `principal` for a list of subjects); see [`Condition::leaf_expression`].
    pub fn leaf_expression_over(&self, variable: &str) -> Option<String> {
        let path_expression = |path: &[String]| path_expression(variable, path);
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
            Condition::In { path, value } => {
                format!("{} in {}", path_expression(path), value.to_cedar())
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
fn path_expression(variable: &str, path: &[String]) -> String {
    let mut text = String::from(variable);
    for step in path {
        let _ = write!(text, "[{}]", quoted(step));
    }
    text
}

/// A Cedar string literal: Cedar's escapes are Rust's.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.escape_default())
}
