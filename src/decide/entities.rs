//! Request entities, digested once and parsed once per policy set.
//!
//! Parsing entity JSON against the schema costs more than evaluating the policies, and hosts
//! send the same entities again and again (the project, its organization, its groups; often
//! only the user is new). So each entity is digested canonically (the digest also feeds the
//! decision-cache key), and parsed only the first time the live policy set sees that digest;
//! later requests reuse the parsed, schema-checked entity.

use std::collections::HashSet;
use std::sync::Arc;

use cedar_policy::{Entities, Entity, EntityUid};
use serde_json::Value;

use super::cache::{Key, digest_with};
use super::input::{InputError, Part, innermost, parse_uid, plain_entity, with_format_hint};
use crate::cedar_json::normalize_entity;
use crate::policy::Snapshot;

/// One list of entities (stored, shared by a batch, or a question's own), digested.
#[derive(Debug, Clone)]
pub struct Layer<'a> {
    field: &'a str,
    items: &'a [Value],
    /// Each entity's canonical digest, in order.
    pub digests: Vec<Key>,
}

impl<'a> Layer<'a> {
    /// The entities' JSON.
    pub fn items(&self) -> &'a [Value] {
        self.items
    }

    /// Checks the shape (a list of objects, each with a `uid`) and digests each entity.
    pub fn digest(field: &'a str, json: &'a Value) -> Result<Self, InputError> {
        let Value::Array(items) = json else {
            return Err(InputError::new(
                Part::Entities,
                field,
                format!("`{field}` must be a JSON array of entities, got `{json}`"),
            ));
        };
        let mut buf = Vec::with_capacity(1024);
        let digests = items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.get("uid") {
                Some(_) => Ok(digest_with(&mut buf, item)),
                None => Err(InputError::new(
                    Part::Entities,
                    format!("{field}[{i}]"),
                    format!("`{field}[{i}]` has no `uid`"),
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            field,
            items,
            digests,
        })
    }
}

/// Parsed entities by policy version and entity digest.
#[derive(Clone)]
pub struct EntityCache {
    inner: moka::sync::Cache<Key, Entity>,
}

impl std::fmt::Debug for EntityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntityCache")
    }
}

impl EntityCache {
    /// A cache of at most `capacity` parsed entities (0: none).
    pub fn new(capacity: u64) -> Self {
        Self {
            inner: moka::sync::Cache::new(capacity),
        }
    }

    /// How many parsed entities are cached (approximately: moka counts lazily).
    pub fn len(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }

    /// Whether no parsed entity is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the entity with this digest is parsed already (for the live policy set).
    pub fn contains(&self, snapshot: &Snapshot, digest: &Key) -> bool {
        self.inner
            .contains_key(&versioned(&snapshot.version, digest))
    }

    /// Parses a layer against the snapshot's schema, reusing entities parsed before. The same
    /// uid twice in one layer is an error.
    pub fn parse(&self, snapshot: &Snapshot, layer: &Layer<'_>) -> Result<Vec<Entity>, InputError> {
        let mut seen = HashSet::with_capacity(layer.items.len());
        let mut parsed = Vec::with_capacity(layer.items.len());
        for i in 0..layer.items.len() {
            let entity = self.entity(snapshot, layer, i)?;
            if !seen.insert(entity.uid()) {
                return Err(listed_twice(layer.field, i, &entity));
            }
            parsed.push(entity);
        }
        Ok(parsed)
    }

    /// Item `i` of `layer`, parsed (or as parsed before).
    fn entity(
        &self,
        snapshot: &Snapshot,
        layer: &Layer<'_>,
        i: usize,
    ) -> Result<Entity, InputError> {
        let (field, item) = (layer.field, &layer.items[i]);
        let key = versioned(&snapshot.version, &layer.digests[i]);
        if let Some(entity) = self.inner.get(&key) {
            return Ok(entity);
        }
        // Check the uid first, for an error that names the item.
        let uid = parse_uid(Part::Entities, &format!("{field}[{i}].uid"), &item["uid"])?;
        if let Some(entity) = plain_entity(item, &uid, &snapshot.catalog) {
            self.inner.insert(key, entity.clone());
            return Ok(entity);
        }
        // String uids and optional `attrs`/`parents`, as the suites take them.
        let item = normalize_entity(item, &snapshot.catalog).map_err(|m| {
            InputError::new(
                Part::Entities,
                format!("{field}[{i}]"),
                format!("`{field}[{i}]` (`{uid}`): {m}"),
            )
        })?;
        let entity = Entity::from_json_value(item, Some(&snapshot.schema)).map_err(|e| {
            InputError::new(
                Part::Entities,
                format!("{field}[{i}]"),
                format!(
                    "`{field}[{i}]` (`{uid}`): {}",
                    with_format_hint(innermost(&e))
                ),
            )
        })?;
        self.inner.insert(key, entity.clone());
        Ok(entity)
    }
}

fn listed_twice(field: &str, i: usize, entity: &Entity) -> InputError {
    InputError::new(
        Part::Entities,
        format!("{field}[{i}]"),
        format!("`{field}` lists entity `{}` twice", entity.uid()),
    )
}

fn versioned(version: &str, digest: &Key) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(version.as_bytes());
    h.update(digest);
    *h.finalize().as_bytes()
}

