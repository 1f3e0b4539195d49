//! Object keys written twice, found in JSON text.
//!
//! JSON leaves an object with a key written twice undefined (RFC 8259, section 4), and
//! parsers disagree: serde's derived structs refuse it, `serde_json::Value` keeps the last,
//! many proxies and gateways keep the first. A question whose principal is
//! `{"type": "User", "id": "stan", "id": "olga"}` would then be stan's to one reader and
//! olga's to gatehouse. [`duplicate_key`] scans text once and names the path of the first
//! key written twice. The scan is by hand, not through serde, because it runs on every
//! question the hot cache has not seen: it keeps each object's keys as slices of the text
//! (unescaped only when they hold an escape, so that `"id"` and `"\u0069d"` are one key),
//! in one list for every open object, and builds a path only for the key it reports.
//!
//! No body is scanned on the way in, where most of a miss's time would go: the values serde
//! reads of it are read with [`strict_value`] (as `serde_json::Value`, refusing a key
//! written twice, at the cost of the map insert parsing makes anyway), serde's derived
//! structs refuse a field written twice, and each entity of an entity list, which stays
//! text, is read when it is first parsed by a reader that refuses a key written twice (the
//! plain shape's, `decide::raw`, or [`strict_from_str`]). The scan runs only to name the
//! path of a duplicate a parse refused ([`Skip::EntityLists`] for a body: its entity lists
//! are their entities' to name).

use std::borrow::Cow;

/// What the scan passes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Nothing: every object is scanned.
    Nothing,
    /// The items of an array under a key `entities`: they are scanned where they are
    /// parsed.
    EntityLists,
}

/// Objects with more keys than this are checked with a hash set instead of a scan.
const SCAN_KEYS: usize = 16;

/// Nesting deeper than this is left to the parse, which refuses it.
const MAX_DEPTH: usize = 256;

/// The path (`principal.id`, `entities[2].attrs.owner`) of the first object key written
/// twice in `text`, or `None` when there is none or `text` is not JSON as far as the scan
/// can tell (the parse that follows reports what is wrong).
pub fn duplicate_key(text: &[u8], skip: Skip) -> Option<String> {
    let mut scan = Scan {
        text,
        at: 0,
        frames: Vec::with_capacity(16),
        keys: Vec::with_capacity(64),
        skip,
    };
    scan.run()
}

/// An object or array being scanned.
enum Frame<'a> {
    /// An object: where its keys start in [`Scan::keys`], and a set of them once it has
    /// many.
    Object {
        first: usize,
        set: Option<std::collections::HashSet<Cow<'a, [u8]>>>,
    },
    /// An array, the index of its current item.
    Array(usize),
}

struct Scan<'a> {
    text: &'a [u8],
    at: usize,
    frames: Vec<Frame<'a>>,
    /// The keys of every object open, outer ones first: one list for all, so that an
    /// object costs no allocation of its own.
    keys: Vec<Cow<'a, [u8]>>,
    skip: Skip,
}

