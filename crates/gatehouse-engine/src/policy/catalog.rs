//! What the schema says about each requestable action (the principal and resource types it
//! applies to, the keys and types of its context) and about each entity type's attributes.
//!
//! Names are resolved exactly as Cedar resolves them: the action's principal and resource
//! types come from Cedar's own [`Schema`]; context and attribute types come from Cedar's
//! resolved JSON form of the schema text ([`schema_str_to_json_with_resolved_types`]), in
//! which every type reference is already fully qualified (an unqualified name inside a
//! namespace names that namespace's type only when the namespace declares it, and the empty
//! namespace's type otherwise). Common types are inlined here, so a type is always one of
//! the shapes of [`AttrType`].
//!
//! Action groups (actions that apply to nothing) are not in the catalog: nobody requests them.

use std::collections::BTreeMap;

use cedar_policy::{EntityTypeName, EntityUid, Schema, schema_str_to_json_with_resolved_types};
use serde_json::{Map, Value};

/// The type of an attribute (of an entity, or of an action's context).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrType {
    /// `String`.
    String,
    /// `Long`.
    Long,
    /// `Bool`.
    Bool,
    /// An entity reference of the named (fully qualified) type.
    Entity(String),
    /// An extension value: `datetime`, `duration`, `decimal`, `ipaddr`.
    Extension(String),
    /// A set of values of one type.
    Set(Box<AttrType>),
    /// A record with these attributes.
    Record(BTreeMap<String, Attribute>),
}

/// One attribute: its type and whether it must be present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Whether it must be present (a context key a request must supply).
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
    /// Principal entity types it applies to, fully qualified.
    pub principals: Vec<String>,
    /// Resource entity types it applies to, fully qualified.
    pub resources: Vec<String>,
    /// Context keys by name.
    pub context: BTreeMap<String, Attribute>,
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
    /// Each action's key in `actions`, by uid: a lookup without printing the uid.
    keys: std::collections::HashMap<EntityUid, String>,
    /// Every entity type and action type the schema declares, by its name in normal form.
    type_names: std::collections::HashMap<String, EntityTypeName>,
    entity_attrs: BTreeMap<String, BTreeMap<String, Attribute>>,
    entity_parents: BTreeMap<String, Vec<String>>,
    /// The type of the tags of each entity type that has tags.
    entity_tags: BTreeMap<String, AttrType>,
    /// The entity types declared with neither `enum` ids nor `tags`.
    plain_types: std::collections::BTreeSet<String>,
    schema_json: Value,
}

/// A plain action id that several namespaces declare.
#[derive(Debug, Clone, thiserror::Error)]
#[error("action `{name}` is ambiguous: write one of {}", candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "))]
pub struct AmbiguousAction {
    /// The id as written.
    pub name: String,
    /// The uids it could mean.
    pub candidates: Vec<String>,
}

/// Why the catalog could not be read from a schema that Cedar accepted.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the schema's types: {0}")]
pub struct CatalogError(String);

impl ActionCatalog {
    /// Reads the catalog of `schema`, whose Cedar text is `text`.
    pub fn build(schema: &Schema, text: &str) -> Result<Self, CatalogError> {
        let (json, _warnings) = schema_str_to_json_with_resolved_types(text)
            .map_err(|e| CatalogError(e.to_string()))?;
        let fragments = json
            .as_object()
            .ok_or_else(|| CatalogError("the resolved schema is not a JSON object".into()))?;
        let types = Types::new(fragments);
        let EntityTypes {
            attrs: entity_attrs,
            parents: entity_parents,
            plain: plain_types,
            tags: entity_tags,
        } = EntityTypes::read(fragments, &types)?;
        let mut actions = BTreeMap::new();
        for uid in schema.actions() {
            if let Some(info) = action_info(schema, fragments, &types, uid)? {
                actions.insert(uid.to_string(), info);
            }
        }
        let type_names = schema
            .entity_types()
            .cloned()
            .chain(schema.actions().map(|uid| uid.type_name().clone()))
            .map(|name| (name.to_string(), name))
            // INVARIANT: each text is its name's normal form, which Cedar's JSON parser takes.
            .filter(|(text, name)| text.parse::<EntityTypeName>().ok().as_ref() == Some(name))
            .collect();
        Ok(Self {
            type_names,
            keys: actions
                .iter()
                .map(|(key, info)| (info.uid.clone(), key.clone()))
                .collect(),
            actions,
            entity_attrs,
            entity_parents,
            entity_tags,
            plain_types,
            schema_json: json,
        })
    }

