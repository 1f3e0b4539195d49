//! Request entities as they came: each entity's JSON text, not a tree.
//!
//! Most of a question's bytes are its entities, and most of those entities were seen
//! before (the project, its organization, its groups; often only the user is new). Reading
//! them into `serde_json::Value` trees would cost more than deciding: every object is an
//! ordered map whose keys are hashed. So a list keeps each entity's text; it is digested
//! from its bytes, and read into a tree and parsed only when the entity cache has not seen
//! those bytes ([`super::entities`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::policy::ActionCatalog;

/// A question's (or a batch's) `entities`: a JSON array kept as the text of each item, or
/// whatever else was sent, kept for the error that names it.
///
/// Built by deserializing a body, or from a [`Value`] (`EntityList::from(json!([...]))`).
/// It serializes as the JSON it holds, without the whitespace between tokens.
#[derive(Debug, Clone)]
pub struct EntityList(Items);

#[derive(Debug, Clone)]
enum Items {
    List(Vec<Box<RawValue>>),
    NotAList(Value),
}

impl EntityList {
    /// Each entity's JSON text, in order; `Err` with what was sent when it is not an array.
    pub fn items(&self) -> Result<&[Box<RawValue>], &Value> {
        match &self.0 {
            Items::List(items) => Ok(items),
            Items::NotAList(value) => Err(value),
        }
    }

    /// How many entities it holds (none when it is not an array).
    pub fn len(&self) -> usize {
        self.items().map_or(0, <[_]>::len)
    }

    /// Whether it holds no entity.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The list as a JSON tree (an item that cannot be read as one, nested past
    /// `serde_json`'s depth limit, becomes its text as a string).
    pub fn to_value(&self) -> Value {
        match &self.0 {
            Items::List(items) => items
                .iter()
                .map(|raw| {
                    serde_json::from_str(raw.get())
                        .unwrap_or_else(|_| Value::String(raw.get().to_owned()))
                })
                .collect(),
            Items::NotAList(value) => value.clone(),
        }
    }
}

impl From<Value> for EntityList {
    #[expect(
        clippy::expect_used,
        reason = "a JSON tree always serializes: its keys are strings"
    )]
    fn from(value: Value) -> Self {
        match value {
            Value::Array(items) => Self(Items::List(
                items
                    .iter()
                    .map(|item| {
                        serde_json::value::to_raw_value(item)
                            .expect("a JSON tree always serializes: its keys are strings")
                    })
                    .collect(),
            )),
            other => Self(Items::NotAList(other)),
        }
    }
}

impl From<Vec<Box<RawValue>>> for EntityList {
    /// A list of these entities' texts, as they are.
    fn from(items: Vec<Box<RawValue>>) -> Self {
        Self(Items::List(items))
    }
}

