//! A question as the HTTP API and `gatehouse check` send it, and the one path that answers
//! it: cache lookup, parsing against the schema, evaluation, cache insert.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::cache::{DecisionCache, KeyBuilder};
use super::input::{self, InputError, build_request, parse_uid};
use super::{Decision, decide};
use crate::policy::Snapshot;

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

/// Answers questions, caching decisions.
#[derive(Debug, Clone)]
pub struct Decider {
    cache: DecisionCache,
}

impl Decider {
    /// A decider with a cache of `capacity` decisions kept at most `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            cache: DecisionCache::new(capacity, ttl),
        }
    }

    /// The cache, for inspection.
    pub fn cache(&self) -> &DecisionCache {
        &self.cache
    }

    /// Answers `question` with `snapshot`. `shared` are entities shared by a batch (they come
    /// before the question's own). The snapshot's stored entities come first of all.
    pub fn answer(
        &self,
        snapshot: &Snapshot,
        question: &Question,
        shared: Option<&Value>,
    ) -> Result<Answer, InputError> {
        let key = KeyBuilder::new(&snapshot.version)
            .value(&question.principal)
            .value(&question.action)
            .value(&question.resource)
            .value(question.context.as_ref().unwrap_or(&Value::Null))
            .entities(shared)
            .entities(question.entities.as_ref())
            .finish();
        if let Some(decision) = self.cache.get(&key) {
            return Ok(Answer {
                decision,
                policy_version: snapshot.version.clone(),
                cache_hit: true,
            });
        }
        let decision = Arc::new(evaluate(snapshot, question, shared)?);
        self.cache.insert(key, Arc::clone(&decision));
        Ok(Answer {
            decision,
            policy_version: snapshot.version.clone(),
            cache_hit: false,
        })
    }
}

/// Parses and evaluates a question without the cache.
pub fn evaluate(
    snapshot: &Snapshot,
    question: &Question,
    shared: Option<&Value>,
) -> Result<Decision, InputError> {
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
    let entities = entities_for(snapshot, shared, question.entities.as_ref())?;
    Ok(decide(snapshot, &request, &entities))
}

/// The entities a question sees: stored, then shared, then its own.
pub fn entities_for(
    snapshot: &Snapshot,
    shared: Option<&Value>,
    own: Option<&Value>,
) -> Result<cedar_policy::Entities, InputError> {
    let empty = Value::Array(Vec::new());
    let layers = [
        ("entities", shared.unwrap_or(&empty)),
        ("entities", own.unwrap_or(&empty)),
    ];
    let layers: &[(&str, &Value)] = match (shared, own) {
        (Some(_), Some(_)) => &layers,
        (Some(_), None) => &layers[..1],
        (None, _) => &layers[1..],
    };
    let entities = input::parse_entities(snapshot, layers)?;
    input::with_stored(snapshot, entities)
}

/// A uid as text for logs, whatever form it came in: `User::"alice"`.
pub fn uid_text(value: &Value) -> String {
    match parse_uid("uid", value) {
        Ok(uid) => uid.to_string(),
        Err(_) => value.to_string(),
    }
}
