//! The hot cache: rendered `/v1/is_authorized` answers by the digest of the policy version
//! and the exact body, so that a repeated question is answered without being parsed.

use std::sync::Arc;
use std::time::Duration;

use crate::decide::Decision;
use crate::decide::cache::{Expiring, Key};

/// Rendered `/v1/is_authorized` answers by the digest of the policy version and the exact
/// request body: a repeated question is answered without parsing it at all. Its entries also
/// hold what the decision log needs.
#[derive(Clone)]
pub struct HotCache(Expiring<Arc<HotAnswer>>);

impl std::fmt::Debug for HotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HotCache")
    }
}

impl HotCache {
    /// A cache holding up to `budget` of answers, each for `ttl`.
    pub(crate) fn new(budget: crate::decide::cache::Budget, ttl: Duration) -> Self {
        Self(Expiring::new(budget, ttl))
    }

    /// The key of `body` asked under the policy set `version`.
    pub(crate) fn key(version: &str, body: &[u8]) -> Key {
        let mut h = blake3::Hasher::new();
        h.update(version.as_bytes());
        h.update(body);
        *h.finalize().as_bytes()
    }

    /// The answer kept under `key`.
    pub(crate) fn get(&self, key: &Key) -> Option<Arc<HotAnswer>> {
        self.0.get(key)
    }

    /// Keeps `answer` under `key`.
    pub(crate) fn insert(&self, key: Key, answer: HotAnswer) {
        self.0.insert(key, Arc::new(answer));
    }

    /// How many answers it holds.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The weight of the answers it holds, in bytes.
    pub fn weight(&self) -> u64 {
        self.0.weight()
    }
}

/// A rendered answer and what to log about it.
#[derive(Debug)]
pub struct HotAnswer {
    /// The response body.
    pub body: axum::body::Bytes,
    /// The decision, for the decision log and metrics.
    pub decision: Arc<Decision>,
    /// The question's principal, action and resource as text.
    pub who: [String; 3],
    /// With an entity database, what the answer was made on: it is served again only while
    /// that holds.
    pub read: Option<crate::sourced::Read>,
}

impl crate::decide::cache::Weight for HotAnswer {
    fn weight(&self) -> u64 {
        let who: u64 = self
            .who
            .iter()
            .map(|s| crate::decide::cache::string_weight(s))
            .sum();
        std::mem::size_of::<Self>() as u64
            + self.body.len() as u64
            + who
            + self.decision.weight()
            + self.read.as_ref().map_or(0, crate::sourced::Read::weight)
    }
}
