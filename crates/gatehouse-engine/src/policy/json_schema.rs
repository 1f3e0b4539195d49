//! A JSON Schema (draft 2020-12) of each entity type's JSON, derived from the Cedar schema:
//! what `GET /v1/schema` shows a host so that it can check the entities it sends before it
//! sends them.
//!
//! The schema accepts what the sidecar accepts: a uid as Cedar's `{"type", "id"}` object or
//! as the string `Type::"id"`; an entity reference attribute in either form or as Cedar's
//! `{"__entity": {...}}`; an extension value as its string (`"2026-06-01T00:00:00Z"`) or
//! as Cedar's `{"__extn": {"fn", "arg"}}`; `attrs` and `parents` may be left out.

use serde_json::{Map, Value, json};

use super::catalog::{ActionCatalog, AttrType, Attribute};

/// The JSON Schema of every entity type of `catalog`, by fully qualified type name.
pub fn entity_schemas(catalog: &ActionCatalog) -> Map<String, Value> {
    catalog
        .entity_types()
        .map(|(name, attrs)| {
            let parents: Vec<Value> = catalog
                .parent_types(name)
                .iter()
                .map(|parent| uid(parent))
                .collect();
            let parents = match parents.as_slice() {
                [] => json!({"type": "array", "maxItems": 0}),
                [one] => json!({"type": "array", "items": one}),
                _ => json!({"type": "array", "items": {"anyOf": parents}}),
            };
            let schema = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": format!("{name} entity"),
                "type": "object",
                "required": ["uid"],
                "additionalProperties": false,
                "properties": {
                    "uid": uid(name),
                    "attrs": record(attrs),
                    "parents": parents,
                },
            });
            (name.to_string(), schema)
        })
        .collect()
}

/// A uid of `entity_type`: `{"type": T, "id": "..."}` or `T::"..."`.
fn uid(entity_type: &str) -> Value {
    let quoted = regex_escape(entity_type);
    json!({
        "anyOf": [
            {
                "type": "object",
                "required": ["type", "id"],
                "properties": {"type": {"const": entity_type}, "id": {"type": "string"}},
            },
            {"type": "string", "pattern": format!("^{quoted}::")},
        ]
    })
}

fn reference(entity_type: &str) -> Value {
    json!({
        "anyOf": [
            uid(entity_type),
            {
                "type": "object",
                "required": ["__entity"],
                "properties": {"__entity": uid(entity_type)},
            },
        ]
    })
}

fn record(attrs: &std::collections::BTreeMap<String, Attribute>) -> Value {
    let properties: Map<String, Value> = attrs
        .iter()
        .map(|(key, attr)| (key.clone(), of_type(&attr.ty)))
        .collect();
    let required: Vec<&String> = attrs
        .iter()
        .filter(|(_, attr)| attr.required)
        .map(|(key, _)| key)
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn of_type(ty: &AttrType) -> Value {
    match ty {
        AttrType::String => json!({"type": "string"}),
        AttrType::Long => json!({"type": "integer"}),
        AttrType::Bool => json!({"type": "boolean"}),
        AttrType::Entity(name) => reference(name),
        AttrType::Extension(name) => json!({
            "description": format!("a Cedar `{name}` value"),
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "required": ["__extn"],
                    "properties": {"__extn": {
                        "type": "object",
                        "required": ["fn", "arg"],
                        "properties": {"fn": {"type": "string"}, "arg": {"type": "string"}},
                    }},
                },
            ],
        }),
        AttrType::Set(element) => json!({"type": "array", "items": of_type(element)}),
        AttrType::Record(attrs) => record(attrs),
    }
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = r"\^$.|?*+()[]{}".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}