/// The store a question is decided on: the snapshot's stored entities (and the schema's
/// actions), or only those in `slice` (store indices, see [`super::slice`]), with
/// `shared`, then `own`, on top. An entity replaces the one with the same uid below it
/// (Cedar's upsert applies the last version of a uid). `own` is moved in; `shared` (a
/// batch's, reused by every question) is copied.
pub fn assemble(
    snapshot: &Snapshot,
    slice: Option<&[usize]>,
    shared: &[Entity],
    own: Vec<Entity>,
) -> Result<Entities, InputError> {
    let (base, stored) = match slice {
        None => (snapshot.entities.clone(), Vec::new()),
        Some(slice) => (
            Entities::empty(),
            slice
                .iter()
                .filter_map(|&at| snapshot.entities.get(snapshot.reach.uid(at)))
                .cloned()
                .collect(),
        ),
    };
    // Every entity was checked against the schema when parsed; only the transitive closure
    // is left to compute.
    base.upsert_entities(
        stored.into_iter().chain(shared.iter().cloned()).chain(own),
        None,
    )
    .map_err(|e| {
        InputError::new(
            Part::Entities,
            "entities",
            format!("entities: {}", with_format_hint(innermost(&e))),
        )
    })
}

/// Stores assembled before, by what they were assembled from.
///
/// A question's store is mostly what earlier questions' stores were: the usual miss is a new
/// user in a known project, so nine of its ten entities, and its slice of the store, are
/// those of a question seen before. Assembling copies every entity and recomputes Cedar's
/// transitive closure over all of them, which costs more than evaluating the policies. So
/// the store of the part seen before (the slice, the batch's entities and the question's
/// entities already parsed) is kept under a digest of exactly that, and only the new
/// entities are added to a copy of it with Cedar's upsert, which repairs the closure for
/// what they touch. `tests/it/properties.rs` checks that every store built this way is the
/// store assembled from scratch.
#[derive(Clone)]
pub struct StoreCache {
    inner: moka::sync::Cache<Key, Arc<Known>>,
}

/// A store assembled from a slice, a batch's entities and request entities parsed before,
/// with the uids of the latter (a new entity with one of them is the same uid listed twice).
struct Known {
    store: Arc<Entities>,
    own: HashSet<EntityUid>,
}

impl std::fmt::Debug for StoreCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCache")
    }
}

impl StoreCache {
    /// A cache of stores holding at most `slots` entities in all (0: none).
    pub fn new(slots: u64) -> Self {
        Self {
            inner: moka::sync::Cache::builder()
                .max_capacity(slots)
                .weigher(|_, known: &Arc<Known>| {
                    u32::try_from(known.store.len().max(1)).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// The store of a question on `slice` (sorted store indices) with a batch's `shared`
    /// entities (digested as `shared_set`) and its `own`: the store of the part seen before,
    /// from the cache or assembled and cached, with the new entities upserted into a copy.
    /// `None` when the cache is off or anything is irregular (an entity that does not parse,
    /// a uid listed twice, a store Cedar refuses): assembling from scratch reports it.
    pub fn assemble(
        &self,
        snapshot: &Snapshot,
        parsed: &EntityCache,
        slice: &[usize],
        shared: (Option<&Key>, &[Entity]),
        own: Option<&Layer<'_>>,
    ) -> Option<Arc<Entities>> {
        if self.inner.policy().max_capacity() == Some(0) {
            return None;
        }
        let digests = own.map_or(&[][..], |layer| &layer.digests[..]);
        let (known, new): (Vec<usize>, Vec<usize>) =
            (0..digests.len()).partition(|&i| parsed.contains(snapshot, &digests[i]));
        let key = known_key(
            snapshot,
            slice,
            shared.0,
            known.iter().map(|&i| &digests[i]),
        );
        let base = match self.inner.get(&key) {
            Some(base) => base,
            None => {
                let mut uids = HashSet::with_capacity(known.len());
                let mut entities = Vec::with_capacity(known.len());
                for &i in &known {
                    let entity = parsed.entity(snapshot, own?, i).ok()?;
                    if !uids.insert(entity.uid()) {
                        return None;
                    }
                    entities.push(entity);
                }
                let store = assemble(snapshot, Some(slice), shared.1, entities).ok()?;
                let base = Arc::new(Known {
                    store: Arc::new(store),
                    own: uids,
                });
                self.inner.insert(key, Arc::clone(&base));
                base
            }
        };
        if new.is_empty() {
            return Some(Arc::clone(&base.store));
        }
        let mut uids = HashSet::with_capacity(new.len());
        let mut entities = Vec::with_capacity(new.len());
        for &i in &new {
            let entity = parsed.entity(snapshot, own?, i).ok()?;
            if base.own.contains(&entity.uid()) || !uids.insert(entity.uid()) {
                return None;
            }
            entities.push(entity);
        }
        let store = Entities::clone(&base.store)
            .upsert_entities(entities, None)
            .ok()?;
        Some(Arc::new(store))
    }
}

/// What a known store was assembled from: the policy version (the schema and the stored
/// entities), the slice, the batch's entity set and the digests of the question's own
/// entities seen before, sorted (a question's entities have distinct uids, so their order
/// does not change the store).
fn known_key<'a>(
    snapshot: &Snapshot,
    slice: &[usize],
    shared: Option<&Key>,
    known: impl Iterator<Item = &'a Key>,
) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(snapshot.version.as_bytes());
    h.update(&(slice.len() as u64).to_le_bytes());
    for &at in slice {
        h.update(&(at as u64).to_le_bytes());
    }
    match shared {
        Some(set) => h.update(&[1]).update(set),
        None => h.update(&[0]),
    };
    let mut known: Vec<&Key> = known.collect();
    known.sort_unstable();
    for digest in known {
        h.update(digest);
    }
    *h.finalize().as_bytes()
}
