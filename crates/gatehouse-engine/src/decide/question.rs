//! A question as the HTTP API, `gatehouse check` and the policy test runner send it, and the
//! one path that answers it: cache lookup, parsing against the schema, the question's slice
//! of the store, evaluation, cache insert.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use cedar_policy::{Entities, Entity, EntityId, EntityUid, Request};
use cedar_policy_core::ast;
use gatehouse_api::Uid;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cache::{Budgets, DecisionCache, Key, KeyBuilder, set_digest};
use super::entities::{EntityCache, Layer, Parsed, Resolved, StoreCache, assemble};
use super::input::{Checked, InputError};
use super::raw::EntityList;
use super::slice::Slice;
use super::view::{Closed, Closure, View};
use super::{Decision, decide, decide_viewed, decide_with_cedar};
use crate::cedar_json::flexible_uid;
use crate::policy::Snapshot;

/// `{"principal", "action", "resource", "context"?, "entities"?}` in Cedar's JSON.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({"principal": "User::\"vic\"", "action": "view", "resource": "Project::\"p1\""})))]
pub struct Question {
    /// The principal's uid (object or string form).
    #[serde(deserialize_with = "Uid::principal")]
    pub principal: Uid,
    /// The action's uid.
    #[serde(deserialize_with = "Uid::action")]
    pub action: Uid,
    /// The resource's uid.
    #[serde(deserialize_with = "Uid::resource")]
    pub resource: Uid,
    /// The context record.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::json_keys::strict_option"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, serde_json::Value>>))]
    pub context: Option<Value>,
    /// Entities for this question only, in Cedar's entity JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<gatehouse_api::Entity>>))]
    pub entities: Option<EntityList>,
    /// Answer 400 `missing_entity` rather than decide without an entity the question names
    /// or the deciding path reads (those a decision's `missing` lists).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict_entities: bool,
    /// With an entity database: how fresh the entities decided on must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<gatehouse_api::Consistency>,
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
pub struct BatchEntities {
    set: Key,
    parsed: Vec<Entity>,
    /// What the parsed entities cost in memory (see [`super::entities::entity_weight`]).
    weight: u64,
    /// The store entities the shared entities name, `None` when one replaces a store entity.
    named: Option<Vec<usize>>,
    /// The store entities any question of the batch can reach (store indices), only when
    /// there is no `closure` and no shared entity replaces a store entity.
    slice: Option<Vec<usize>>,
    /// The shared entities closed over the stored ones, on which the questions that bring no
    /// entities of their own are decided; `None` when only an assembled store is Cedar's.
    closure: Option<Closure>,
    /// Without a `closure`: assembled once, for the questions that bring no entities of
    /// their own.
    alone: OnceLock<Result<Arc<Entities>, InputError>>,
}

/// Answers questions, caching decisions and parsed entities. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Decider {
    cache: DecisionCache,
    entities: EntityCache,
    stores: StoreCache,
    /// Distinct outcomes are few (a verdict and a set of policy ids): cached decisions share
    /// one allocation per outcome. A std mutex, taken only on a miss, never across `.await`.
    interned: Arc<Mutex<HashMap<Decision, Arc<Decision>>>>,
}

/// Most distinct outcomes interned; past that, decisions are simply not shared.
const INTERNED: usize = 4096;

impl Decider {
    /// A decider caching at most `decisions` decisions, each kept at most `ttl`, at most
    /// `entities` parsed entities and as many assembled stores (see [`StoreCache`]),
    /// whatever their size (see [`Budgets::by_count`]).
    pub fn new(decisions: u64, entities: u64, ttl: Duration) -> Self {
        Self::within(Budgets::by_count(decisions, entities), ttl)
    }

    /// A decider whose caches keep to `budgets`, decisions kept at most `ttl`.
    pub fn within(budgets: Budgets, ttl: Duration) -> Self {
        Self {
            cache: DecisionCache::new(budgets.decisions, ttl),
            entities: EntityCache::new(budgets.entities),
            stores: StoreCache::new(budgets.stores),
            interned: Arc::default(),
        }
    }

    /// The weight of everything its caches hold, in bytes: decisions, parsed entities and
    /// assembled stores.
    pub fn cached_bytes(&self) -> [u64; 3] {
        [
            self.cache.weight(),
            self.entities.weight(),
            self.stores.weight(),
        ]
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
        let mut interned = self.interned.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = interned.get(&decision) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(decision.clone());
        if interned.len() < INTERNED {
            interned.insert(decision, Arc::clone(&shared));
        }
        shared
    }

    /// The decision cache, for inspection.
    pub fn cache(&self) -> &DecisionCache {
        &self.cache
    }

    /// How many parsed entities are cached.
    pub fn cached_entities(&self) -> u64 {
        self.entities.len()
    }

