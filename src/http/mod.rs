//! The HTTP API: the router, its handlers, the one [`error::ApiError`], and the middleware
//! (request ids, metrics, the admin token, body limit, timeout).
//!
//! Handlers take the live snapshot once per request and never hold a lock across `.await`.
//! This module knows how to speak HTTP; what a decision is lives in [`crate::decide`].

pub mod admin;
pub mod decisions;
pub mod error;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::decide::question::uid_text;
use crate::decide::{Answer, Decider, Question, Verdict};
use crate::policy::PolicyStore;
use crate::telemetry::{DecisionLog, Metrics, RouteLabel, RouteLabels};
use error::ApiError;

/// Limits and secrets of the HTTP layer, parsed once at start.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// When set, the admin routes require `Authorization: Bearer <token>`.
    pub admin_token: Option<String>,
    /// Largest accepted body, in bytes.
    pub max_body: usize,
    /// Most questions in one batch.
    pub max_batch: usize,
    /// Longest a request may take, body upload included.
    pub request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            admin_token: None,
            max_body: 1 << 20,
            max_batch: 100,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What every handler shares: a cheap-to-clone handle.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The shared state behind [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The live policy set.
    pub store: Arc<PolicyStore>,
    /// Answers questions, with the decision cache.
    pub decider: Decider,
    /// The app's metrics.
    pub metrics: Arc<Metrics>,
    /// The decision log, when enabled.
    pub log: Option<DecisionLog>,
    /// Limits and secrets.
    pub config: HttpConfig,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Bundles the parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// Counts a decision and writes its decision-log line.
    pub fn record(
        &self,
        request_id: &str,
        question: &Question,
        shared_entities: Option<&Value>,
        answer: &Answer,
        started: Instant,
    ) {
        let decision = &answer.decision;
        let verdict = match decision.decision {
            Verdict::Allow => "Allow",
            Verdict::Deny => "Deny",
        };
        self.metrics.counter(&self.metrics.decisions, verdict);
        self.metrics.counter(
            &self.metrics.cache,
            if answer.cache_hit { "hit" } else { "miss" },
        );
        let Some(log) = &self.log else {
            return;
        };
        let line = DecisionLine {
            time: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            request_id,
            principal: uid_text(&question.principal),
            action: uid_text(&question.action),
            resource: uid_text(&question.resource),
            decision: verdict,
            reasons: &decision.reasons,
            errors: &decision.errors,
            policy_version: &answer.policy_version,
            cache_hit: answer.cache_hit,
            latency_us: started.elapsed().as_micros() as u64,
            context: log.full.then_some(question.context.as_ref()).flatten(),
            entities: log.full.then_some(question.entities.as_ref()).flatten(),
            shared_entities: log.full.then_some(shared_entities).flatten(),
        };
        let written = serde_json::to_string(&line).is_ok_and(|text| log.write(text));
        if !written {
            self.metrics.decision_log_dropped.inc();
        }
    }
}

#[derive(Serialize)]
struct DecisionLine<'a> {
    time: String,
    request_id: &'a str,
    principal: String,
    action: String,
    resource: String,
    decision: &'static str,
    reasons: &'a [String],
    errors: &'a [String],
    policy_version: &'a str,
    cache_hit: bool,
    latency_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entities: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_entities: Option<&'a Value>,
}

/// The whole API as a router, testable with `oneshot` without a socket.
pub fn app(state: AppState) -> Router {
    let admin = Router::new()
        .route("/v1/status", get(admin::status))
        .route("/v1/policies", get(admin::policies))
        .route("/v1/reload", post(admin::reload))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            admin::require_admin,
        ));
    Router::new()
        .route("/v1/is_authorized", post(decisions::is_authorized))
        .route("/v1/is_authorized/batch", post(decisions::batch))
        .route("/v1/allowed_actions", post(decisions::allowed_actions))
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(state.config.max_body))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ))
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
    ApiError {
        status: axum::http::StatusCode::NOT_FOUND,
        code: "not_found",
        message: format!("no route `{} {}`", request.method(), request.uri().path()),
    }
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!(
            "`{}` is not allowed on `{}`",
            request.method(),
            request.uri().path()
        ),
    }
}

/// Counts requests and their latency by matched route (never the raw URI, so that metric
/// cardinality stays bounded).
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await.into_response();
    let labels = RouteLabels {
        route: route.clone(),
        method,
        status: response.status().as_u16(),
    };
    state.metrics.http_requests.get_or_create(&labels).inc();
    state
        .metrics
        .http_latency
        .get_or_create(&RouteLabel { route })
        .observe(started.elapsed().as_secs_f64());
    response
}
