//! `gatehouse test`: run policy test suites and report failures and coverage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{PolicyArgs, exit, report_load_error};
use crate::policy;
use crate::testing::{self, report};

/// Where the bundled suites are.
const DEFAULT_SUITES: &str = "tests/policies";

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
    #[arg(default_value = DEFAULT_SUITES)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Fail when a policy decided no case (meaningful when running every suite).
    #[arg(long)]
    pub require_coverage: bool,
    /// Run only the cases and lists whose suite (name or file), name or action contains
    /// this text.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    /// Print how many cases each policy decided (the uncovered ones are listed on a full
    /// run without it).
    #[arg(long)]
    pub coverage: bool,
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
    let mut outcome = testing::run_filtered(&snapshot, &files, args.filter.as_deref());
    outcome.coverage_required = args.require_coverage;
    // A full run (the default suites, no filter) lists what no case covers; one suite or a
    // filtered run says how many, since most of the set is not its business.
    let full = args.filter.is_none() && args.paths == [PathBuf::from(DEFAULT_SUITES)];
    let coverage = match (args.coverage, full) {
        (true, _) => report::Coverage::Counts,
        (false, true) => report::Coverage::Uncovered,
        (false, false) => report::Coverage::Summary,
    };
    let text = match args.format {
        Format::Human => report::human_with(&outcome, coverage),
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
