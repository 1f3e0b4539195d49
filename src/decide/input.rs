//! JSON questions to Cedar values, checked against the snapshot's schema. Every error names
//! the offending field and value; nothing is guessed.

use std::collections::HashSet;
use std::fmt;

use cedar_policy::{Context, Entities, EntityUid, Request};
use serde_json::Value;

use crate::policy::Snapshot;

/// A question that cannot be asked: malformed, or not conforming to the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// The field at fault, e.g. `action` or `entities`.
    pub field: String,
    /// What is wrong, naming the field and the value.
    pub message: String,
}

impl InputError {
    /// An error in `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
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
/// `{"__entity": {...}}` escape) or as Cedar's string form `User::"alice"`.
pub fn parse_uid(field: &str, value: &Value) -> Result<EntityUid, InputError> {
    match value {
        Value::String(s) => s.parse().map_err(|_| {
            InputError::new(
                field,
                format!("`{field}` must be an entity uid such as `User::\"alice\"`, got `{s}`"),
            )
        }),
        Value::Object(o) => {
            let inner = o.get("__entity").unwrap_or(value);
            EntityUid::from_json(inner.clone()).map_err(|_| {
                InputError::new(
                    field,
                    format!(
                        "`{field}` must be an entity uid such as {{\"type\": \"User\", \"id\": \"alice\"}}, got `{value}`"
                    ),
                )
            })
        }
        other => Err(InputError::new(
            field,
            format!("`{field}` must be an entity uid, got `{other}`"),
        )),
    }
}

/// Builds a Cedar request, checking that the action exists and applies to the principal and
/// resource types, and that the context conforms to the action's context type.
pub fn build_request(
    snapshot: &Snapshot,
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: Option<&Value>,
) -> Result<Request, InputError> {
    let Some(info) = snapshot.catalog.get(&action) else {
        return Err(InputError::new(
            "action",
            format!("unknown action `{action}`"),
        ));
    };
    let principal_type = principal.type_name().to_string();
    if !info.principals.contains(&principal_type) {
        return Err(InputError::new(
            "principal",
            format!(
                "action `{action}` does not apply to principal `{principal}`: the principal must be of type {}",
                one_of(&info.principals)
            ),
        ));
    }
    let resource_type = resource.type_name().to_string();
    if !info.resources.contains(&resource_type) {
        return Err(InputError::new(
            "resource",
            format!(
                "action `{action}` does not apply to resource `{resource}`: the resource must be of type {}",
                one_of(&info.resources)
            ),
        ));
    }
    let context = match context {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => {
            return Err(InputError::new(
                "context",
                format!("`context` must be a JSON object, got `{other}`"),
            ));
        }
    };
    let context =
        Context::from_json_value(context, Some((&snapshot.schema, &action))).map_err(|e| {
            InputError::new(
                "context",
                format!("context of `{action}`: {}", innermost(&e)),
            )
        })?;
    // The action and both types were checked above, so what Cedar's request validation can
    // still reject is the context's attribute types.
    let action_name = action.to_string();
    Request::new(principal, action, resource, context, Some(&snapshot.schema)).map_err(|e| {
        InputError::new(
            "context",
            format!("context of `{action_name}`: {}", innermost(&e)),
        )
    })
}

/// Parses entity JSON given in layers (e.g. stored, then shared, then per request): an entity
/// in a later layer replaces the one with the same uid in an earlier layer; the same uid
/// twice within one layer is an error. Checked against the schema.
pub fn parse_entities(
    snapshot: &Snapshot,
    layers: &[(&str, &Value)],
) -> Result<Entities, InputError> {
    let mut merged: Vec<(String, Value)> = Vec::new();
    for (field, layer) in layers {
        let Value::Array(items) = layer else {
            return Err(InputError::new(
                *field,
                format!("`{field}` must be a JSON array of entities, got `{layer}`"),
            ));
        };
        let mut seen = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let uid_value = item
                .get("uid")
                .ok_or_else(|| InputError::new(*field, format!("`{field}[{i}]` has no `uid`")))?;
            let uid = parse_uid(&format!("{field}[{i}].uid"), uid_value)?.to_string();
            if !seen.insert(uid.clone()) {
                return Err(InputError::new(
                    *field,
                    format!("`{field}` lists entity `{uid}` twice"),
                ));
            }
            match merged.iter_mut().find(|(u, _)| *u == uid) {
                Some(slot) => slot.1 = item.clone(),
                None => merged.push((uid, item.clone())),
            }
        }
    }
    let field = layers.last().map_or("entities", |(f, _)| *f);
    let json = Value::Array(merged.into_iter().map(|(_, v)| v).collect());
    Entities::from_json_value(json, Some(&snapshot.schema))
        .map_err(|e| InputError::new(field, format!("{field}: {}", innermost(&e))))
}

fn one_of(types: &[String]) -> String {
    let quoted: Vec<String> = types.iter().map(|t| format!("`{t}`")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}
