//! Shadow evaluation: a candidate policy set served beside the live one
//! (`serve --shadow-policies DIR`). Every decision the sidecar answers is asked again of the
//! candidate, off the response path, and each disagreement is counted and logged with both
//! answers; answers never change.
//!
//! The handler hands its input to a bounded queue after it has answered: the body bytes it
//! received (a reference count, on the hot and the cached paths alike), or the question it
//! built (AuthZEN), moved rather than copied, with the live decisions. When the queue is full
//! the job is dropped and counted, so a slow candidate never slows an answer. One worker
//! thread asks each job of the candidate through the same [`Decider::answer`] path (with its
//! own caches; a body seen before under the same two versions is compared from a memo of
//! its digest, without parsing it) and compares: a different decision is a disagreement
//! (`gatehouse_shadow_disagreements_total{action}`), the same decision by other policies is
//! counted apart, and a question the candidate cannot ask (its schema differs) is an error.
//! Each of these is written to the decision log, when there is one, with both answers.
//! `--shadow-sample PERCENT` bounds the cost: exactly that many of every hundred requests
//! are shadowed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::SystemTime;

use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decide::cache::{Budget, Weight, string_weight, weighed};
use crate::decide::question::uid_text;
use crate::decide::{Decider, Decision, EntityList, Question, Verdict};
use crate::policy::{PolicyStore, Snapshot};
use crate::telemetry::decision_log::Full;
use crate::telemetry::{DecisionLog, Metrics};

/// What the handler received, for the worker to ask again.
#[derive(Debug)]
pub enum Input {
    /// A `/v1/is_authorized` body, as received.
    Body(Bytes),
    /// A `/v1/is_authorized/batch` body, as received.
    Batch(Bytes),
    /// A question the sidecar built (an AuthZEN evaluation).
    Question(Box<Question>),
}

/// Most bytes of bodies waiting for the candidate: past it a job is dropped (counted), as
/// past `--shadow-queue` jobs, whatever the bodies' size.
pub const SHADOW_QUEUE_BYTES: usize = 64 << 20;

/// One request's decisions, to ask of the candidate.
#[derive(Debug)]
pub struct Job {
    /// The request id.
    pub request_id: String,
    /// What was asked.
    pub input: Input,
    /// The live snapshot that answered (for its version).
    pub live: Arc<Snapshot>,
    /// The live decision of each question, in order; `None` for a batch item that could
    /// not be asked.
    pub decisions: Vec<Option<Arc<Decision>>>,
}

/// The sending side, held by the app state.
#[derive(Debug, Clone)]
pub struct Shadow {
    tx: SyncSender<Job>,
    store: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
    /// The percentage of requests shadowed (`--shadow-sample`), 1 to 100.
    sample: u64,
    /// Requests offered so far, for the sampling.
    seen: Arc<AtomicU64>,
    /// Bytes of the jobs waiting (see [`SHADOW_QUEUE_BYTES`]).
    queued: Arc<AtomicUsize>,
}

impl Job {
    /// The bytes it keeps alive while it waits.
    fn bytes(&self) -> usize {
        let input = match &self.input {
            Input::Body(body) | Input::Batch(body) => body.len(),
            Input::Question(_) => 1024,
        };
        input + self.request_id.len() + 64 * self.decisions.len()
    }
}

/// The worker thread; it ends once every [`Shadow`] is dropped and the queue is drained.
#[derive(Debug)]
pub struct ShadowWorker(JoinHandle<()>);

impl ShadowWorker {
    /// Waits for the worker to finish the queue.
    pub fn finish(self) {
        let _ = self.0.join();
    }
}

impl Shadow {
    /// Starts the worker over the candidate `store`, with its own decider, a queue of
    /// `capacity` jobs, and up to `memo_capacity` bodies' comparisons remembered.
    pub fn start(
        store: Arc<PolicyStore>,
        decider: Decider,
        (capacity, memo): (usize, Budget),
        metrics: Arc<Metrics>,
        log: Option<DecisionLog>,
    ) -> std::io::Result<(Self, ShadowWorker)> {
        let (tx, rx) = sync_channel(capacity.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            store: Arc::clone(&store),
            decider,
            metrics: Arc::clone(&metrics),
            log,
            memo: memo_cache(memo),
            queued: Arc::clone(&queued),
        };
        let handle = std::thread::Builder::new()
            .name("shadow".into())
            .spawn(move || worker.run(rx))?;
        Ok((
            Self {
                tx,
                store,
                metrics,
                sample: 100,
                seen: Arc::new(AtomicU64::new(0)),
                queued,
            },
            ShadowWorker(handle),
        ))
    }

