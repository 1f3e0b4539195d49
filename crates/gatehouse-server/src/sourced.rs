//! Entities read from the entity database for each question (`--entities-db`): what the
//! question names (its principal, resource and the uids of its context), then what those
//! entities reference (their entity-valued attributes and their parents), level by level,
//! each level one statement per type (`WHERE id IN (…)`), until nothing new is named. The
//! entities a request sends are merged in: by default they only add what the database
//! lacks (`--request-entities add`), so that a request cannot decide on a forged copy of an
//! entity the database holds.
//!
//! **Exact caching.** The source says what changed in commit order (SQLite's change log,
//! [`gatehouse_source::changes`]; PostgreSQL's change stream, [`gatehouse_source::stream`]),
//! and what is read is kept in an entity cache (an absent entity too) that a follower task
//! keeps exact: it applies each change after the position it applied, drops exactly the
//! changed entities, and advances the position. An entity read
//! from the database is cached only when no change to it was applied since the question
//! started (checked and inserted under the lock its change takes, so a change applied
//! between the read and the insert is never lost). Every answer is as of the position
//! applied when its question started, or later: `entities_at`. A follower that has not read
//! the changes for `--max-staleness` makes questions answer 503 `entities_unavailable`
//! rather than decide on what may be stale. The decision cache stays exact on its own: its
//! key holds the bytes of every entity a decision was made on.

