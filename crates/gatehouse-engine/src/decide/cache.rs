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

use gatehouse_api::Uid;
use serde_json::Value;

use super::Decision;

/// A cache key: blake3 of the version and the question (its uids and context canonically
/// encoded, its entities by the digests of their bytes).
pub type Key = [u8; 32];

/// What a cached value costs in memory, in bytes: what it owns on the heap (estimated where
/// it is another crate's type), plus its own size. Every cache is bounded by the sum of
/// its values' weights, so that a question of any size cannot make a cache outgrow its
/// budget (`--cache-bytes`).
pub trait Weight {
    /// The estimated bytes.
    fn weight(&self) -> u64;
}

/// The bytes of a string on the heap, and its handle.
pub fn string_weight(s: &str) -> u64 {
    s.len() as u64 + std::mem::size_of::<String>() as u64
}

impl<T: Weight + ?Sized> Weight for Arc<T> {
    fn weight(&self) -> u64 {
        // Counted in full wherever it is held: a shared value is counted more than once,
        // which errs on the side of the budget.
        (**self).weight() + 16
    }
}

impl<V: Weight> Weight for (Instant, V) {
    fn weight(&self) -> u64 {
        self.1.weight() + std::mem::size_of::<Instant>() as u64
    }
}

/// What one entry costs besides its value: its key, and the map's own bookkeeping.
const ENTRY_OVERHEAD: u64 = 64;

/// Weighs an entry by its value's [`Weight`], and never less than `floor`: a cache of
/// `bytes` whose entries all weigh at least `bytes / count` holds at most `count` of them,
/// so one weigher keeps both the byte budget and the count bound.
#[derive(Debug, Clone, Copy)]
pub struct ByWeight {
    floor: u64,
}

impl<V: Weight> quick_cache::Weighter<Key, V> for ByWeight {
    fn weight(&self, _key: &Key, value: &V) -> u64 {
        (value.weight() + ENTRY_OVERHEAD).max(self.floor)
    }
}

/// How much a cache may hold: at most `count` entries and `bytes` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most entries (0: the cache is off).
    pub count: u64,
    /// Most bytes of entries, by their [`Weight`] (0: the cache is off).
    pub bytes: u64,
}

impl Budget {
    /// Nothing kept.
    pub const NONE: Self = Self { count: 0, bytes: 0 };

    /// At most `count` entries, in `bytes`.
    pub fn new(count: u64, bytes: u64) -> Self {
        Self { count, bytes }
    }

    /// Whether nothing is kept.
    pub fn is_off(self) -> bool {
        self.count == 0 || self.bytes == 0
    }

    /// The least an entry weighs, so that `count` of them fill `bytes`.
    pub fn floor(self) -> u64 {
        self.bytes / self.count.max(1)
    }
}

/// The budgets of a [`super::Decider`]'s caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Decisions.
    pub decisions: Budget,
    /// Parsed request entities.
    pub entities: Budget,
    /// Assembled stores.
    pub stores: Budget,
}

impl Budgets {
    /// Bounds by count only: `decisions` decisions, `entities` parsed entities and as many
    /// assembled stores, whatever their size (each entry weighs at least 4 GiB against a
    /// budget of `count` times that). For tests and benchmarks; the sidecar has byte budgets.
    pub fn by_count(decisions: u64, entities: u64) -> Self {
        let per = u64::from(u32::MAX);
        let count = |n: u64| Budget::new(n, n.saturating_mul(per));
        Self {
            decisions: count(decisions),
            entities: count(entities),
            stores: count(entities),
        }
    }
}

/// A concurrent map from digests to values (quick_cache), bounded by the weight of its
/// values ([`ByWeight`]). The digests are uniform already; the seeded fast hasher only
/// spreads them over shards.
pub type Bounded<V> = quick_cache::sync::Cache<Key, V, ByWeight, foldhash::fast::RandomState>;

/// A moka cache's builder within `budget`: its capacity the budget's bytes, each value
/// weighed by `weigh` and never less than the budget's floor (see [`ByWeight`]).
pub fn weighed<V: Clone + Send + Sync + 'static>(
    budget: Budget,
    weigh: impl Fn(&V) -> u64 + Send + Sync + 'static,
) -> moka::sync::CacheBuilder<Key, V, moka::sync::Cache<Key, V>> {
    let (bytes, floor) = if budget.is_off() {
        (0, 0)
    } else {
        (budget.bytes, budget.floor())
    };
    moka::sync::Cache::builder()
        .max_capacity(bytes)
        .weigher(move |_, value: &V| {
            u32::try_from((weigh(value) + ENTRY_OVERHEAD).max(floor)).unwrap_or(u32::MAX)
        })
}

/// A [`Bounded`] map within `budget`, `None` when the budget keeps nothing.
pub fn bounded<V: Clone + Weight>(budget: Budget) -> Option<Arc<Bounded<V>>> {
    (!budget.is_off()).then(|| {
        let items = usize::try_from(budget.count).unwrap_or(usize::MAX);
        Arc::new(Bounded::with(
            items,
            budget.bytes,
            ByWeight {
                floor: budget.floor(),
            },
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

impl<V: Clone + Weight> Expiring<V> {
    /// A map within `budget`, each entry kept at most `ttl`.
    pub fn new(budget: Budget, ttl: Duration) -> Self {
        Self {
            inner: bounded(budget),
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

    /// The weight of the entries held, in bytes.
    pub fn weight(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| inner.weight())
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Weight for Decision {
    fn weight(&self) -> u64 {
        let strings = |list: &[String]| list.iter().map(|s| string_weight(s)).sum::<u64>();
        std::mem::size_of::<Self>() as u64
            + strings(&self.reasons)
            + strings(&self.errors)
            + strings(&self.missing)
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
    /// A cache of decisions within `budget`, each kept at most `ttl`.
    pub fn new(budget: Budget, ttl: Duration) -> Self {
        Self {
            inner: Expiring::new(budget, ttl),
        }
    }

    /// The weight of the decisions held, in bytes.
    pub fn weight(&self) -> u64 {
        self.inner.weight()
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

    /// Adds a uid as it was sent: its text, or its type and id.
    pub fn uid(mut self, uid: &Uid) -> Self {
        match uid {
            Uid::Text(text) => {
                self.0.push(b'u');
                write_str(&mut self.0, text);
            }
            Uid::Object(object) => {
                self.0.push(b'U');
                write_str(&mut self.0, &object.ty);
                write_str(&mut self.0, &object.id);
            }
        }
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
#[expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "the prefix's 8 bytes were pushed at `at` just before, and writing to a Vec cannot fail"
)]
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
