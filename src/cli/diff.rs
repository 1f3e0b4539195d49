//! `gatehouse diff --base <DIR | GIT-REV>`: what a policy change flips, before it ships (see
//! [`crate::testing::diff`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::base::{BaseArgs, Failure, load};
use super::test::Format;
use super::{PolicyArgs, exit};
use crate::decide::Question;
use crate::testing::diff::{Accepted, DiffReport, diff as run_diff};
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
    /// Intended flips, a JSON array of `{"principal", "action", "resource"}` as the diff
    /// prints them: listed flips do not fail the diff.
    #[arg(long, value_name = "FILE")]
    pub accept: Option<PathBuf>,
    /// Output format (`human` or `json`).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Compares the sets; exits 0 when nothing flips (or every flip is accepted), 7 when a flip
/// is not accepted, 3 when a set does not load, 1 when an input cannot be read.
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
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&report).unwrap_or_default(),
        _ => human(&report),
    };
    super::emit(&text);
    Ok(if report.unaccepted() == 0 {
        exit::OK
    } else {
        exit::FLIPPED
    })
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
            let field = |k: &str| line.get(k).cloned().ok_or_else(|| at(format!("no `{k}`")));
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
            })
        })
        .collect()
}

/// Each flip with its before and after, counts per action, the totals.
pub fn human(report: &DiffReport) -> String {
    let mut out = String::new();
    for flip in &report.flips {
        let _ = writeln!(
            out,
            "{} {} {} {}  context {}",
            if flip.accepted { "accepted" } else { "FLIP" },
            flip.principal,
            flip.action,
            flip.resource,
            flip.context,
        );
        let _ = writeln!(out, "    before: {}", flip.before);
        let _ = writeln!(out, "    after:  {}", flip.after);
        let _ = writeln!(out, "    from:   {}", flip.source);
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
    if !report.by_action.is_empty() {
        let counts: Vec<String> = report
            .by_action
            .iter()
            .map(|(action, n)| format!("{action} {n}"))
            .collect();
        let _ = writeln!(out, "flips by action: {}", counts.join(", "));
    }
    let _ = writeln!(
        out,
        "{} flipped ({} accepted)",
        report.flips.len(),
        report.flips.len() - report.unaccepted()
    );
    out
}
