//! The HTTP API: the router (`router.rs`), its handlers (one module per family of routes),
//! the one [`error::ApiError`], the middleware (request ids, metrics, load shedding, timeout,
//! body limit, the admin token), the shared state (`state.rs`), the hot cache (`hot.rs`)
//! and the OpenAPI document assembled with the routes (`openapi.rs`).
//!
//! Handlers take the live snapshot once per request and never hold a lock across `.await`.
//! This module knows how to speak HTTP; what a decision is lives in [`crate::decide`]. The
//! state is built by [`crate::app::Application`], never by hand.

pub mod admin;
pub mod body;
pub mod conn;
pub mod decisions;
pub mod error;
mod hot;
pub mod lists;
pub mod middleware;
mod openapi;
mod router;
mod state;
pub mod strict;

pub use hot::{HotAnswer, HotCache};
pub use openapi::openapi;
pub use router::{app, run};
pub use state::{AppState, Authzen, Limits, Services};
