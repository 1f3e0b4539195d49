//! `gatehouse test`: run policy test suites and report failures and coverage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{PolicyArgs, exit, report_load_error};
use crate::policy;
use crate::policy::watch::{Recursion, watch_dirs};
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
    /// Keep running: re-run the suites a save can affect (a policy, the schema, a suite, a
    /// fixture) and print what changed since the last run.
    #[arg(long)]
    pub watch: bool,
}

/// Runs the suites; exits non-zero when a case fails or a suite cannot be read.
pub fn test(args: &TestArgs) -> ExitCode {
    if args.watch {
        return watch(args);
    }
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

/// `gatehouse test --watch`: runs the suites, then again after every save of a policy, the
/// schema, a suite or a fixture (only the suites a change can affect), printing what changed
/// since the last run: cases that newly fail, in full, and cases that were fixed.
fn watch(args: &TestArgs) -> ExitCode {
    let sources = args.policy.sources();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<PathBuf>>();
    let dirs = watched(&sources, &args.paths);
    let _watcher = match watch_dirs(&dirs, Recursion::Recursive, move |changed| {
        let _ = tx.send(changed);
    }) {
        Ok(watcher) => watcher,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let mut state: BTreeMap<(PathBuf, String), (bool, usize)> = BTreeMap::new();
    let mut first = true;
    let mut affected = Affected::All;
    loop {
        match policy::load(&sources) {
            Err(error) => report_load_error(&error),
            Ok(snapshot) => match testing::discover(&args.paths) {
                Err(error) => eprintln!("error: {error}"),
                Ok(all) => {
                    let files: Vec<PathBuf> = all
                        .into_iter()
                        .filter(|f| affected.includes(&absolute(f)))
                        .collect();
                    let outcome = testing::run_filtered(&snapshot, &files, args.filter.as_deref());
                    let text = if first {
                        report::human_with(&outcome, report::Coverage::Summary)
                    } else {
                        changes(&outcome, &state)
                    };
                    remember(&mut state, &files, &outcome);
                    let failed = state.values().filter(|(passed, _)| !passed).count();
                    super::emit(&format!(
                        "{text}{}watching: {} passed, {failed} failed\n",
                        if first { "\n" } else { "" },
                        state.len() - failed,
                    ));
                    first = false;
                }
            },
        }
        // Wait for a save, then let the burst settle.
        let Ok(mut changed) = rx.recv() else {
            return ExitCode::from(exit::ERROR);
        };
        while let Ok(more) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
            changed.extend(more);
        }
        affected = Affected::of(&changed, &sources);
    }
}

/// A path made absolute (as it is, when it cannot be).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The directories `--watch` watches: the policies', the schema's, and each suite path's
/// (a directory, or a file's directory).
fn watched(sources: &policy::Sources, paths: &[PathBuf]) -> Vec<PathBuf> {
    let parent = |p: &Path| {
        p.parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    let mut dirs = vec![
        absolute(&sources.policies),
        parent(&absolute(&sources.schema)),
    ];
    for path in paths {
        let path = absolute(path);
        dirs.push(if path.is_dir() { path } else { parent(&path) });
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

/// What a run of the suites in `files` says of each case and list: it replaces what the
/// state knew of those suites.
fn remember(
    state: &mut BTreeMap<(PathBuf, String), (bool, usize)>,
    files: &[PathBuf],
    outcome: &testing::Report,
) {
    state.retain(|(file, _), _| !files.contains(file));
    for suite in &outcome.suites {
        for case in &suite.cases {
            let key = (suite.file.clone(), case.name.clone());
            state.insert(key, (case.passed, case.line));
        }
        for list in &suite.lists {
            let key = (suite.file.clone(), format!("list: {}", list.name));
            state.insert(key, (list.passed, list.line));
        }
        if suite.error.is_some() {
            state.insert((suite.file.clone(), String::new()), (false, 0));
        }
    }
}

/// Which suites a change can affect.
enum Affected {
    /// A policy, the schema or a fixture changed: every suite.
    All,
    /// Only these suite files changed.
    Suites(Vec<PathBuf>),
}

impl Affected {
    fn of(changed: &[PathBuf], sources: &crate::policy::Sources) -> Self {
        let mut suites = Vec::new();
        for path in changed {
            let name = path.to_string_lossy();
            if name.ends_with(testing::SUITE_SUFFIX) {
                suites.push(path.clone());
            } else if name.ends_with(".cedar")
                || name.ends_with(".cedarschema")
                || name.ends_with(".json")
                || path.file_name() == sources.schema.file_name()
            {
                return Self::All;
            }
        }
        Self::Suites(suites)
    }

    fn includes(&self, file: &Path) -> bool {
        match self {
            Self::All => true,
            Self::Suites(files) => files.iter().any(|f| f == file),
        }
    }
}

/// What changed since the last run: the cases of the suites just run that newly fail (in
/// full) or were fixed.
fn changes(
    outcome: &testing::Report,
    before: &BTreeMap<(PathBuf, String), (bool, usize)>,
) -> String {
    let mut out = String::new();
    for suite in &outcome.suites {
        let file = suite.file.display();
        if let Some(error) = &suite.error {
            out.push_str(&format!("ERROR {file}\n  {error}\n"));
        }
        for case in &suite.cases {
            let was = before
                .get(&(suite.file.clone(), case.name.clone()))
                .map(|(p, _)| *p);
            match (was, case.passed) {
                (Some(true) | None, false) => {
                    out.push_str(&format!("newly failing: {file}:{}\n", case.line));
                    out.push_str(&report::failure(case));
                }
                (Some(false), true) => {
                    out.push_str(&format!("fixed: {file}:{} {}\n", case.line, case.name));
                }
                _ => {}
            }
        }
        for list in &suite.lists {
            let key = (suite.file.clone(), format!("list: {}", list.name));
            match (before.get(&key).map(|(p, _)| *p), list.passed) {
                (Some(true) | None, false) => {
                    out.push_str(&format!(
                        "newly failing: {file}:{} (list) {}\n",
                        list.line, list.name
                    ));
                }
                (Some(false), true) => {
                    out.push_str(&format!(
                        "fixed: {file}:{} (list) {}\n",
                        list.line, list.name
                    ));
                }
                _ => {}
            }
        }
    }
    if out.is_empty() {
        out.push_str("no change\n");
    }
    out
}
