//! The decision cache: decisions keyed by a digest of the policy version and the whole
//! question.
//!
//! Never stale by construction: the key includes the version of the snapshot the decision
//! was computed with, and a reader looks up with the version of the snapshot it holds. A
//! decision computed under an older set (even one that finished after a swap) sits under
//! the older version's key, which no reader of the newer set ever asks for. A version is a
//! digest of every input file, so equal versions mean equal answers.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::Decision;

/// A cache key: blake3 of the version and the canonical question.
pub type Key = [u8; 32];

/// A bounded, expiring map from question digests to decisions.
#[derive(Clone)]
pub struct DecisionCache {
    inner: moka::sync::Cache<Key, Arc<Decision>>,
}

impl std::fmt::Debug for DecisionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionCache")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

impl DecisionCache {
    /// A cache of at most `capacity` decisions, each kept at most `ttl`. A capacity of 0
    /// caches nothing.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            inner: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The decision stored under `key`.
    pub fn get(&self, key: &Key) -> Option<Arc<Decision>> {
        self.inner.get(key)
    }

    /// Stores a decision.
    pub fn insert(&self, key: Key, decision: Arc<Decision>) {
        self.inner.insert(key, decision);
    }

    /// How many decisions are cached (approximately: moka counts lazily).
    pub fn len(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds a key from the policy version and the parts of a question, in order.
pub struct KeyBuilder(blake3::Hasher);

impl KeyBuilder {
    /// Starts a key for questions to the set with this version.
    pub fn new(version: &str) -> Self {
        let mut hasher = blake3::Hasher::new();
        write_str(&mut hasher, version);
        Self(hasher)
    }

    /// Adds one part (a uid, a context, `null` when absent).
    pub fn value(mut self, value: &Value) -> Self {
        canonical(&mut self.0, value);
        self
    }

    /// Adds a list of entities by the digest of the set (see [`set_digest`]), or its absence.
    pub fn entity_set(mut self, set: Option<&Key>) -> Self {
        match set {
            Some(d) => {
                self.0.update(b"E");
                self.0.update(d);
            }
            None => {
                self.0.update(b"e");
            }
        }
        self
    }

    /// The key.
    pub fn finish(self) -> Key {
        *self.0.finalize().as_bytes()
    }
}

/// The canonical digest of one JSON value.
pub fn digest(value: &Value) -> Key {
    let mut h = blake3::Hasher::new();
    canonical(&mut h, value);
    *h.finalize().as_bytes()
}

/// The digest of a list of entities in any order: the entities' digests, sorted, so that
/// `[a, b]` and `[b, a]` are one set.
pub fn set_digest(digests: &[Key]) -> Key {
    let mut sorted = digests.to_vec();
    sorted.sort_unstable();
    let mut h = blake3::Hasher::new();
    h.update(&(sorted.len() as u64).to_le_bytes());
    for d in &sorted {
        h.update(d);
    }
    *h.finalize().as_bytes()
}

/// An injective encoding of a JSON value with object keys sorted: equal encodings, equal
/// JSON (key order aside).
fn canonical(h: &mut blake3::Hasher, value: &Value) {
    match value {
        Value::Null => {
            h.update(b"n");
        }
        Value::Bool(b) => {
            h.update(if *b { b"t" } else { b"f" });
        }
        Value::Number(n) => {
            h.update(b"#");
            write_str(h, &n.to_string());
        }
        Value::String(s) => {
            h.update(b"s");
            write_str(h, s);
        }
        Value::Array(items) => {
            h.update(b"[");
            h.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                canonical(h, item);
            }
        }
        Value::Object(map) => {
            h.update(b"{");
            h.update(&(map.len() as u64).to_le_bytes());
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            for key in keys {
                write_str(h, key);
                canonical(h, &map[key]);
            }
        }
    }
}

fn write_str(h: &mut blake3::Hasher, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}
