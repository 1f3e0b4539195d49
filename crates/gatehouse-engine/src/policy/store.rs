//! The live policy set: the current [`Snapshot`] behind an atomic pointer, replaced only by a
//! complete, valid successor that every gate accepts.
//!
//! Readers call [`PolicyStore::current`] and keep the `Arc` for the whole of their work, so a
//! reload never changes the set under a decision. A reload builds a new snapshot from the
//! files and swaps it in only when, in order:
//!
//! 1. it loads without a single problem ([`ReloadOutcome::Failed`] otherwise);
//! 2. the files still digest to the version loaded, so no file changed while the set was
//!    read ([`PendingReason::Changing`] otherwise: asked again a moment later);
//! 3. for a reload the watcher asked for, it drops no policy of the live set, or the files
//!    have stayed as they are for the settle time ([`PendingReason::Settling`] otherwise):
//!    a file truncated by a save in progress parses to fewer policies, or none, and would
//!    take its forbids out of the live set for as long as the save takes;
//! 4. every [`Gate`] accepts it ([`ReloadOutcome::Refused`] otherwise).
//!
//! Whatever stops it, the last good set stays live and the reason is recorded for
//! `/v1/status`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;

use super::gate::{Gate, GateFailure};
use super::{LoadError, Problem, Snapshot, Sources, inputs_of, load};

/// How long after files changed while they were read a reload is tried again.
pub const CHANGING_RETRY: Duration = Duration::from_millis(50);

/// How many times a forced reload reads files that keep changing before it gives up.
const FORCED_ATTEMPTS: u32 = 40;

/// What one reload did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// A new, valid set with this version is live.
    Swapped(String),
    /// The files load to the set already live (same version): nothing to swap.
    Unchanged,
    /// The files do not load; the last good set stays live.
    Failed(LoadError),
    /// The files load, but a gate refused the set; the last good set stays live.
    Refused {
        /// The refused set's version.
        version: String,
        /// Every reason, never empty.
        failures: Vec<GateFailure>,
    },
    /// The files load, but the set is held back for now; the last good set stays live.
    Pending(Pending),
}

impl ReloadOutcome {
    /// The outcome's result, without its details.
    pub fn result(&self) -> LoadResult {
        match self {
            Self::Swapped(_) => LoadResult::Ok,
            Self::Unchanged => LoadResult::Unchanged,
            Self::Failed(_) => LoadResult::Failed,
            Self::Refused { .. } => LoadResult::Refused,
            Self::Pending(_) => LoadResult::Pending,
        }
    }

    /// When a held set should be asked about again.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            Self::Pending(pending) => Some(pending.retry_in),
            _ => None,
        }
    }
}

/// How a load of the policy files ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LoadResult {
    /// A new, valid set is live (or, at start-up, the first one).
    Ok,
    /// The files load to the set already live.
    Unchanged,
    /// The files do not load; the last good set stays live.
    Failed,
    /// The files load, but a reload gate refused the set; the last good set stays live.
    Refused,
    /// The files load, but the set is held back until they settle; the last good set stays
    /// live.
    Pending,
}

impl LoadResult {
    /// The result as `/v1/status` and the metrics write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Pending => "pending",
        }
    }
}

/// Why a set that loads is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PendingReason {
    /// It drops policies of the live set, and the files have not stayed unchanged for the
    /// settle time: it may be a save in progress.
    Settling,
    /// The files changed while they were read.
    Changing,
}

/// A set held back, as `/v1/status` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pending {
    /// The held set's version.
    pub version: String,
    /// Why it is held.
    pub reason: PendingReason,
    /// The live policies it does not have.
    pub dropped: Vec<String>,
    /// The files those policies are in, in the live set.
    pub files: Vec<String>,
    /// Since when the files have been as they are.
    #[serde(serialize_with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: SystemTime,
    /// When it goes live if the files stay as they are (and the gates accept it).
    #[serde(serialize_with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub until: SystemTime,
    /// How long until then.
    #[serde(skip)]
    pub retry_in: Duration,
}

