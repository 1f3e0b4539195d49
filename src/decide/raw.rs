//! Request entities as they came: each entity's JSON text, not a tree.
//!
//! Most of a question's bytes are its entities, and most of those entities were seen
//! before (the project, its organization, its groups; often only the user is new). Reading
//! them into `serde_json::Value` trees would cost more than deciding: every object is an
//! ordered map whose keys are hashed. So a list keeps each entity's text; it is digested
//! from its bytes, and read into a tree and parsed only when the entity cache has not seen
//! those bytes ([`super::entities`]).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

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
