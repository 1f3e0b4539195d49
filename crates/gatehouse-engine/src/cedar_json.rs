//! Cedar's JSON formats for entity uids and entities, parsed against a schema, with errors
//! that name the offending field and value. Shared by the policy loader (the stored-entities
//! file), deciding (questions) and the test runner (suites).

use std::collections::{HashMap, HashSet};
use std::fmt;

use cedar_policy::{Entities, EntityId, EntityTypeName, EntityUid, Schema};
use gatehouse_api::{Role, Uid, UidObject};
use serde_json::{Map, Value};

use crate::policy::{ActionCatalog, AttrType};

/// The part of a question that is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The principal's uid, or the principal's type for the action.
    Principal,
    /// The action's uid: unknown, or not applying to the types.
    Action,
    /// The resource's uid, or the resource's type for the action.
    Resource,
    /// The context: not an object, or not what the action declares.
    Context,
    /// An entity list, or one of its entities.
    Entities,
}

impl Part {
    /// The example a uid of this part shows when it is refused.
    pub fn role(self) -> Role {
        match self {
            Self::Principal => Role::Principal,
            Self::Action => Role::Action,
            Self::Resource => Role::Resource,
            Self::Context | Self::Entities => Role::Entity,
        }
    }
}

/// A question that cannot be asked: malformed, or not conforming to the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The part of the question at fault.
    pub part: Part,
    /// The field at fault, as a path into the question: `action`, `entities[3].uid`.
    pub field: String,
    /// What is wrong, naming the field and the value.
    pub message: String,
}

impl InputError {
    /// An error in `field`, which belongs to `part`.
    pub fn new(part: Part, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            part,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InputError {}

/// The innermost message of an error chain: Cedar's outer messages are generic ("entity does
/// not conform to the schema"), the innermost one names the attribute and the value.
pub fn innermost(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message = inner.to_string();
        source = inner.source();
    }
    message
}

/// Parses an entity uid given as Cedar's JSON `{"type": "User", "id": "alice"}` (or its
/// `{"__entity": {...}}` escape) or as a string: Cedar's form `User::"alice"`, or
/// `User::alice` for an id that is a plain word (see [`flexible_uid`]). The error shows
/// an example of the part's kind: `Action::"view"` for an action.
pub fn parse_uid(part: Part, field: &str, value: &Value) -> Result<EntityUid, InputError> {
    parse_uid_in(None, part, field, value)
}

/// [`parse_uid`], a type the catalog's schema declares looked up rather than parsed (see
/// [`ActionCatalog::type_name`]).
pub fn parse_uid_in(
    catalog: Option<&ActionCatalog>,
    part: Part,
    field: &str,
    value: &Value,
) -> Result<EntityUid, InputError> {
    let role = part.role();
    match value {
        // `flexible_uid` reads Cedar's form, then the plain-word one.
        Value::String(s) => flexible_uid(s)
            .ok_or_else(|| InputError::new(part, field, role.refusal(field, s, false))),
        Value::Object(o) => {
            let inner = o.get("__entity").unwrap_or(value);
            if let Some(uid) = inner.as_object().and_then(|o| uid_object_in(catalog, o)) {
                return Ok(uid);
            }
            EntityUid::from_json(inner.clone()).map_err(|_| {
                InputError::new(part, field, role.refusal(field, &value.to_string(), true))
            })
        }
        other => Err(InputError::new(
            part,
            field,
            role.refusal(field, &other.to_string(), false),
        )),
    }
}

/// A question's uid as the wire type read it (its shape checked), as Cedar's: the text form
/// read with Cedar's grammar (then `User::alice` for a plain-word id, [`flexible_uid`]), an
/// object's type looked up among the catalog's declared types, else parsed as Cedar's JSON
/// parses it. An action's id alone is [`crate::decide::input::read_action`]'s.
pub fn read_uid(
    catalog: &ActionCatalog,
    part: Part,
    field: &str,
    uid: &Uid,
) -> Result<EntityUid, InputError> {
    let found = match uid {
        Uid::Text(text) => flexible_uid(text),
        // A declared type looked up; any other name parsed as Cedar's JSON parses it.
        Uid::Object(UidObject { ty, id }) => catalog
            .type_name(ty)
            .map(|ty| EntityUid::from_type_name_and_id(ty, EntityId::new(id))),
    };
    found.ok_or_else(|| {
        let (got, object) = match uid {
            Uid::Text(text) => (text.clone(), false),
            Uid::Object(object) => (serde_json::json!(object).to_string(), true),
        };
        InputError::new(part, field, part.role().refusal(field, &got, object))
    })
}

/// Parses entity JSON given in layers (e.g. stored, then shared, then per request): an entity
/// in a later layer replaces the one with the same uid in an earlier layer; the same uid
/// twice within one layer is an error. Checked against the schema.
pub fn parse_entities(schema: &Schema, layers: &[(&str, &Value)]) -> Result<Entities, InputError> {
    let merged = merge_layers(layers)?;
    let field = layers.last().map_or("entities", |(f, _)| *f);
    Entities::from_json_value(Value::Array(merged), Some(schema)).map_err(|e| {
        let message = with_format_hint(innermost(&e));
        InputError::new(Part::Entities, field, format!("{field}: {message}"))
    })
}

/// Cedar's message, with the accepted forms when it rejects an extension literal for its
/// text alone ("invalid date pattern"), which names neither.
pub fn with_format_hint(message: String) -> String {
    let hint = if message.contains("`datetime`") {
        "a datetime is written `2026-01-15`, `2026-01-15T08:00:00Z`, `2026-01-15T08:00:00.250Z` or `2026-01-15T08:00:00+0100`"
    } else if message.contains("`duration`") {
        "a duration is written `1h30m`, `2d`, `-90s` or `250ms` (units d, h, m, s, ms)"
    } else if message.contains("`decimal`") {
        "a decimal is written `1.25` (at most four decimal places)"
    } else if message.contains("`ip`") {
        "an address is written `10.0.0.1`, `10.0.0.0/8` or `::1`"
    } else {
        return message;
    };
    format!("{message}; {hint}")
}

/// Merges entity JSON layers into one list: an entity in a later layer replaces the one with
/// the same uid in an earlier layer (keeping its place); the same uid twice within one layer
/// is an error, as is a layer that is not a list or an entity without `uid`.
#[expect(
    clippy::indexing_slicing,
    reason = "`at` is a position `merged` handed out when the item was pushed"
)]
pub fn merge_layers(layers: &[(&str, &Value)]) -> Result<Vec<Value>, InputError> {
    let mut merged: Vec<Value> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (field, layer) in layers {
        let Value::Array(items) = layer else {
            return Err(InputError::new(
                Part::Entities,
                *field,
                format!("`{field}` must be a JSON array of entities, got `{layer}`"),
            ));
        };
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let uid_value = item.get("uid").ok_or_else(|| {
                InputError::new(
                    Part::Entities,
                    format!("{field}[{i}]"),
                    format!("`{field}[{i}]` has no `uid`"),
                )
            })?;
            let uid =
                parse_uid(Part::Entities, &format!("{field}[{i}].uid"), uid_value)?.to_string();
            if !seen.insert(uid.clone()) {
                return Err(InputError::new(
                    Part::Entities,
                    format!("{field}[{i}]"),
                    format!("`{field}` lists entity `{uid}` twice"),
                ));
            }
            match index.get(&uid) {
                Some(&at) => merged[at] = item.clone(),
                None => {
                    index.insert(uid, merged.len());
                    merged.push(item.clone());
                }
            }
        }
    }
    Ok(merged)
}