/// A problem as `/v1/status` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProblemReport {
    /// The file at fault.
    pub file: String,
    /// 1-based line, when located.
    pub line: Option<usize>,
    /// 1-based column, when located.
    pub col: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// `file:line:col: message`.
    pub text: String,
    /// How to fix it, when Cedar or the loader knows (`did you mean …?`), as `gatehouse
    /// validate` prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl From<&Problem> for ProblemReport {
    fn from(p: &Problem) -> Self {
        Self {
            file: p.file.display().to_string(),
            line: p.location.map(|(l, _)| l),
            col: p.location.map(|(_, c)| c),
            message: p.message.clone(),
            text: p.to_string(),
            help: p.help.clone(),
        }
    }
}

/// The result of the last reload attempt, and counts since start.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReloadStatus {
    /// When the last attempt ran (the start-up load counts as one).
    #[serde(serialize_with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: SystemTime,
    /// How it ended.
    pub result: LoadResult,
    /// The problems of a failed attempt.
    pub errors: Vec<ProblemReport>,
    /// Why the gates refused the set of a refused attempt.
    pub refusals: Vec<GateFailure>,
    /// The set held back by a pending attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// Attempts that swapped in a new set, or found the live one unchanged.
    pub ok: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Attempts whose set the gates refused.
    pub refused: u64,
}

/// Serializes a time as RFC 3339 with milliseconds, UTC.
pub fn rfc3339<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*time))
}

type Observer = Box<dyn Fn(&ReloadOutcome, &Snapshot) + Send + Sync>;

/// A set seen before, held back until the files settle.
struct Held {
    inputs: String,
    since: Instant,
    since_wall: SystemTime,
}

/// The live set and how to reload it. Share it as `Arc<PolicyStore>`.
pub struct PolicyStore {
    sources: Sources,
    current: ArcSwap<Snapshot>,
    /// Serializes reloads so that an older, slower load never replaces a newer one, and
    /// holds the set waiting to settle. A std mutex: it is held only by a thread building
    /// a snapshot, never across an `.await`.
    reloading: Mutex<Option<Held>>,
    status: Mutex<ReloadStatus>,
    observer: Option<Observer>,
    gate: Option<Box<dyn Gate>>,
    settle: Duration,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore")
            .field("sources", &self.sources)
            .field("version", &self.current.load().version)
            .field("gate", &self.gate)
            .field("settle", &self.settle)
            .finish()
    }
}

impl PolicyStore {
    /// Loads the first set; fails when it does not load, so nothing serves without one.
    /// No gate and no settle time until [`Self::with_gate`] and [`Self::with_settle`].
    pub fn open(sources: Sources) -> Result<Self, LoadError> {
        let snapshot = load(&sources)?;
        Ok(Self {
            sources,
            current: ArcSwap::from_pointee(snapshot),
            reloading: Mutex::new(None),
            status: Mutex::new(ReloadStatus {
                at: SystemTime::now(),
                result: LoadResult::Ok,
                errors: Vec::new(),
                refusals: Vec::new(),
                pending: None,
                ok: 1,
                failed: 0,
                refused: 0,
            }),
            observer: None,
            gate: None,
            settle: Duration::ZERO,
        })
    }

    /// Every later set must pass `gate` to go live; the first one must pass it now, or the
    /// store is not made (nothing serves a set its gates refuse).
    pub fn with_gate(mut self, gate: Box<dyn Gate>) -> Result<Self, Vec<GateFailure>> {
        let failures = gate.check(&self.current.load());
        if !failures.is_empty() {
            return Err(failures);
        }
        self.gate = Some(gate);
        Ok(self)
    }

