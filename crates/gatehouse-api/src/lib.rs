//! The wire types of gatehouse's HTTP API that hosts and the sidecar share: the uids a
//! question names (read with errors that name the field at fault), entities, the verdict of
//! a decision and the query plan with its condition language, and the strict reading of
//! JSON that every body goes through (no key written twice). No Cedar, no HTTP: a host's
//! client and the SQL translator build on this crate alone.
//!
//! With the `openapi` feature every type also describes itself as an OpenAPI schema
//! (utoipa), for the sidecar's `/openapi.json`.

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

pub mod condition;
pub mod consistency;
pub mod entity;
pub mod json_keys;
pub mod plan;
pub mod uid;

use serde::{Deserialize, Serialize};

pub use condition::Condition;
pub use consistency::{Consistency, ConsistencyMode};
pub use entity::Entity;
pub use plan::{CONDITION_VERSION, NamedSet, Plan, PlanKind, WrittenPlan};
pub use uid::{Role, Uid, UidObject};

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Verdict {
    /// The request is permitted.
    Allow,
    /// The request is not permitted.
    Deny,
}
