//! gatehouse's engine: everything that decides, and nothing that serves. No HTTP, no command
//! line: the sidecar (`gatehouse`) and its tools stand on this crate.
//!
//! - [`policy`]: loads a whole policy set and schema from files, re-ids each policy by its
//!   `@id`, validates strictly, and hands the result out as an immutable
//!   [`policy::Snapshot`]; every problem is reported at `file:line:col`. The live set is a
//!   [`policy::PolicyStore`], reloaded by a file watcher, a candidate swapped in only once
//!   it has settled and its reload gates accept it.
//! - [`cedar_json`]: Cedar's JSON formats for uids and entities, with errors naming the field.
//! - [`decide`]: turns JSON questions into Cedar requests and entities, checked against the
//!   schema, decides each on its slice of the stored entities, failing closed; the decision
//!   cache in front; the actions a principal may take on a resource (`allowed`).
//! - [`plan`]: query plans: which resources of a type a principal may act on, as a condition
//!   in `gatehouse-api`'s language any host can translate (and as residual policies).
//! - [`json_keys`]: object keys written twice, found in JSON text (every body, every
//!   entity): `gatehouse-api`'s, re-exported.
//!
//! With the `openapi` feature the question and status types describe themselves as OpenAPI
//! schemas (utoipa).

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

pub mod cedar_json;
pub mod decide;
pub mod plan;
pub mod policy;

pub use gatehouse_api::json_keys;
