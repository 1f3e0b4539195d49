//! The HTTP API: the router, its handlers, the one [`error::ApiError`], and the middleware
//! (request ids, metrics, load shedding, timeout, body limit, the admin token).
//!
//! Handlers take the live snapshot once per request and never hold a lock across `.await`.
//! This module knows how to speak HTTP; what a decision is lives in [`crate::decide`]. The
//! state is built by [`crate::app::Application`], never by hand.

pub mod admin;
pub mod authzen;
pub mod decisions;
pub mod error;
pub mod middleware;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::decide::{Decider, Decision};
use crate::plan::Planner;
use crate::policy::PolicyStore;
use crate::telemetry::{DecisionLog, Metrics};
use error::{ApiError, ErrorCode};

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
}

/// What every handler shares: a cheap-to-clone handle.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Services>);

/// The services behind [`AppState`].
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
    admin_token: Option<String>,
    /// Rendered `/v1/is_authorized` answers by the digest of the body.
    hot: HotCache,
    /// One permit per request in flight, up to `max_concurrency`.
    slots: Arc<Semaphore>,
    /// How AuthZEN names map to Cedar's, and where this PDP is reached.
    pub authzen: Authzen,
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
        &self.0
    }
}

/// The parts an [`AppState`] is built from (by [`crate::app::Application::build`]).
#[derive(Debug)]
pub struct Parts {
    /// The live policy set.
    pub store: Arc<PolicyStore>,
    /// The decider.
    pub decider: Decider,
    /// The planner.
    pub planner: Planner,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The decision log, when enabled.
    pub log: Option<DecisionLog>,
    /// The limits.
    pub limits: Limits,
    /// The admin token, when set.
    pub admin_token: Option<String>,
    /// How many rendered answers the hot cache keeps, and how long.
    pub hot: (u64, Duration),
    /// The AuthZEN settings.
    pub authzen: Authzen,
}

impl AppState {
    /// Strict entities, asked by the question or set for the server: a 400 naming the
    /// entities `missing` (none: nothing to say).
    pub fn check_missing<S: AsRef<str>>(
        &self,
        asked: bool,
        missing: &[S],
    ) -> Result<(), error::ApiError> {
        if (asked || self.limits.strict_entities) && !missing.is_empty() {
            let missing: Vec<String> = missing.iter().map(|m| m.as_ref().to_string()).collect();
            return Err(error::ApiError::missing_entities(&missing));
        }
        Ok(())
    }

    /// Bundles the parts (see [`crate::app::Application::build`]).
    pub(crate) fn new(parts: Parts) -> Self {
        let (capacity, ttl) = parts.hot;
        let hot = HotCache(
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        );
        Self(Arc::new(Services {
            slots: Arc::new(Semaphore::new(parts.limits.max_concurrency)),
            store: parts.store,
            decider: parts.decider,
            planner: parts.planner,
            metrics: parts.metrics,
            log: parts.log,
            limits: parts.limits,
            admin_token: parts.admin_token,
            hot,
            authzen: parts.authzen,
        }))
    }

    /// The hot answers, unless the decision log must record each question's context and
    /// entities (which a hot answer does not parse).
    pub fn hot(&self) -> Option<&HotCache> {
        match &self.log {
            Some(log) if log.full => None,
            _ => Some(&self.hot),
        }
    }

    /// How many rendered answers the hot cache holds.
    pub fn hot_entries(&self) -> u64 {
        self.hot.0.run_pending_tasks();
        self.hot.0.entry_count()
    }
}

/// Rendered `/v1/is_authorized` answers by the digest of the policy version and the exact
/// request body: a repeated question is answered without parsing it at all. Its entries also
/// hold what the decision log needs.
#[derive(Clone)]
pub struct HotCache(moka::sync::Cache<crate::decide::cache::Key, Arc<HotAnswer>>);

impl std::fmt::Debug for HotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HotCache")
    }
}

/// A rendered answer and what to log about it.
#[derive(Debug)]
pub struct HotAnswer {
    /// The response body.
    pub body: axum::body::Bytes,
    /// The decision, for the decision log and metrics.
    pub decision: Arc<Decision>,
    /// The question's principal, action and resource as text.
    pub who: [String; 3],
}

/// The whole API as a router, testable with `oneshot` without a socket. The layers, from
/// the outside in: request id, metrics (so that shed and timed-out requests are counted),
/// load shedding, timeout, body limit.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .route("/v1/status", get(admin::status))
        .route("/v1/policies", get(admin::policies))
        .route("/v1/reload", post(admin::reload))
        .route_layer(from_fn_with_state(state.clone(), middleware::require_admin));
    Router::new()
        .route("/v1/is_authorized", post(decisions::is_authorized))
        .route("/v1/is_authorized/batch", post(decisions::batch))
        .route("/v1/allowed_actions", post(decisions::allowed_actions))
        .route("/v1/plan", post(decisions::plan))
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route("/access/v1/search/subject", post(authzen::search_subject))
        .route("/access/v1/search/resource", post(authzen::search_resource))
        .route("/access/v1/search/action", post(authzen::search_action))
        .route(
            "/.well-known/authzen-configuration",
            get(authzen::configuration),
        )
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.limits.max_body))
        .layer(from_fn_with_state(state.clone(), middleware::timeout))
        .layer(from_fn_with_state(state.clone(), middleware::shed))
        .layer(from_fn_with_state(state.clone(), middleware::track))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then drains the requests in
/// flight and returns.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no route `{} {}`", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "`{}` is not allowed on `{}`",
            request.method(),
            request.uri().path()
        ),
    )
}
