//! A query plan as the sidecar answers `POST /v1/plan`: which resources of a type a principal
//! may act on, as a [`Condition`] a host turns into a database filter, and as residual
//! policies in Cedar's text.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::condition::{Condition, Literal};

/// The version of the condition language plans are written in (the README, "The condition
/// language"). Version 2 names each value list of an `in_set` once, in the plan's `sets`, and
/// refers to it by name (`"set": "set_0"`); version 1 wrote the list in every leaf
/// (`"values": [...]`). Readers take both; `/v1/plan` writes version 1 when asked
/// (`"condition_version": 1`), for one release.
pub const CONDITION_VERSION: u8 = 2;

/// What a plan says of every resource of the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Every resource is allowed.
    AlwaysAllowed,
    /// No resource is allowed.
    AlwaysDenied,
    /// Allowed where the condition (or the residuals) hold.
    Conditional,
}

/// A query plan. In memory every `in_set` holds its values; as JSON (version 2, see
/// [`CONDITION_VERSION`]) each distinct list is written once, in `sets`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Always, never, or where the condition holds.
    pub kind: PlanKind,
    /// Whether `condition` expresses the plan exactly.
    pub filterable: bool,
    /// The condition over the resource's attributes; `None` when not filterable.
    pub condition: Option<Condition>,
    /// Why the plan is not filterable: the policy and the residual construct.
    pub unsupported: Option<String>,
    /// The residual policies that can still hold, as Cedar text, sorted by id.
    pub residuals: Vec<String>,
    /// For `always_allowed` and `always_denied`: the deciding policy ids.
    pub reasons: Vec<String>,
    /// Errors that make every decision a Deny, each naming its policy.
    pub errors: Vec<String>,
    /// The principal, when it is neither sent nor stored: the plan was made for a principal
    /// with no attributes and no groups, as a decision's `missing` says.
    pub missing: Vec<String>,
    /// The attribute paths the residuals read through a reference (`["organization",
    /// "admins"]` reads the project's organization), the condition's or not. Where such a
    /// reference names no entity (a row without a foreign key to hold it), Cedar errs and
    /// the decision is a Deny, while a database reads the missing row as `NULL`: a host
    /// without foreign keys decides those rows one by one (gatehouse's lists do).
    pub reads: Vec<Vec<String>>,
}

/// A value list of a plan, written once in its `sets`: the ids of entities of one type
/// (`{"type": "Group", "ids": ["p1.editors", …]}`, the common case: a principal's groups), or
/// any literals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum NamedSet {
    /// Entity uids of one type, by id.
    Entities {
        /// The entity type.
        #[serde(rename = "type")]
        entity_type: String,
        /// The ids.
        ids: Vec<String>,
    },
    /// Literals of any kind.
    Literals(Vec<Literal>),
}

impl NamedSet {
    fn of(values: Vec<Literal>) -> Self {
        let ty = match values.first() {
            Some(Literal::Entity(first)) => first.ty.clone(),
            _ => return Self::Literals(values),
        };
        let same = values
            .iter()
            .all(|v| matches!(v, Literal::Entity(uid) if uid.ty == ty));
        if !same {
            return Self::Literals(values);
        }
        let ids = values
            .into_iter()
            .filter_map(|v| match v {
                Literal::Entity(uid) => Some(uid.id),
                _ => None,
            })
            .collect();
        Self::Entities {
            entity_type: ty,
            ids,
        }
    }

    fn values(&self) -> Value {
        match self {
            Self::Entities { entity_type, ids } => Value::Array(
                ids.iter()
                    .map(|id| serde_json::json!({"type": entity_type, "id": id}))
                    .collect(),
            ),
            Self::Literals(values) => serde_json::to_value(values).unwrap_or_default(),
        }
    }
}

/// A plan as JSON: its condition in one version of the language, with its `sets`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Plan))]
pub struct WrittenPlan {
    /// Always, never, or where the condition holds.
    pub kind: PlanKind,
    /// Whether `condition` expresses the plan exactly.
    pub filterable: bool,
    /// The condition over the unknown's attributes; `None` when not filterable.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Condition>))]
    pub condition: Option<Value>,
    /// The version of the condition language `condition` is written in (absent: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_version: Option<u8>,
    /// Version 2: the value lists of the condition's `in_set` leaves, each once, by the name
    /// its leaves give as `set`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sets: BTreeMap<String, NamedSet>,
    /// Why the plan is not filterable: the policy and the residual construct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// The residual policies that can still hold, as Cedar text, sorted by id.
    pub residuals: Vec<String>,
    /// For `always_allowed` and `always_denied`: the deciding policy ids.
    pub reasons: Vec<String>,
    /// Errors that make every decision a Deny, each naming its policy.
    pub errors: Vec<String>,
    /// The principal, when it is neither sent nor stored: the plan was made for a principal
    /// with no attributes and no groups, as a decision's `missing` says.
    #[serde(default)]
    pub missing: Vec<String>,
    /// The attribute paths the residuals read through a reference (`["organization",
    /// "admins"]` reads the project's organization), the condition's or not. Where such a
    /// reference names no entity (a row without a foreign key to hold it), Cedar errs and
    /// the decision is a Deny, while a database reads the missing row as `NULL`: a host
    /// without foreign keys decides those rows one by one (gatehouse's lists do).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<Vec<String>>,
}