impl<'de> Deserialize<'de> for EntityList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor)
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = EntityList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of entities")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EntityList, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element::<Box<RawValue>>()? {
            items.push(item);
        }
        Ok(EntityList(Items::List(items)))
    }

    // Anything else is kept as it came: deciding refuses it with a message naming it.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EntityList, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(other)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<EntityList, E> {
        Ok(other(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<EntityList, E> {
        Ok(other(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<EntityList, E> {
        Ok(other(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<EntityList, E> {
        Ok(other(Value::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<EntityList, E> {
        Ok(other(Value::from(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<EntityList, E> {
        Ok(other(Value::Null))
    }
}

fn other(value: Value) -> EntityList {
    EntityList(Items::NotAList(value))
}

impl Serialize for EntityList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Items::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for raw in items {
                    // Compact, so that a decision-log line stays one line.
                    let compact = RawValue::from_string(compact(raw.get()))
                        .map_err(serde::ser::Error::custom)?;
                    seq.serialize_element(&compact)?;
                }
                seq.end()
            }
            Items::NotAList(value) => value.serialize(serializer),
        }
    }
}

/// `json` (valid JSON) without the whitespace between its tokens.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            continue;
        }
        out.push(c);
    }
    out
}

/// A request entity in the plain shape ([`super::input::plain_entity`]) read without a
/// tree: from an entity's text (strings borrowed when they have no escapes, no key hashed)
/// or from a tree. Only `uid`, `attrs` and `parents`, each at most once; attribute values
/// that are strings, whole numbers, booleans or uid objects; parents that are uid objects;
/// no key twice. Anything else does not read, and the entity goes Cedar's way.
#[derive(Debug)]
pub struct PlainText<'a> {
    /// The uid, when it is a uid object (`None`: another form, such as `Type::"id"`).
    pub uid: Option<UidText<'a>>,
    /// The attributes, in order.
    pub attrs: Option<Vec<(Cow<'a, str>, Scalar<'a>)>>,
    /// The parents.
    pub parents: Option<Vec<UidText<'a>>>,
}

/// `{"type", "id"}` or `{"__entity": {"type", "id"}}`, exactly, both strings.
#[derive(Debug)]
pub struct UidText<'a> {
    /// The type name, as written.
    pub ty: Cow<'a, str>,
    /// The id.
    pub id: Cow<'a, str>,
}

/// A plain attribute value.
#[derive(Debug)]
pub enum Scalar<'a> {
    /// `true` or `false`.
    Bool(bool),
    /// A whole number that fits an `i64`.
    Long(i64),
    /// A string.
    Str(Cow<'a, str>),
    /// A uid object.
    Uid(UidText<'a>),
}

impl UidText<'_> {
    /// The uid, when its type is a name in normal form (as Cedar's JSON takes it).
    pub fn to_uid(&self) -> Option<cedar_policy::EntityUid> {
        Some(cedar_policy::EntityUid::from_type_name_and_id(
            self.ty.parse().ok()?,
            cedar_policy::EntityId::new(self.id.as_ref()),
        ))
    }

    /// The uid, when its type is one the catalog's schema declares, written in normal form
    /// (then [`Self::ty`] is exactly the type's name as Cedar prints it): looked up, never
    /// parsed. What the plain paths take, since they take declared types only.
    pub fn to_declared_uid(&self, catalog: &ActionCatalog) -> Option<cedar_policy::EntityUid> {
        Some(cedar_policy::EntityUid::from_type_name_and_id(
            catalog.declared_type(&self.ty)?,
            cedar_policy::EntityId::new(self.id.as_ref()),
        ))
    }
}

impl<'a> PlainText<'a> {
    /// Reads `text` (one entity's JSON), or `None` when it is not in the plain shape.
    pub fn read(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// Reads a tree, or `None` when it is not in the plain shape.
    pub fn of(item: &'a Value) -> Option<Self> {
        Self::deserialize(item).ok()
    }
}

fn not_plain<E: de::Error>() -> E {
    E::custom("not in the plain shape")
}

struct CowStr;

impl<'de> de::DeserializeSeed<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Reads a uid object; `wrapped` also takes the `__entity` form around an exact one.
struct UidSeed {
    wrapped: bool,
}

impl<'de> de::DeserializeSeed<'de> for UidSeed {
    type Value = UidText<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for UidSeed {
    type Value = UidText<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a uid object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut ty, mut id) = (None, None);
        while let Some(key) = map.next_key_seed(CowStr)? {
            match key.as_ref() {
                "type" if ty.is_none() => ty = Some(map.next_value_seed(CowStr)?),
                "id" if id.is_none() => id = Some(map.next_value_seed(CowStr)?),
                "__entity" if self.wrapped && ty.is_none() && id.is_none() => {
                    let inner = map.next_value_seed(UidSeed { wrapped: false })?;
                    return match map.next_key_seed(CowStr)? {
                        None => Ok(inner),
                        Some(_) => Err(not_plain()),
                    };
                }
                _ => return Err(not_plain()),
            }
        }
        match (ty, id) {
            (Some(ty), Some(id)) => Ok(UidText { ty, id }),
            _ => Err(not_plain()),
        }
    }
}

impl<'de> Deserialize<'de> for UidText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        de::DeserializeSeed::deserialize(UidSeed { wrapped: true }, deserializer)
    }
}

/// The entity's `uid`: a uid object, or (`None`) a string, which the tree's way reads.
struct UidField;

impl<'de> de::DeserializeSeed<'de> for UidField {
    type Value = Option<UidText<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UidField {
    type Value = Option<UidText<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a uid")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        UidSeed { wrapped: true }.visit_map(map).map(Some)
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plain value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Long(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(Scalar::Long).map_err(|_| not_plain())
    }

    // Strings as `CowStr` reads them: borrowed when they have no escapes.
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        CowStr.visit_borrowed_str(v).map(Scalar::Str)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        CowStr.visit_str(v).map(Scalar::Str)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        CowStr.visit_string(v).map(Scalar::Str)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        UidSeed { wrapped: true }.visit_map(map).map(Scalar::Uid)
    }
}

struct Attrs;

impl<'de> de::DeserializeSeed<'de> for Attrs {
    type Value = Vec<(Cow<'de, str>, Scalar<'de>)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Attrs {
    type Value = Vec<(Cow<'de, str>, Scalar<'de>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("attributes")
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "`windows(2)` yields slices of exactly two"
    )]
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut attrs = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(key) = map.next_key_seed(CowStr)? {
            attrs.push((key, map.next_value()?));
        }
        // A tree keeps the last of a repeated key; the plain shape has none.
        let mut names: Vec<&str> = attrs.iter().map(|(name, _)| name.as_ref()).collect();
        names.sort_unstable();
        if names.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(not_plain());
        }
        Ok(attrs)
    }
}

impl<'de> Deserialize<'de> for PlainText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PlainVisitor)
    }
}

struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = PlainText<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an entity")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut uid, mut attrs, mut parents) = (None, None, None);
        while let Some(key) = map.next_key_seed(CowStr)? {
            match key.as_ref() {
                "uid" if uid.is_none() => uid = Some(map.next_value_seed(UidField)?),
                "attrs" if attrs.is_none() => attrs = Some(map.next_value_seed(Attrs)?),
                "parents" if parents.is_none() => parents = Some(map.next_value()?),
                _ => return Err(not_plain()),
            }
        }
        Ok(PlainText {
            uid: uid.ok_or_else(not_plain)?,
            attrs,
            parents,
        })
    }
}
