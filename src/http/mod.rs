//! The HTTP API: the router, its handlers, the one [`error::ApiError`], and the middleware
//! (request ids, metrics, load shedding, timeout, body limit, the admin token).
//!
//! Handlers take the live snapshot once per request and never hold a lock across `.await`.
//! This module knows how to speak HTTP; what a decision is lives in [`crate::decide`]. The
//! state is built by [`crate::app::Application`], never by hand.

pub mod admin;
pub mod authzen;
pub mod body;
pub mod conn;
pub mod decisions;
pub mod error;
pub mod middleware;
pub mod strict;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::from_fn_with_state;
use axum::{Extension, Json, Router};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::decide::{Decider, Decision};
use crate::plan::Planner;
use crate::policy::PolicyStore;
use crate::shadow::Shadow;
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
    /// The limits of the connections (timeouts between requests, the cap, shutdown).
    pub connections: conn::ConnLimits,
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
    /// Where heavy requests are decided (see [`middleware::offload`]).
    deciding: Deciding,
    /// How AuthZEN names map to Cedar's, and where this PDP is reached.
    pub authzen: Authzen,
    /// The candidate set, with `--shadow-policies`.
    pub shadow: Option<Shadow>,
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
    /// What the hot cache may hold, and how long.
    pub hot: (crate::decide::cache::Budget, Duration),
    /// The AuthZEN settings.
    pub authzen: Authzen,
    /// The candidate set every decision is asked of too, with `--shadow-policies`.
    pub shadow: Option<Shadow>,
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
        let hot = HotCache(crate::decide::cache::Expiring::new(capacity, ttl));
        Self(Arc::new(Services {
            slots: Arc::new(Semaphore::new(parts.limits.max_concurrency)),
            deciding: Deciding::new(),
            store: parts.store,
            decider: parts.decider,
            planner: parts.planner,
            metrics: parts.metrics,
            log: parts.log,
            limits: parts.limits,
            admin_token: parts.admin_token,
            hot,
            authzen: parts.authzen,
            shadow: parts.shadow,
        }))
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
    /// entities (which a hot answer does not parse).
    pub fn hot(&self) -> Option<&HotCache> {
        match &self.log {
            Some(log) if log.full => None,
            _ => Some(&self.hot),
        }
    }

    /// How many rendered answers the hot cache holds.
    pub fn hot_entries(&self) -> u64 {
        self.hot.0.len()
    }

    /// The weight of the rendered answers the hot cache holds, in bytes.
    pub fn hot_bytes(&self) -> u64 {
        self.hot.0.weight()
    }
}

/// The deciding runtime: as many threads as there are cores, for the requests that may keep
/// a thread busy for long. Shut down without waiting when the state goes (a state may be
/// dropped on an async thread, where waiting is not allowed); a request still on it is
/// then dropped, as its connection is.
struct Deciding(Option<tokio::runtime::Runtime>);

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
    fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
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

/// Rendered `/v1/is_authorized` answers by the digest of the policy version and the exact
/// request body: a repeated question is answered without parsing it at all. Its entries also
/// hold what the decision log needs.
#[derive(Clone)]
pub struct HotCache(crate::decide::cache::Expiring<Arc<HotAnswer>>);

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

impl crate::decide::cache::Weight for HotAnswer {
    fn weight(&self) -> u64 {
        let who: u64 = self
            .who
            .iter()
            .map(|s| crate::decide::cache::string_weight(s))
            .sum();
        std::mem::size_of::<Self>() as u64 + self.body.len() as u64 + who + self.decision.weight()
    }
}

