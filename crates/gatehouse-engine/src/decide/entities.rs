//! Request entities, digested once and parsed once per policy set.
//!
//! Parsing entity JSON against the schema costs more than evaluating the policies, and hosts
//! send the same entities again and again (the project, its organization, its groups; often
//! only the user is new). So each entity is digested from its bytes as they came (the
//! digest also feeds the decision-cache key), and read and parsed only the first time the
//! live policy set sees those bytes; later requests reuse the parsed, schema-checked entity
//! and what it names in the store.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cedar_policy::{Entities, Entity};
use cedar_policy_core::ast;
use cedar_policy_core::entities::{
    Dereference, Entities as CoreEntities, NoEntitiesSchema, TCComputation,
};
use cedar_policy_core::extensions::Extensions;
use serde_json::Value;
use serde_json::value::RawValue;

use super::cache::{Bounded, Budget, Key, Weight, bounded, weighed};
use super::input::{
    InputError, Part, innermost, parse_uid, plain_entity, plain_entity_of, with_format_hint,
};
use super::raw::{EntityList, PlainText};
use super::slice::{named_by_entity, named_by_plain};
use crate::cedar_json::normalize_entity;
use crate::json_keys::{Skip, duplicate_key, strict_from_str};
use crate::policy::Snapshot;

/// One list of entities (stored, shared by a batch, or a question's own), digested.
#[derive(Debug, Clone)]
pub struct Layer<'a> {
    field: &'a str,
    items: &'a [Box<RawValue>],
    /// Each entity's digest under the policy version it is asked of (blake3 of its bytes as
    /// they came, keyed by the version's digest), in order.
    pub digests: Vec<Key>,
}

impl<'a> Layer<'a> {
    /// Checks that `list` is a list and digests each entity for the policy set with this
    /// `version`: an entity parsed under one set is never taken for one parsed under another.
    pub fn digest(version: &str, field: &'a str, list: &'a EntityList) -> Result<Self, InputError> {
        let items = list.items().map_err(|json| {
            InputError::new(
                Part::Entities,
                field,
                format!("`{field}` must be a JSON array of entities, got `{json}`"),
            )
        })?;
        let version = blake3::hash(version.as_bytes());
        let digests = items
            .iter()
            .map(|raw| *blake3::keyed_hash(version.as_bytes(), raw.get().as_bytes()).as_bytes())
            .collect();
        Ok(Self {
            field,
            items,
            digests,
        })
    }
}

/// A request entity, parsed against the schema, with what it names in the store.
#[derive(Debug)]
pub struct Parsed {
    /// The entity.
    pub entity: Entity,
    /// The store entities its data names (store indices, see [`super::slice`]), or `None`
    /// when it has the uid of a store entity (it replaces that entity).
    pub named: Option<Box<[usize]>>,
    /// What it costs in memory, estimated from its text ([`entity_weight`]).
    pub weight: u64,
}

/// The estimated bytes of a parsed entity whose JSON text is `text_len` bytes long, and of
/// its copy in a store: Cedar keeps its uid and every string it holds (three times, with
/// the copies a store makes and the key of its map), and a map per entity.
pub fn entity_weight(text_len: usize) -> u64 {
    3 * text_len as u64 + 1024
}

/// What one stored entity copied into an assembled store costs: its maps (its strings
/// are shared with the snapshot's).
const STORED_ENTITY_WEIGHT: u64 = 512;

impl Weight for Parsed {
    fn weight(&self) -> u64 {
        self.weight
    }
}

/// A layer's entities, parsed or found parsed, in order, each with whether the cache held
/// it before.
#[derive(Debug)]
pub struct Resolved {
    /// The entities.
    pub parsed: Vec<Arc<Parsed>>,
    /// Whether each was parsed before this layer asked for it.
    pub known: Vec<bool>,
}

impl Resolved {
    /// The store entities the layer's entities name, or `None` when one replaces a store
    /// entity (see [`Parsed::named`]).
    pub fn named(&self) -> Option<Vec<usize>> {
        let mut named = Vec::new();
        for parsed in &self.parsed {
            named.extend_from_slice(parsed.named.as_deref()?);
        }
        Some(named)
    }

    /// Copies of the entities, for a store.
    pub fn entities(&self) -> Vec<Entity> {
        self.parsed.iter().map(|p| p.entity.clone()).collect()
    }
}

