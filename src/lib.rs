//! gatehouse: a Cedar policy-decision sidecar for applications that let people share
//! projects. A host service asks "may this user do this to this project?" and gets Allow or
//! Deny with the policies that decided.
//!
//! The policies live in `.cedar` files, checked strictly against a Cedar schema, and are
//! pinned by policy test suites written in JSON (see [`testing`]).
//!
//! # Layout
//!
//! - [`app`]: the sidecar as `gatehouse serve` builds it ([`app::build`]): the server's
//!   application builder with the reload gates of the tools below.
//! - [`testing`]: the policy test format, its runner (coverage included) and its reports
//!   (human, JSON, JUnit); what a change flips (`diff`), proofs with Cedar's symbolic
//!   compiler (`prove`), and the reload gates built from both (`gate`).
//! - [`cli`]: one module per subcommand of the `gatehouse` binary.
//! - Re-exported from the crate `gatehouse-server` (the HTTP API and everything that runs
//!   it): [`config`], [`authzen`], [`http`], [`shadow`], [`telemetry`]; from
//!   `gatehouse-engine` (no HTTP): [`policy`], [`cedar_json`], [`decide`], [`plan`]; and
//!   [`json_keys`], `gatehouse-api`'s.
//!
//! This package is the only one with the symbolic compiler, Cedar's formatter and the JUnit
//! writer. Beside it in the workspace: `gatehouse-api` (the wire types hosts share:
//! uids read with errors naming their field, entities, verdicts, plans and their condition
//! language; no Cedar), `gatehouse-client` (a typed
//! async client of the HTTP API on it and reqwest alone) and `gatehouse-sql` (a plan's
//! condition as a SQL `WHERE` clause, sea-query).

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
pub mod cli;
pub mod testing;

pub use gatehouse_engine::{cedar_json, decide, json_keys, plan, policy};
pub use gatehouse_server::{authzen, config, http, shadow, telemetry};
