//! Entity uids as questions name them, read with errors that name the field at fault.
//!
//! A question's `principal`, `action` and `resource` are each a [`Uid`] read by the field's
//! own deserializer ([`Uid::principal`], [`Uid::action`], [`Uid::resource`],
//! [`Uid::actions`]): a value of the wrong shape is refused as it is read, with a message
//! that names the field and shows an example of its kind. What the text form means (Cedar's
//! grammar) and whether the type is one the schema declares are the engine's to check,
//! against the live schema, with the same words ([`Role::refusal`]).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::json_keys::{StrictVisitor, strict_map};

/// An entity uid: Cedar's `{"type": "User", "id": "vera"}`, or the string `User::"vera"`
/// (`User::vera` when the id is a plain word). An action may be its id alone: `"view"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Uid {
    /// `User::"vera"`, or an action's id alone.
    Text(String),
    /// `{"type", "id"}`.
    Object(UidObject),
}

/// Cedar's uid object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UidObject {
    /// The entity type, e.g. `User`.
    #[serde(rename = "type")]
    pub ty: String,
    /// The entity id.
    pub id: String,
}

impl Uid {
    /// `{"type": ty, "id": id}`.
    pub fn new(ty: impl Into<String>, id: impl Into<String>) -> Self {
        Self::Object(UidObject {
            ty: ty.into(),
            id: id.into(),
        })
    }

    /// A uid in a JSON value of a tool's own file (a decision log, a suite): any string as
    /// its text (a uid, or an action's id alone), an object as Cedar reads one; `None` for
    /// anything else.
    pub fn of_value(value: &Value) -> Option<Self> {
        match value {
            Value::String(text) => Some(Self::Text(text.clone())),
            Value::Object(object) => type_and_id(&mut object.clone()).map(Self::Object),
            _ => None,
        }
    }

    /// Reads a question's `principal`: a uid, refused with an error naming `principal`.
    pub fn principal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UidVisitor::new(Role::Principal, "principal"))
    }

    /// Reads a question's `action`: a uid or an action's id alone, refused with an error
    /// naming `action`.
    pub fn action<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UidVisitor::new(Role::Action, "action"))
    }

    /// Reads a question's `resource`: a uid, refused with an error naming `resource`.
    pub fn resource<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UidVisitor::new(Role::Resource, "resource"))
    }

    /// Reads an entity's uid for the field `field` (`in`), refused with an error naming it.
    pub fn entity_for<'de, D: Deserializer<'de>>(
        field: &'static str,
        deserializer: D,
    ) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UidVisitor::new(Role::Entity, field))
    }

    /// Reads an optional list of actions (`actions`): `null` or absent is `None`; each
    /// item an action as [`Uid::action`] reads it, refused with an error naming its index
    /// (`actions[2]`).
    pub fn actions<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Vec<Self>>, D::Error> {
        deserializer.deserialize_any(ActionsVisitor)
    }
}

impl From<&str> for Uid {
    /// The text form, as written.
    fn from(text: &str) -> Self {
        Self::Text(text.to_string())
    }
}

impl From<String> for Uid {
    /// The text form, as written.
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl fmt::Display for Uid {
    /// The text form as sent; an object as `Type::"id"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Object(UidObject { ty, id }) => write!(f, "{ty}::{id:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Uid {
    /// A uid anywhere else (an entity's `uid` or `parents`): an action's id alone is not
    /// one.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UidVisitor::new(Role::Entity, "uid"))
    }
}

/// Which uid of a question a value is: what its errors show as an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The principal: `User::"alice"`.
    Principal,
    /// The action: `Action::"view"`, or the action's id alone.
    Action,
    /// The resource: `Project::"p1"`.
    Resource,
    /// Any other entity's uid.
    Entity,
}

impl Role {
    /// The type and id of this role's example.
    fn example(self) -> (&'static str, &'static str) {
        match self {
            Self::Action => ("Action", "view"),
            Self::Resource => ("Project", "p1"),
            Self::Principal | Self::Entity => ("User", "alice"),
        }
    }

    /// Why `got` (the value as sent: a string's text, anything else as JSON) is not a uid
    /// for `field`; `object` when it was an object, to show the object form as the example.
    pub fn refusal(self, field: &str, got: &str, object: bool) -> String {
        let (ty, id) = self.example();
        if object {
            return format!(
                "`{field}` must be an entity uid such as {{\"type\": \"{ty}\", \"id\": \"{id}\"}}, got `{got}`"
            );
        }
        let also = if self == Self::Action {
            " (or the action's id alone, `\"view\"`)"
        } else {
            ""
        };
        format!("`{field}` must be an entity uid such as `{ty}::\"{id}\"`{also}, got `{got}`")
    }
}

