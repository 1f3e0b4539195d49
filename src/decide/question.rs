//! A question as the HTTP API and `gatehouse check` send it, and the one path that answers
//! it: cache lookup, parsing against the schema, evaluation, cache insert.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use std::collections::HashMap;

use cedar_policy::Entities;

use super::cache::{DecisionCache, Key, KeyBuilder, set_digest};
use super::entities::{EntityCache, Layer, assemble};
use super::input::{InputError, build_request, parse_uid};
use super::{Decision, decide};
use crate::policy::Snapshot;

/// The uids of the store entities `question` can reach, or `None` when a request entity
/// replaces a store entity.
fn slice_of<'a>(
    snapshot: &'a Snapshot,
    question: &Question,
    shared: Option<&Shared>,
    own: Option<&Layer<'_>>,
) -> Option<Vec<&'a cedar_policy::EntityUid>> {
    let mut slice = snapshot.reach.slice();
    if let Some(shared) = shared {
        slice.marks(shared.named.as_deref()?);
    }
    if let Some(own) = own {
        slice.marks(&snapshot.reach.named_by_entities(own.items())?);
    }
    for root in [&question.principal, &question.action, &question.resource] {
        slice.json(root);
    }
    if let Some(context) = &question.context {
        slice.json(context);
    }
    Some(slice.finish())
}

/// `{"principal", "action", "resource", "context"?, "entities"?}` in Cedar's JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The principal's uid (object or string form).
    pub principal: Value,
    /// The action's uid.
    pub action: Value,
    /// The resource's uid.
    pub resource: Value,
    /// The context record.
    #[serde(default)]
    pub context: Option<Value>,
    /// Entities for this question only, in Cedar's entity JSON.
    #[serde(default)]
    pub entities: Option<Value>,
}

/// A decision and where it came from.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The decision.
    pub decision: Arc<Decision>,
    /// The version of the policy set that made it.
    pub policy_version: String,
    /// Whether it came from the cache.
    pub cache_hit: bool,
}

/// Entities shared by the questions of a batch: digested and parsed once for all of them.
#[derive(Debug)]
pub struct Shared {
    set: Key,
    parsed: Vec<cedar_policy::Entity>,
    /// The store entities the shared entities name, `None` when one replaces a store entity.
    named: Option<Vec<usize>>,
    /// Assembled once, for the questions that bring no entities of their own.
    alone: std::sync::OnceLock<Result<Arc<Entities>, InputError>>,
}

/// Answers questions, caching decisions and parsed entities.
#[derive(Debug, Clone)]
pub struct Decider {
    cache: DecisionCache,
    entities: EntityCache,
    /// Distinct outcomes are few (a verdict and a set of policy ids): cached decisions share
    /// one allocation per outcome. A std mutex, taken only on a miss, never across `.await`.
    interned: Arc<std::sync::Mutex<HashMap<Decision, Arc<Decision>>>>,
}

/// Most distinct outcomes interned; past that, decisions are simply not shared.
const INTERNED: usize = 4096;

impl Decider {
    /// A decider caching at most `decisions` decisions, each kept at most `ttl`, and at most
    /// `entities` parsed entities.
    pub fn new(decisions: u64, entities: u64, ttl: Duration) -> Self {
        Self {
            cache: DecisionCache::new(decisions, ttl),
            entities: EntityCache::new(entities),
            interned: Arc::default(),
        }
    }

    /// A decider that caches nothing.
    pub fn uncached() -> Self {
        Self::new(0, 0, Duration::ZERO)
    }

    /// The shared allocation of this outcome (decisions with errors are not shared: their
    /// messages name entities).
    fn intern(&self, decision: Decision) -> Arc<Decision> {
        if !decision.errors.is_empty() {
            return Arc::new(decision);
        }
        let mut interned = self
            .interned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(shared) = interned.get(&decision) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(decision.clone());
        if interned.len() < INTERNED {
            interned.insert(decision, Arc::clone(&shared));
        }
        shared
    }

    /// A decider that caches parsed entities but no decision: every question is evaluated
    /// (what a stream of distinct questions about known entities costs).
    pub fn entities_only(capacity: u64) -> Self {
        Self {
            cache: DecisionCache::new(0, Duration::ZERO),
            entities: EntityCache::new(capacity),
            interned: Arc::default(),
        }
    }

