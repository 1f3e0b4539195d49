//! Every body is read once, as written: [`read_object`] refuses a body that is not a JSON
//! object, and any object key written twice.
//!
//! JSON leaves an object with a key written twice undefined (RFC 8259, section 4), and
//! parsers disagree: serde's derived structs refuse it, `serde_json::Value` keeps the last,
//! many proxies and gateways keep the first. A question whose principal is
//! `{"type": "User", "id": "stan", "id": "olga"}` would then be stan's to one reader and
//! olga's to gatehouse. So before a body is read, [`duplicate_key`] walks it once (borrowing
//! every key that has no escape, comparing them after unescaping) and names the path of the
//! first key written twice; the body is then refused with a 400 naming that path.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor,
};

use super::error::{ApiError, ErrorCode};

/// Reads `text` (the whole body, or one item of it, named by `what`) into `T`, refusing
/// anything but a JSON object (serde reads a struct from a positional array too, which no
/// client means) and any key written twice. Every body of the API is read through it.
pub fn read_object<T: DeserializeOwned>(text: &[u8], what: &str) -> Result<T, ApiError> {
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        // Valid JSON of another kind is the wrong shape; anything else is malformed.
        // A tree, not `IgnoredAny`, whose skipping knows no depth limit.
        return Err(match serde_json::from_slice::<serde_json::Value>(text) {
            Ok(_) => ApiError::new(
                ErrorCode::InvalidRequest,
                format!("{what} must be a JSON object"),
            ),
            Err(e) => ApiError::from_json(&e),
        });
    }
    if let Some(path) = duplicate_key(text) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("`{path}` is written twice: a key may appear only once in an object"),
        )
        .with_field(path));
    }
    serde_json::from_slice(text).map_err(|e| ApiError::from_json(&e))
}

/// Objects with more keys than this are checked with a hash set instead of a scan.
const SCAN_KEYS: usize = 16;

/// The path (`principal.id`, `entities[2].attrs.owner`) of the first object key written
/// twice in `text`, or `None` when there is none or `text` is not JSON (whose error the
/// parse that follows reports).
pub fn duplicate_key(text: &[u8]) -> Option<String> {
    let found = RefCell::new(None);
    let mut path = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let seed = Walk {
        path: &mut path,
        found: &found,
    };
    // An error is either the duplicate (recorded in `found`) or malformed JSON.
    let _ = seed.deserialize(&mut deserializer);
    found.into_inner()
}

/// One step of a path into a body.
enum Step<'de> {
    Key(Cow<'de, str>),
    Index(usize),
}

fn render(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// Walks one value at `path`; the first duplicate found is written to `found` and stops
/// the walk with an error.
struct Walk<'a, 'de> {
    path: &'a mut Vec<Step<'de>>,
    found: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            self.path.push(Step::Index(index));
            let more = seq.next_element_seed(Walk {
                path: self.path,
                found: self.found,
            })?;
            self.path.pop();
            if more.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        let mut many: Option<std::collections::HashSet<Cow<'de, str>>> = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let seen = match &mut many {
                Some(set) => !set.insert(key.clone()),
                None => {
                    let seen = keys.contains(&key);
                    keys.push(key.clone());
                    if keys.len() > SCAN_KEYS {
                        many = Some(keys.drain(..).collect());
                    }
                    seen
                }
            };
            self.path.push(Step::Key(key));
            if seen {
                *self.found.borrow_mut() = Some(render(self.path));
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(Walk {
                path: self.path,
                found: self.found,
            })?;
            self.path.pop();
        }
        Ok(())
    }
}

/// An object key, borrowed from the body when it has no escape.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}
