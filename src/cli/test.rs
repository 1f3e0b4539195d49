//! `gatehouse test`: run policy test suites and report failures and coverage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{PolicyArgs, exit, report_load_error};
use crate::policy;
use crate::testing::{self, report};

/// How to print the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Failures in full and a summary line, for people.
    Human,
    /// One JSON document with every case.
    Json,
    /// JUnit XML, for CI dashboards.
    Junit,
}

/// Arguments of `gatehouse test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The policy set.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Suite files, or directories searched for `*.test.json`.
    #[arg(default_value = "tests/policies")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Fail when a policy decided no case (meaningful when running every suite).
    #[arg(long)]
    pub require_coverage: bool,
}

/// Runs the suites; exits non-zero when a case fails or a suite cannot be read.
pub fn test(args: &TestArgs) -> ExitCode {
    let snapshot = match policy::load(&args.policy.sources()) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            report_load_error(&error);
            return ExitCode::from(exit::INVALID);
        }
    };
    let files = match testing::discover(&args.paths) {
        Ok(files) if files.is_empty() => {
            eprintln!("error: no `*{}` suites found", testing::SUITE_SUFFIX);
            return ExitCode::from(exit::ERROR);
        }
        Ok(files) => files,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let mut outcome = testing::run(&snapshot, &files);
    outcome.coverage_required = args.require_coverage;
    let text = match args.format {
        Format::Human => report::human(&outcome),
        Format::Json => report::json(&outcome),
        Format::Junit => report::junit(&outcome),
    };
    super::emit(&text);
    if outcome.success() {
        ExitCode::from(exit::OK)
    } else {
        ExitCode::from(exit::TESTS_FAILED)
    }
}
