//! JSON questions to Cedar requests, checked against the snapshot's schema. Every error
//! names the offending field and value; nothing is guessed.

use cedar_policy::{Context, Entity, EntityUid, Request, RestrictedExpression};
use serde_json::Value;

use crate::policy::Snapshot;
use crate::policy::{ActionCatalog, ActionInfo, AttrType};

use super::raw::{PlainText, Scalar};
pub use crate::cedar_json::{
    InputError, Part, innermost, parse_uid, parse_uid_in, with_format_hint,
};

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
        other => parse_uid_in(Some(&snapshot.catalog), Part::Action, field, other),
    }
}

/// A question's `context`: its keys (`None` when absent or `null`), refused when it is not
/// an object. The one place every kind of question checks it.
pub(crate) fn context_object(
    context: Option<&Value>,
) -> Result<Option<&serde_json::Map<String, Value>>, InputError> {
    match context {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(InputError::new(
            Part::Context,
            "context",
            format!("`context` must be a JSON object, got `{other}`"),
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
            Part::Action,
            "action",
            format!("unknown action `{action}`"),
        ));
    };
    check_type(Part::Principal, &action, &principal, &info.principals)?;
    check_type(Part::Resource, &action, &resource, &info.resources)?;
    let context = Value::Object(match context_object(context)? {
        None => Default::default(),
        // A string for an entity-typed key is a uid (`User::"tom"`), as in the suites.
        Some(map) => crate::cedar_json::with_entity_refs(map.clone(), &action, &snapshot.catalog),
    });
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
    // The action and both types were checked above, so what Cedar's request validation can
    // still reject is the context's attribute types; a plain context was checked against the
    // action's declaration too, and is not validated again (a tenth of a batch question).
    // `tests/it/properties.rs` holds both checks to Cedar's validation.
    let (parsed, schema) = match plain_context(&context, info, &snapshot.catalog) {
        Some(parsed) => (parsed, None),
        None => (
            Context::from_json_value(context.clone(), Some((&snapshot.schema, &action)))
                .map_err(|e| context_error(&e))?,
            Some(&snapshot.schema),
        ),
    };
    Request::new(principal, action.clone(), resource, parsed, schema).map_err(|e| context_error(&e))
}

/// The context as Cedar values, built directly when it is plain: every key one the action
/// declares, every required key present, and every value a `String`, `Long` or `Bool` where
/// one is declared, or an entity uid (`{"type", "id"}` or `{"__entity": {"type", "id"}}`,
/// exactly) of the declared entity type. Anything else is `None`, and Cedar's JSON parser
/// decides it, with its messages. Cedar's parser tries each JSON form of a value in turn and
/// builds an error for every form that does not match: for an entity-typed key that costs
/// more than evaluating the policies. `tests/it/properties.rs` checks the two give the same
/// context, or both refuse it.
pub fn plain_context(
    context: &Value,
    info: &ActionInfo,
    catalog: &ActionCatalog,
) -> Option<Context> {
    let Value::Object(map) = context else {
        return None;
    };
    if info
        .context
        .iter()
        .any(|(key, attr)| attr.required && !map.contains_key(key))
    {
        return None;
    }
    let mut pairs = Vec::with_capacity(map.len());
    for (key, value) in map {
        pairs.push((
            key.clone(),
            plain_value(catalog, &info.context.get(key)?.ty, value)?,
        ));
    }
    Context::from_pairs(pairs).ok()
}

/// A plain value of a declared type, as a Cedar expression: a `String`, `Long` or `Bool`, or
/// an entity uid (`{"type", "id"}` or `{"__entity": {"type", "id"}}`, exactly) of the
/// declared entity type, which is a plain type (not an `enum`, whose ids are checked).
/// Anything else is `None`.
fn plain_value(
    catalog: &ActionCatalog,
    ty: &AttrType,
    value: &Value,
) -> Option<RestrictedExpression> {
    plain_scalar(catalog, ty, &serde::Deserialize::deserialize(value).ok()?)
}

/// [`plain_value`], of a value read as a [`Scalar`].
fn plain_scalar(
    catalog: &ActionCatalog,
    ty: &AttrType,
    value: &Scalar<'_>,
) -> Option<RestrictedExpression> {
    Some(match (ty, value) {
        (AttrType::String, Scalar::Str(s)) => RestrictedExpression::new_string(s.to_string()),
        (AttrType::Bool, &Scalar::Bool(b)) => RestrictedExpression::new_bool(b),
        (AttrType::Long, &Scalar::Long(n)) => RestrictedExpression::new_long(n),
        (AttrType::Entity(ty), Scalar::Uid(text)) => {
            // A declared type, so `text.ty` is its name as Cedar prints it.
            let uid = text.to_declared_uid(catalog)?;
            if text.ty != ty.as_str() || !catalog.is_plain_type(ty) {
                return None;
            }
            RestrictedExpression::new_entity_uid(uid)
        }
        _ => return None,
    })
}

/// A request entity built directly when it is plain, as [`plain_context`] builds a context:
/// its type declared with neither `enum` ids nor `tags`; only `uid`, `attrs` and `parents`;
/// every attribute declared, every required one present, each a plain value of its declared
/// type (as for a context); every parent a uid object of a plain type the schema lets it be in.
/// That is every check Cedar's schema-based parser makes of such an entity, so a plain
/// entity is the entity Cedar parses; anything else is `None`, and Cedar's parser decides
/// it, with its messages. `tests/it/properties.rs` checks the two give the same entity, or
/// that the plain path refuses it.
pub fn plain_entity(item: &Value, uid: &EntityUid, catalog: &ActionCatalog) -> Option<Entity> {
    plain_entity_of(
        &PlainText::of(item)?,
        uid,
        &uid.type_name().to_string(),
        catalog,
    )
}

/// [`plain_entity`], of an entity read as [`PlainText`] (from its text or from a tree); `uid`
/// is its uid and `entity_type` its type's name as Cedar prints it.
pub fn plain_entity_of(
    plain: &PlainText<'_>,
    uid: &EntityUid,
    entity_type: &str,
    catalog: &ActionCatalog,
) -> Option<Entity> {
    let declared = catalog.plain_entity_attrs(entity_type)?;
    let mut attrs = std::collections::HashMap::new();
    match &plain.attrs {
        None if declared.values().any(|attr| attr.required) => return None,
        None => {}
        Some(values) => {
            let present = |name: &str| values.iter().any(|(n, _)| n == name);
            if declared
                .iter()
                .any(|(name, attr)| attr.required && !present(name))
            {
                return None;
            }
            for (name, value) in values {
                let ty = &declared.get(name.as_ref())?.ty;
                attrs.insert(name.to_string(), plain_scalar(catalog, ty, value)?);
            }
        }
    }
    let mut parents = std::collections::HashSet::new();
    if let Some(items) = &plain.parents {
        let allowed = catalog.parent_types(entity_type);
        for text in items {
            // A declared type, so `text.ty` is its name as Cedar prints it.
            let parent = text.to_declared_uid(catalog)?;
            if !allowed.iter().any(|t| *t == text.ty) || !catalog.is_plain_type(&text.ty) {
                return None;
            }
            parents.insert(parent);
        }
    }
    Entity::new(uid.clone(), attrs, parents).ok()
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