    /// A watched reload whose set drops live policies waits until the files have been
    /// unchanged for `settle` (zero: never waits).
    pub fn with_settle(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// Calls `observer` after every reload with its outcome and the live snapshot (for
    /// metrics and logs).
    pub fn with_observer(
        mut self,
        observer: impl Fn(&ReloadOutcome, &Snapshot) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Box::new(observer));
        self
    }

    /// The live snapshot. Keep the `Arc` for the whole decision.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Where the set is loaded from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// What the gate reads, to be watched with the sources (none without a gate).
    pub fn gate_inputs(&self) -> Vec<std::path::PathBuf> {
        self.gate.as_ref().map(|g| g.inputs()).unwrap_or_default()
    }

    /// The last reload attempt's result.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reloads now, as an operator asks (`POST /v1/reload`, SIGHUP): the set goes live if
    /// it loads and the gates accept it, without waiting for the files to settle (files
    /// that keep changing while read are read again, for up to two seconds). Blocks while
    /// loading: call it from a blocking thread.
    pub fn reload(&self) -> ReloadOutcome {
        let mut attempts = 0;
        loop {
            let outcome = self.reload_with(false);
            attempts += 1;
            match &outcome {
                ReloadOutcome::Pending(p)
                    if p.reason == PendingReason::Changing && attempts < FORCED_ATTEMPTS =>
                {
                    std::thread::sleep(p.retry_in);
                }
                _ => return outcome,
            }
        }
    }

    /// Reloads because the files changed: as [`Self::reload`], except that a set dropping
    /// live policies waits for the files to settle (see the module's documentation). A
    /// [`ReloadOutcome::Pending`] says when to ask again.
    pub fn reload_watched(&self) -> ReloadOutcome {
        self.reload_with(true)
    }

    fn reload_with(&self, settle: bool) -> ReloadOutcome {
        let mut held = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (outcome, admitted) = match load(&self.sources) {
            Err(error) => (ReloadOutcome::Failed(error), None),
            Ok(snapshot) if snapshot.inputs == self.current.load().inputs => {
                (ReloadOutcome::Unchanged, None)
            }
            Ok(snapshot) => match self.admit(snapshot, settle, &mut held) {
                Admission::Admitted(snapshot) => (
                    ReloadOutcome::Swapped(snapshot.version.clone()),
                    Some(snapshot),
                ),
                Admission::Not(outcome) => (outcome, None),
            },
        };
        if !matches!(outcome, ReloadOutcome::Pending(_)) {
            *held = None;
        }
        self.report(&outcome, admitted);
        if let Some(observer) = &self.observer {
            observer(&outcome, &self.current.load());
        }
        outcome
    }

    /// Steps 2 to 4 of the module's list for a set that loaded: the set, admitted to go
    /// live, or why it is not.
    fn admit(&self, snapshot: Snapshot, settle: bool, held: &mut Option<Held>) -> Admission {
        let live = self.current.load();
        if inputs_of(&self.sources).as_deref() != Some(snapshot.inputs.as_str()) {
            return Admission::Not(ReloadOutcome::Pending(Pending {
                reason: PendingReason::Changing,
                dropped: Vec::new(),
                files: Vec::new(),
                since: SystemTime::now(),
                until: SystemTime::now() + CHANGING_RETRY,
                retry_in: CHANGING_RETRY,
                version: snapshot.version,
            }));
        }
        let (dropped, files) = dropped(&live, &snapshot);
        if settle && !self.settle.is_zero() && !dropped.is_empty() {
            let seen = held.take().filter(|h| h.inputs == snapshot.inputs);
            let seen = seen.unwrap_or_else(|| Held {
                inputs: snapshot.inputs.clone(),
                since: Instant::now(),
                since_wall: SystemTime::now(),
            });
            let waited = seen.since.elapsed();
            if waited < self.settle {
                let pending = Pending {
                    version: snapshot.version.clone(),
                    reason: PendingReason::Settling,
                    dropped,
                    files,
                    since: seen.since_wall,
                    until: seen.since_wall + self.settle,
                    retry_in: self.settle - waited,
                };
                *held = Some(seen);
                return Admission::Not(ReloadOutcome::Pending(pending));
            }
        }
        if let Some(gate) = &self.gate {
            let failures = gate.check(&snapshot);
            if !failures.is_empty() {
                return Admission::Not(ReloadOutcome::Refused {
                    version: snapshot.version,
                    failures,
                });
            }
        }
        Admission::Admitted(Arc::new(snapshot))
    }

