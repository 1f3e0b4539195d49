//! What the schema says about each requestable action (the principal and resource types it
//! applies to, the keys of its context) and about each entity type's attributes. Cedar's
//! `Schema` answers the first question but not the others, so the catalog reads the schema
//! text once, at load time.
//!
//! Action groups (actions without `appliesTo`) are not in the catalog: nobody requests them.

use std::collections::BTreeMap;

use cedar_policy::{EntityUid, schema_str_to_json_with_resolved_types};
use serde_json::Value;

/// The type of one context attribute, as far as request parsing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrType {
    /// An entity reference of the named type.
    Entity(String),
    /// An extension value (`datetime`, `decimal`, `ipaddr`…).
    Extension(String),
    /// Any other type (String, Long, Boolean, Set, Record).
    Other(String),
}

/// One key of an action's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextAttr {
    /// Whether a request must supply it.
    pub required: bool,
    /// Its declared type.
    pub ty: AttrType,
}

/// One requestable action.
#[derive(Debug, Clone)]
pub struct ActionInfo {
    /// The action's id, e.g. `view`.
    pub name: String,
    /// The action's entity uid, e.g. `Action::"view"`.
    pub uid: EntityUid,
    /// Principal entity types it applies to.
    pub principals: Vec<String>,
    /// Resource entity types it applies to.
    pub resources: Vec<String>,
    /// Context keys by name.
    pub context: BTreeMap<String, ContextAttr>,
}

impl ActionInfo {
    /// Whether the action applies to this principal type and resource type.
    pub fn applies_to(&self, principal: &str, resource: &str) -> bool {
        self.principals.iter().any(|p| p == principal)
            && self.resources.iter().any(|r| r == resource)
    }

    /// The context keys a request must supply.
    pub fn required_context(&self) -> impl Iterator<Item = &str> {
        self.context
            .iter()
            .filter(|(_, a)| a.required)
            .map(|(k, _)| k.as_str())
    }
}

/// Every requestable action of a schema, by uid, and every entity type's attributes.
#[derive(Debug, Clone, Default)]
pub struct ActionCatalog {
    actions: BTreeMap<String, ActionInfo>,
    entity_attrs: BTreeMap<String, BTreeMap<String, ContextAttr>>,
}

impl ActionCatalog {
    /// Reads the catalog from Cedar schema text. Returns `None` when the text does not parse,
    /// which the caller has already reported through `Schema`'s own error.
    pub fn from_cedarschema(text: &str) -> Option<Self> {
        let (json, _warnings) = schema_str_to_json_with_resolved_types(text).ok()?;
        let mut actions = BTreeMap::new();
        let mut entity_attrs = BTreeMap::new();
        for (namespace, fragment) in json.as_object()? {
            let qualify = |name: &str| {
                if namespace.is_empty() || name.contains("::") {
                    name.to_string()
                } else {
                    format!("{namespace}::{name}")
                }
            };
            let action_type = qualify("Action");
            for (name, decl) in fragment
                .get("entityTypes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                entity_attrs.insert(
                    qualify(name),
                    record_attrs(decl.pointer("/shape/attributes"), &qualify),
                );
            }
            let Some(decls) = fragment.get("actions").and_then(Value::as_object) else {
                continue;
            };
            for (name, decl) in decls {
                let Some(applies) = decl.get("appliesTo") else {
                    continue;
                };
                let types = |key: &str| -> Vec<String> {
                    applies
                        .get(key)
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(&qualify).collect())
                        .unwrap_or_default()
                };
                let context = record_attrs(applies.pointer("/context/attributes"), &qualify);
                let uid = EntityUid::from_type_name_and_id(
                    action_type.parse().ok()?,
                    cedar_policy::EntityId::new(name),
                );
                let info = ActionInfo {
                    name: name.clone(),
                    uid: uid.clone(),
                    principals: types("principalTypes"),
                    resources: types("resourceTypes"),
                    context,
                };
                actions.insert(uid.to_string(), info);
            }
        }
        Some(Self {
            actions,
            entity_attrs,
        })
    }

    /// The action with this uid, if the schema declares it as requestable.
    pub fn get(&self, uid: &EntityUid) -> Option<&ActionInfo> {
        self.actions.get(&uid.to_string())
    }

    /// Every requestable action, in uid order.
    pub fn iter(&self) -> impl Iterator<Item = &ActionInfo> {
        self.actions.values()
    }

    /// The actions that apply to this principal type and resource type, in uid order.
    pub fn applicable<'a>(
        &'a self,
        principal: &'a str,
        resource: &'a str,
    ) -> impl Iterator<Item = &'a ActionInfo> + 'a {
        self.iter()
            .filter(move |a| a.applies_to(principal, resource))
    }
}

impl ActionCatalog {
    /// The declared type of attribute `attr` of entity type `entity_type`.
    pub fn entity_attr(&self, entity_type: &str, attr: &str) -> Option<&ContextAttr> {
        self.entity_attrs.get(entity_type)?.get(attr)
    }
}

fn record_attrs(
    attrs: Option<&Value>,
    qualify: &impl Fn(&str) -> String,
) -> BTreeMap<String, ContextAttr> {
    attrs
        .and_then(Value::as_object)
        .map(|attrs| {
            attrs
                .iter()
                .map(|(key, decl)| (key.clone(), context_attr(decl, qualify)))
                .collect()
        })
        .unwrap_or_default()
}

fn context_attr(decl: &Value, qualify: &impl Fn(&str) -> String) -> ContextAttr {
    let required = decl
        .get("required")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let kind = decl.get("type").and_then(Value::as_str).unwrap_or_default();
    let name = decl.get("name").and_then(Value::as_str).unwrap_or_default();
    let ty = match kind {
        "Entity" => AttrType::Entity(qualify(name)),
        "Extension" => AttrType::Extension(name.to_string()),
        other => AttrType::Other(other.to_string()),
    };
    ContextAttr { required, ty }
}