    /// Shadows `percent` of the requests (1 to 100), spread evenly: of every hundred
    /// requests, exactly `percent`.
    pub fn sampling(mut self, percent: u8) -> Self {
        self.sample = u64::from(percent.clamp(1, 100));
        self
    }

    /// Whether this request is to be shadowed.
    pub fn sampled(&self) -> bool {
        if self.sample >= 100 {
            return true;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        // The n-th request is taken when n × percent / 100 reaches a new integer.
        (n + 1) * self.sample / 100 > n * self.sample / 100
    }

    /// The candidate set.
    pub fn store(&self) -> &Arc<PolicyStore> {
        &self.store
    }

    /// Queues `job`, or drops it (counted) when the queue is full, in jobs or in bytes:
    /// never waits.
    pub fn offer(&self, job: Job) {
        let bytes = job.bytes();
        if self.queued.fetch_add(bytes, Ordering::Relaxed) + bytes > SHADOW_QUEUE_BYTES {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            self.metrics.shadow_dropped.inc();
            return;
        }
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(bytes, Ordering::Relaxed);
                self.metrics.shadow_dropped.inc();
            }
        }
    }
}

/// How the candidate's answer compares with the live one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Same decision, same deciding policies.
    Agree,
    /// Same decision, other deciding policies.
    ReasonsDiffer,
    /// A different decision.
    Disagree,
    /// The candidate could not ask the question.
    Error,
}

impl Comparison {
    /// The `result` label of `gatehouse_shadow_evaluations_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agree => "agree",
            Self::ReasonsDiffer => "reasons_differ",
            Self::Disagree => "disagree",
            Self::Error => "error",
        }
    }
}

/// One side's answer in a shadow line.
#[derive(Debug, Serialize)]
struct Side<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<Verdict>,
    reasons: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    errors: &'a [String],
    policy_version: &'a str,
}

/// The decision-log line of a difference.
#[derive(Debug, Serialize)]
struct ShadowLine<'a> {
    time: String,
    request_id: &'a str,
    /// `disagree`, `reasons_differ` or `error`: what makes it a line.
    shadow: Comparison,
    principal: &'a str,
    action: &'a str,
    resource: &'a str,
    live: Side<'a>,
    candidate: Side<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entities: Option<&'a EntityList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_entities: Option<&'a EntityList>,
}

#[derive(Deserialize)]
struct Batch {
    #[serde(default)]
    entities: Option<EntityList>,
    /// Each question as its text, read one by one as the live route reads them.
    requests: Vec<Box<serde_json::value::RawValue>>,
}

/// What one question gave under both sets, kept by the digest of the body it came in so
/// that a body seen again is compared without parsing it (as the live hot cache answers it).
#[derive(Debug)]
struct Memo {
    comparison: Comparison,
    principal: String,
    action: String,
    resource: String,
    live: Arc<Decision>,
    candidate: Result<Arc<Decision>, String>,
}

impl Weight for Memo {
    fn weight(&self) -> u64 {
        let candidate = self
            .candidate
            .as_ref()
            .map_or_else(|e| string_weight(e), |d| d.weight());
        std::mem::size_of::<Self>() as u64
            + string_weight(&self.principal)
            + string_weight(&self.action)
            + string_weight(&self.resource)
            + self.live.weight()
            + candidate
    }
}

/// A body's memos, one per question (`None` for a batch item not compared).
type Memos = Arc<Vec<Option<Memo>>>;

/// The memo of comparisons, within `budget` by the memos' weight.
fn memo_cache(budget: Budget) -> moka::sync::Cache<[u8; 32], Memos> {
    weighed(budget, |memos: &Memos| {
        memos.iter().flatten().map(Weight::weight).sum::<u64>()
    })
    .build()
}

struct Worker {
    store: Arc<PolicyStore>,
    decider: Decider,
    metrics: Arc<Metrics>,
    log: Option<DecisionLog>,
    /// Comparisons by the digest of both versions and the body.
    memo: moka::sync::Cache<[u8; 32], Memos>,
    /// Bytes of the jobs waiting, shared with the senders.
    queued: Arc<AtomicUsize>,
}