/// Reads one uid, for `field` in `role`.
struct UidVisitor<'f> {
    role: Role,
    field: &'f str,
}

impl<'f> UidVisitor<'f> {
    fn new(role: Role, field: &'f str) -> Self {
        Self { role, field }
    }

    /// The text form: with a `::` (Cedar's grammar is the engine's to check), or an
    /// action's id alone.
    fn text<E: de::Error>(self, text: String) -> Result<Uid, E> {
        if self.role == Role::Action || text.contains("::") {
            return Ok(Uid::Text(text));
        }
        Err(E::custom(self.role.refusal(self.field, &text, false)))
    }

    /// Anything else than a string or an object, shown as JSON.
    fn refuse<E: de::Error>(self, value: &Value) -> Result<Uid, E> {
        Err(E::custom(self.role.refusal(
            self.field,
            &value.to_string(),
            false,
        )))
    }
}

/// The `type` and `id` of a uid object, as Cedar reads one: `{"type", "id"}` (both strings,
/// other keys ignored), or its `{"__entity": …}` escape, whose inner object Cedar reads
/// alone (an escape of its own, or its `type` and `id`). Nothing is taken when it is not one.
fn type_and_id(object: &mut Map<String, Value>) -> Option<UidObject> {
    let Some(inner) = object.get_mut("__entity") else {
        return plain_type_and_id(object);
    };
    let Value::Object(inner) = inner else {
        return None;
    };
    if let Some(Value::Object(nested)) = inner.get_mut("__entity")
        && let Some(found) = plain_type_and_id(nested)
    {
        return Some(found);
    }
    plain_type_and_id(inner)
}

/// `type` and `id`, both strings, taken out of `object`; nothing taken otherwise.
fn plain_type_and_id(object: &mut Map<String, Value>) -> Option<UidObject> {
    match (object.get("type"), object.get("id")) {
        (Some(Value::String(_)), Some(Value::String(_))) => {}
        _ => return None,
    }
    let (Some(Value::String(ty)), Some(Value::String(id))) =
        (object.remove("type"), object.remove("id"))
    else {
        return None;
    };
    Some(UidObject { ty, id })
}

impl<'de> Visitor<'de> for UidVisitor<'_> {
    type Value = Uid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an entity uid for `{}`", self.field)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Uid, E> {
        self.text(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Uid, E> {
        self.text(v)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Uid, A::Error> {
        // Read whole (a key written twice refused), so that a refusal shows what was sent.
        let mut object = strict_map(map)?;
        match type_and_id(&mut object) {
            Some(found) => Ok(Uid::Object(found)),
            None => Err(de::Error::custom(self.role.refusal(
                self.field,
                &Value::Object(object).to_string(),
                true,
            ))),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Uid, A::Error> {
        let value = StrictVisitor.visit_seq(seq)?;
        self.refuse(&value)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Uid, E> {
        self.refuse(&Value::from(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Uid, E> {
        self.refuse(&Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Uid, E> {
        self.refuse(&Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Uid, E> {
        let value = StrictVisitor.visit_f64::<E>(v)?;
        self.refuse(&value)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Uid, E> {
        self.refuse(&Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Uid, E> {
        self.refuse(&Value::Null)
    }
}

/// Reads `actions`: `null`, or a list of actions.
struct ActionsVisitor;

impl<'de> Visitor<'de> for ActionsVisitor {
    type Value = Option<Vec<Uid>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of actions")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut actions = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        loop {
            let field = format!("actions[{}]", actions.len());
            match seq.next_element_seed(UidVisitor::new(Role::Action, &field))? {
                Some(action) => actions.push(action),
                None => return Ok(Some(actions)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = Value::Object(strict_map(map)?);
        Err(de::Error::custom(format!(
            "expected an array, got `{value}`"
        )))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Err(E::custom(format!(
            "expected an array, got `{}`",
            Value::from(v)
        )))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Err(E::custom(format!("expected an array, got `{v}`")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(E::custom(format!("expected an array, got `{v}`")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Err(E::custom(format!("expected an array, got `{v}`")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        let value = StrictVisitor.visit_f64::<E>(v)?;
        Err(E::custom(format!("expected an array, got `{value}`")))
    }
}

impl<'de> de::DeserializeSeed<'de> for UidVisitor<'_> {
    type Value = Uid;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Uid, D::Error> {
        deserializer.deserialize_any(self)
    }
}