    /// The action with this uid, if the schema declares it as requestable.
    pub fn get(&self, uid: &EntityUid) -> Option<&ActionInfo> {
        self.actions.get(self.keys.get(uid)?)
    }

    /// The uid a plain action id such as `view` names: the one requestable action with that
    /// id, whatever its namespace, or `Action::"view"` when there is none (which the request
    /// then reports as unknown). Several namespaces declaring it make the id ambiguous.
    #[expect(clippy::expect_used, reason = "`Action` is a valid type name")]
    pub fn action_named(&self, name: &str) -> Result<EntityUid, AmbiguousAction> {
        let mut found = self.actions.values().filter(|a| a.name == name);
        match (found.next(), found.next()) {
            (Some(one), None) => Ok(one.uid.clone()),
            (None, _) => Ok(EntityUid::from_type_name_and_id(
                "Action".parse().expect("`Action` is a valid type name"),
                cedar_policy::EntityId::new(name),
            )),
            (Some(first), Some(second)) => Err(AmbiguousAction {
                name: name.to_string(),
                candidates: [first, second]
                    .into_iter()
                    .chain(found)
                    .map(|a| a.uid.to_string())
                    .collect(),
            }),
        }
    }

    /// Every requestable action, in uid order.
    pub fn iter(&self) -> impl Iterator<Item = &ActionInfo> {
        self.actions.values()
    }

    /// The actions that apply to this principal type and resource type, in uid order.
    pub fn applicable<'a, 'q>(
        &'a self,
        principal: &'q str,
        resource: &'q str,
    ) -> impl Iterator<Item = &'a ActionInfo> + 'q
    where
        'a: 'q,
    {
        self.iter()
            .filter(move |a| a.applies_to(principal, resource))
    }

    /// Every entity type (fully qualified) with its attributes, in name order.
    pub fn entity_types(&self) -> impl Iterator<Item = (&str, &BTreeMap<String, Attribute>)> {
        self.entity_attrs.iter().map(|(t, a)| (t.as_str(), a))
    }

    /// The types an entity of `entity_type` may have as parents (fully qualified).
    pub fn parent_types(&self, entity_type: &str) -> &[String] {
        self.entity_parents
            .get(entity_type)
            .map_or(&[], Vec::as_slice)
    }

