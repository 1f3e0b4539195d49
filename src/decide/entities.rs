//! Request entities, digested once and parsed once per policy set.
//!
//! Parsing entity JSON against the schema costs more than evaluating the policies, and hosts
//! send the same entities again and again (the project, its organization, its groups; often
//! only the user is new). So each entity is digested canonically (the digest also feeds the
//! decision-cache key), and parsed only the first time the live policy set sees that digest;
//! later requests reuse the parsed, schema-checked entity.

use std::collections::HashSet;

use cedar_policy::{Entities, Entity, EntityUid};
use serde_json::Value;

use super::cache::{Key, digest_with};
use super::input::{InputError, Part, innermost, parse_uid, with_format_hint};
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

    /// Parses a layer against the snapshot's schema, reusing entities parsed before. The same
    /// uid twice in one layer is an error.
    pub fn parse(&self, snapshot: &Snapshot, layer: &Layer<'_>) -> Result<Vec<Entity>, InputError> {
        let field = layer.field;
        let mut seen = HashSet::with_capacity(layer.items.len());
        let mut parsed = Vec::with_capacity(layer.items.len());
        for (i, (item, digest)) in layer.items.iter().zip(&layer.digests).enumerate() {
            let key = versioned(&snapshot.version, digest);
            let entity = match self.inner.get(&key) {
                Some(entity) => entity,
                None => {
                    // Check the uid first, for an error that names the item.
                    let uid =
                        parse_uid(Part::Entities, &format!("{field}[{i}].uid"), &item["uid"])?;
                    // String uids and optional `attrs`/`parents`, as the suites take them.
                    let item = normalize_entity(item, &snapshot.catalog).map_err(|m| {
                        InputError::new(
                            Part::Entities,
                            format!("{field}[{i}]"),
                            format!("`{field}[{i}]` (`{uid}`): {m}"),
                        )
                    })?;
                    let entity =
                        Entity::from_json_value(item, Some(&snapshot.schema)).map_err(|e| {
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
                    entity
                }
            };
            if !seen.insert(entity.uid()) {
                return Err(InputError::new(
                    Part::Entities,
                    format!("{field}[{i}]"),
                    format!("`{field}` lists entity `{}` twice", entity.uid()),
                ));
            }
            parsed.push(entity);
        }
        Ok(parsed)
    }
}

fn versioned(version: &str, digest: &Key) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(version.as_bytes());
    h.update(digest);
    *h.finalize().as_bytes()
}

/// The store a question is decided on: the snapshot's stored entities (and the schema's
/// actions), or only those in `slice` (the question's, see [`super::slice`]), with
/// `shared`, then `own`, on top. An entity replaces the one with the same uid below it
/// (Cedar's upsert applies the last version of a uid). `own` is moved in; `shared` (a
/// batch's, reused by every question) is copied.
pub fn assemble(
    snapshot: &Snapshot,
    slice: Option<&[&EntityUid]>,
    shared: &[Entity],
    own: Vec<Entity>,
) -> Result<Entities, InputError> {
    let (base, stored) = match slice {
        None => (snapshot.entities.clone(), Vec::new()),
        Some(slice) => (
            Entities::empty(),
            slice
                .iter()
                .filter_map(|uid| snapshot.entities.get(uid))
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
