//! The middleware every request passes through, from the outside in: [`track`] (metrics,
//! in-flight gauge, the log line of an internal error); then, for every route but the
//! operations routes, [`announced_length`] (a `Content-Length` over the limit), [`shed`]
//! (the concurrency limit), [`timeout`] and [`offload`] (heavy requests off the async
//! threads); and [`require_admin`] on the admin routes. Each refusal is an
//! [`ApiError`], so it has the one error shape and its status comes from the one mapping.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::decisions::request_id;
use super::error::{ApiError, ErrorCode, InternalDetail};
use crate::telemetry::{RouteLabel, RouteLabels};

/// Counts every request and its latency by matched route (never the raw URI, so that metric
/// cardinality stays bounded), keeps the in-flight gauge, and logs the detail of an internal
/// error with the request id. Outside the other layers, so shed and timed-out requests are
/// counted too.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let id = request_id(request.headers()).to_string();
    let started = Instant::now();
    state.metrics.in_flight.inc();
    // Decremented on drop, so a request whose connection is cut still leaves the gauge.
    let _in_flight = InFlight(&state);
    let response = next.run(request).await;
    if let Some(InternalDetail(detail)) = response.extensions().get::<InternalDetail>() {
        tracing::error!(request_id = %id, %route, %detail, "internal error");
    }
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

struct InFlight<'a>(&'a AppState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.dec();
    }
}

/// Past `max_concurrency` requests in flight, answers at once with 503 and `Retry-After: 1`
/// rather than queueing.
pub async fn shed(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Ok(_slot) = state.slots().try_acquire() else {
        state.metrics.shed.inc();
        return ApiError::new(
            ErrorCode::Overloaded,
            "gatehouse is serving as many requests as it is allowed to; retry shortly",
        )
        .into_response();
    };
    next.run(request).await
}

/// Refuses at once, with 413, a request whose `Content-Length` is over the body limit:
/// without this it would hold a slot until the timeout, waiting for a body it must refuse.
pub async fn announced_length(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let max = state.limits.max_body;
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u128>().ok());
    if let Some(length) = announced.filter(|&n| n > max as u128) {
        return ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the body is {length} bytes; at most {max} are allowed (`--max-body`)"),
        )
        .into_response();
    }
    next.run(request).await
}

/// A body at least this large makes a request heavy.
pub const HEAVY_BODY: u64 = 64 * 1024;

/// Whether a request may keep a thread busy for long: a body of [`HEAVY_BODY`] or more (or
/// of no announced length), or a search, which asks about every stored entity of a type.
fn heavy(request: &Request) -> bool {
    if request.uri().path().starts_with("/access/v1/search/") {
        return true;
    }
    match request.headers().get(header::CONTENT_LENGTH) {
        Some(length) => length
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_none_or(|n| n >= HEAVY_BODY),
        None => request.headers().contains_key(header::TRANSFER_ENCODING),
    }
}

/// Runs a heavy request on the deciding runtime (threads of its own), so that the async
/// threads keep accepting connections and answering health checks and metrics while it is
/// decided; a light one (almost every question) is answered where it is, with no hand-off.
pub async fn offload(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !heavy(&request) {
        return next.run(request).await;
    }
    let mut task = Abort(state.deciding().spawn(next.run(request)));
    match (&mut task.0).await {
        Ok(response) => response,
        Err(error) => {
            ApiError::internal(format!("a heavy request's task failed: {error}")).into_response()
        }
    }
}

/// A task aborted when its awaiting request goes (timed out, or its client left).
struct Abort<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Abort<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Answers 408 when a request (body upload included) takes longer than `request_timeout`.
pub async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the request took longer than {}s", limit.as_secs_f64()),
        )
        .into_response(),
    }
}

/// The credentials of an `Authorization` value of the `Bearer` scheme, which RFC 7235
/// (section 2.1) makes case-insensitive: `bearer T` and `BEARER T` are `Bearer T`.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// Requires `Authorization: Bearer <token>` when an admin token is configured. The compare
/// is constant-time: both sides are hashed with blake3, whose digest equality is
/// constant-time, so neither the content nor the length of the token leaks.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.admin_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        let ok =
            given.is_some_and(|g| blake3::hash(g.as_bytes()) == blake3::hash(token.as_bytes()));
        if !ok {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}
