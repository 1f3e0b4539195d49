//! The router: every route with its layers, the fallbacks, and serving it on a listener.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::from_fn_with_state;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use super::error::{ApiError, ErrorCode};
use super::openapi::{Documented, documented};
use super::{AppState, conn, middleware};

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
