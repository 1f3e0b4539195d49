//! The `gatehouse` binary: parses the command line and dispatches to `gatehouse::cli`.

// As in the libraries: no unwrap, expect, panic or unchecked index (see `lib.rs`).
#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::ExitCode;

/// The decide path allocates a lot (JSON values, Cedar entities); mimalloc serves it faster
/// than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use gatehouse::cli::{check, diff, entities, fmt, prove, serve, test, validate};

/// A Cedar policy-decision sidecar for applications that let people share projects.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve decisions over HTTP, reloading the policy files when they change.
    Serve(Box<serve::ServeArgs>),
    /// Decide one question from the shell, through the same path as the server.
    Check(check::CheckArgs),
    /// Parse, re-id and strictly validate the policy set against the schema.
    Validate(validate::ValidateArgs),
    /// Run the policy test suites and report failures and coverage.
    Test(test::TestArgs),
    /// Print the HTTP API's OpenAPI 3.1 document (what `/openapi.json` serves).
    Openapi,
    /// Format `.cedar` policy files with Cedar's formatter (`--check` to only check).
    Fmt(fmt::FmtArgs),
    /// What a policy change flips: the suites' cases, a decision log and a sweep, asked of
    /// a base set and of the working one.
    Diff(Box<diff::DiffArgs>),
    /// Prove, for every request and entity store, that no policy errors, that the
    /// properties hold and (with `--base`) what a change makes more or less permissive.
    Prove(Box<prove::ProveArgs>),
    /// Move entities between Cedar's JSON and a database, through a mapping file.
    Entities(entities::EntitiesArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve::serve(&args),
        Command::Check(args) => check::check(&args),
        Command::Validate(args) => validate::validate(&args),
        Command::Test(args) => test::test(&args),
        Command::Openapi => gatehouse::cli::openapi(),
        Command::Fmt(args) => fmt::fmt(&args),
        Command::Diff(args) => diff::diff(&args),
        Command::Prove(args) => prove::prove(&args),
        Command::Entities(args) => entities::entities(&args),
    }
}
