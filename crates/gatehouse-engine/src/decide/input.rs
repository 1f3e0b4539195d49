//! JSON questions to Cedar requests, checked against the snapshot's schema. Every error
//! names the offending field and value; nothing is guessed.

use cedar_policy::{Context, Entity, EntityTypeName, EntityUid, Request, RestrictedExpression};
use gatehouse_api::Uid;
use serde_json::Value;

use crate::policy::Snapshot;
use crate::policy::{ActionCatalog, ActionInfo, AttrType};

use super::raw::{PlainText, Scalar};
pub use crate::cedar_json::{
    InputError, Part, innermost, parse_uid, parse_uid_in, read_uid, with_format_hint,
};

/// The action of a question: a uid in Cedar's JSON or string form, or an action's id alone
/// (`"view"`), which names the one requestable action with that id (as in the test suites
/// and `gatehouse check`).
pub fn read_action(
    snapshot: &Snapshot,
    field: &str,
    action: &Uid,
) -> Result<EntityUid, InputError> {
    match action {
        Uid::Text(id) if !id.contains("::") => snapshot
            .catalog
            .action_named(id)
            .map_err(|e| InputError::new(Part::Action, field, format!("`{field}`: {e}"))),
        other => read_uid(&snapshot.catalog, Part::Action, field, other),
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

/// A question's principal, action and what it asks about, each checked against the schema:
/// the one checking stage of every question. Decisions ([`super::Decider::answer`]: single
/// questions, batches, each action of allowed actions, AuthZEN's evaluations) ask about a
/// resource (`T` is its [`EntityUid`]); plans about every resource of a type (an
/// [`EntityTypeName`]); subjects plans about every principal of a type (`P`) and one
/// resource. Each error names the field at fault.
#[derive(Debug)]
pub struct Checked<'s, T, P = EntityUid> {
    /// The principal, or the principal type.
    pub principal: P,
    /// The action, a requestable one of the schema that applies to both types.
    pub action: EntityUid,
    /// What the schema says of the action.
    pub info: &'s ActionInfo,
    /// The resource, or the resource type.
    pub target: T,
}

impl<'s> Checked<'s, EntityUid> {
    /// A decision's question as sent: its uids read, then checked.
    pub fn resource(
        snapshot: &'s Snapshot,
        principal: &Uid,
        action: &Uid,
        resource: &Uid,
    ) -> Result<Self, InputError> {
        let catalog = &snapshot.catalog;
        let principal = read_uid(catalog, Part::Principal, "principal", principal)?;
        let action = read_action(snapshot, "action", action)?;
        let resource = read_uid(catalog, Part::Resource, "resource", resource)?;
        Self::of(snapshot, principal, action, resource)
    }

    /// A decision's question of uids already read: the action exists and applies to the
    /// principal's and the resource's types.
    pub fn of(
        snapshot: &'s Snapshot,
        principal: EntityUid,
        action: EntityUid,
        resource: EntityUid,
    ) -> Result<Self, InputError> {
        let info = action_info(snapshot, &action)?;
        check_type(Part::Principal, &action, &principal, &info.principals)?;
        check_type(Part::Resource, &action, &resource, &info.resources)?;
        Ok(Self {
            principal,
            action,
            info,
            target: resource,
        })
    }

    /// The Cedar request, with `context` (absent or `null`: empty) checked against what the
    /// action declares.
    pub fn request(
        self,
        snapshot: &Snapshot,
        context: Option<&Value>,
    ) -> Result<Request, InputError> {
        let (context, sent) = self.context(snapshot, context_object(context)?)?;
        // The action and both types were checked, so what Cedar's request validation can
        // still reject is the context's attribute types; a plain context was checked against
        // the action's declaration too, and is not validated again (a tenth of a batch
        // question). `tests/it/properties.rs` holds both checks to Cedar's validation.
        let schema = sent.is_some().then_some(&snapshot.schema);
        let action = self.action.clone();
        Request::new(self.principal, self.action, self.target, context, schema)
            .map_err(|e| context_error(&action, sent.as_ref(), &e))
    }
}

impl<'s> Checked<'s, EntityTypeName> {
    /// A plan's question as sent: every resource of `resource_type`.
    pub fn resource_type(
        snapshot: &'s Snapshot,
        principal: &Uid,
        action: &Uid,
        resource_type: &str,
    ) -> Result<Self, InputError> {
        let principal = read_uid(&snapshot.catalog, Part::Principal, "principal", principal)?;
        let action = read_action(snapshot, "action", action)?;
        let info = action_info(snapshot, &action)?;
        check_type(Part::Principal, &action, &principal, &info.principals)?;
        if !info.resources.iter().any(|r| r == resource_type) {
            return Err(InputError::new(
                Part::Resource,
                "resource_type",
                format!(
                    "action `{action}` does not apply to resource type `{resource_type}`: the resource must be of type {}",
                    one_of(&info.resources)
                ),
            ));
        }
        let target = snapshot.catalog.type_name(resource_type).ok_or_else(|| {
            InputError::new(
                Part::Resource,
                "resource_type",
                format!("`{resource_type}` is not an entity type"),
            )
        })?;
        Ok(Self {
            principal,
            action,
            info,
            target,
        })
    }
}

impl<'s> Checked<'s, EntityUid, EntityTypeName> {
    /// A subjects plan's question as sent: every principal of `principal_type` and one
    /// resource.
    pub fn principal_type(
        snapshot: &'s Snapshot,
        principal_type: &str,
        action: &Uid,
        resource: &Uid,
    ) -> Result<Self, InputError> {
        let action = read_action(snapshot, "action", action)?;
        let resource = read_uid(&snapshot.catalog, Part::Resource, "resource", resource)?;
        let info = action_info(snapshot, &action)?;
        check_type(Part::Resource, &action, &resource, &info.resources)?;
        if !info.principals.iter().any(|p| p == principal_type) {
            return Err(InputError::new(
                Part::Principal,
                "principal_type",
                format!(
                    "action `{action}` does not apply to principal type `{principal_type}`: the principal must be of type {}",
                    one_of(&info.principals)
                ),
            ));
        }
        let principal = snapshot.catalog.type_name(principal_type).ok_or_else(|| {
            InputError::new(
                Part::Principal,
                "principal_type",
                format!("`{principal_type}` is not an entity type"),
            )
        })?;
        Ok(Self {
            principal,
            action,
            info,
            target: resource,
        })
    }
}

impl<T, P> Checked<'_, T, P> {
    /// The context, checked, when it is known: absent (or `null`), it is empty for an action
    /// that declares no context keys and unknown (`None`) for one that does.
    pub fn known_context(
        &self,
        snapshot: &Snapshot,
        context: Option<&Value>,
    ) -> Result<Option<Context>, InputError> {
        match context_object(context)? {
            None if !self.info.context.is_empty() => Ok(None),
            map => self
                .context(snapshot, map)
                .map(|(context, _)| Some(context)),
        }
    }

    /// `context` (`None`: empty) as Cedar's, checked against the action's declaration, with
    /// the JSON Cedar read it from when it was not plain (when it was, every check Cedar's
    /// request validation would make of it was made).
    fn context(
        &self,
        snapshot: &Snapshot,
        context: Option<&serde_json::Map<String, Value>>,
    ) -> Result<(Context, Option<Value>), InputError> {
        let action = &self.action;
        let context = Value::Object(match context {
            None => Default::default(),
            // A string for an entity-typed key is a uid (`User::"tom"`), as in the suites.
            Some(map) => {
                crate::cedar_json::with_entity_refs(map.clone(), action, &snapshot.catalog)
            }
        });
        if let Some(plain) = plain_context(&context, self.info, &snapshot.catalog) {
            return Ok((plain, None));
        }
        match Context::from_json_value(context.clone(), Some((&snapshot.schema, action))) {
            Ok(parsed) => Ok((parsed, Some(context))),
            Err(e) => Err(context_error(action, Some(&context), &e)),
        }
    }
}

