//! The state every handler shares: the services the application builds, and what serving
//! adds to them (the request slots, the deciding runtime). Data, with the few helpers every
//! route uses; what a route does stays in its handler's module.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::conn;
use super::error::ApiError;
use super::hot::HotCache;
use crate::decide::Decider;
use crate::plan::Planner;
use crate::policy::PolicyStore;
use crate::shadow::Shadow;
use crate::telemetry::{DecisionLog, Metrics};

/// The limits of the HTTP layer, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted body, in bytes.
    pub max_body: usize,
    /// Most questions in one batch.
    pub max_batch: usize,
    /// Most entities in one request (shared and per-question lists together, per question).
    pub max_entities: usize,
    /// Most requests served at once; past that, 503 with `Retry-After: 1`.
    pub max_concurrency: usize,
    /// Longest a request may take, body upload included.
    pub request_timeout: Duration,
    /// Answer 400 `missing_entity` instead of a decision when an entity the question names
    /// or the deciding path reads is neither sent nor stored (every question, not only those
    /// that ask with `strict_entities`).
    pub strict_entities: bool,
    /// The limits of the connections (timeouts between requests, the cap, shutdown).
    pub connections: conn::ConnLimits,
}

/// What every handler shares: a cheap-to-clone handle on the [`Services`], with the
/// request slots and the deciding runtime made from their limits.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Running>);

/// The services behind [`AppState`], as [`crate::app::Application::build`] assembles them.
#[derive(Debug)]
pub struct Services {
    /// The live policy set.
    pub store: Arc<PolicyStore>,
    /// Answers questions, with the decision cache.
    pub decider: Decider,
    /// Query plans, with their cache.
    pub planner: Planner,
    /// The app's metrics.
    pub metrics: Arc<Metrics>,
    /// The decision log, when enabled.
    pub log: Option<DecisionLog>,
    /// The HTTP limits.
    pub limits: Limits,
    /// When set, the admin routes require `Authorization: Bearer <token>`.
    pub(crate) admin_token: Option<String>,
    /// Rendered `/v1/is_authorized` answers by the digest of the body.
    pub(crate) hot: HotCache,
    /// How AuthZEN names map to Cedar's, and where this PDP is reached.
    pub authzen: Authzen,
    /// The candidate set, with `--shadow-policies`.
    pub shadow: Option<Shadow>,
    /// The entity database, with `--entities-db` (see [`AppState::sourced`]).
    pub entity_db: Option<Arc<crate::sourced::EntityDb>>,
}

/// The services and what serving adds to them.
#[derive(Debug)]
struct Running {
    services: Services,
    /// One permit per request in flight, up to `max_concurrency`.
    slots: Semaphore,
    /// Where heavy requests are decided (see [`super::middleware::offload`]).
    deciding: Deciding,
}

/// The AuthZEN settings.
#[derive(Debug, Clone, Default)]
pub struct Authzen {
    /// AuthZEN type names to Cedar entity types.
    pub types: crate::authzen::TypeMap,
    /// The URL callers reach the sidecar at, when configured.
    pub public_url: Option<String>,
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0.services
    }
}

impl AppState {
    /// Hands a request's input and live decisions to the shadow evaluation, when there is
    /// one: `job` runs only then (a reference count or a move, never a copy of the body), so
    /// without a candidate a decision pays nothing.
    pub(crate) fn shadow(
        &self,
        request_id: &str,
        live: &Arc<crate::policy::Snapshot>,
        job: impl FnOnce() -> (
            crate::shadow::Input,
            Vec<Option<Arc<crate::decide::Decision>>>,
        ),
    ) {
        if let Some(shadow) = self.shadow.as_ref().filter(|s| s.sampled()) {
            let (input, decisions) = job();
            shadow.offer(crate::shadow::Job {
                request_id: request_id.to_string(),
                input,
                live: Arc::clone(live),
                decisions,
            });
        }
    }

