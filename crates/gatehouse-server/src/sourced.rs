//! Entities read from the entity database for each question (`--entities-db`): what the
//! question names (its principal, resource and the uids of its context), then what those
//! entities reference (their entity-valued attributes and their parents), level by level,
//! each level one statement per type (`WHERE id IN (…)`), until nothing new is named. The
//! entities a request sends are merged in: by default they only add what the database
//! lacks (`--request-entities add`), so that a request cannot decide on a forged copy of an
//! entity the database holds.
//!
//! **Exact caching.** When the source says what changed in commit order (SQLite's change
//! log, [`gatehouse_source::changes`]), what is read is kept in an entity cache (an absent
//! entity too) that a follower task keeps exact: it reads each change after the position it
//! applied, drops exactly the changed entities, and advances the position. An entity read
//! from the database is cached only when no change to it was applied since the question
//! started (checked and inserted under the lock its change takes, so a change applied
//! between the read and the insert is never lost). Every answer is as of the position
//! applied when its question started, or later: `entities_at`. A follower that has not read
//! the change log for `--max-staleness` makes questions answer 503 `entities_unavailable`
//! rather than decide on what may be stale. Without a change log (PostgreSQL, for now),
//! every question reads the database. The decision cache stays exact on its own: its key
//! holds the bytes of every entity a decision was made on.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_source::Source;
use gatehouse_source::changes::{Since, Wakeup};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::RequestEntities;
use crate::decide::{EntityList, Question, Uid};
use crate::http::error::{ApiError, ErrorCode};
use gatehouse_api::{Consistency, ConsistencyMode};

/// Levels of references followed at most; what lies deeper is not read (and a decision that
/// needs it is made without it, naming it in `missing`).
const MAX_LEVELS: usize = 8;

/// The entity database of a running sidecar.
#[derive(Debug)]
pub struct Sourced {
    source: Source,
    requests: RequestEntities,
    /// The cache kept exact by the change log, when the source has one.
    followed: Option<Arc<Followed>>,
    /// The follower task, stopped with the sidecar.
    follower: Option<tokio::task::AbortHandle>,
    /// How long a question waits for the position its token names.
    consistency_wait: Duration,
}

impl Drop for Sourced {
    fn drop(&mut self) {
        if let Some(follower) = &self.follower {
            follower.abort();
        }
    }
}

/// How the change log is followed and what is kept of it.
#[derive(Debug, Clone, Copy)]
pub struct Following {
    /// Most entities cached.
    pub capacity: u64,
    /// The longest the change log may go unread before questions are refused.
    pub max_staleness: Duration,
    /// How long a question waits for the position its token names.
    pub consistency_wait: Duration,
    /// How often commits are looked for.
    pub poll: Duration,
}

/// Locks striping the cache's keys: a change to a key and a read's insert of it take the
/// same one.
const STRIPES: usize = 1024;

/// Changes read from the change log at once.
const CHANGES_AT_ONCE: i64 = 1000;

/// What the database held, as of the position applied, kept exact by its change log.
#[derive(Debug)]
pub struct Followed {
    /// Each entity read (`None`: the database does not hold it), by (type, id).
    entities: moka::sync::Cache<Named, Option<Arc<Value>>>,
    /// The position of the last change applied.
    applied: AtomicI64,
    /// Per stripe of keys, the position of the last change applied to a key of it.
    stripes: Vec<Mutex<i64>>,
    hasher: std::hash::RandomState,
    /// When the change log was last read in full.
    synced: Mutex<Instant>,
    /// The longest the change log may go unread before questions are refused.
    max_staleness: Duration,
    /// The position applied, for those who wait for one.
    position: tokio::sync::watch::Sender<i64>,
}

impl Followed {
    #[expect(
        clippy::indexing_slicing,
        reason = "the index is taken modulo `STRIPES`, the length of `stripes`"
    )]
    fn stripe(&self, key: &Named) -> &Mutex<i64> {
        let index = (self.hasher.hash_one(key) as usize) % STRIPES;
        &self.stripes[index]
    }

    /// Applies `changes`, in order: each changed entity dropped from the cache.
    fn apply(&self, changes: &[gatehouse_source::changes::Change]) {
        let Some(last) = changes.last() else {
            return;
        };
        for change in changes {
            let key = (change.entity_type.clone(), change.id.clone());
            let mut stripe = self
                .stripe(&key)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *stripe = change.seq;
            self.entities.invalidate(&key);
        }
        self.applied.store(last.seq, Ordering::SeqCst);
        self.position.send_replace(last.seq);
    }

    /// Starts again from `position` with nothing cached (the log was pruned past what was
    /// applied).
    fn restart(&self, position: i64) {
        for stripe in &self.stripes {
            *stripe.lock().unwrap_or_else(PoisonError::into_inner) = position;
        }
        self.entities.invalidate_all();
        self.applied.store(position, Ordering::SeqCst);
        self.position.send_replace(position);
    }

    /// Caches `value` for `key`, read by a question that started at position `started`,
    /// unless a change to the key was applied since.
    fn admit(&self, key: Named, value: Option<Arc<Value>>, started: i64) {
        let stripe = self
            .stripe(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *stripe <= started {
            self.entities.insert(key, value);
        }
    }

    /// Refuses a question when the change log has gone unread too long.
    fn fresh(&self) -> Result<(), ApiError> {
        let synced = *self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        let since = synced.elapsed();
        if since <= self.max_staleness {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::EntitiesUnavailable,
            format!(
                "the entity database's changes have not been read for {} ms (more than --max-staleness, {} ms): what is cached may be stale",
                since.as_millis(),
                self.max_staleness.as_millis()
            ),
        ))
    }
}

