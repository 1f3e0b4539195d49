//! The decision cache: decisions keyed by a digest of the policy version and the whole
//! question.
//!
//! Never stale by construction: the key includes the version of the snapshot the decision
//! was computed with, and a reader looks up with the version of the snapshot it holds. A
//! decision computed under an older set (even one that finished after a swap) sits under
//! the older version's key, which no reader of the newer set ever asks for. A version is a
//! digest of every input file, so equal versions mean equal answers.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Decision;

/// A cache key: blake3 of the version and the question (its uids and context canonically
/// encoded, its entities by the digests of their bytes).
pub type Key = [u8; 32];

/// A capacity-bounded concurrent map from digests to values (quick_cache). The digests are
/// uniform already; the seeded fast hasher only spreads them over shards.
pub type Bounded<V> =
    quick_cache::sync::Cache<Key, V, quick_cache::UnitWeighter, foldhash::fast::RandomState>;

/// A [`Bounded`] map of at most `capacity` entries, `None` for a capacity of 0.
pub fn bounded<V: Clone>(capacity: u64) -> Option<Arc<Bounded<V>>> {
    (capacity > 0).then(|| {
        let items = usize::try_from(capacity).unwrap_or(usize::MAX);
        Arc::new(Bounded::with(
            items,
            capacity,
            quick_cache::UnitWeighter,
            foldhash::fast::RandomState::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        ))
    })
}

/// A bounded map from digests to values, each kept at most its time to live: a [`Bounded`]
/// map, each entry with the time it was stored. An entry past its time is never returned (it
/// is removed when met); the capacity bounds the memory either way.
#[derive(Clone)]
pub struct Expiring<V> {
    /// `None` when nothing is kept.
    inner: Option<Arc<Bounded<(Instant, V)>>>,
    ttl: Duration,
}

impl<V: Clone> Expiring<V> {
    /// A map of at most `capacity` entries, each kept at most `ttl`; a capacity of 0 keeps
    /// nothing.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            inner: bounded(capacity),
            ttl,
        }
    }

    /// The value stored under `key` less than the time to live ago.
    pub fn get(&self, key: &Key) -> Option<V> {
        let inner = self.inner.as_ref()?;
        let (stored, value) = inner.get(key)?;
        if stored.elapsed() < self.ttl {
            Some(value)
        } else {
            inner.remove_if(key, |(at, _)| *at == stored);
            None
        }
    }

    /// Stores a value.
    pub fn insert(&self, key: Key, value: V) {
        if let Some(inner) = &self.inner {
            inner.insert(key, (Instant::now(), value));
        }
    }

    /// How many entries are held (expired ones included until they are met or evicted).
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| inner.len() as u64)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bounded, expiring map from question digests to decisions.
#[derive(Clone)]
pub struct DecisionCache {
    inner: Expiring<Arc<Decision>>,
}

impl std::fmt::Debug for DecisionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionCache")
            .field("entries", &self.inner.len())
            .finish()
    }
}

impl DecisionCache {
    /// A cache of at most `capacity` decisions, each kept at most `ttl`. A capacity of 0
    /// caches nothing.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            inner: Expiring::new(capacity, ttl),
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

    /// How many decisions are cached.
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// Builds a key from the policy version and the parts of a question, in order.
///
/// The parts are encoded into one buffer and hashed once at the end: blake3 is fastest fed
/// large slices, not many small updates.
pub struct KeyBuilder(Vec<u8>);

impl KeyBuilder {
    /// Starts a key for questions to the set with this version.
    pub fn new(version: &str) -> Self {
        let mut buf = Vec::with_capacity(256);
        write_str(&mut buf, version);
        Self(buf)
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
                self.0.push(b'E');
                self.0.extend_from_slice(d);
            }
            None => self.0.push(b'e'),
        }
        self
    }

    /// The key.
    pub fn finish(self) -> Key {
        *blake3::hash(&self.0).as_bytes()
    }
}

/// The canonical digest of one JSON value.
pub fn digest(value: &Value) -> Key {
    let mut buf = Vec::new();
    canonical(&mut buf, value);
    *blake3::hash(&buf).as_bytes()
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

/// Appends an injective encoding of a JSON value with object keys sorted: equal encodings,
/// equal JSON (key order aside).
fn canonical(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => buf.push(b'n'),
        Value::Bool(b) => buf.push(if *b { b't' } else { b'f' }),
        Value::Number(n) => {
            buf.push(b'#');
            // Length-prefixed like a string: the prefix is patched once the digits are out.
            let at = buf.len();
            buf.extend_from_slice(&[0; 8]);
            write!(buf, "{n}").expect("writing to a Vec cannot fail");
            let len = (buf.len() - at - 8) as u64;
            buf[at..at + 8].copy_from_slice(&len.to_le_bytes());
        }
        Value::String(s) => {
            buf.push(b's');
            write_str(buf, s);
        }
        Value::Array(items) => {
            buf.push(b'[');
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                canonical(buf, item);
            }
        }
        Value::Object(map) => {
            buf.push(b'{');
            buf.extend_from_slice(&(map.len() as u64).to_le_bytes());
            // Sorted entries, not sorted keys looked up again: a lookup hashes the key.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, value) in entries {
                write_str(buf, key);
                canonical(buf, value);
            }
        }
    }
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_returned_within_its_time_to_live_and_never_after() {
        let kept = Expiring::new(4, Duration::from_secs(3600));
        kept.insert([1; 32], 7);
        assert_eq!(kept.get(&[1; 32]), Some(7));
        assert_eq!(kept.get(&[2; 32]), None);
        let expired = Expiring::new(4, Duration::ZERO);
        expired.insert([1; 32], 7);
        assert_eq!(expired.get(&[1; 32]), None);
        assert!(expired.is_empty(), "an expired entry met is removed");
    }

    #[test]
    fn a_capacity_of_zero_keeps_nothing_and_a_full_map_stays_bounded() {
        let none = Expiring::new(0, Duration::from_secs(3600));
        none.insert([1; 32], 7);
        assert_eq!(none.get(&[1; 32]), None);
        let bounded = Expiring::new(16, Duration::from_secs(3600));
        for i in 0..=255u8 {
            bounded.insert([i; 32], i);
        }
        assert!(bounded.len() <= 16, "{} entries", bounded.len());
        assert!(!bounded.is_empty());
    }
}