/// Parsed entities by entity digest (which is bound to the policy version, see
/// [`Layer::digests`]).
#[derive(Clone)]
pub struct EntityCache {
    /// `None` when nothing is cached.
    inner: Option<Arc<Bounded<Arc<Parsed>>>>,
}

impl std::fmt::Debug for EntityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntityCache")
    }
}

impl EntityCache {
    /// A cache of parsed entities within `budget`.
    pub fn new(budget: Budget) -> Self {
        Self {
            inner: bounded(budget),
        }
    }

    /// The weight of the entities held, in bytes.
    pub fn weight(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| inner.weight())
    }

    /// How many parsed entities are cached.
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| inner.len() as u64)
    }

    /// Whether no parsed entity is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parses a layer against the snapshot's schema, reusing entities parsed before. The same
    /// uid twice in one layer is an error.
    #[expect(
        clippy::indexing_slicing,
        reason = "`i` ranges over the layer's own items, which `digests` holds one for each"
    )]
    pub fn resolve(&self, snapshot: &Snapshot, layer: &Layer<'_>) -> Result<Resolved, InputError> {
        let n = layer.items.len();
        let mut resolved = Resolved {
            parsed: Vec::with_capacity(n),
            known: Vec::with_capacity(n),
        };
        let mut seen = HashSet::with_capacity_and_hasher(n, foldhash::fast::RandomState::default());
        for (i, raw) in layer.items.iter().enumerate() {
            let key = layer.digests[i];
            let cached = self.inner.as_ref().and_then(|inner| inner.get(&key));
            let (parsed, known) = match cached {
                Some(parsed) => (parsed, true),
                None => {
                    let parsed = Arc::new(Parsed {
                        weight: entity_weight(raw.get().len()),
                        ..parse(snapshot, layer.field, i, raw)?
                    });
                    if let Some(inner) = &self.inner {
                        inner.insert(key, Arc::clone(&parsed));
                    }
                    (parsed, false)
                }
            };
            if !seen.insert(parsed.entity.uid()) {
                return Err(InputError::new(
                    Part::Entities,
                    format!("{}[{i}]", layer.field),
                    format!(
                        "`{}` lists entity `{}` twice",
                        layer.field,
                        parsed.entity.uid()
                    ),
                ));
            }
            resolved.parsed.push(parsed);
            resolved.known.push(known);
        }
        Ok(resolved)
    }
}

/// Item `i` of the list in `field`, read and parsed against the snapshot's schema: straight
/// from its text when it is plain ([`plain_from_text`]), through a tree otherwise
/// ([`parse_tree`]).
fn parse(snapshot: &Snapshot, field: &str, i: usize, raw: &RawValue) -> Result<Parsed, InputError> {
    if let Some(parsed) = plain_from_text(snapshot, raw.get()) {
        return Ok(parsed);
    }
    // The plain shape's reader refuses a key written twice (the entity is then read here);
    // the tree is read refusing it too, where `Value` would keep the last.
    let item: Value = strict_from_str(raw.get()).map_err(|e| {
        let at = format!("{field}[{i}]");
        match duplicate_key(raw.get().as_bytes(), Skip::Nothing) {
            Some(path) => {
                let at = format!("{at}.{path}");
                InputError::new(
                    Part::Entities,
                    at.clone(),
                    format!("`{at}` is written twice: a key may appear only once in an object"),
                )
            }
            None => InputError::new(Part::Entities, &at, format!("`{at}` cannot be read: {e}")),
        }
    })?;
    parse_tree(snapshot, field, i, &item)
}

/// A request entity in the plain shape (see [`plain_entity_of`]) read and built from its
/// text, with no tree, with what it names in the store; `None` for anything else. Public so
/// that tests can hold it to [`parse_tree`].
pub fn plain_from_text(snapshot: &Snapshot, text: &str) -> Option<Parsed> {
    let plain = PlainText::read(text)?;
    let text = plain.uid.as_ref()?;
    let uid = text.to_declared_uid(&snapshot.catalog)?;
    let entity = plain_entity_of(&plain, &uid, &text.ty, &snapshot.catalog)?;
    let named = named_by_plain(&snapshot.reach, &plain).map(Vec::into_boxed_slice);
    Some(Parsed {
        entity,
        named,
        weight: 0,
    })
}