/// Follows the change log of `source` into `followed`, until aborted: woken by commits of
/// other connections, reading every change after the position applied. A failure is
/// logged and retried; while it lasts, the position stops and questions are refused after
/// `--max-staleness`.
async fn follow(url: String, source: Source, followed: Arc<Followed>, poll: Duration) {
    let mut wakeup: Option<Wakeup> = None;
    // Whether the log must be read whatever the wakeup says: at start and after a failure.
    let mut first = true;
    loop {
        let step = async {
            let wake = match &mut wakeup {
                Some(wake) => wake,
                None => wakeup.insert(Wakeup::open(&url).await?),
            };
            if wake.committed().await? || first {
                loop {
                    let applied = followed.applied.load(Ordering::SeqCst);
                    match source.changes_since(applied, CHANGES_AT_ONCE).await? {
                        Since::Changes(changes) if changes.is_empty() => break,
                        Since::Changes(changes) => followed.apply(&changes),
                        Since::Gap(position) => {
                            tracing::warn!(
                                applied,
                                position,
                                "the change log was pruned past the position applied: the entity cache starts again"
                            );
                            followed.restart(position);
                        }
                    }
                }
            }
            *followed
                .synced
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
            Ok::<(), gatehouse_source::SourceError>(())
        };
        match step.await {
            Ok(()) => {
                first = false;
                tokio::time::sleep(poll).await;
            }
            Err(error) => {
                tracing::warn!(%error, "reading the entity database's changes failed; retrying");
                // A new connection's first look finds nothing "since": read the log anyway,
                // for what was committed while none was looking.
                wakeup = None;
                first = true;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A (type, id) pair, as the database keys entities.
type Named = (String, String);

impl Sourced {
    /// Reads `source` for every question; `requests` says what a request's entities do.
    /// A source with a change log is followed from its current position, and what is read
    /// cached (at most `capacity` entities); `max_staleness` bounds how long the log may go
    /// unread. Starts the follower on the current runtime.
    pub async fn new(
        source: Source,
        requests: RequestEntities,
        following: Following,
    ) -> Result<Self, gatehouse_source::SourceError> {
        let Following {
            capacity,
            max_staleness,
            consistency_wait,
            poll,
        } = following;
        if !source.follows_changes() {
            return Ok(Self {
                source,
                requests,
                followed: None,
                follower: None,
                consistency_wait,
            });
        }
        let position = source.position().await?;
        let followed = Arc::new(Followed {
            entities: moka::sync::Cache::new(capacity),
            applied: AtomicI64::new(position),
            stripes: (0..STRIPES).map(|_| Mutex::new(position)).collect(),
            hasher: std::hash::RandomState::new(),
            synced: Mutex::new(Instant::now()),
            max_staleness,
            position: tokio::sync::watch::Sender::new(position),
        });
        let task = tokio::spawn(follow(
            source.url().to_string(),
            source.clone(),
            Arc::clone(&followed),
            poll,
        ));
        Ok(Self {
            source,
            requests,
            followed: Some(followed),
            follower: Some(task.abort_handle()),
            consistency_wait,
        })
    }

    /// Whether the entity (type, id) is in the cache (read before and not changed since).
    pub fn is_cached(&self, entity_type: &str, id: &str) -> bool {
        self.followed.as_ref().is_some_and(|f| {
            f.entities
                .contains_key(&(entity_type.to_string(), id.to_string()))
        })
    }

    /// The position of the change last applied, when the source has a change log.
    pub fn applied(&self) -> Option<i64> {
        self.followed
            .as_ref()
            .map(|f| f.applied.load(Ordering::SeqCst))
    }

    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// `question` with the entities the database holds for it among its own, as fresh as
    /// its `consistency` asks; the position they are as of (`entities_at`), when the
    /// database has positions.
    pub async fn question(&self, question: &mut Question) -> Result<Option<i64>, ApiError> {
        let roots = roots(
            &[&question.principal, &question.resource],
            question.context.as_ref(),
        );
        let (loaded, at) = self.reach(roots, question.consistency.as_ref()).await?;
        question.entities = self.merged(loaded, question.entities.as_ref());
        Ok(at)
    }

    /// A batch's shared entities with what the database holds for every question in it;
    /// each question's own entities lose those the database holds (unless a request may
    /// override them).
    pub async fn batch(
        &self,
        questions: Vec<&mut Question>,
        shared: Option<&EntityList>,
        consistency: Option<&Consistency>,
    ) -> Result<(Option<EntityList>, Option<i64>), ApiError> {
        let mut all = BTreeSet::new();
        for question in &questions {
            all.extend(roots(
                &[&question.principal, &question.resource],
                question.context.as_ref(),
            ));
        }
        let (loaded, at) = self.reach(all, consistency).await?;
        if self.requests == RequestEntities::Add {
            let held: BTreeSet<Named> = loaded.iter().filter_map(uid_of).collect();
            for question in questions {
                if let Some(own) = &question.entities {
                    question.entities = Some(self.without(own, &held));
                }
            }
        }
        Ok((self.merged(loaded, shared), at))
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

    /// `sent` with `roots` and what they reference, as read from the database, as fresh as
    /// `consistency` asks; and the position they are as of.
    pub async fn entities(
        &self,
        roots: BTreeSet<Named>,
        sent: Option<&EntityList>,
        consistency: Option<&Consistency>,
    ) -> Result<(Option<EntityList>, Option<i64>), ApiError> {
        let (loaded, at) = self.reach(roots, consistency).await?;
        Ok((self.merged(loaded, sent), at))
    }

    /// Waits, when `consistency` asks it, until the change its token names is applied (at
    /// most `--consistency-wait`); the position questions are then decided as of, and
    /// whether the cache may be read.
    async fn freshness(&self, consistency: Option<&Consistency>) -> Result<(i64, bool), ApiError> {
        let Some(followed) = &self.followed else {
            // Every question reads the database: as fresh as its last commit.
            return Ok((0, false));
        };
        followed.fresh()?;
        match consistency {
            None => Ok((followed.applied.load(Ordering::SeqCst), true)),
            Some(Consistency::Mode(ConsistencyMode::Full)) => {
                Ok((followed.applied.load(Ordering::SeqCst), false))
            }
            Some(Consistency::AtLeast { at_least }) => {
                let wanted: i64 = at_least.parse().map_err(|_| {
                    ApiError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "`consistency.at_least`: `{at_least}` is not a position of this sidecar's entity database (an answer's `entities_at`, or `GET /v1/entities/position`)"
                        ),
                    )
                    .with_field("consistency.at_least")
                })?;
                let mut position = followed.position.subscribe();
                let waited = tokio::time::timeout(
                    self.consistency_wait,
                    position.wait_for(|applied| *applied >= wanted),
                )
                .await;
                let applied = followed.applied.load(Ordering::SeqCst);
                match waited {
                    Ok(Ok(_)) => Ok((applied, true)),
                    _ => Err(ApiError::new(
                        ErrorCode::StaleEntities,
                        format!(
                            "the question asks for the entities at least as of position {wanted}; after {} ms the sidecar has applied {applied}",
                            self.consistency_wait.as_millis()
                        ),
                    )),
                }
            }
        }
    }

    /// The entities the database holds for `roots` and everything they reference, level by
    /// level: from the cache where it holds them, else read (and cached when no change to
    /// them was applied since the question started).
    async fn reach(
        &self,
        roots: BTreeSet<Named>,
        consistency: Option<&Consistency>,
    ) -> Result<(Vec<Value>, Option<i64>), ApiError> {
        let binding = self.source.binding();
        let (started, use_cache) = self.freshness(consistency).await?;
        let cache = self.followed.as_ref().filter(|_| use_cache);
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
            let mut level: Vec<Arc<Value>> = Vec::new();
            let mut misses = BTreeSet::new();
            for key in frontier {
                match cache.and_then(|f| f.entities.get(&key)) {
                    Some(Some(entity)) => level.push(entity),
                    Some(None) => {}
                    None => {
                        misses.insert(key);
                    }
                }
            }
            if !misses.is_empty() {
                let read = self.source.load_named(&misses).await.map_err(unavailable)?;
                let mut read: std::collections::BTreeMap<Named, Arc<Value>> = read
                    .into_iter()
                    .filter_map(|entity| Some((uid_of(&entity)?, Arc::new(entity))))
                    .collect();
                for key in misses {
                    let entity = read.remove(&key);
                    if let Some(followed) = cache {
                        followed.admit(key, entity.clone(), started);
                    }
                    level.extend(entity);
                }
            }
            let mut next = BTreeSet::new();
            for entity in &level {
                in_json(entity, &mut next);
            }
            loaded.extend(level.iter().map(|entity| Value::clone(entity)));
            frontier = next;
        }
        Ok((loaded, self.followed.is_some().then_some(started)))
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