    /// The decision cache, for inspection.
    pub fn cache(&self) -> &DecisionCache {
        &self.cache
    }

    /// Digests and parses the entities a batch shares.
    pub fn shared(&self, snapshot: &Snapshot, json: &Value) -> Result<Shared, InputError> {
        let layer = Layer::digest("entities", json)?;
        Ok(Shared {
            set: set_digest(&layer.digests),
            parsed: self.entities.parse(snapshot, &layer)?,
            named: snapshot.reach.named_by_entities(layer.items()),
            alone: std::sync::OnceLock::new(),
        })
    }

    /// The entities a question sees: stored, then `shared`, then `own`. With the question,
    /// only its slice of the store (what it can reach); without, the whole store (for
    /// `allowed_actions`, which asks about every action).
    pub fn entities(
        &self,
        snapshot: &Snapshot,
        shared: Option<&Shared>,
        own: Option<&Layer<'_>>,
        question: Option<&Question>,
    ) -> Result<Arc<Entities>, InputError> {
        let own_parsed = own
            .map(|layer| self.entities.parse(snapshot, layer))
            .transpose()?;
        if let Some(question) = question
            && let Some(slice) = slice_of(snapshot, question, shared, own)
        {
            let shared = shared.map_or(&[][..], |s| &s.parsed);
            return assemble(
                snapshot,
                Some(&slice),
                shared,
                own_parsed.unwrap_or_default(),
            )
            .map(Arc::new);
        }
        match (shared, own_parsed) {
            (Some(shared), None) => shared
                .alone
                .get_or_init(|| assemble(snapshot, None, &shared.parsed, Vec::new()).map(Arc::new))
                .clone(),
            (Some(shared), Some(own)) => {
                assemble(snapshot, None, &shared.parsed, own).map(Arc::new)
            }
            (None, own) => assemble(snapshot, None, &[], own.unwrap_or_default()).map(Arc::new),
        }
    }

    /// Answers `question` with `snapshot`; `shared` are a batch's shared entities.
    pub fn answer(
        &self,
        snapshot: &Snapshot,
        question: &Question,
        shared: Option<&Shared>,
    ) -> Result<Answer, InputError> {
        let own = question
            .entities
            .as_ref()
            .map(|json| Layer::digest("entities", json))
            .transpose()?;
        let own_set = own.as_ref().map(|layer| set_digest(&layer.digests));
        let key = KeyBuilder::new(&snapshot.version)
            .value(&question.principal)
            .value(&question.action)
            .value(&question.resource)
            .value(question.context.as_ref().unwrap_or(&Value::Null))
            .entity_set(shared.map(|s| &s.set))
            .entity_set(own_set.as_ref())
            .finish();
        if let Some(decision) = self.cache.get(&key) {
            return Ok(Answer {
                decision,
                policy_version: snapshot.version.clone(),
                cache_hit: true,
            });
        }
        let principal = parse_uid("principal", &question.principal)?;
        let action = parse_uid("action", &question.action)?;
        let resource = parse_uid("resource", &question.resource)?;
        let request = build_request(
            snapshot,
            principal,
            action,
            resource,
            question.context.as_ref(),
        )?;
        // A batch's questions without entities of their own share one assembled store.
        let alone = shared.is_some() && own.is_none();
        let entities =
            self.entities(snapshot, shared, own.as_ref(), (!alone).then_some(question))?;
        let decision = self.intern(decide(snapshot, &request, &entities));
        self.cache.insert(key, Arc::clone(&decision));
        Ok(Answer {
            decision,
            policy_version: snapshot.version.clone(),
            cache_hit: false,
        })
    }
}

/// Parses and evaluates a question without any cache (`gatehouse check`).
pub fn evaluate(snapshot: &Snapshot, question: &Question) -> Result<Decision, InputError> {
    Decider::uncached()
        .answer(snapshot, question, None)
        .map(|answer| (*answer.decision).clone())
}

/// A uid as text for logs, whatever form it came in: `User::"alice"`.
pub fn uid_text(value: &Value) -> String {
    match parse_uid("uid", value) {
        Ok(uid) => uid.to_string(),
        Err(_) => value.to_string(),
    }
}
