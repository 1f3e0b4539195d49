//! Entities read from the entity database for each question (`--entities-db`): what the
//! question names (its principal, resource and the uids of its context), then what those
//! entities reference (their entity-valued attributes and their parents), level by level,
//! each level one statement per type (`WHERE id IN (…)`), until nothing new is named. The
//! entities a request sends are merged in: by default they only add what the database
//! lacks (`--request-entities add`), so that a request cannot decide on a forged copy of an
//! entity the database holds.
//!
//! Nothing read here is cached yet: every question reads what it needs, so an answer is
//! always as of the database's last commit. The decision cache stays exact on its own: its
//! key holds the bytes of every entity a decision was made on.

use std::collections::BTreeSet;

use gatehouse_source::Source;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::RequestEntities;
use crate::decide::{EntityList, Question, Uid};
use crate::http::error::{ApiError, ErrorCode};

/// Levels of references followed at most; what lies deeper is not read (and a decision that
/// needs it is made without it, naming it in `missing`).
const MAX_LEVELS: usize = 8;

/// The entity database of a running sidecar.
#[derive(Debug)]
pub struct Sourced {
    source: Source,
    requests: RequestEntities,
}

/// A (type, id) pair, as the database keys entities.
type Named = (String, String);

impl Sourced {
    /// Reads `source` for every question; `requests` says what a request's entities do.
    pub fn new(source: Source, requests: RequestEntities) -> Self {
        Self { source, requests }
    }

    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// `question` with the entities the database holds for it among its own.
    pub async fn question(&self, question: &mut Question) -> Result<(), ApiError> {
        let roots = roots(
            &[&question.principal, &question.resource],
            question.context.as_ref(),
        );
        let loaded = self.reach(roots).await?;
        question.entities = self.merged(loaded, question.entities.as_ref());
        Ok(())
    }

    /// A batch's shared entities with what the database holds for every question in it;
    /// each question's own entities lose those the database holds (unless a request may
    /// override them).
    pub async fn batch(
        &self,
        questions: Vec<&mut Question>,
        shared: Option<&EntityList>,
    ) -> Result<Option<EntityList>, ApiError> {
        let mut all = BTreeSet::new();
        for question in &questions {
            all.extend(roots(
                &[&question.principal, &question.resource],
                question.context.as_ref(),
            ));
        }
        let loaded = self.reach(all).await?;
        if self.requests == RequestEntities::Add {
            let held: BTreeSet<Named> = loaded.iter().filter_map(uid_of).collect();
            for question in questions {
                if let Some(own) = &question.entities {
                    question.entities = Some(self.without(own, &held));
                }
            }
        }
        Ok(self.merged(loaded, shared))
    }

    /// `list` without the entities whose uids are `held`.
    fn without(&self, list: &EntityList, held: &BTreeSet<Named>) -> EntityList {
        let Ok(items) = list.items() else {
            return list.clone();
        };
        let kept: Vec<Value> = items
            .iter()
            .filter_map(|raw| serde_json::from_str::<Value>(raw.get()).ok())
            .filter(|entity| uid_of(entity).is_none_or(|uid| !held.contains(&uid)))
            .collect();
        EntityList::from(Value::Array(kept))
    }

    /// `sent` with `roots` and what they reference, as read from the database.
    pub async fn entities(
        &self,
        roots: BTreeSet<Named>,
        sent: Option<&EntityList>,
    ) -> Result<Option<EntityList>, ApiError> {
        let loaded = self.reach(roots).await?;
        Ok(self.merged(loaded, sent))
    }

    /// The entities the database holds for `roots` and everything they reference, level by
    /// level.
    async fn reach(&self, roots: BTreeSet<Named>) -> Result<Vec<Value>, ApiError> {
        let binding = self.source.binding();
        let mut seen: BTreeSet<Named> = BTreeSet::new();
        let mut frontier = roots;
        let mut loaded = Vec::new();
        for _ in 0..MAX_LEVELS {
            frontier.retain(|(ty, id)| {
                binding.of(ty).is_some() && !seen.contains(&(ty.clone(), id.clone()))
            });
            if frontier.is_empty() {
                break;
            }
            seen.extend(frontier.iter().cloned());
            let level = self
                .source
                .load_named(&frontier)
                .await
                .map_err(unavailable)?;
            let mut next = BTreeSet::new();
            for entity in &level {
                in_json(entity, &mut next);
            }
            loaded.extend(level);
            frontier = next;
        }
        Ok(loaded)
    }