    /// Strict entities, asked by the question or set for the server: a 400 naming the
    /// entities `missing` (none: nothing to say).
    pub fn check_missing<S: AsRef<str>>(&self, asked: bool, missing: &[S]) -> Result<(), ApiError> {
        if (asked || self.limits.strict_entities) && !missing.is_empty() {
            let missing: Vec<String> = missing.iter().map(|m| m.as_ref().to_string()).collect();
            return Err(ApiError::missing_entities(&missing));
        }
        Ok(())
    }

    /// The state serving `services` (see [`crate::app::Application::build`]): the request
    /// slots and the deciding runtime are made from their limits.
    pub(crate) fn new(services: Services) -> Self {
        Self(Arc::new(Running {
            slots: Semaphore::new(services.limits.max_concurrency),
            deciding: Deciding::new(),
            services,
        }))
    }

    /// The permits of the requests in flight.
    pub(crate) fn slots(&self) -> &Semaphore {
        &self.0.slots
    }

    /// Where heavy requests are decided.
    pub(crate) fn deciding(&self) -> &Deciding {
        &self.0.deciding
    }

    /// What SIGHUP does, as logrotate and operators expect: the decision log is opened again
    /// (after the lines queued before are written) and the policy files are reloaded now,
    /// as `POST /v1/reload` does, the candidate's too.
    pub async fn hang_up(&self) {
        tracing::info!("SIGHUP: opening the decision log again and reloading the policy files");
        if let Some(log) = &self.log {
            log.reopen();
        }
        let stores = std::iter::once(Arc::clone(&self.store))
            .chain(self.shadow.as_ref().map(|s| Arc::clone(s.store())));
        for store in stores {
            if let Err(error) = tokio::task::spawn_blocking(move || store.reload()).await {
                tracing::error!(%error, "the reload on SIGHUP failed");
            }
        }
    }

    /// Whether the admin routes take requests without a token.
    pub fn admin_token_is_open(&self) -> bool {
        self.admin_token.is_none()
    }

    /// The hot answers, unless the decision log must record each question's context and
    /// entities (which a hot answer does not parse), or the entities come from a database
    /// (a body's bytes do not say what the database held when it was answered).
    pub fn hot(&self) -> Option<&HotCache> {
        match &self.log {
            Some(log) if log.full => None,
            _ => Some(&self.hot),
        }
    }

    /// The entity database: `None` without `--entities-db`; 503 `entities_unavailable`
    /// while it has not been reached.
    pub fn sourced(&self) -> Result<Option<&crate::sourced::Sourced>, ApiError> {
        self.entity_db.as_ref().map(|db| db.get()).transpose()
    }

    /// How many rendered answers the hot cache holds.
    pub fn hot_entries(&self) -> u64 {
        self.hot.len()
    }

    /// The weight of the rendered answers the hot cache holds, in bytes.
    pub fn hot_bytes(&self) -> u64 {
        self.hot.weight()
    }
}

/// The deciding runtime: as many threads as there are cores, for the requests that may keep
/// a thread busy for long. Shut down without waiting when the state goes (a state may be
/// dropped on an async thread, where waiting is not allowed); a request still on it is
/// then dropped, as its connection is.
pub(crate) struct Deciding(Option<tokio::runtime::Runtime>);

impl std::fmt::Debug for Deciding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deciding")
    }
}

impl Deciding {
    fn new() -> Self {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("gatehouse-decide")
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => Self(Some(runtime)),
            Err(error) => {
                tracing::warn!(%error, "no deciding runtime: heavy requests are decided on the async threads");
                Self(None)
            }
        }
    }

    /// Spawns `task` on the deciding runtime (or, without one, on the current runtime).
    pub(crate) fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.0 {
            Some(runtime) => runtime.spawn(task),
            None => tokio::spawn(task),
        }
    }
}

impl Drop for Deciding {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
