//! `gatehouse diff --base <DIR | GIT-REV>`: what a policy change flips, before it ships (see
//! [`crate::testing::diff`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};
use serde_json::Value;

use super::base::{BaseArgs, Failure, load};
use super::test::Format;
use super::{PolicyArgs, exit};
use crate::decide::{Question, Uid};
use crate::testing::diff::{Accepted, Change, ChangeKind, DiffReport, diff as run_diff};
use crate::testing::{self, FixtureCache};

/// Arguments of `gatehouse diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The working policy set.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The set to compare with.
    #[command(flatten)]
    pub base: BaseArgs,
    /// Suite files, or directories searched for `*.test.json`: their cases, and the sweep
    /// over their entities.
    #[arg(default_value = "tests/policies")]
    pub paths: Vec<PathBuf>,
    /// A decision log written with `--decision-log-full`: every question in it is asked too.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Intended changes, a JSON array of `{"principal", "action", "resource"}` as the diff
    /// prints them: listed flips (and reason changes) do not fail the diff.
    #[arg(long, value_name = "FILE")]
    pub accept: Option<PathBuf>,
    /// Fail (exit 7) on a question decided alike by other policies too, not only on a
    /// decision that flips.
    #[arg(long)]
    pub fail_on_reason_changes: bool,
    /// Output format: `human`, `json` (every change), or `junit` (a test case per changed
    /// question, failed when it fails the diff).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Compares the sets; exits 0 when no decision flips (or every flip is accepted), 7 when a
/// flip is not accepted (or, with `--fail-on-reason-changes`, a reason change), 3 when a set
/// does not load, 1 when an input cannot be read.
pub fn diff(args: &DiffArgs) -> ExitCode {
    super::base::exit_with(run(args))
}

fn run(args: &DiffArgs) -> Result<u8, Failure> {
    let sources = args.policy.sources();
    let work = load(&sources)?;
    // A git base is materialized here; the directory lives until the diff is done.
    let scratch = tempfile::tempdir().map_err(|e| (e.to_string(), exit::ERROR))?;
    let base_sources = args.base.sources(&sources, scratch.path())?;
    let base = load(&base_sources)?;
    let files = testing::discover(&args.paths).map_err(|e| (e.to_string(), exit::ERROR))?;
    let mut fixtures = FixtureCache::default();
    let suites = files
        .iter()
        .map(|file| testing::load_suite(file, &work, &mut fixtures))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| (e.to_string(), exit::ERROR))?;
    let log = match &args.log {
        Some(file) => read_log(file)?,
        None => Vec::new(),
    };
    let accept: Vec<Accepted> = match &args.accept {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| (format!("{}: {e}", file.display()), exit::ERROR))?;
            serde_json::from_str(&text)
                .map_err(|e| (format!("{}: {e}", file.display()), exit::ERROR))?
        }
        None => Vec::new(),
    };
    let report = run_diff(&base, &work, &suites, &log, &accept);
    let gate = Gate {
        reasons: args.fail_on_reason_changes,
    };
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&report).unwrap_or_default(),
        Format::Junit => junit(&report, gate),
        Format::Human => human(&report, gate),
    };
    super::emit(&text);
    Ok(if gate.failures(&report) == 0 {
        exit::OK
    } else {
        exit::FLIPPED
    })
}

/// What fails the diff: an unaccepted decision flip always; an unaccepted reason change when
/// `--fail-on-reason-changes` says so.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    /// Whether reason changes fail the diff too.
    pub reasons: bool,
}

impl Gate {
    /// Whether this change fails the diff.
    fn fails(self, change: &Change) -> bool {
        !change.accepted && (change.kind == ChangeKind::Decision || self.reasons)
    }

    /// How many changes fail the diff.
    fn failures(self, report: &DiffReport) -> usize {
        report
            .flips
            .iter()
            .chain(&report.reason_changes)
            .filter(|c| self.fails(c))
            .count()
    }
}

/// The questions of a decision log (one JSON line per decision; context and entities when
/// it was written with `--decision-log-full`).
fn read_log(file: &Path) -> Result<Vec<Question>, Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| (format!("{}: {e}", file.display()), exit::ERROR))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let at = |m: String| (format!("{}:{}: {m}", file.display(), i + 1), exit::ERROR);
            let line: Value = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
            Ok((i, line))
        })
        // A shadow evaluation's line repeats a question its decision's line already holds.
        .filter(|line| !matches!(line, Ok((_, line)) if line.get("shadow").is_some()))
        .map(|line| {
            let (i, line) = line?;
            let at = |m: String| (format!("{}:{}: {m}", file.display(), i + 1), exit::ERROR);
            let field = |k: &str| {
                line.get(k)
                    .and_then(Uid::of_value)
                    .ok_or_else(|| at(format!("no uid `{k}`")))
            };
            let entities = match (line.get("entities"), line.get("shared_entities")) {
                (Some(Value::Array(own)), Some(Value::Array(shared))) => {
                    Some(Value::Array(shared.iter().chain(own).cloned().collect()))
                }
                (Some(own), _) if own.is_array() => Some(own.clone()),
                (_, Some(shared)) if shared.is_array() => Some(shared.clone()),
                _ => None,
            };
            Ok(Question {
                principal: field("principal")?,
                action: field("action")?,
                resource: field("resource")?,
                context: line.get("context").filter(|c| c.is_object()).cloned(),
                entities: entities.map(Into::into),
                strict_entities: false,
                consistency: None,
            })
        })
        .collect()
}

