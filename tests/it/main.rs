//! Every integration test of gatehouse, in one crate: one binary to link instead of one per
//! file. Each module is one concern; `common` holds the helpers they share.

mod authzen;
mod caches;
mod cli;
mod common;
mod connections;
mod crates;
mod decide;
mod decision_log;
mod entity_lists;
mod eval;
mod following;
mod hardening;
mod lists;
mod loader;
mod mapping;
mod namespaces;
mod openapi;
mod plans;
mod plans_sql;
mod policy_suites;
mod proofs;
mod properties;
mod python_host;
mod reload;
mod reload_faults;
mod serve_cli;
mod server;
mod shadow;
mod sharing_app;
mod source_rules;
mod stores;
mod suite_format;
mod suites_over_http;

/// The example host application, compiled into the tests so that they drive its real code.
#[path = "../../examples/sharing_app/app/mod.rs"]
mod sharing_app_host;
mod source;