impl Plan {
    /// The plan as JSON in version `version` of the condition language (1 or 2).
    pub fn written(&self, version: u8) -> WrittenPlan {
        let mut sets: Vec<Value> = Vec::new();
        let condition = self.condition.as_ref().map(|c| {
            let mut tree = serde_json::to_value(c).unwrap_or(Value::Null);
            if version >= 2 {
                name_sets(&mut tree, &mut sets);
            }
            tree
        });
        let sets = sets
            .into_iter()
            .enumerate()
            .map(|(i, values)| {
                let values: Vec<Literal> = serde_json::from_value(values).unwrap_or_default();
                (format!("set_{i}"), NamedSet::of(values))
            })
            .collect();
        WrittenPlan {
            kind: self.kind,
            filterable: self.filterable,
            condition,
            condition_version: Some(version),
            sets,
            unsupported: self.unsupported.clone(),
            residuals: self.residuals.clone(),
            reasons: self.reasons.clone(),
            errors: self.errors.clone(),
            missing: self.missing.clone(),
            reads: self.reads.clone(),
        }
    }
}

/// Replaces each `in_set` leaf's `values` under `tree` by `"set": "set_N"`, the N of the
/// first equal list in `sets` (pushed when new).
fn name_sets(tree: &mut Value, sets: &mut Vec<Value>) {
    match tree {
        Value::Object(node) => {
            if node.get("op").and_then(Value::as_str) == Some("in_set")
                && let Some(values) = node.remove("values")
            {
                let index = match sets.iter().position(|known| *known == values) {
                    Some(index) => index,
                    None => {
                        sets.push(values);
                        sets.len() - 1
                    }
                };
                node.insert("set".into(), Value::String(format!("set_{index}")));
                return;
            }
            for child in node.values_mut() {
                name_sets(child, sets);
            }
        }
        Value::Array(items) => {
            for item in items {
                name_sets(item, sets);
            }
        }
        _ => {}
    }
}

/// Puts each named set's values back in the leaves of `tree` that name it.
fn inline_sets(tree: &mut Value, sets: &BTreeMap<String, NamedSet>) -> Result<(), String> {
    match tree {
        Value::Object(node) => {
            if let Some(Value::String(name)) = node.get("set") {
                let set = sets
                    .get(name)
                    .ok_or_else(|| format!("`set` `{name}` is not one of the plan's `sets`"))?;
                let values = set.values();
                node.remove("set");
                node.insert("values".into(), values);
                return Ok(());
            }
            for child in node.values_mut() {
                inline_sets(child, sets)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|i| inline_sets(i, sets)),
        _ => Ok(()),
    }
}

impl Serialize for Plan {
    /// As [`Plan::written`] in [`CONDITION_VERSION`].
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written(CONDITION_VERSION).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Plan {
    /// Either version of the condition language.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let written = WrittenPlan::deserialize(deserializer)?;
        let condition = match written.condition {
            None | Some(Value::Null) => None,
            Some(mut tree) => {
                inline_sets(&mut tree, &written.sets).map_err(D::Error::custom)?;
                Some(Condition::deserialize(tree).map_err(D::Error::custom)?)
            }
        };
        Ok(Plan {
            kind: written.kind,
            filterable: written.filterable,
            condition,
            unsupported: written.unsupported,
            residuals: written.residuals,
            reasons: written.reasons,
            errors: written.errors,
            missing: written.missing,
            reads: written.reads,
        })
    }
}

impl Plan {
    /// What the plan costs in memory: about twice its JSON (its strings, and the tree that
    /// holds them), counted without writing it out.
    pub fn weight(&self) -> u64 {
        struct Count(u64);
        impl std::io::Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len() as u64;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        // Version 1, each list written out: as the plan is held.
        let _ = serde_json::to_writer(&mut count, &self.written(1));
        2 * count.0 + std::mem::size_of::<Self>() as u64
    }
}
