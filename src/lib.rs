//! gatehouse: a Cedar policy-decision sidecar for applications that let people share
//! projects. A host service asks "may this user do this to this project?" and gets Allow or
//! Deny with the policies that decided.
//!
//! The policies live in `.cedar` files, checked strictly against a Cedar schema, and are
//! pinned by policy test suites written in JSON (see [`testing`]).
//!
//! # Layout
//!
//! - [`app`]: builds the running sidecar from a [`config::Config`], the one way to start it.
//! - [`config`]: every setting of `gatehouse serve`, with its default.
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
//!   in a language any host can translate (and as residual policies).
//! - [`authzen`]: the AuthZEN Authorization API's model: types, subjects and resources,
//!   evaluation semantics, paging, the stored-entity search.
//! - [`http`]: the sidecar's HTTP API (axum): router, middleware, handlers, the one error
//!   type, the strict body reader, and the connection layer (timeouts, a cap, shutdown).
//! - [`json_keys`]: object keys written twice, found in JSON text (every body, every
//!   entity).
//! - [`shadow`]: a candidate policy set asked every decision too, off the response path,
//!   its disagreements counted and logged.
//! - [`telemetry`]: logs, Prometheus metrics, the decision log.
//! - [`testing`]: the policy test format, its runner (coverage included) and its reports
//!   (human, JSON, JUnit); what a change flips (`diff`), proofs with Cedar's symbolic
//!   compiler (`prove`), and the reload gates built from both (`gate`).
//! - [`cli`]: one module per subcommand of the `gatehouse` binary.
//! - `client` (cargo feature `client`): a typed async client of the HTTP API, with builders
//!   for the domain's entities.
//! - `sql` (cargo feature `sql`): a plan's condition as a SQL `WHERE` clause (sea-query),
//!   over a mapping of the resource's attributes to columns.

pub mod app;
pub mod authzen;
pub mod cedar_json;
pub mod cli;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod decide;
pub mod http;
pub mod json_keys;
pub mod plan;
pub mod policy;
pub mod shadow;
#[cfg(feature = "sql")]
pub mod sql;
pub mod telemetry;
pub mod testing;