use std::collections::{BTreeSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gatehouse_source::Source;
use gatehouse_source::changes::{Since, Wakeup};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::RequestEntities;
use crate::decide::cache::string_weight;
use crate::decide::{EntityList, Question, Uid};
use crate::http::error::{ApiError, ErrorCode};
use crate::telemetry::metrics::EntityMetrics;
use gatehouse_api::{Consistency, ConsistencyMode};

/// Levels of references followed at most; what lies deeper is not read (and a decision that
/// needs it is made without it, naming it in `missing`).
const MAX_LEVELS: usize = 8;

/// The entity database of a running sidecar.
#[derive(Debug)]
pub struct Sourced {
    source: Source,
    requests: RequestEntities,
    /// The cache kept exact by the database's changes.
    followed: Arc<Followed>,
    /// The follower task, stopped with the sidecar.
    follower: tokio::task::AbortHandle,
    /// How long a question waits for the position its token names.
    consistency_wait: Duration,
}

impl Drop for Sourced {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// How the database's changes are followed and what is kept of it.
#[derive(Debug, Clone)]
pub struct Following {
    /// Most entities cached.
    pub capacity: u64,
    /// The longest the changes may go unread before questions are refused.
    pub max_staleness: Duration,
    /// How long a question waits for the position its token names.
    pub consistency_wait: Duration,
    /// How often commits are looked for.
    pub poll: Duration,
    /// Where it is counted.
    pub metrics: EntityMetrics,
}

/// Locks striping the cache's keys: a change to a key and a read's insert of it take the
/// same one.
const STRIPES: usize = 1024;

/// Changes kept in SQLite's change log behind the position applied.
const RETAINED: i64 = 100_000;

/// Changes read from the change log at once.
const CHANGES_AT_ONCE: i64 = 1000;

/// What the database held, as of the position applied, kept exact by its changes.
#[derive(Debug)]
pub struct Followed {
    /// Each entity read (`None`: the database does not hold it), by (type, id).
    entities: moka::sync::Cache<Named, Option<Arc<Held>>>,
    /// The position of the last change applied.
    applied: AtomicI64,
    /// Per stripe of keys, the position of the last change applied to a key of it.
    stripes: Vec<Mutex<i64>>,
    hasher: std::hash::RandomState,
    /// When the changes were last known read in full.
    synced: Mutex<Instant>,
    /// The longest the changes may go unread before questions are refused.
    max_staleness: Duration,
    /// The position applied, for those who wait for one.
    position: tokio::sync::watch::Sender<i64>,
    /// PostgreSQL: the sync marks this sidecar emitted and has not yet seen come back, each
    /// with when it was emitted (marks are numbered from 1, written `{nonce}:{number}`).
    marks: Mutex<VecDeque<(u64, Instant)>>,
    /// The number of the last mark emitted.
    marked: AtomicU64,
    /// What tells this sidecar's marks from other replicas'.
    nonce: u64,
    /// PostgreSQL: the temporary slot the follower reads.
    slot: Mutex<Option<String>>,
    /// Where it is counted.
    metrics: EntityMetrics,
    /// Asks the follower to look now (SQLite) or for a sync mark (PostgreSQL): a question
    /// waits for a token.
    wanted: tokio::sync::Notify,
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
        self.set_applied(last.seq);
    }

    /// The position applied is now `at`.
    fn set_applied(&self, at: i64) {
        self.applied.store(at, Ordering::SeqCst);
        self.position.send_replace(at);
        self.metrics.applied.set(at);
    }

    /// Advances the applied position to `at` (a commit applied, a mark reached).
    fn advance(&self, at: i64) {
        if at > self.applied.load(Ordering::SeqCst) {
            self.set_applied(at);
        }
    }

    /// A sync mark came back at `at`: the position advances to it, and when it is one of
    /// this sidecar's, the stream is known alive as of the mark's emission.
    fn reached(&self, at: i64, mark: &str) {
        self.advance(at);
        let Some(number) = mark
            .split_once(':')
            .filter(|(nonce, _)| nonce.parse() == Ok(self.nonce))
            .and_then(|(_, number)| number.parse::<u64>().ok())
        else {
            return;
        };
        let mut marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        let mut alive = None;
        while let Some(&(earlier, emitted)) = marks.front()
            && earlier <= number
        {
            alive = Some(emitted);
            marks.pop_front();
        }
        drop(marks);
        if let Some(emitted) = alive {
            *self.synced.lock().unwrap_or_else(PoisonError::into_inner) = emitted;
        }
    }

    /// Starts again from `position` with nothing cached (the log was pruned past what was
    /// applied, or the stream was lost).
    fn restart(&self, position: i64) {
        for stripe in &self.stripes {
            *stripe.lock().unwrap_or_else(PoisonError::into_inner) = position;
        }
        self.entities.invalidate_all();
        self.marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.set_applied(position);
    }

    /// Caches `value` for `key`, read by a question that started at position `started`,
    /// unless a change to the key was applied since.
    fn admit(&self, key: Named, value: Option<Arc<Held>>, started: i64) {
        let stripe = self
            .stripe(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *stripe <= started {
            self.entities.insert(key, value);
        }
    }

    /// Refuses a question when the changes have gone unread too long.
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
    let mut pruned = 0;
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
                            followed.metrics.restarts.inc();
                        }
                    }
                }
            }
            *followed
                .synced
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Instant::now();
            // The log is kept to the last `RETAINED` changes: a follower further behind (a
            // replica down a long time) finds a gap and starts again.
            let applied = followed.applied.load(Ordering::SeqCst);
            if applied - pruned >= 2 * RETAINED {
                pruned = applied - RETAINED;
                source.prune_changes(pruned).await?;
            }
            Ok::<(), gatehouse_source::SourceError>(())
        };
        match step.await {
            Ok(()) => {
                first = false;
                // Every `poll`, or at once when a question waits for a token.
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    () = followed.wanted.notified() => {}
                }
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

/// Follows PostgreSQL's change stream into `followed`, until aborted: each commit's changes
/// applied as it arrives; a sync mark emitted every `heartbeat` (and when a question waits
/// for a token), whose arrival proves the stream alive as of its emission. A lost stream
/// (the connection, the server restarted, the slot dropped) is opened again, from a new
/// temporary slot: what committed meanwhile was not seen, so the cache starts again at the
/// new slot's consistent point. While it is lost, questions are refused after
/// `--max-staleness`.
async fn follow_stream(
    source: Source,
    followed: Arc<Followed>,
    mut stream: gatehouse_source::stream::Stream,
    heartbeat: Duration,
) {
    use gatehouse_source::stream::Event;
    let mut beats = tokio::time::interval(heartbeat);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let failure = loop {
            let event = tokio::select! {
                event = stream.next() => event,
                _ = beats.tick() => {
                    emit_mark(&source, &followed).await;
                    continue;
                }
                () = followed.wanted.notified() => {
                    emit_mark(&source, &followed).await;
                    continue;
                }
            };
            match event {
                Ok(Event::Committed { at, changes }) => {
                    followed.apply(&changes);
                    followed.advance(at);
                }
                Ok(Event::Truncated { at }) => followed.restart(at),
                Ok(Event::Reached { at, mark }) => followed.reached(at, &mark),
                Err(error) => break error,
            }
        };
        tracing::warn!(%failure, "the entity database's change stream was lost; opening it again");
        drop(stream);
        stream = loop {
            match source.stream().await {
                Ok((stream, start)) => {
                    tracing::info!(
                        position = %source.show_position(start),
                        "the entity database's change stream is back: the entity cache starts again"
                    );
                    followed.restart(start);
                    followed.metrics.restarts.inc();
                    *followed.slot.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(stream.slot().to_string());
                    break stream;
                }
                Err(error) => {
                    tracing::warn!(%error, "opening the entity database's change stream failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        // Alive from here: the slot is new and what it starts after is applied.
        *followed
            .synced
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }
}

/// Emits a sync mark and notes it as awaited; a failure is logged (the stream's state is
/// what the staleness bound watches).
async fn emit_mark(source: &Source, followed: &Followed) {
    let emitted = Instant::now();
    let number = followed.marked.fetch_add(1, Ordering::SeqCst) + 1;
    {
        let mut marks = followed
            .marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Marks that never come back (a stream stuck) are not kept for ever.
        if marks.len() >= 1024 {
            marks.pop_front();
        }
        marks.push_back((number, emitted));
    }
    let mark = format!("{}:{number}", followed.nonce);
    // Not for long: the stream is not read meanwhile.
    match tokio::time::timeout(Duration::from_secs(1), source.sync(&mark)).await {
        Ok(Ok(end)) => {
            let behind = end - followed.applied.load(Ordering::SeqCst);
            followed.metrics.behind_bytes.set(behind.max(0));
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "emitting a sync mark into the change stream failed");
        }
        Err(_) => tracing::warn!("emitting a sync mark into the change stream took over a second"),
    }
}

/// How often the PostgreSQL follower proves its stream alive: four marks within the
/// staleness bound, at most one every 250 ms.
fn heartbeat(max_staleness: Duration) -> Duration {
    (max_staleness / 4).clamp(Duration::from_millis(250), Duration::from_secs(1))
}

/// The entity database of `--entities-db`: open, or still being reached (unreachable at
/// start: the sidecar serves, is not ready, and answers questions 503 until it is).
#[derive(Debug)]
pub struct EntityDb {
    open: std::sync::OnceLock<Sourced>,
    /// Why it is not open yet.
    waiting: Mutex<String>,
}

impl EntityDb {
    /// An open database.
    pub fn open(sourced: Sourced) -> Self {
        let db = Self::waiting(String::new());
        db.opened(sourced);
        db
    }

    /// A database not reached yet, and why.
    pub fn waiting(reason: String) -> Self {
        Self {
            open: std::sync::OnceLock::new(),
            waiting: Mutex::new(reason),
        }
    }

    /// It is open now.
    pub fn opened(&self, sourced: Sourced) {
        // Opened once: a second opening (none is made) would be dropped with its follower.
        let _ = self.open.set(sourced);
    }

    /// It is still not reached, for `reason`.
    pub fn still_waiting(&self, reason: String) {
        *self.waiting.lock().unwrap_or_else(PoisonError::into_inner) = reason;
    }

    /// The open database, if it is.
    pub fn ready(&self) -> Option<&Sourced> {
        self.open.get()
    }

    /// The open database, or 503 `entities_unavailable` saying why it is not.
    pub fn get(&self) -> Result<&Sourced, ApiError> {
        self.open.get().ok_or_else(|| {
            ApiError::new(
                ErrorCode::EntitiesUnavailable,
                format!(
                    "the entity database has not been reached yet: {}",
                    self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
                ),
            )
        })
    }
}

/// A (type, id) pair, as the database keys entities.
type Named = (String, String);

impl Sourced {
    /// Reads `source` for every question; `requests` says what a request's entities do.
    /// The source's changes are followed from its current position (SQLite) or its new
    /// slot's (PostgreSQL), and what is read cached (at most `capacity` entities);
    /// `max_staleness` bounds how long the changes may go unread. Starts the follower on the
    /// current runtime.
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
            metrics,
        } = following;
        let (stream, position) = match source.backend() {
            gatehouse_source::Backend::Sqlite => (None, source.position().await?),
            gatehouse_source::Backend::Postgres => {
                let (stream, start) = source.stream().await?;
                (Some(stream), start)
            }
        };
        metrics.applied.set(position);
        let hasher = std::hash::RandomState::new();
        let followed = Arc::new(Followed {
            entities: moka::sync::Cache::new(capacity),
            applied: AtomicI64::new(position),
            stripes: (0..STRIPES).map(|_| Mutex::new(position)).collect(),
            hasher: hasher.clone(),
            synced: Mutex::new(Instant::now()),
            max_staleness,
            position: tokio::sync::watch::Sender::new(position),
            marks: Mutex::new(VecDeque::new()),
            marked: AtomicU64::new(0),
            nonce: hasher.hash_one(std::process::id()),
            slot: Mutex::new(stream.as_ref().map(|s| s.slot().to_string())),
            metrics,
            wanted: tokio::sync::Notify::new(),
        });
        let task = match stream {
            None => tokio::spawn(follow(
                source.url().to_string(),
                source.clone(),
                Arc::clone(&followed),
                poll,
            )),
            Some(stream) => tokio::spawn(follow_stream(
                source.clone(),
                Arc::clone(&followed),
                stream,
                heartbeat(max_staleness),
            )),
        };
        Ok(Self {
            source,
            requests,
            followed,
            follower: task.abort_handle(),
            consistency_wait,
        })
    }

    /// Whether the entity (type, id) is in the cache (read before and not changed since).
    pub fn is_cached(&self, entity_type: &str, id: &str) -> bool {
        self.followed
            .entities
            .contains_key(&(entity_type.to_string(), id.to_string()))
    }

    /// PostgreSQL: the name of the temporary slot the follower reads now.
    pub fn slot(&self) -> Option<String> {
        self.followed
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many times the follower lost the database's changes and started again with an
    /// empty cache (a new slot, a pruned log).
    pub fn restarts(&self) -> u64 {
        self.followed.metrics.restarts.get()
    }

    /// Entities in the cache.
    pub fn cached(&self) -> u64 {
        self.followed.entities.entry_count()
    }

    /// How long since the changes were last known read in full.
    pub fn unread(&self) -> Duration {
        self.followed
            .synced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    /// The position of the change last applied.
    pub fn applied(&self) -> i64 {
        self.followed.applied.load(Ordering::SeqCst)
    }

    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// `question` with the entities the database holds for it among its own, as fresh as
    /// its `consistency` asks; the position they are as of (`entities_at`), when the
    /// database has positions.
    pub async fn question(&self, question: &mut Question) -> Result<Option<String>, ApiError> {
        self.question_read(question).await.map(|(at, _)| at)
    }

    /// [`Self::question`], and what it read: the entities it looked up (held or not) and
    /// the position it started at; `None` when it read past the cache (`"full"`).
    pub async fn question_read(
        &self,
        question: &mut Question,
    ) -> Result<(Option<String>, Option<Read>), ApiError> {
        let roots = roots(
            &[&question.principal, &question.resource],
            question.context.as_ref(),
        );
        let reached = self.reach(roots, question.consistency.as_ref()).await?;
        question.entities = self.merged(reached.loaded, question.entities.as_ref());
        Ok((reached.at, reached.read))
    }

    /// Whether an answer made on `read` still holds: no change to what it read has been
    /// applied since, and the changes are being read (else the question is asked again, and
    /// refused as stale).
    pub fn still_holds(&self, read: &Read) -> bool {
        let followed = &self.followed;
        followed.fresh().is_ok()
            && read.keys.iter().all(|key| {
                *followed
                    .stripe(key)
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    <= read.at
            })
    }

    /// A batch's shared entities with what the database holds for every question in it;
    /// each question's own entities lose those the database holds (unless a request may
    /// override them).
    pub async fn batch(
        &self,
        questions: Vec<&mut Question>,
        shared: Option<&EntityList>,
        consistency: Option<&Consistency>,
    ) -> Result<(Option<EntityList>, Option<String>), ApiError> {
        let mut all = BTreeSet::new();
        for question in &questions {
            all.extend(roots(
                &[&question.principal, &question.resource],
                question.context.as_ref(),
            ));
        }
        let Reached { loaded, at, .. } = self.reach(all, consistency).await?;
        if self.requests == RequestEntities::Add {
            let held: BTreeSet<Named> = loaded.iter().map(|held| held.uid.clone()).collect();
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

    /// `entities` (a question's own) with `roots` and what they reference, as read from the
    /// database, as fresh as `consistency` asks; the position they are as of.
    pub async fn fill(
        &self,
        roots: BTreeSet<Named>,
        entities: &mut Option<EntityList>,
        consistency: Option<&Consistency>,
    ) -> Result<Option<String>, ApiError> {
        let reached = self.reach(roots, consistency).await?;
        *entities = self.merged(reached.loaded, entities.as_ref());
        Ok(reached.at)
    }

    /// Waits, when `consistency` asks it, until the change its token names is applied (at
    /// most `--consistency-wait`); the position questions are then decided as of, and
    /// whether the cache may be read.
    async fn freshness(&self, consistency: Option<&Consistency>) -> Result<(i64, bool), ApiError> {
        let followed = &self.followed;
        // Read from the database, no cache: as fresh as its last commit, whatever the
        // follower's state.
        if let Some(Consistency::Mode(ConsistencyMode::Full)) = consistency {
            return Ok((followed.applied.load(Ordering::SeqCst), false));
        }
        followed.fresh()?;
        match consistency {
            None | Some(Consistency::Mode(ConsistencyMode::Full)) => {
                Ok((followed.applied.load(Ordering::SeqCst), true))
            }
            Some(Consistency::AtLeast { at_least }) => {
                let wanted = self.source.parse_position(at_least).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidRequest,
                        format!(
                            "`consistency.at_least`: `{at_least}` is not a position of this sidecar's entity database (an answer's `entities_at`, or `GET /v1/entities/position`)"
                        ),
                    )
                    .with_field("consistency.at_least")
                })?;
                if followed.applied.load(Ordering::SeqCst) < wanted {
                    // SQLite: look now. PostgreSQL: on an idle database nothing else may
                    // come, so a mark after the token.
                    followed.wanted.notify_one();
                }
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
                            "the question asks for the entities at least as of position {}; after {} ms the sidecar has applied {}",
                            self.source.show_position(wanted),
                            self.consistency_wait.as_millis(),
                            self.source.show_position(applied),
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
    ) -> Result<Reached, ApiError> {
        let binding = self.source.binding();
        let timer = Instant::now();
        let (started, use_cache) = self.freshness(consistency).await?;
        let metrics = &self.followed.metrics;
        let mut reads = 0_u32;
        let cache = Some(&*self.followed).filter(|_| use_cache);
        let mut seen: BTreeSet<Named> = BTreeSet::new();
        let mut frontier = roots;
        let mut loaded: Vec<Arc<Held>> = Vec::new();
        for _ in 0..MAX_LEVELS {
            frontier.retain(|key| binding.of(&key.0).is_some() && !seen.contains(key));
            if frontier.is_empty() {
                break;
            }
            seen.extend(frontier.iter().cloned());
            let level_start = loaded.len();
            let mut misses = BTreeSet::new();
            for key in frontier {
                match cache.and_then(|f| f.entities.get(&key)) {
                    Some(held) => {
                        metrics.hits.inc();
                        loaded.extend(held);
                    }
                    None => {
                        misses.insert(key);
                    }
                }
            }
            if !misses.is_empty() {
                reads += 1;
                metrics.reads.inc();
                metrics.misses.inc_by(misses.len() as u64);
                let read = self.source.load_named(&misses).await.map_err(unavailable)?;
                let mut read: std::collections::BTreeMap<Named, Arc<Held>> = read
                    .into_iter()
                    .filter_map(|entity| {
                        let held = Held::of(&entity)?;
                        Some((held.uid.clone(), Arc::new(held)))
                    })
                    .collect();
                for key in misses {
                    let held = read.remove(&key);
                    if let Some(followed) = cache {
                        followed.admit(key, held.clone(), started);
                    }
                    loaded.extend(held);
                }
            }
            frontier = loaded
                .get(level_start..)
                .unwrap_or_default()
                .iter()
                .flat_map(|held| held.refs.iter().cloned())
                .collect();
        }
        metrics.load_seconds.observe(timer.elapsed().as_secs_f64());
        metrics.reads_per_question.observe(f64::from(reads));
        Ok(Reached {
            loaded,
            at: Some(self.source.show_position(started)),
            read: use_cache.then(|| Read {
                keys: seen.into_iter().collect(),
                at: started,
            }),
        })
    }

    /// The database's entities with the request's: by default, a request's entity whose
    /// uid the database holds is dropped; with `--request-entities override`, the
    /// database's is.
    fn merged(&self, loaded: Vec<Arc<Held>>, sent: Option<&EntityList>) -> Option<EntityList> {
        if loaded.is_empty() {
            return sent.cloned();
        }
        let Some(sent_items) = sent.and_then(|list| list.items().ok()) else {
            // By id alone, the common case: the held texts as they are.
            let items: Vec<Box<RawValue>> = loaded.iter().map(|held| held.text.clone()).collect();
            return Some(EntityList::from(items));
        };
        let sent_parsed: Vec<(Option<Named>, &RawValue)> = sent_items
            .iter()
            .map(|raw| {
                let uid = serde_json::from_str::<Value>(raw.get())
                    .ok()
                    .and_then(|v| uid_of(&v));
                (uid, raw.as_ref())
            })
            .collect();
        let loaded_uids: BTreeSet<&Named> = loaded.iter().map(|held| &held.uid).collect();
        let sent_uids: BTreeSet<&Named> = sent_parsed
            .iter()
            .filter_map(|(uid, _)| uid.as_ref())
            .collect();
        let mut items: Vec<Box<RawValue>> = Vec::with_capacity(loaded.len() + sent_parsed.len());
        for held in &loaded {
            let replaced =
                self.requests == RequestEntities::Override && sent_uids.contains(&held.uid);
            if !replaced {
                items.push(held.text.clone());
            }
        }
        for (uid, raw) in &sent_parsed {
            let shadowed = self.requests == RequestEntities::Add
                && uid.as_ref().is_some_and(|uid| loaded_uids.contains(uid));
            if !shadowed {
                // A request's entity as it came; one that does not read is the decider's
                // to refuse, naming it.
                items.push(ToOwned::to_owned(*raw));
            }
        }
        Some(EntityList::from(items))
    }
}

/// What [`Sourced::reach`] found.
struct Reached {
    /// The entities the database holds, each once.
    loaded: Vec<Arc<Held>>,
    /// The position they are as of, written for `entities_at`.
    at: Option<String>,
    /// What was looked up, when through the cache.
    read: Option<Read>,
}

/// What an answer was made on: every entity looked up (held by the database or not) and the
/// position its question started at. While no change to one of them is applied past that
/// position, the answer holds ([`Sourced::still_holds`]): the hot cache serves it again.
#[derive(Debug)]
pub struct Read {
    keys: Box<[Named]>,
    at: i64,
}

impl Read {
    /// Its weight in a cache, in bytes.
    pub fn weight(&self) -> u64 {
        let keys: u64 = self
            .keys
            .iter()
            .map(|(ty, id)| string_weight(ty) + string_weight(id))
            .sum();
        std::mem::size_of::<Self>() as u64 + keys
    }
}

/// An entity read from the database, as the cache holds it: its uid, its JSON text as an
/// entity list carries it (written once, when read), and the uids it names (its
/// entity-valued attributes and its parents): where the next level is read.
#[derive(Debug)]
struct Held {
    uid: Named,
    text: Box<RawValue>,
    refs: Box<[Named]>,
}

impl Held {
    /// `entity` as held; `None` for JSON that is not an entity with a uid.
    fn of(entity: &Value) -> Option<Self> {
        let uid = uid_of(entity)?;
        let mut refs = BTreeSet::new();
        in_json(entity, &mut refs);
        refs.remove(&uid);
        Some(Self {
            uid,
            text: serde_json::value::to_raw_value(entity).ok()?,
            refs: refs.into_iter().collect(),
        })
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