    /// The entity types an entity's data can refer to: the types of entity-typed attributes
    /// (inside records and sets too) and the parent types, of every entity type. A request
    /// entity, checked against the schema, names no uid of any other type.
    pub fn referable_types(&self) -> std::collections::BTreeSet<&str> {
        fn walk<'a>(ty: &'a AttrType, out: &mut std::collections::BTreeSet<&'a str>) {
            match ty {
                AttrType::Entity(name) => {
                    out.insert(name);
                }
                AttrType::Set(element) => walk(element, out),
                AttrType::Record(fields) => fields.values().for_each(|a| walk(&a.ty, out)),
                _ => {}
            }
        }
        let mut out = std::collections::BTreeSet::new();
        for attrs in self.entity_attrs.values() {
            attrs.values().for_each(|a| walk(&a.ty, &mut out));
        }
        for parents in self.entity_parents.values() {
            out.extend(parents.iter().map(String::as_str));
        }
        out
    }

    /// The schema in Cedar's JSON form, every type reference fully qualified.
    pub fn schema_json(&self) -> &Value {
        &self.schema_json
    }

    /// The attributes of `entity_type` when its entities are plain records: a declared type
    /// with neither `enum` ids nor `tags`.
    pub fn plain_entity_attrs(&self, entity_type: &str) -> Option<&BTreeMap<String, Attribute>> {
        if !self.is_plain_type(entity_type) {
            return None;
        }
        self.entity_attrs.get(entity_type)
    }

    /// The entity type named by `text` (a name in normal form, as Cedar's JSON takes it):
    /// looked up among the declared types, parsed otherwise. Cedar parses a name with its
    /// policy grammar and prints it again to check that it was in normal form, a few thousand
    /// instructions a name; a question names a handful of declared types many times over.
    pub fn type_name(&self, text: &str) -> Option<EntityTypeName> {
        self.declared_type(text).or_else(|| text.parse().ok())
    }

    /// The entity type named by `text` when the schema declares it and `text` is its name in
    /// normal form.
    pub fn declared_type(&self, text: &str) -> Option<EntityTypeName> {
        self.type_names.get(text).cloned()
    }

    /// Whether `entity_type` is declared with neither `enum` ids nor `tags`: any id names a
    /// valid entity of it.
    pub fn is_plain_type(&self, entity_type: &str) -> bool {
        self.plain_types.contains(entity_type)
    }

    /// The type of the tags of `entity_type`, when it has tags.
    pub fn entity_tags(&self, entity_type: &str) -> Option<&AttrType> {
        self.entity_tags.get(entity_type)
    }

    /// The declared type of attribute `attr` of entity type `entity_type` (fully qualified).
    pub fn entity_attr(&self, entity_type: &str, attr: &str) -> Option<&Attribute> {
        self.entity_attrs.get(entity_type)?.get(attr)
    }
}

/// `namespace::name`, or `name` in the empty namespace: how a declaration is named.
fn qualified(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}::{name}")
    }
}

fn object<'a>(fragment: &'a Value, key: &str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    fragment
        .get(key)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

/// The common types of every namespace, by qualified name, to inline references to them.
/// What the catalog holds of every entity type, by its qualified name.
struct EntityTypes {
    /// Its attributes.
    attrs: BTreeMap<String, BTreeMap<String, Attribute>>,
    /// The types its parents may be.
    parents: BTreeMap<String, Vec<String>>,
    /// The types that are neither enumerated nor tagged.
    plain: std::collections::BTreeSet<String>,
    /// The type of the tags of each type that has tags.
    tags: BTreeMap<String, AttrType>,
}

impl EntityTypes {
    /// Reads every entity type of the resolved schema's `fragments`.
    fn read(fragments: &Map<String, Value>, types: &Types<'_>) -> Result<Self, CatalogError> {
        let mut read = Self {
            attrs: BTreeMap::new(),
            parents: BTreeMap::new(),
            plain: std::collections::BTreeSet::new(),
            tags: BTreeMap::new(),
        };
        for (namespace, fragment) in fragments {
            for (name, decl) in object(fragment, "entityTypes") {
                if decl.get("enum").is_none() && decl.get("tags").is_none() {
                    read.plain.insert(qualified(namespace, name));
                }
                if let Some(tags) = decl.get("tags") {
                    read.tags
                        .insert(qualified(namespace, name), types.ty(tags, 0)?);
                }
                let attrs = match decl.get("shape") {
                    Some(shape) => types.record(shape)?,
                    None => BTreeMap::new(),
                };
                read.attrs.insert(qualified(namespace, name), attrs);
                let parents = decl
                    .get("memberOfTypes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|parent| match types.entity_types.contains(parent) {
                        true => parent.to_string(),
                        false => qualified(namespace, parent),
                    })
                    .collect();
                read.parents.insert(qualified(namespace, name), parents);
            }
        }
        Ok(read)
    }
}