/// How many examples of one reason change the human report prints.
const EXAMPLES: usize = 3;

/// Each flip with its before and after; reason changes grouped by how the deciding policies
/// changed, with a few examples each; counts per action; the totals.
pub fn human(report: &DiffReport, gate: Gate) -> String {
    let mut out = String::new();
    for flip in &report.flips {
        let mark = if flip.accepted { "accepted" } else { "FLIP" };
        write_change(&mut out, mark, flip);
        let _ = writeln!(out, "    before: {}", flip.before);
        let _ = writeln!(out, "    after:  {}", flip.after);
        let _ = writeln!(out, "    from:   {}", flip.source);
    }
    let mut groups: BTreeMap<String, Vec<&Change>> = BTreeMap::new();
    for change in &report.reason_changes {
        groups.entry(transition(change)).or_default().push(change);
    }
    if !groups.is_empty() {
        let _ = writeln!(
            out,
            "\nreason changes (the same decision, made by other policies{}):",
            if gate.reasons {
                "; they fail the diff"
            } else {
                ""
            }
        );
    }
    for (transition, changes) in &groups {
        let _ = writeln!(out, "  {transition}: {} questions", changes.len());
        for change in changes.iter().take(EXAMPLES) {
            let mark = match (change.accepted, gate.fails(change)) {
                (true, _) => "  accepted",
                (false, true) => "  REASONS",
                (false, false) => "  e.g.",
            };
            write_change(&mut out, mark, change);
        }
        if changes.len() > EXAMPLES {
            let more = changes.len() - EXAMPLES;
            let _ = writeln!(
                out,
                "    … and {more} more (`--format json` lists every one)"
            );
        }
    }
    let asked: usize = report.asked.values().sum();
    let parts: Vec<String> = report
        .asked
        .iter()
        .map(|(source, n)| format!("{n} from {source}"))
        .collect();
    let _ = writeln!(
        out,
        "\nasked {asked} questions of both sets ({})",
        parts.join(", ")
    );
    for (what, counts) in [
        ("flips", &report.by_action),
        ("reason changes", &report.reason_changes_by_action),
    ] {
        if !counts.is_empty() {
            let counts: Vec<String> = counts.iter().map(|(a, n)| format!("{a} {n}")).collect();
            let _ = writeln!(out, "{what} by action: {}", counts.join(", "));
        }
    }
    let _ = writeln!(
        out,
        "{} flipped ({} accepted), {} reason changes ({} accepted)",
        report.flips.len(),
        report.flips.len() - report.unaccepted_flips(),
        report.reason_changes.len(),
        report.reason_changes.len() - report.unaccepted_reason_changes(),
    );
    out
}

/// A reason change as the policies it adds and drops: `Deny, now also by [a], no longer by
/// [b]`.
fn transition(change: &Change) -> String {
    let (before, after) = (&change.before.reasons, &change.after.reasons);
    let added: Vec<&str> = after
        .iter()
        .filter(|r| !before.contains(r))
        .map(String::as_str)
        .collect();
    let dropped: Vec<&str> = before
        .iter()
        .filter(|r| !after.contains(r))
        .map(String::as_str)
        .collect();
    let decision = change
        .after
        .decision
        .map_or_else(|| "not asked".to_string(), |d| format!("{d:?}"));
    let mut text = decision;
    if !added.is_empty() {
        let _ = write!(text, ", now also by [{}]", added.join(", "));
    }
    if !dropped.is_empty() {
        let _ = write!(text, ", no longer by [{}]", dropped.join(", "));
    }
    text
}

/// `MARK principal action resource  context {…}`.
fn write_change(out: &mut String, mark: &str, change: &Change) {
    let _ = writeln!(
        out,
        "{mark} {} {} {}  context {}",
        change.principal, change.action, change.resource, change.context,
    );
}

/// JUnit XML for CI dashboards: a suite of decision flips and one of reason changes, a test
/// case per changed question, failed when it fails the diff (`--accept`,
/// `--fail-on-reason-changes`); the questions asked as properties.
pub fn junit(report: &DiffReport, gate: Gate) -> String {
    let mut junit = JunitReport::new("gatehouse diff");
    for (name, changes) in [
        ("decision flips", &report.flips),
        ("reason changes", &report.reason_changes),
    ] {
        let mut suite = TestSuite::new(name);
        for (source, n) in &report.asked {
            suite.add_property((format!("asked from {source}"), n.to_string()));
        }
        for change in changes {
            let status = if gate.fails(change) {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(format!("{}  ->  {}", change.before, change.after));
                status.set_description(format!(
                    "before: {}\nafter:  {}\ncontext: {}\nfrom:   {}",
                    change.before, change.after, change.context, change.source
                ));
                status
            } else {
                TestCaseStatus::success()
            };
            let mut case = TestCase::new(
                format!("{} {} {}", change.principal, change.action, change.resource),
                status,
            );
            case.set_classname(change.action.clone());
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot write JUnit XML: {e} -->"))
}