/// Calls `found` with the type and id of everything in `json` shaped like a uid: an object
/// with string `type` and `id` (Cedar's uid JSON, also inside `__entity`), or a string
/// `Type::"id"`. Conservative by design: it may find a uid that is only text, never miss one.
pub fn uid_shapes(json: &Value, found: &mut dyn FnMut(&str, &str)) {
    match json {
        Value::Object(map) => {
            if let (Some(Value::String(ty)), Some(Value::String(id))) =
                (map.get("type"), map.get("id"))
            {
                found(ty, id);
            }
            for value in map.values() {
                uid_shapes(value, found);
            }
        }
        Value::Array(items) => {
            for item in items {
                uid_shapes(item, found);
            }
        }
        Value::String(text) => text_uid_shape(text, found),
        _ => {}
    }
}

/// What [`uid_shapes`] finds in a JSON string: the uid it reads as, if any.
pub fn text_uid_shape(text: &str, found: &mut dyn FnMut(&str, &str)) {
    if !text.contains("::") {
        return;
    }
    match plain_uid(text) {
        // `Type::"id"` without escapes, the common form: read without Cedar's parser, which
        // costs microseconds per string (a batch walks three per question).
        Some((ty, id)) => found(ty, id),
        None => {
            if let Some(uid) = flexible_uid(text) {
                found(&uid.type_name().to_string(), uid.id().unescaped());
            }
        }
    }
}

/// The type and id of `Type::"id"` when the id has no escape; `None` for anything else.
fn plain_uid(text: &str) -> Option<(&str, &str)> {
    let (ty, quoted) = text.rsplit_once("::\"")?;
    let id = quoted.strip_suffix('"')?;
    (!ty.is_empty() && !ty.contains(['"', ' ']) && !id.contains(['"', '\\'])).then_some((ty, id))
}

// The conveniences the test suites always accepted, and now the HTTP API: string uids in
// `Type::"id"` or `Type::plain-id` form wherever a uid goes, `attrs` and `parents` optional.

/// Turns string values of entity-typed context keys into Cedar entity references.
pub fn with_entity_refs(
    context: Map<String, Value>,
    action: &EntityUid,
    catalog: &ActionCatalog,
) -> Map<String, Value> {
    let info = catalog.get(action);
    context
        .into_iter()
        .map(|(k, v)| {
            let is_entity = info
                .and_then(|i| i.context.get(&k))
                .is_some_and(|a| matches!(a.ty, AttrType::Entity(_)));
            let v = match (&v, is_entity) {
                (Value::String(s), true) => flexible_uid(s).map_or(v, |u| entity_ref(&u)),
                _ => v,
            };
            (k, v)
        })
        .collect()
}

