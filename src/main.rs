//! The `gatehouse` binary: parses the command line and dispatches to `gatehouse::cli`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse::cli::{test, validate};

/// A Cedar policy-decision sidecar for applications that let people share projects.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse, re-id and strictly validate the policy set against the schema.
    Validate(validate::ValidateArgs),
    /// Run the policy test suites and report failures and coverage.
    Test(test::TestArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Validate(args) => validate::validate(&args),
        Command::Test(args) => test::test(&args),
    }
}