/// Item `i` of the list in `field`, from its tree, parsed against the snapshot's schema.
pub fn parse_tree(
    snapshot: &Snapshot,
    field: &str,
    i: usize,
    item: &Value,
) -> Result<Parsed, InputError> {
    let at = format!("{field}[{i}]");
    let Some(uid) = item.get("uid") else {
        return Err(InputError::new(
            Part::Entities,
            at.clone(),
            format!("`{at}` has no `uid`"),
        ));
    };
    let uid = parse_uid(Part::Entities, &format!("{at}.uid"), uid)?;
    let named = named_by_entity(&snapshot.reach, item).map(Vec::into_boxed_slice);
    if let Some(entity) = plain_entity(item, &uid, &snapshot.catalog) {
        return Ok(Parsed {
            entity,
            named,
            weight: 0,
        });
    }
    // String uids and optional `attrs`/`parents`, as the suites take them.
    let item = normalize_entity(item, &snapshot.catalog).map_err(|m| {
        InputError::new(Part::Entities, at.clone(), format!("`{at}` (`{uid}`): {m}"))
    })?;
    let entity = Entity::from_json_value(item, Some(&snapshot.schema)).map_err(|e| {
        InputError::new(
            Part::Entities,
            at.clone(),
            format!("`{at}` (`{uid}`): {}", with_format_hint(innermost(&e))),
        )
    })?;
    Ok(Parsed {
        entity,
        named,
        weight: 0,
    })
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
/// entities are added to a copy of it (their closure computed from it, see `add_closed`).
/// `tests/it/stores.rs` checks that every store built this way is the store assembled from
/// scratch.
#[derive(Clone)]
pub struct StoreCache {
    inner: moka::sync::Cache<Key, Arc<Known>>,
}

/// A store assembled from a slice, a batch's entities and request entities parsed before,
/// with the uids its entities have as ancestors but it does not hold: an entity added with
/// one of them would change those entities' closure.
struct Known {
    store: Arc<Entities>,
    dangling: HashSet<ast::EntityUID>,
    /// What it costs in memory: its request entities' weights, and its stored entities'.
    weight: u64,
}

impl Known {
    fn new(store: Entities, weight: u64) -> Self {
        let core: &CoreEntities = store.as_ref();
        let dangling: HashSet<ast::EntityUID> = core
            .iter()
            .flat_map(ast::Entity::ancestors)
            .filter(|uid| !matches!(core.entity(uid), Dereference::Data(_)))
            .cloned()
            .collect();
        let weight = weight + 64 * dangling.len() as u64;
        Self {
            store: Arc::new(store),
            dangling,
            weight,
        }
    }
}

impl std::fmt::Debug for StoreCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCache")
    }
}

impl StoreCache {
    /// A cache of at most `budget.count` stores, of `budget.bytes` in all.
    pub fn new(budget: Budget) -> Self {
        Self {
            inner: weighed(budget, |known: &Arc<Known>| known.weight).build(),
        }
    }

    /// The weight of the stores held, in bytes (as of moka's last housekeeping).
    pub fn weight(&self) -> u64 {
        self.inner.weighted_size()
    }

    /// The store of a question on `slice` (sorted store indices) with a batch's entities
    /// (`shared`: the digest of its set, the entities and their weight) and its `own` entities (digested,
    /// resolved; their uids are distinct): the store of the part seen before, from the
    /// cache or assembled and cached, with the new entities added to a copy. `None` when the
    /// cache is off or Cedar refuses a store: assembling from scratch reports it.
    #[expect(
        clippy::indexing_slicing,
        reason = "every index is a position in the layer's items, for which `digests`, `known` and `resolved` each hold one"
    )]
    pub fn assemble(
        &self,
        snapshot: &Snapshot,
        slice: &[usize],
        shared: (Option<&Key>, &[Entity], u64),
        own: Option<(&Layer<'_>, &Resolved)>,
    ) -> Option<Arc<Entities>> {
        if self.inner.policy().max_capacity() == Some(0) {
            return None;
        }
        let (digests, resolved) = match own {
            Some((layer, resolved)) => (&layer.digests[..], &resolved.parsed[..]),
            None => (&[][..], &[][..]),
        };
        let known = |i: &usize| own.is_some_and(|(_, r)| r.known[*i]);
        let key = known_key(
            snapshot,
            slice,
            shared.0,
            (0..digests.len()).filter(known).map(|i| &digests[i]),
        );
        let base = match self.inner.get(&key) {
            Some(base) => base,
            None => {
                let entities = (0..resolved.len())
                    .filter(known)
                    .map(|i| resolved[i].entity.clone());
                let weight = (0..resolved.len())
                    .filter(known)
                    .map(|i| resolved[i].weight)
                    .sum::<u64>()
                    + shared.2
                    + STORED_ENTITY_WEIGHT * slice.len() as u64;
                let store = assemble(snapshot, Some(slice), shared.1, entities.collect()).ok()?;
                let base = Arc::new(Known::new(store, weight));
                self.inner.insert(key, Arc::clone(&base));
                base
            }
        };
        let new: Vec<&Entity> = (0..resolved.len())
            .filter(|i| !known(i))
            .map(|i| &resolved[i].entity)
            .collect();
        if new.is_empty() {
            return Some(Arc::clone(&base.store));
        }
        if let Some(store) = add_closed(&base, &new) {
            return Some(Arc::new(store));
        }
        let store = Entities::clone(&base.store)
            .upsert_entities(new.into_iter().cloned(), None)
            .ok()?;
        Some(Arc::new(store))
    }
}