/// The action `action` names in the catalog, or an error naming `action`.
fn action_info<'s>(
    snapshot: &'s Snapshot,
    action: &EntityUid,
) -> Result<&'s ActionInfo, InputError> {
    snapshot.catalog.get(action).ok_or_else(|| {
        InputError::new(Part::Action, "action", format!("unknown action `{action}`"))
    })
}

/// A context Cedar refused. Cedar's messages do not always name the key or the value
/// ("invalid date pattern"), so the context as sent is part of the message.
pub(crate) fn context_error(
    action: &EntityUid,
    sent: Option<&Value>,
    e: &dyn std::error::Error,
) -> InputError {
    let sent = sent.map_or_else(String::new, |sent| {
        format!(" `{}`", truncated(&sent.to_string(), 200))
    });
    InputError::new(
        Part::Context,
        "context",
        format!(
            "context{sent} of `{action}`: {}",
            with_format_hint(innermost(e))
        ),
    )
}

/// Builds a Cedar request, checking that the action exists and applies to the principal and
/// resource types, and that the context conforms to the action's context type
/// ([`Checked`], of uids already read).
pub fn build_request(
    snapshot: &Snapshot,
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: Option<&Value>,
) -> Result<Request, InputError> {
    Checked::of(snapshot, principal, action, resource)?.request(snapshot, context)
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
