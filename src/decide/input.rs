//! JSON questions to Cedar requests, checked against the snapshot's schema. Every error
//! names the offending field and value; nothing is guessed.

use cedar_policy::{Context, EntityUid, Request};
use serde_json::Value;

use crate::policy::Snapshot;

pub use crate::cedar_json::{InputError, Part, innermost, parse_uid, with_format_hint};

/// The action of a question: a uid in Cedar's JSON or string form, or an action's id alone
/// (`"view"`), which names the one requestable action with that id (as in the test suites
/// and `gatehouse check`).
pub fn parse_action(
    snapshot: &Snapshot,
    field: &str,
    value: &Value,
) -> Result<EntityUid, InputError> {
    match value {
        Value::String(id) if !id.contains("::") => snapshot
            .catalog
            .action_named(id)
            .map_err(|e| InputError::new(Part::Action, field, format!("`{field}`: {e}"))),
        other => parse_uid(Part::Action, field, other),
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
            Part::Action,
            "action",
            format!("unknown action `{action}`"),
        ));
    };
    check_type(Part::Principal, &action, &principal, &info.principals)?;
    check_type(Part::Resource, &action, &resource, &info.resources)?;
    let context = match context {
        None | Some(Value::Null) => Value::Object(Default::default()),
        // A string for an entity-typed key is a uid (`User::"tom"`), as in the suites.
        Some(Value::Object(map)) => Value::Object(crate::cedar_json::with_entity_refs(
            map.clone(),
            &action,
            &snapshot.catalog,
        )),
        Some(other) => {
            return Err(InputError::new(
                Part::Context,
                "context",
                format!("`context` must be a JSON object, got `{other}`"),
            ));
        }
    };
    // Cedar's messages do not always name the key or the value ("invalid date pattern"),
    // so the context as sent is part of the message.
    let context_error = |e: &dyn std::error::Error| {
        let sent = truncated(&context.to_string(), 200);
        InputError::new(
            Part::Context,
            "context",
            format!(
                "context `{sent}` of `{action}`: {}",
                with_format_hint(innermost(e))
            ),
        )
    };
    let parsed = Context::from_json_value(context.clone(), Some((&snapshot.schema, &action)))
        .map_err(|e| context_error(&e))?;
    // The action and both types were checked above, so what Cedar's request validation can
    // still reject is the context's attribute types.
    Request::new(
        principal,
        action.clone(),
        resource,
        parsed,
        Some(&snapshot.schema),
    )
    .map_err(|e| context_error(&e))
}

/// Refuses `uid` as the principal or resource of `action` unless its type is one of `types`.
pub(crate) fn check_type(
    part: Part,
    action: &EntityUid,
    uid: &EntityUid,
    types: &[String],
) -> Result<(), InputError> {
    if types.contains(&uid.type_name().to_string()) {
        return Ok(());
    }
    let role = if part == Part::Principal {
        "principal"
    } else {
        "resource"
    };
    Err(InputError::new(
        part,
        role,
        format!(
            "action `{action}` does not apply to {role} `{uid}`: the {role} must be of type {}",
            one_of(types)
        ),
    ))
}

/// At most `max` bytes of `text` (on a character boundary), with `…` when cut.
fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

pub(crate) fn one_of(types: &[String]) -> String {
    let quoted: Vec<String> = types.iter().map(|t| format!("`{t}`")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}