/// What the action `uid` applies to and the types of its context; `None` when it applies to
/// no principal or no resource (it cannot be requested).
fn action_info(
    schema: &Schema,
    fragments: &Map<String, Value>,
    types: &Types<'_>,
    uid: &EntityUid,
) -> Result<Option<ActionInfo>, CatalogError> {
    let types_of = |found: Option<Vec<String>>| found.unwrap_or_default();
    let principals = types_of(
        schema
            .principals_for_action(uid)
            .map(|ts| ts.map(ToString::to_string).collect()),
    );
    let resources = types_of(
        schema
            .resources_for_action(uid)
            .map(|ts| ts.map(ToString::to_string).collect()),
    );
    if principals.is_empty() || resources.is_empty() {
        return Ok(None);
    }
    let name = uid.id().unescaped().to_string();
    let namespace = uid.type_name().namespace();
    let decl = fragments
        .get(&namespace)
        .and_then(|f| f.get("actions"))
        .and_then(|a| a.get(&name))
        .ok_or_else(|| CatalogError(format!("action `{uid}` has no declaration")))?;
    let context = match decl.pointer("/appliesTo/context") {
        Some(context) => types.record(context)?,
        None => BTreeMap::new(),
    };
    Ok(Some(ActionInfo {
        name,
        uid: uid.clone(),
        principals,
        resources,
        context,
    }))
}

struct Types<'a> {
    common: BTreeMap<String, &'a Value>,
    /// Every entity type, qualified: to tell a qualified parent from a namespace-local one.
    entity_types: std::collections::BTreeSet<String>,
}

/// Common types nest; Cedar rejects cycles, so this depth is never reached by a valid schema.
const MAX_DEPTH: usize = 64;

impl<'a> Types<'a> {
    fn new(fragments: &'a Map<String, Value>) -> Self {
        let mut common = BTreeMap::new();
        let mut entity_types = std::collections::BTreeSet::new();
        for (namespace, fragment) in fragments {
            for (name, decl) in object(fragment, "commonTypes") {
                common.insert(qualified(namespace, name), decl);
            }
            for (name, _) in object(fragment, "entityTypes") {
                entity_types.insert(qualified(namespace, name));
            }
        }
        Self {
            common,
            entity_types,
        }
    }

    /// The attributes of a record type (or of a common type naming one).
    fn record(&self, decl: &Value) -> Result<BTreeMap<String, Attribute>, CatalogError> {
        match self.ty(decl, 0)? {
            AttrType::Record(attrs) => Ok(attrs),
            other => Err(CatalogError(format!(
                "expected a record type, got {other:?}"
            ))),
        }
    }

    fn ty(&self, decl: &Value, depth: usize) -> Result<AttrType, CatalogError> {
        if depth > MAX_DEPTH {
            return Err(CatalogError("common types nest too deeply".into()));
        }
        let kind = decl.get("type").and_then(Value::as_str).unwrap_or_default();
        let name = || decl.get("name").and_then(Value::as_str).unwrap_or_default();
        let keyword = ["Record", "Set", "Entity", "EntityOrCommon", "Extension"].contains(&kind);
        if !keyword && let Some(common) = self.common.get(kind) {
            return self.ty(common, depth + 1);
        }
        Ok(match kind.strip_prefix("__cedar::").unwrap_or(kind) {
            "String" => AttrType::String,
            "Long" => AttrType::Long,
            "Boolean" | "Bool" => AttrType::Bool,
            "Entity" => AttrType::Entity(name().to_string()),
            "EntityOrCommon" => match self.common.get(name()) {
                Some(common) => self.ty(common, depth + 1)?,
                None => AttrType::Entity(name().to_string()),
            },
            "Extension" => AttrType::Extension(name().to_string()),
            "Set" => {
                let element = decl
                    .get("element")
                    .ok_or_else(|| CatalogError("a set type without `element`".into()))?;
                AttrType::Set(Box::new(self.ty(element, depth + 1)?))
            }
            "Record" => {
                let mut attrs = BTreeMap::new();
                for (key, attr) in object(decl, "attributes") {
                    let required = attr
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(true);
                    let ty = self.ty(attr, depth + 1)?;
                    attrs.insert(key.clone(), Attribute { required, ty });
                }
                AttrType::Record(attrs)
            }
            // What remains of a schema Cedar accepted is an extension type by its name.
            extension => AttrType::Extension(extension.to_string()),
        })
    }
}