    /// Swaps in the admitted set, if any, and records the outcome for `/v1/status` under one
    /// lock, so a reader who sees the new set live and then asks for the status sees the
    /// reload that put it there (not the attempt before); then logs it.
    fn report(&self, outcome: &ReloadOutcome, admitted: Option<Arc<Snapshot>>) {
        let before = {
            let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(snapshot) = admitted {
                self.current.store(snapshot);
            }
            let before = status.result;
            status.at = SystemTime::now();
            status.result = outcome.result();
            status.errors.clear();
            status.refusals.clear();
            status.pending = None;
            match outcome {
                ReloadOutcome::Swapped(_) | ReloadOutcome::Unchanged => status.ok += 1,
                ReloadOutcome::Failed(error) => {
                    status.errors = error.problems.iter().map(ProblemReport::from).collect();
                    status.failed += 1;
                }
                ReloadOutcome::Refused { failures, .. } => {
                    status.refusals.clone_from(failures);
                    status.refused += 1;
                }
                ReloadOutcome::Pending(pending) => status.pending = Some(pending.clone()),
            }
            before
        };
        let was_broken = matches!(before, LoadResult::Failed | LoadResult::Refused);
        if was_broken && matches!(outcome.result(), LoadResult::Ok | LoadResult::Unchanged) {
            tracing::info!(
                version = %self.current.load().version,
                "the policy files load again (the last failed or refused reload is over)"
            );
        }
        match outcome {
            ReloadOutcome::Swapped(version) => tracing::info!(%version, "policy set reloaded"),
            ReloadOutcome::Unchanged => tracing::debug!("policy files changed, set unchanged"),
            ReloadOutcome::Failed(error) => {
                for problem in &error.problems {
                    let help = problem.help.as_deref();
                    tracing::error!(problem = %problem, help, "reload failed, keeping the last good policy set");
                }
            }
            ReloadOutcome::Refused { version, failures } => {
                for failure in failures {
                    let detail = failure.detail.as_ref().map(ToString::to_string);
                    tracing::error!(%version, failure = %failure, detail, "reload refused by a gate, keeping the last good policy set");
                }
            }
            ReloadOutcome::Pending(pending) if pending.reason == PendingReason::Settling => {
                tracing::warn!(
                    version = %pending.version,
                    dropped = ?pending.dropped,
                    files = ?pending.files,
                    until = %humantime::format_rfc3339_millis(pending.until),
                    "policy set held back: it drops live policies and the files have not settled; it goes live if they stay as they are"
                );
            }
            ReloadOutcome::Pending(_) => {
                tracing::debug!("policy files changed while read, reading them again");
            }
        }
    }
}

/// Whether a set that loaded may go live.
enum Admission {
    /// It may: swap it in.
    Admitted(Arc<Snapshot>),
    /// It may not, or not yet: the outcome says why.
    Not(ReloadOutcome),
}

/// The live policies `candidate` does not have, and the files they are in.
fn dropped(live: &Snapshot, candidate: &Snapshot) -> (Vec<String>, Vec<String>) {
    let kept: BTreeSet<&str> = candidate.info.iter().map(|i| i.id.as_str()).collect();
    let gone: Vec<_> = live
        .info
        .iter()
        .filter(|i| !kept.contains(i.id.as_str()))
        .collect();
    let files: BTreeSet<String> = gone.iter().map(|i| i.file.display().to_string()).collect();
    (
        gone.iter().map(|i| i.id.clone()).collect(),
        files.into_iter().collect(),
    )
}