    /// Digests and parses the entities a batch shares, and closes them over the stored
    /// ones ([`Closure`]). `questions` are the batch's questions that could be read (the
    /// others are answered with their error): when the shared entities cannot be closed,
    /// what they name (outside their own entities) makes the slice of the store assembled
    /// once for them all.
    pub fn batch<'q>(
        &self,
        snapshot: &Snapshot,
        list: &EntityList,
        questions: impl IntoIterator<Item = &'q Question>,
    ) -> Result<BatchEntities, InputError> {
        self.shared(snapshot, list, |slice| {
            for question in questions {
                // A question that cannot be checked is answered with its error, not sliced.
                if let Ok(checked) = question.checked(snapshot) {
                    slice.uid(&checked.principal);
                    slice.uid(&checked.action);
                    slice.uid(&checked.target);
                }
                if let Some(context) = &question.context {
                    slice.json(context);
                }
            }
        })
    }

    /// A batch's shared entities, with `roots` marking what its questions name in the slice
    /// (called only when the shared entities cannot be closed).
    fn shared(
        &self,
        snapshot: &Snapshot,
        list: &EntityList,
        roots: impl FnOnce(&mut Slice<'_>),
    ) -> Result<BatchEntities, InputError> {
        let layer = Layer::digest(&snapshot.inputs, "entities", list)?;
        let resolved = self.entities.resolve(snapshot, &layer)?;
        let named = resolved.named();
        let parsed = resolved.entities();
        let closure = Closure::new(snapshot, &parsed, named.is_none());
        let slice = match (&closure, &named) {
            (None, Some(named)) => {
                let mut slice = Slice::new(&snapshot.reach);
                slice.marks(named);
                roots(&mut slice);
                Some(slice.finish())
            }
            _ => None,
        };
        Ok(BatchEntities {
            set: set_digest(&layer.digests),
            weight: resolved.parsed.iter().map(|p| p.weight).sum(),
            parsed,
            named,
            slice,
            closure,
            alone: OnceLock::new(),
        })
    }

    /// The entities a question sees: stored, then `batch`, then `own`. Of the store, only
    /// the slice that `roots` marks (with what `batch` and `own` name), or the whole store
    /// when an entity of `batch` or `own` replaces a stored one. A store on a slice starts
    /// from the one assembled before for the part of it seen before ([`StoreCache`]).
    pub fn entities(
        &self,
        snapshot: &Snapshot,
        batch: Option<&BatchEntities>,
        own: Option<&Layer<'_>>,
        roots: impl FnOnce(&mut Slice<'_>),
    ) -> Result<Arc<Entities>, InputError> {
        let own = own
            .map(|layer| Ok::<_, InputError>((layer, self.entities.resolve(snapshot, layer)?)))
            .transpose()?;
        let own = own.as_ref().map(|(layer, resolved)| (*layer, resolved));
        self.store(snapshot, batch, own, roots)
    }

    /// [`Decider::entities`], the own entities resolved.
    fn store(
        &self,
        snapshot: &Snapshot,
        batch: Option<&BatchEntities>,
        own: Option<(&Layer<'_>, &Resolved)>,
        roots: impl FnOnce(&mut Slice<'_>),
    ) -> Result<Arc<Entities>, InputError> {
        let shared = batch.map_or(&[][..], |b| &b.parsed);
        let batch_named = match batch {
            Some(batch) => batch.named.as_deref(),
            None => Some(&[][..]),
        };
        let own_named = match own {
            Some((_, resolved)) => resolved.named(),
            None => Some(Vec::new()),
        };
        let slice = match (batch_named, own_named) {
            (Some(batch_named), Some(own_named)) => {
                let mut slice = Slice::new(&snapshot.reach);
                slice.marks(batch_named);
                slice.marks(&own_named);
                roots(&mut slice);
                Some(slice.finish())
            }
            _ => None,
        };
        if let Some(slice) = &slice {
            let shared = (batch.map(|b| &b.set), shared, batch.map_or(0, |b| b.weight));
            if let Some(store) = self.stores.assemble(snapshot, slice, shared, own) {
                return Ok(store);
            }
        }
        let own = own.map_or_else(Vec::new, |(_, resolved)| resolved.entities());
        assemble(snapshot, slice.as_deref(), shared, own).map(Arc::new)
    }

    /// The store of a batch's questions that bring no entities of their own: assembled once.
    fn batch_alone(
        &self,
        snapshot: &Snapshot,
        batch: &BatchEntities,
    ) -> Result<Arc<Entities>, InputError> {
        batch
            .alone
            .get_or_init(|| {
                assemble(snapshot, batch.slice.as_deref(), &batch.parsed, Vec::new()).map(Arc::new)
            })
            .clone()
    }

    /// Answers `question` with `snapshot`; `batch` are a batch's shared entities.
    pub fn answer(
        &self,
        snapshot: &Snapshot,
        question: &Question,
        batch: Option<&BatchEntities>,
    ) -> Result<Answer, InputError> {
        let own = question
            .entities
            .as_ref()
            .map(|list| Layer::digest(&snapshot.inputs, "entities", list))
            .transpose()?;
        let own_set = own.as_ref().map(|layer| set_digest(&layer.digests));
        let key = KeyBuilder::new(&snapshot.inputs)
            .uid(&question.principal)
            .uid(&question.action)
            .uid(&question.resource)
            .value(question.context.as_ref().unwrap_or(&Value::Null))
            .entity_set(batch.map(|b| &b.set))
            .entity_set(own_set.as_ref())
            .finish();
        if let Some(decision) = self.cache.get(&key) {
            return Ok(Answer {
                decision,
                policy_version: snapshot.version.clone(),
                cache_hit: true,
            });
        }
        let request = question
            .checked(snapshot)?
            .request(snapshot, question.context.as_ref())?;
        let resolved = own
            .as_ref()
            .map(|layer| self.entities.resolve(snapshot, layer))
            .transpose()?;
        let parsed = resolved.as_ref().map_or(&[][..], |r| &r.parsed[..]);
        let ground = Ground::choose(snapshot, batch, own.is_some(), parsed);
        let decision = match ground.decide_in_place(snapshot, &request) {
            Some(decision) => decision,
            None => {
                let entities = match ground {
                    Ground::Batch(batch) => self.batch_alone(snapshot, batch)?,
                    _ => {
                        let own = own.as_ref().zip(resolved.as_ref());
                        self.store(snapshot, batch, own, |slice| {
                            let uids = [request.principal(), request.action(), request.resource()];
                            for uid in uids.into_iter().flatten() {
                                slice.uid(uid);
                            }
                            if let Some(context) = &question.context {
                                slice.json(context);
                            }
                        })?
                    }
                };
                // The program gave up in place: it gives up on the same entities stored.
                if ground.in_place() {
                    decide_with_cedar(snapshot, &request, &entities)
                } else {
                    decide(snapshot, &request, &entities)
                }
            }
        };
        let decision = self.intern(decision);
        self.cache.insert(key, Arc::clone(&decision));
        Ok(Answer {
            decision,
            policy_version: snapshot.version.clone(),
            cache_hit: false,
        })
    }
}

/// Where [`Decider::answer`] decides a question its cache did not hold.
enum Ground<'q> {
    /// A question alone: its own entities (if any) laid on the stored ones, without a store
    /// of its own ([`View`]).
    View(Vec<&'q ast::Entity>),
    /// A batch's question that brings no entities: over the batch's entities closed over the
    /// stored ones ([`Closed`]).
    Closure(&'q BatchEntities, &'q Closure),
    /// A batch's question that brings no entities, in a batch with no closure: the store
    /// assembled once for the batch.
    Batch(&'q BatchEntities),
    /// A store assembled for the question: its slice of the stored entities, with its own
    /// entities and its batch's.
    Store,
}

impl<'q> Ground<'q> {
    /// The ground of a question with `parsed` own entities (`own`: it sent some), in `batch`.
    fn choose(
        snapshot: &Snapshot,
        batch: Option<&'q BatchEntities>,
        own: bool,
        parsed: &'q [Arc<Parsed>],
    ) -> Self {
        match batch {
            None => View::entities(snapshot, parsed).map_or(Ground::Store, Ground::View),
            Some(_) if own => Ground::Store,
            Some(batch) => match &batch.closure {
                Some(closure) => Ground::Closure(batch, closure),
                None => Ground::Batch(batch),
            },
        }
    }

    /// The decision made in place by the compiled program; `None` when the ground is a store
    /// or the program gave up.
    fn decide_in_place(&self, snapshot: &Snapshot, request: &Request) -> Option<Decision> {
        match self {
            Ground::View(own) => decide_viewed(snapshot, request, View::new(snapshot, own)),
            Ground::Closure(batch, closure) => decide_viewed(
                snapshot,
                request,
                Closed::new(snapshot, &batch.parsed, closure),
            ),
            Ground::Batch(_) | Ground::Store => None,
        }
    }

    /// Whether the program was asked in place (a store after it means that it gave up).
    fn in_place(&self) -> bool {
        matches!(self, Ground::View(_) | Ground::Closure(..))
    }
}

/// Parses and evaluates a question without any cache (`gatehouse check`).
pub fn evaluate(snapshot: &Snapshot, question: &Question) -> Result<Decision, InputError> {
    Decider::uncached()
        .answer(snapshot, question, None)
        .map(|answer| (*answer.decision).clone())
}

impl Question {
    /// The question's principal, action and resource, checked against the schema.
    pub fn checked<'s>(
        &self,
        snapshot: &'s Snapshot,
    ) -> Result<Checked<'s, EntityUid>, InputError> {
        Checked::resource(snapshot, &self.principal, &self.action, &self.resource)
    }
}

/// A uid as text for logs, whatever form it came in: `User::"alice"` (an action's id alone
/// as it came: `view`).
pub fn uid_text(uid: &Uid) -> String {
    match uid {
        Uid::Text(text) => flexible_uid(text).map_or_else(|| text.clone(), |uid| uid.to_string()),
        Uid::Object(object) => object
            .ty
            .parse()
            .map(|ty| EntityUid::from_type_name_and_id(ty, EntityId::new(&object.id)).to_string())
            .unwrap_or_else(|_| uid.to_string()),
    }
}