    /// The database's entities with the request's: by default, a request's entity whose
    /// uid the database holds is dropped; with `--request-entities override`, the
    /// database's is.
    fn merged(&self, loaded: Vec<Value>, sent: Option<&EntityList>) -> Option<EntityList> {
        let sent_items = sent.and_then(|list| list.items().ok());
        if loaded.is_empty() {
            return sent.cloned();
        }
        let sent_parsed: Vec<(Option<Named>, &RawValue)> = sent_items
            .into_iter()
            .flatten()
            .map(|raw| {
                let uid = serde_json::from_str::<Value>(raw.get())
                    .ok()
                    .and_then(|v| uid_of(&v));
                (uid, raw.as_ref())
            })
            .collect();
        let loaded_uids: BTreeSet<Named> = loaded.iter().filter_map(uid_of).collect();
        let sent_uids: BTreeSet<Named> = sent_parsed
            .iter()
            .filter_map(|(uid, _)| uid.clone())
            .collect();
        let mut items: Vec<Value> = Vec::with_capacity(loaded.len() + sent_parsed.len());
        for entity in loaded {
            let replaced = self.requests == RequestEntities::Override
                && uid_of(&entity).is_some_and(|uid| sent_uids.contains(&uid));
            if !replaced {
                items.push(entity);
            }
        }
        for (uid, raw) in sent_parsed {
            let shadowed = self.requests == RequestEntities::Add
                && uid.is_some_and(|uid| loaded_uids.contains(&uid));
            if !shadowed {
                // A request's entity as it came; one that does not read is the decider's
                // to refuse, naming it.
                items.push(
                    serde_json::from_str(raw.get())
                        .unwrap_or_else(|_| Value::String(raw.get().to_owned())),
                );
            }
        }
        Some(EntityList::from(Value::Array(items)))
    }
}

/// The (type, id) of an entity's JSON.
fn uid_of(entity: &Value) -> Option<Named> {
    let uid = entity.get("uid")?;
    let mut found = BTreeSet::new();
    in_json(uid, &mut found);
    found.into_iter().next()
}

/// The database unreachable or failing: a 503 the host may retry, never a decision.
fn unavailable(error: gatehouse_source::SourceError) -> ApiError {
    tracing::warn!(%error, "the entity database did not answer");
    ApiError::new(
        ErrorCode::EntitiesUnavailable,
        format!("the entity database did not answer: {error}"),
    )
}

/// What a question names: its `uids` (principal, resource), and the uids of its context.
pub(crate) fn roots(uids: &[&Uid], context: Option<&Value>) -> BTreeSet<Named> {
    let mut roots = BTreeSet::new();
    for uid in uids {
        named(uid, &mut roots);
    }
    if let Some(context) = context {
        in_json(context, &mut roots);
    }
    roots
}

/// The (type, id) a question's uid names; an action's id alone names none.
fn named(uid: &Uid, into: &mut BTreeSet<Named>) {
    match uid {
        Uid::Object(object) => {
            into.insert((object.ty.clone(), object.id.clone()));
        }
        Uid::Text(text) => crate::cedar_json::text_uid_shape(text, &mut |ty, id| {
            into.insert((ty.to_string(), id.to_string()));
        }),
    }
}

/// Every uid in `json` (Cedar's uid objects, `__entity` references, `Type::"id"` strings).
fn in_json(json: &Value, into: &mut BTreeSet<Named>) {
    crate::cedar_json::uid_shapes(json, &mut |ty, id| {
        into.insert((ty.to_string(), id.to_string()));
    });
}