impl<'a> Scan<'a> {
    fn run(&mut self) -> Option<String> {
        // Whether the next string is an object's key, and whether the last key read was
        // `entities` (with nothing read after it yet).
        let mut key_next = false;
        let mut entities_next = false;
        while let Some(&byte) = self.text.get(self.at) {
            if entities_next && !matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | b':') {
                entities_next = false;
                if byte == b'[' {
                    self.skip_array()?;
                    continue;
                }
            }
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' | b':' => self.at += 1,
                b'{' | b'[' => {
                    if self.frames.len() >= MAX_DEPTH {
                        return None;
                    }
                    let frame = if byte == b'{' {
                        Frame::Object {
                            first: self.keys.len(),
                            set: None,
                        }
                    } else {
                        Frame::Array(0)
                    };
                    self.frames.push(frame);
                    key_next = byte == b'{';
                    self.at += 1;
                }
                b'}' | b']' => {
                    if let Frame::Object { first, .. } = self.frames.pop()? {
                        self.keys.truncate(first);
                    }
                    key_next = false;
                    self.at += 1;
                }
                b',' => {
                    match self.frames.last_mut()? {
                        Frame::Object { .. } => key_next = true,
                        Frame::Array(index) => *index += 1,
                    }
                    self.at += 1;
                }
                b'"' => {
                    let (raw, escaped) = self.string()?;
                    if key_next {
                        key_next = false;
                        let key = if escaped {
                            Cow::Owned(unescape(raw)?.into_bytes())
                        } else {
                            Cow::Borrowed(raw)
                        };
                        entities_next =
                            self.skip == Skip::EntityLists && key.as_ref() == b"entities";
                        if self.add_key(key)? {
                            return Some(self.path());
                        }
                    }
                }
                // A number, `true`, `false` or `null`: up to the next delimiter.
                _ => {
                    self.at += 1;
                    while let Some(b) = self.text.get(self.at) {
                        if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                            break;
                        }
                        self.at += 1;
                    }
                }
            }
        }
        None
    }

    /// The string starting at the quote under the cursor: its raw content and whether it
    /// holds an escape; the cursor moves past its closing quote.
    #[expect(
        clippy::indexing_slicing,
        reason = "`found` is a position memchr found in `text`, after `start`"
    )]
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.at + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            let found = at + memchr::memchr2(b'"', b'\\', self.text.get(at..)?)?;
            if self.text[found] == b'"' {
                self.at = found + 1;
                return Some((&self.text[start..found], escaped));
            }
            escaped = true;
            at = found + 2;
        }
    }

    /// Moves the cursor past the array that starts under it, not looking into its
    /// objects: only its strings (which may hold brackets) and its brackets matter.
    #[expect(
        clippy::indexing_slicing,
        reason = "`found` is a position memchr found in `text`"
    )]
    fn skip_array(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            let rest = self.text.get(self.at..)?;
            let found = self.at + memchr::memchr3(b'"', b'[', b']', rest)?;
            self.at = found;
            match self.text[found] {
                b'"' => {
                    self.string()?;
                }
                b'[' => {
                    depth += 1;
                    self.at += 1;
                }
                _ => {
                    depth -= 1;
                    self.at += 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
            }
        }
    }

    /// Adds `key` to the current object; whether it was there already.
    #[expect(
        clippy::indexing_slicing,
        reason = "`first` is the length `keys` had when the object began: it only grows"
    )]
    fn add_key(&mut self, key: Cow<'a, [u8]>) -> Option<bool> {
        let Some(Frame::Object { first, set }) = self.frames.last_mut() else {
            return None;
        };
        let seen = match set {
            Some(set) => !set.insert(key.clone()),
            None => self.keys[*first..].contains(&key),
        };
        self.keys.push(key);
        if set.is_none() && self.keys.len() - *first > SCAN_KEYS {
            *set = Some(self.keys[*first..].iter().cloned().collect());
        }
        Some(seen)
    }

    /// The path of the current key: each object's current key (its last, the one before
    /// the next object's first) and each array's index.
    fn path(&self) -> String {
        let firsts: Vec<usize> = self
            .frames
            .iter()
            .filter_map(|f| match f {
                Frame::Object { first, .. } => Some(*first),
                Frame::Array(_) => None,
            })
            .collect();
        let mut out = String::new();
        let mut object = 0;
        for frame in &self.frames {
            match frame {
                Frame::Object { .. } => {
                    object += 1;
                    let end = firsts.get(object).copied().unwrap_or(self.keys.len());
                    if let Some(key) = end.checked_sub(1).and_then(|i| self.keys.get(i)) {
                        if !out.is_empty() {
                            out.push('.');
                        }
                        out.push_str(&String::from_utf8_lossy(key));
                    }
                }
                Frame::Array(index) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

/// The text of a JSON string's raw content that holds escapes.
fn unescape(raw: &[u8]) -> Option<String> {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

/// Reads a JSON value as `serde_json::Value` does, but refuses an object with a key written
/// twice where `Value` keeps the last: for the values of a body that serde parses anyway
/// (a question's principal, action, resource and context), at no cost beyond the map
/// insert that parsing makes. Use with `#[serde(deserialize_with = "…")]`; the error is
/// `duplicate key …`, and [`duplicate_key`] finds its path when it is reported.
pub fn strict_value<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<serde_json::Value, D::Error> {
    deserializer.deserialize_any(StrictVisitor)
}

/// `text` read as a `serde_json::Value` with [`strict_value`]: as `serde_json::from_str`,
/// but an object with a key written twice is an error.
pub fn strict_from_str(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = strict_value(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// [`strict_value`] for an optional value.
pub fn strict_option<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    match strict_value(deserializer)? {
        serde_json::Value::Null => Ok(None),
        value => Ok(Some(value)),
    }
}

/// A body that is a JSON object, read as `serde_json::Map` but refusing a key written twice
/// anywhere in it (an AuthZEN body).
#[derive(Debug, Clone, Default)]
pub struct StrictObject(pub serde_json::Map<String, serde_json::Value>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match strict_value(deserializer)? {
            serde_json::Value::Object(map) => Ok(Self(map)),
            other => Err(D::Error::invalid_type(
                serde::de::Unexpected::Other(&format!("`{other}`")),
                &"a JSON object",
            )),
        }
    }
}

/// Builds a `serde_json::Value`, refusing an object's key written twice.
pub(crate) struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        strict_value(d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
        while let Some(item) = seq.next_element_seed(StrictSeed)? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        strict_map(map).map(serde_json::Value::Object)
    }
}

/// The entries of `map` as an object, refusing a key written twice (values read as
/// [`strict_value`] reads them).
pub(crate) fn strict_map<'de, A: serde::de::MapAccess<'de>>(
    mut map: A,
) -> Result<serde_json::Map<String, serde_json::Value>, A::Error> {
    use serde::de::Error;
    let mut object = serde_json::Map::new();
    while let Some(key) = map.next_key::<String>()? {
        let value = map.next_value_seed(StrictSeed)?;
        match object.entry(key) {
            serde_json::map::Entry::Vacant(entry) => {
                entry.insert(value);
            }
            serde_json::map::Entry::Occupied(entry) => {
                return Err(A::Error::custom(format!(
                    "duplicate key `{}`: a key may appear only once in an object",
                    entry.key()
                )));
            }
        }
    }
    Ok(object)
}

struct StrictSeed;

impl<'de> serde::de::DeserializeSeed<'de> for StrictSeed {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        strict_value(d)
    }
}
