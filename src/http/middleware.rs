//! The middleware every request passes through, from the outside in: [`track`] (metrics,
//! in-flight gauge, the log line of an internal error), [`shed`] (the concurrency limit),
//! [`timeout`]; and [`require_admin`] on the admin routes. Each refusal is an
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
    let Ok(_slot) = state.slots.try_acquire() else {
        state.metrics.shed.inc();
        return ApiError::new(
            ErrorCode::Overloaded,
            "gatehouse is serving as many requests as it is allowed to; retry shortly",
        )
        .into_response();
    };
    next.run(request).await
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
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok =
            given.is_some_and(|g| blake3::hash(g.as_bytes()) == blake3::hash(token.as_bytes()));
        if !ok {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}
