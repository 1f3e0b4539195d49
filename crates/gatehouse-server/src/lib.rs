//! gatehouse's sidecar: the HTTP API over the engine, and everything that runs it.
//!
//! # Layout
//!
//! - [`app`]: builds the running sidecar from a [`config::Config`], the one way to start it;
//!   the reload gates of the policy-author tools come in through [`app::OpenGates`].
//! - [`config`]: every setting of `gatehouse serve`, with its default.
//! - [`authzen`]: the AuthZEN Authorization API as one adapter: its model (types, subjects
//!   and resources, evaluation semantics, paging), its bodies and its routes.
//! - [`http`]: the HTTP API (axum): router, middleware, handlers, the one error type, the
//!   strict body reader, and the connection layer (timeouts, a cap, shutdown).
//! - [`shadow`]: a candidate policy set asked every decision too, off the response path,
//!   its disagreements counted and logged.
//! - [`sourced`]: the entities each question needs, read from the entity database
//!   (`--entities-db`, through `gatehouse-source`).
//! - [`telemetry`]: logs, Prometheus metrics, the decision log.
//! - [`policy`], [`cedar_json`], [`decide`], [`plan`]: the engine, from the crate
//!   `gatehouse-engine`, re-exported here; [`json_keys`], the strict reading of JSON,
//!   `gatehouse-api`'s.

// Cedar's habits for code that serves: no unwrap, expect, panic or unchecked index outside
// tests; each exception says why it cannot fail (`#[expect(..., reason)]`).
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod app;
pub mod authzen;
pub mod config;
pub mod http;
pub mod shadow;
pub mod sourced;
pub mod telemetry;

pub use gatehouse_engine::{cedar_json, decide, json_keys, plan, policy};