/// [`normalize_entity`] for each of `entities`, errors naming the index.
pub fn normalize_entities(
    entities: &[Value],
    catalog: &ActionCatalog,
) -> Result<Vec<Value>, String> {
    entities
        .iter()
        .enumerate()
        .map(|(i, e)| normalize_entity(e, catalog).map_err(|m| format!("entity {i}: {m}")))
        .collect()
}

/// Cedar entity JSON with the suite conveniences resolved: string uids, and `attrs` and
/// `parents` optional.
pub fn normalize_entity(entity: &Value, catalog: &ActionCatalog) -> Result<Value, String> {
    let Value::Object(fields) = entity else {
        return Err(format!("an entity must be a JSON object, got `{entity}`"));
    };
    let uid = match fields.get("uid") {
        Some(Value::String(s)) => {
            flexible_uid(s).ok_or_else(|| format!("`uid` `{s}` is not an entity uid"))?
        }
        Some(other) => EntityUid::from_json(other.clone()).map_err(|e| format!("`uid`: {e}"))?,
        None => return Err("an entity needs a `uid`".into()),
    };
    let entity_type = uid.type_name().to_string();
    let mut attrs = match fields.get("attrs") {
        Some(Value::Object(a)) => a.clone(),
        None => Map::new(),
        Some(other) => {
            return Err(format!(
                "`attrs` of `{uid}` must be an object, got `{other}`"
            ));
        }
    };
    for (name, value) in attrs.iter_mut() {
        let is_entity = catalog
            .entity_attr(&entity_type, name)
            .is_some_and(|a| matches!(a.ty, AttrType::Entity(_)));
        if let (Value::String(s), true) = (&*value, is_entity)
            && let Some(u) = flexible_uid(s)
        {
            *value = entity_ref(&u);
        }
    }
    let parents = match fields.get("parents") {
        Some(Value::Array(ps)) => ps
            .iter()
            .map(|p| match p {
                Value::String(s) => flexible_uid(s)
                    .map(|u| uid_json(&u))
                    .ok_or_else(|| format!("parent `{s}` of `{uid}` is not an entity uid")),
                other => Ok(other.clone()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
        Some(other) => {
            return Err(format!(
                "`parents` of `{uid}` must be a list, got `{other}`"
            ));
        }
    };
    let mut out = fields.clone();
    out.insert("uid".into(), uid_json(&uid));
    out.insert("attrs".into(), Value::Object(attrs));
    out.insert("parents".into(), Value::Array(parents));
    Ok(Value::Object(out))
}

/// `User::"olga"` (Cedar's form) or `User::olga` (an id that is a plain word).
pub fn flexible_uid(text: &str) -> Option<EntityUid> {
    if let Ok(uid) = text.parse::<EntityUid>() {
        return Some(uid);
    }
    let (type_name, id) = text.rsplit_once("::")?;
    let plain = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.@+".contains(c));
    if !plain {
        return None;
    }
    let type_name: EntityTypeName = type_name.parse().ok()?;
    Some(EntityUid::from_type_name_and_id(
        type_name,
        EntityId::new(id),
    ))
}

/// A uid as Cedar's JSON `{"type", "id"}`.
pub fn uid_json(uid: &EntityUid) -> Value {
    serde_json::json!({"type": uid.type_name().to_string(), "id": uid.id().unescaped()})
}

/// A uid as an entity reference in attribute or context values, `{"__entity": {...}}`.
pub fn entity_ref(uid: &EntityUid) -> Value {
    serde_json::json!({"__entity": uid_json(uid)})
}

/// `{"type": T, "id": I}` with exactly these two string fields, as a uid, without Cedar's JSON parser (which goes through serde's untagged
/// forms); anything else is `None`, for Cedar to read. `tests/it/properties.rs` checks that
/// it reads what Cedar reads.
pub fn uid_object(object: &serde_json::Map<String, Value>) -> Option<EntityUid> {
    uid_object_in(None, object)
}

/// [`uid_object`], a type the catalog's schema declares looked up rather than parsed (see
/// [`ActionCatalog::type_name`]).
pub fn uid_object_in(
    catalog: Option<&ActionCatalog>,
    object: &serde_json::Map<String, Value>,
) -> Option<EntityUid> {
    match (object.len(), object.get("type"), object.get("id")) {
        (2, Some(Value::String(ty)), Some(Value::String(id))) => {
            let ty = match catalog {
                Some(catalog) => catalog.type_name(ty)?,
                // `EntityTypeName`'s parser takes a name only in its normal form (no spaces,
                // no comments), as Cedar's JSON does.
                None => ty.parse().ok()?,
            };
            Some(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
        }
        _ => None,
    }
}
