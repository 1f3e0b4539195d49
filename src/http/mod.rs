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
    /// Answers kept by the digest of the exact request body, served before any parsing
    /// (0: none).
    pub hot_capacity: u64,
    /// Longest a hot answer is kept (the decision cache's TTL).
    pub hot_ttl: Duration,
    /// Most entities in one request (shared and per-question lists together, per question).
    pub max_entities: usize,
    /// Most requests served at once; past that, 503 with `Retry-After: 1`.
    pub max_concurrency: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            admin_token: None,
            max_body: 1 << 20,
            max_batch: 100,
            request_timeout: Duration::from_secs(10),
            hot_capacity: 10_000,
            hot_ttl: Duration::from_secs(300),
            max_entities: 10_000,
            max_concurrency: 1024,
        }
    }
}

/// What every handler shares: a cheap-to-clone handle.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// [`Shared`] plus what the HTTP layer keeps for itself.
#[derive(Debug)]
pub struct Inner {
    shared: Shared,
    /// Rendered answers by the digest of (policy version, exact body bytes).
    hot: HotCache,
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
    pub decision: Arc<crate::decide::Decision>,
    /// The question's principal, action and resource as text.
    pub who: [String; 3],
}

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
        &self.0.shared
    }
}

impl AppState {
    /// Bundles the parts.
    pub fn new(shared: Shared) -> Self {
        let hot = HotCache(
            moka::sync::Cache::builder()
                .max_capacity(shared.config.hot_capacity)
                .time_to_live(shared.config.hot_ttl)
                .build(),
        );
        Self(Arc::new(Inner { shared, hot }))
    }

    /// The hot answers, unless the decision log must record each question's context and
    /// entities (which a hot answer does not parse).
    pub fn hot(&self) -> Option<&HotCache> {
        match &self.log {
            Some(log) if log.full => None,
            _ => Some(&self.0.hot),
        }
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
        let full = self.log.as_ref().is_some_and(|log| log.full);
        let who = || {
            [
                uid_text(&question.principal),
                uid_text(&question.action),
                uid_text(&question.resource),
            ]
        };
        let extra = full.then_some((
            question.context.as_ref(),
            question.entities.as_ref(),
            shared_entities,
        ));
        self.count_and_log(
            request_id,
            who,
            &answer.decision,
            &answer.policy_version,
            answer.cache_hit,
            started,
            extra,
        );
    }

    /// Counts and logs an answer served from the hot cache.
    pub fn record_hot(&self, request_id: &str, hot: &HotAnswer, version: &str, started: Instant) {
        self.count_and_log(
            request_id,
            || hot.who.clone(),
            &hot.decision,
            version,
            true,
            started,
            None,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn count_and_log(
        &self,
        request_id: &str,
        who: impl FnOnce() -> [String; 3],
        decision: &crate::decide::Decision,
        policy_version: &str,
        cache_hit: bool,
        started: Instant,
        extra: Option<(Option<&Value>, Option<&Value>, Option<&Value>)>,
    ) {
        let verdict = match decision.decision {
            Verdict::Allow => "Allow",
            Verdict::Deny => "Deny",
        };
        self.metrics.count_decision(verdict, cache_hit);
        let Some(log) = &self.log else {
            return;
        };
        let [principal, action, resource] = who();
        let (context, entities, shared_entities) = extra.unwrap_or_default();
        let line = DecisionLine {
            time: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            request_id,
            principal,
            action,
            resource,
            decision: verdict,
            reasons: &decision.reasons,
            errors: &decision.errors,
            policy_version,
            cache_hit,
            latency_us: started.elapsed().as_micros() as u64,
            context,
            entities,
            shared_entities,
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
/// flight and returns. Past `max_concurrency` requests in flight, a request is shed at once
/// with 503 and `Retry-After: 1` rather than queued (the limit wraps the whole router:
/// `Router::layer` would give each route its own).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = state.config.max_concurrency;
    let service = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(axum::error_handling::HandleErrorLayer::new(overloaded))
        .load_shed()
        .concurrency_limit(max)
        .service(app(state));
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(service),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn overloaded(_: tower::BoxError) -> Response {
    let mut response = ApiError {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        code: "overloaded",
        message: "gatehouse is serving as many requests as it is allowed to; retry shortly".into(),
    }
    .into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
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
