//! The live policy set: the current [`Snapshot`] behind an atomic pointer, replaced only by a
//! complete, valid successor.
//!
//! Readers call [`PolicyStore::current`] and keep the `Arc` for the whole of their work, so a
//! reload never changes the set under a decision. [`PolicyStore::reload`] builds a new
//! snapshot from the files and swaps it in only when it loads without a single problem;
//! otherwise the last good set stays live and the failure is recorded for `/v1/status`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::Serialize;

use super::{LoadError, Problem, Snapshot, Sources, load};

/// What one reload did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// A new, valid set with this version is live.
    Swapped(String),
    /// The files load to the set already live (same version): nothing to swap.
    Unchanged,
    /// The files do not load; the last good set stays live.
    Failed(LoadError),
}

impl ReloadOutcome {
    /// The outcome's result, without its details.
    pub fn result(&self) -> LoadResult {
        match self {
            Self::Swapped(_) => LoadResult::Ok,
            Self::Unchanged => LoadResult::Unchanged,
            Self::Failed(_) => LoadResult::Failed,
        }
    }
}

/// How a load of the policy files ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoadResult {
    /// A new, valid set is live (or, at start-up, the first one).
    Ok,
    /// The files load to the set already live.
    Unchanged,
    /// The files do not load; the last good set stays live.
    Failed,
}

impl LoadResult {
    /// The result as `/v1/status` and the metrics write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
        }
    }
}

/// A problem as `/v1/status` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
}

impl From<&Problem> for ProblemReport {
    fn from(p: &Problem) -> Self {
        Self {
            file: p.file.display().to_string(),
            line: p.location.map(|(l, _)| l),
            col: p.location.map(|(_, c)| c),
            message: p.message.clone(),
            text: p.to_string(),
        }
    }
}

/// The result of the last reload attempt, and counts since start.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadStatus {
    /// When the last attempt ran (the start-up load counts as one).
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: SystemTime,
    /// How it ended.
    pub result: LoadResult,
    /// The problems of a failed attempt.
    pub errors: Vec<ProblemReport>,
    /// Attempts that swapped in a new set, or found the live one unchanged.
    pub ok: u64,
    /// Attempts that failed.
    pub failed: u64,
}

/// Serializes a time as RFC 3339 with milliseconds, UTC.
pub fn rfc3339<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*time))
}

type Observer = Box<dyn Fn(&ReloadOutcome, &Snapshot) + Send + Sync>;

/// The live set and how to reload it. Share it as `Arc<PolicyStore>`.
pub struct PolicyStore {
    sources: Sources,
    current: ArcSwap<Snapshot>,
    /// Serializes reloads so that an older, slower load never replaces a newer one. A std
    /// mutex: it is held only by a thread building a snapshot, never across an `.await`.
    reloading: Mutex<()>,
    status: Mutex<ReloadStatus>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore")
            .field("sources", &self.sources)
            .field("version", &self.current.load().version)
            .finish()
    }
}

impl PolicyStore {
    /// Loads the first set; fails when it does not load, so nothing serves without one.
    pub fn open(sources: Sources) -> Result<Self, LoadError> {
        let snapshot = load(&sources)?;
        Ok(Self {
            sources,
            current: ArcSwap::from_pointee(snapshot),
            reloading: Mutex::new(()),
            status: Mutex::new(ReloadStatus {
                at: SystemTime::now(),
                result: LoadResult::Ok,
                errors: Vec::new(),
                ok: 1,
                failed: 0,
            }),
            observer: None,
        })
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

    /// The last reload attempt's result.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Builds a new snapshot from the files and swaps it in if, and only if, it is valid.
    /// Blocks while loading: call it from a blocking thread.
    pub fn reload(&self) -> ReloadOutcome {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let outcome = match load(&self.sources) {
            Ok(snapshot) if snapshot.version == self.current.load().version => {
                ReloadOutcome::Unchanged
            }
            Ok(snapshot) => {
                let version = snapshot.version.clone();
                self.current.store(Arc::new(snapshot));
                ReloadOutcome::Swapped(version)
            }
            Err(error) => ReloadOutcome::Failed(error),
        };
        {
            let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
            status.at = SystemTime::now();
            status.result = outcome.result();
            match &outcome {
                ReloadOutcome::Swapped(_) | ReloadOutcome::Unchanged => {
                    status.errors.clear();
                    status.ok += 1;
                }
                ReloadOutcome::Failed(error) => {
                    status.errors = error.problems.iter().map(ProblemReport::from).collect();
                    status.failed += 1;
                }
            }
        }
        match &outcome {
            ReloadOutcome::Swapped(version) => tracing::info!(%version, "policy set reloaded"),
            ReloadOutcome::Unchanged => tracing::debug!("policy files changed, set unchanged"),
            ReloadOutcome::Failed(error) => {
                for problem in &error.problems {
                    tracing::error!(problem = %problem, "reload failed, keeping the last good policy set");
                }
            }
        }
        if let Some(observer) = &self.observer {
            observer(&outcome, &self.current.load());
        }
        outcome
    }
}