/// `new` added to a copy of `known`'s store, with their transitive closure computed here
/// from the closed store and from each other, instead of Cedar's upsert, which collects every
/// stored entity's ancestors into a new set and walks the store again whatever is added
/// (about 3 600 instructions per stored entity, BENCHMARKS.md). The closure of the stored
/// entities does not change when no new entity is one of their ancestors (`dangling`) or
/// replaces one of them; then each new entity's ancestors are its parents and theirs (a
/// stored parent's already closed). `None` when a new entity replaces a stored one, is a
/// dangling ancestor, or is its own ancestor: Cedar's upsert handles (or refuses) those.
fn add_closed(known: &Known, new: &[&Entity]) -> Option<Entities> {
    let base: &CoreEntities = known.store.as_ref().as_ref();
    let new: Vec<&ast::Entity> = new.iter().map(|e| (*e).as_ref()).collect();
    let at: HashMap<&ast::EntityUID, usize> =
        new.iter().enumerate().map(|(i, e)| (e.uid(), i)).collect();
    if at.len() != new.len()
        || at.keys().any(|uid| {
            known.dangling.contains(*uid) || matches!(base.entity(uid), Dereference::Data(_))
        })
    {
        return None;
    }
    let mut closures: Vec<Option<HashSet<ast::EntityUID>>> = vec![None; new.len()];
    let mut open = vec![false; new.len()];
    for i in 0..new.len() {
        close(i, 0, &new, &at, base, &mut closures, &mut open)?;
    }
    let added = new.iter().zip(closures).map(|(entity, closure)| {
        let mut entity = (*entity).clone();
        for ancestor in closure.into_iter().flatten() {
            entity.add_indirect_ancestor(ancestor);
        }
        Arc::new(entity)
    });
    base.clone()
        .add_entities(
            added,
            None::<&NoEntitiesSchema>,
            TCComputation::AssumeAlreadyComputed,
            Extensions::all_available(),
        )
        .ok()
        .map(Entities::from)
}

/// How deep a chain of new entities (each the parent of the one before) [`close`] follows;
/// a deeper one is left to Cedar's upsert, so that the walk's stack stays small.
const CHAIN: usize = 64;

/// Computes `closures[i]`, the ancestors of new entity `i` (see [`add_closed`]), `depth`
/// new entities down a chain of parents; `None` on a cycle through it or a chain deeper
/// than [`CHAIN`].
#[expect(
    clippy::indexing_slicing,
    reason = "`i` and `j` are positions in `new`, for which `open` and `closures` were made the same length"
)]
fn close(
    i: usize,
    depth: usize,
    new: &[&ast::Entity],
    at: &HashMap<&ast::EntityUID, usize>,
    base: &CoreEntities,
    closures: &mut [Option<HashSet<ast::EntityUID>>],
    open: &mut [bool],
) -> Option<()> {
    if closures[i].is_some() {
        return Some(());
    }
    if depth > CHAIN || std::mem::replace(&mut open[i], true) {
        return None;
    }
    let mut ancestors = HashSet::new();
    for parent in new[i].parents() {
        ancestors.insert(parent.clone());
        if let Some(&j) = at.get(parent) {
            close(j, depth + 1, new, at, base, closures, open)?;
            ancestors.extend(closures[j].iter().flatten().cloned());
        } else if let Dereference::Data(stored) = base.entity(parent) {
            ancestors.extend(stored.ancestors().cloned());
        }
    }
    if ancestors.contains(new[i].uid()) {
        return None;
    }
    open[i] = false;
    closures[i] = Some(ancestors);
    Some(())
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
    h.update(snapshot.inputs.as_bytes());
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