/// What the document says beyond the routes: the API's name, the admin token's scheme,
/// the tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "gatehouse",
        description = "A Cedar policy-decision sidecar for applications that let people share projects: \
            decisions (`/v1`), query plans, the OpenID AuthZEN Authorization API 1.0 (`/access/v1`), \
            and the sidecar's own operations. Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`; \
            a decision is never an error.",
        license(name = "Apache-2.0"),
    ),
    // The plan's condition is recursive: its parts are named here, where the derive stops.
    components(schemas(
        body::ProblemsDoc,
        crate::plan::condition::Comparison,
        crate::plan::condition::Operand,
        crate::plan::condition::Literal,
        crate::plan::condition::Uid,
        crate::plan::condition::Extension,
    )),
    modifiers(&CommonResponses),
    tags(
        (name = "decisions", description = "May this principal do this to this resource? And which ones may she?"),
        (name = "authzen", description = "The OpenID AuthZEN Authorization API 1.0"),
        (name = "admin", description = "The live policy set (behind the admin token when one is set)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

/// What every route may answer besides its own responses: the limits of the HTTP layer and
/// a fault of the sidecar's, all in the one error shape; and the request id every response
/// carries.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{Parameter, ParameterIn};
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        use utoipa::openapi::{Header, Ref, Required, Response, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let error = |description: &str| -> Response {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build()
        };
        let string = || {
            utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String)
        };
        let request_id = Parameter::builder()
            .name("x-request-id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("Echoed in the response; one is made when absent"))
            .schema(Some(string()))
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                let takes_body = operation.request_body.is_some();
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(request_id.clone());
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, response: Response| {
                    responses.entry(status.into()).or_insert(response.into());
                };
                if takes_body {
                    add(
                        "400",
                        error(
                            "`malformed_json`, `invalid_request` or a field of the body is wrong",
                        ),
                    );
                    add(
                        "413",
                        error("`body_too_large`: the body is over `--max-body`"),
                    );
                }
                add(
                    "408",
                    error("`request_timeout`: the request took longer than `--request-timeout`"),
                );
                let mut overloaded =
                    error("`overloaded`: more requests in flight than `--max-concurrency`");
                overloaded
                    .headers
                    .insert("Retry-After".into(), Header::new(string()));
                add("503", overloaded);
                add(
                    "500",
                    error("`internal`: a fault of the sidecar's, logged with the request id"),
                );
                for response in responses.values_mut() {
                    if let utoipa::openapi::RefOr::T(response) = response {
                        response.headers.insert(
                            "x-request-id".into(),
                            Header::builder()
                                .schema(string())
                                .description(Some("The request's id (the caller's, or made here)"))
                                .build(),
                        );
                    }
                }
            }
        }
    }
}

/// The routes and their description, built together so that no route goes undescribed:
/// the public routes, the admin routes (which [`app`] puts behind the admin token), the
/// operations routes (health, readiness, metrics, this document: kept out of load shedding
/// and the timeout), and the document.
fn documented() -> Documented {
    let (public, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(decisions::is_authorized))
        .routes(routes!(decisions::batch))
        .routes(routes!(decisions::allowed_actions))
        .routes(routes!(decisions::plan))
        .routes(routes!(admin::schema))
        .routes(routes!(authzen::evaluation))
        .routes(routes!(authzen::evaluations))
        .routes(routes!(authzen::search_subject))
        .routes(routes!(authzen::search_resource))
        .routes(routes!(authzen::search_action))
        .routes(routes!(authzen::configuration))
        .split_for_parts();
    let (ops, ops_doc) = OpenApiRouter::new()
        .routes(routes!(admin::healthz))
        .routes(routes!(admin::readyz))
        .routes(routes!(admin::metrics))
        .routes(routes!(openapi_json))
        .split_for_parts();
    let (admin, admin_doc) = OpenApiRouter::new()
        .routes(routes!(admin::status))
        .routes(routes!(admin::policies))
        .routes(routes!(admin::reload))
        .split_for_parts();
    doc.merge(ops_doc);
    doc.merge(admin_doc);
    CommonResponses.modify(&mut doc);
    Documented {
        public,
        admin,
        ops,
        doc,
    }
}

/// What [`documented`] builds.
struct Documented {
    public: Router<AppState>,
    admin: Router<AppState>,
    ops: Router<AppState>,
    doc: utoipa::openapi::OpenApi,
}

/// The OpenAPI 3.1 document of the API, as `/openapi.json` serves it and
/// `docs/openapi.json` holds it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().doc
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document (made once, with the router).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = BTreeMap<String, serde_json::Value>)))]
async fn openapi_json(
    Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<Arc<utoipa::openapi::OpenApi>> {
    Json(doc)
}

/// The whole API as a router, testable with `oneshot` without a socket. The layers, from
/// the outside in: request id, metrics (so that shed and timed-out requests are counted);
/// then, for every route but the operations routes (health, readiness, metrics and the
/// document, which must answer a probe whatever the load): a `Content-Length` over the
/// body limit refused at once, load shedding, timeout, heavy requests moved to the deciding
/// runtime, the body limit.
pub fn app(state: AppState) -> Router {
    let Documented {
        public,
        admin,
        ops,
        doc,
    } = documented();
    let admin = admin.route_layer(from_fn_with_state(state.clone(), middleware::require_admin));
    let guarded = public
        .merge(admin)
        .layer(DefaultBodyLimit::max(state.limits.max_body))
        .layer(from_fn_with_state(state.clone(), middleware::offload))
        .layer(from_fn_with_state(state.clone(), middleware::timeout))
        .layer(from_fn_with_state(state.clone(), middleware::shed))
        .layer(from_fn_with_state(
            state.clone(),
            middleware::announced_length,
        ));
    guarded
        .merge(ops)
        .layer(Extension(Arc::new(doc)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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
    let (limits, metrics) = (state.limits.connections.clone(), Arc::clone(&state.metrics));
    conn::serve(listener, app(state), limits, metrics, shutdown).await
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