impl Worker {
    fn run(self, rx: Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            self.job(&job);
            self.queued.fetch_sub(job.bytes(), Ordering::Relaxed);
        }
    }

    fn job(&self, job: &Job) {
        let candidate = self.store.current();
        // A full decision log records each question's context and entities, which a memo
        // does not keep: every job is then parsed.
        let full = self.log.as_ref().is_some_and(|log| log.full);
        let key = match &job.input {
            Input::Body(body) | Input::Batch(body) if !full => {
                let mut h = blake3::Hasher::new();
                h.update(job.live.inputs.as_bytes());
                h.update(&[0]);
                h.update(candidate.inputs.as_bytes());
                h.update(&[0]);
                h.update(body);
                Some(*h.finalize().as_bytes())
            }
            _ => None,
        };
        if let Some(memos) = key.and_then(|key| self.memo.get(&key)) {
            for memo in memos.iter().flatten() {
                self.record(job, &candidate, memo, (None, None, None));
            }
            return;
        }
        let mut memos = Vec::new();
        match &job.input {
            Input::Body(body) => {
                if let Ok(question) = serde_json::from_slice::<Question>(body) {
                    memos.push(self.compare(job, &candidate, 0, &question, None, None));
                }
            }
            Input::Question(question) => {
                memos.push(self.compare(job, &candidate, 0, question, None, None));
            }
            Input::Batch(body) => {
                let Ok(batch) = serde_json::from_slice::<Batch>(body) else {
                    return;
                };
                let questions: Vec<Option<Question>> = batch
                    .requests
                    .iter()
                    .map(|raw| serde_json::from_str(raw.get()).ok())
                    .collect();
                let shared = batch.entities.as_ref().map(|json| {
                    let read = questions.iter().flatten();
                    self.decider.batch(&candidate, json, read)
                });
                for (i, question) in questions.into_iter().enumerate() {
                    let Some(question) = question else {
                        memos.push(None);
                        continue;
                    };
                    let shared = match &shared {
                        None => None,
                        Some(Ok(shared)) => Some(Ok(shared)),
                        Some(Err(e)) => Some(Err(e.message.clone())),
                    };
                    let memo = self.compare(
                        job,
                        &candidate,
                        i,
                        &question,
                        shared,
                        batch.entities.as_ref(),
                    );
                    memos.push(memo);
                }
            }
        }
        if let Some(key) = key {
            self.memo.insert(key, Arc::new(memos));
        }
    }

    /// Asks the `i`-th question of the job of the candidate and records the comparison.
    fn compare(
        &self,
        job: &Job,
        candidate: &Snapshot,
        i: usize,
        question: &Question,
        shared: Option<Result<&crate::decide::question::BatchEntities, String>>,
        shared_json: Option<&EntityList>,
    ) -> Option<Memo> {
        // A batch item the live set could not ask is not compared.
        let live = job.decisions.get(i)?.as_ref()?;
        let answer = match shared {
            Some(Err(e)) => Err(e),
            Some(Ok(shared)) => self
                .decider
                .answer(candidate, question, Some(shared))
                .map_err(|e| e.message),
            None => self
                .decider
                .answer(candidate, question, None)
                .map_err(|e| e.message),
        };
        let comparison = match &answer {
            Err(_) => Comparison::Error,
            Ok(a) if a.decision.decision != live.decision => Comparison::Disagree,
            Ok(a) if a.decision.reasons != live.reasons => Comparison::ReasonsDiffer,
            Ok(_) => Comparison::Agree,
        };
        let memo = Memo {
            comparison,
            principal: uid_text(&question.principal),
            action: uid_text(&question.action),
            resource: uid_text(&question.resource),
            live: Arc::clone(live),
            candidate: answer.map(|a| a.decision),
        };
        let full = (
            question.context.as_ref(),
            question.entities.as_ref(),
            shared_json,
        );
        self.record(job, candidate, &memo, full);
        Some(memo)
    }

    /// Counts a comparison and writes the decision-log line of a difference.
    fn record(&self, job: &Job, candidate: &Snapshot, memo: &Memo, full: Full<'_>) {
        self.metrics.count_shadow(memo.comparison, &memo.action);
        if memo.comparison == Comparison::Agree {
            return;
        }
        let Some(log) = &self.log else {
            return;
        };
        let error;
        let candidate_side = match &memo.candidate {
            Ok(decision) => Side {
                decision: Some(decision.decision),
                reasons: &decision.reasons,
                errors: &decision.errors,
                policy_version: &candidate.version,
            },
            Err(e) => {
                error = [e.clone()];
                Side {
                    decision: None,
                    reasons: &[],
                    errors: &error,
                    policy_version: &candidate.version,
                }
            }
        };
        let (context, entities, shared_entities) = if log.full { full } else { (None, None, None) };
        let line = ShadowLine {
            time: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            request_id: &job.request_id,
            shadow: memo.comparison,
            principal: &memo.principal,
            action: &memo.action,
            resource: &memo.resource,
            live: Side {
                decision: Some(memo.live.decision),
                reasons: &memo.live.reasons,
                errors: &memo.live.errors,
                policy_version: &job.live.version,
            },
            candidate: candidate_side,
            context,
            entities,
            shared_entities,
        };
        log.write_json(&line);
    }
}
