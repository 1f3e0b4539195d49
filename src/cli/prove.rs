//! `gatehouse prove`: proofs about the policy set for every request and entity store, with
//! Cedar's symbolic compiler and cvc5 (see [`crate::testing::prove`]).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::base::{BaseArgs, Failure, load};
use super::{PolicyArgs, exit};
use crate::testing::prove::{
    ActionChange, Change, Counterexample, Holds, NeverErrors, PropertyResult, Prover,
};

/// Where the properties are when `--properties` is not given (used when it exists).
pub const DEFAULT_PROPERTIES: &str = "tests/properties";

/// How to print the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProveFormat {
    /// Each finding with its counterexample, and a summary line.
    Human,
    /// One JSON document.
    Json,
}

/// Arguments of `gatehouse prove`.
#[derive(Debug, Args)]
pub struct ProveArgs {
    /// The working policy set.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Compare with a base set, a policies directory or a git revision (`HEAD`): per action,
    /// equivalent, more or less permissive, with counterexamples.
    #[arg(long, value_name = "DIR|GIT-REV")]
    pub base: Option<String>,
    /// The base set's schema, for a base directory (default: the working schema).
    #[arg(long, value_name = "FILE", requires = "base")]
    pub base_schema: Option<PathBuf>,
    /// Properties: a directory of `*.cedar` files (or one file) of `permit` policies, each
    /// with an `@id` and `@property("never" | "always" | "only")` [default: tests/properties,
    /// when it exists].
    #[arg(long, value_name = "FILE|DIR")]
    pub properties: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ProveFormat::Human)]
    pub format: ProveFormat,
}

/// Everything `prove` found.
#[derive(Debug, Serialize)]
pub struct ProveReport {
    /// The never-errors proof of the working set.
    pub never_errors: NeverErrors,
    /// Each property's result.
    pub properties: Vec<PropertyResult>,
    /// With `--base`: the base and each action's change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// Solver queries made.
    pub queries: usize,
    /// Wall time, in seconds.
    pub seconds: f64,
}

/// The comparison with `--base`.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// `--base` as given.
    pub base: String,
    /// Every action of the working schema.
    pub actions: Vec<ActionChange>,
}

impl ProveReport {
    /// Whether everything holds: no policy errors, every property proven, and (with
    /// `--base`) every action equivalent.
    pub fn holds(&self) -> bool {
        self.never_errors.erring.is_empty()
            && self.properties.iter().all(|p| p.outcome == Holds::Proven)
            && self
                .comparison
                .as_ref()
                .is_none_or(|c| c.actions.iter().all(|a| a.change == Change::Equivalent))
    }
}

/// Runs the proofs; exits 0 when everything holds, 8 when something does not (a policy can
/// error, a property is refuted or vacuous, an action changed), 3 when a set does not load,
/// 1 when the solver cannot run or a check cannot be carried out.
pub fn prove(args: &ProveArgs) -> ExitCode {
    super::base::exit_with(run(args))
}

fn run(args: &ProveArgs) -> Result<u8, Failure> {
    let started = Instant::now();
    let sources = args.policy.sources();
    let work = load(&sources)?;
    let properties = match &args.properties {
        Some(path) if !path.exists() => {
            return Err((
                format!(
                    "`--properties {}`: no such file or directory",
                    path.display()
                ),
                exit::ERROR,
            ));
        }
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from(DEFAULT_PROPERTIES)).filter(|d| d.is_dir()),
    };
    // Properties are policies of their own: read, re-ided and validated strictly against
    // the working schema like any policy file, problems at file:line:col.
    let properties = properties
        .map(|path| {
            crate::policy::load_policies(&path, &work.schema).map_err(|error| {
                super::report_load_error(&error);
                (String::new(), exit::INVALID)
            })
        })
        .transpose()?;
    let scratch = tempfile::tempdir().map_err(|e| (e.to_string(), exit::ERROR))?;
    let base = match &args.base {
        Some(base) => {
            let base = BaseArgs {
                base: base.clone(),
                base_schema: args.base_schema.clone(),
            };
            Some((
                base.base.clone(),
                load(&base.sources(&sources, scratch.path())?)?,
            ))
        }
        None => None,
    };

    let error = |e: crate::testing::prove::ProveError| (e.to_string(), exit::ERROR);
    let mut prover = Prover::start().map_err(error)?;
    let never_errors = prover.never_errors(&work).map_err(error)?;
    let properties = match &properties {
        Some(set) => prover.properties(&work, set).map_err(error)?,
        None => Vec::new(),
    };
    let comparison = match &base {
        Some((name, base)) => Some(Comparison {
            base: name.clone(),
            actions: prover.compare(base, &work).map_err(error)?,
        }),
        None => None,
    };
    let report = ProveReport {
        never_errors,
        properties,
        comparison,
        queries: prover.queries,
        seconds: started.elapsed().as_secs_f64(),
    };
    let text = match args.format {
        ProveFormat::Json => serde_json::to_string_pretty(&report).unwrap_or_default(),
        ProveFormat::Human => human(&report),
    };
    super::emit(&text);
    Ok(if report.holds() {
        exit::OK
    } else {
        exit::NOT_PROVEN
    })
}

/// Each finding with its counterexample, then a summary line.
pub fn human(report: &ProveReport) -> String {
    let mut out = String::new();
    never_errors(&mut out, &report.never_errors);
    for property in &report.properties {
        property_line(&mut out, property);
    }
    if let Some(comparison) = &report.comparison {
        compared(&mut out, comparison);
    }
    let _ = writeln!(
        out,
        "\n{} ({} solver queries, {:.2} s)",
        summary(report).join("; "),
        report.queries,
        report.seconds
    );
    out
}

/// "never errors: proven …", or each policy that can error with its counterexample.
fn never_errors(out: &mut String, never: &NeverErrors) {
    if never.erring.is_empty() {
        let _ = writeln!(
            out,
            "never errors: proven for all {} policies in {} request environments",
            never.policies, never.environments
        );
    }
    for erring in &never.erring {
        let _ = writeln!(out, "CAN ERROR {} ({})", erring.policy, erring.location);
        counterexample(out, "a request on which it errors", &erring.counterexample);
    }
}

/// One property's outcome, with the counterexample of a refuted one.
fn property_line(out: &mut String, property: &PropertyResult) {
    let (id, kind, location) = (&property.id, &property.kind, &property.location);
    match property.outcome {
        Holds::Proven => {
            let environments = property.environments.join("; ");
            let _ = writeln!(out, "proven    {id} ({kind}, {location}) in {environments}");
        }
        Holds::Vacuous => {
            let _ = writeln!(
                out,
                "VACUOUS   {id} ({kind}, {location}): it matches no request, so it proves nothing"
            );
        }
        Holds::Refuted => {
            let _ = writeln!(out, "REFUTED   {id} ({kind}, {location})");
            if let Some(cex) = &property.counterexample {
                counterexample(out, "counterexample", cex);
            }
        }
    }
}

/// What a change does per action (`--base`): each changed action with its counterexamples,
/// then the equivalent ones on one line.
fn compared(out: &mut String, comparison: &Comparison) {
    let _ = writeln!(out, "\ncompared with {}, per action:", comparison.base);
    let mut equivalent = Vec::new();
    for action in &comparison.actions {
        let change = match action.change {
            Change::Equivalent => {
                equivalent.push(action.action.as_str());
                continue;
            }
            Change::MorePermissive => "MORE PERMISSIVE",
            Change::LessPermissive => "LESS PERMISSIVE",
            Change::Both => "CHANGED BOTH WAYS",
        };
        let _ = writeln!(out, "{change} {}", action.action);
        if let Some(cex) = &action.newly_allowed {
            counterexample(out, "allowed now, denied before", cex);
        }
        if let Some(cex) = &action.newly_denied {
            counterexample(out, "denied now, allowed before", cex);
        }
    }
    let _ = writeln!(out, "equivalent: {}", equivalent.join(", "));
}

/// The last line's parts: errors, properties proven, actions changed.
fn summary(report: &ProveReport) -> Vec<String> {
    let never = &report.never_errors;
    let proven = report
        .properties
        .iter()
        .filter(|p| p.outcome == Holds::Proven)
        .count();
    let mut summary = vec![
        if never.erring.is_empty() {
            "no policy can error".to_string()
        } else {
            format!("{} policies can error", never.erring.len())
        },
        format!("{proven} of {} properties proven", report.properties.len()),
    ];
    if let Some(comparison) = &report.comparison {
        let changed = comparison
            .actions
            .iter()
            .filter(|a| a.change != Change::Equivalent)
            .count();
        summary.push(format!(
            "{changed} of {} actions changed",
            comparison.actions.len()
        ));
    }
    summary
}

/// A counterexample: the question on one line, each entity on its own, the answers.
fn counterexample(out: &mut String, label: &str, cex: &Counterexample) {
    let _ = writeln!(out, "    {label}, in {}:", cex.environment);
    let q = &cex.question;
    let _ = writeln!(
        out,
        "      {} {} {}  context {}",
        q["principal"].as_str().unwrap_or_default(),
        q["action"].as_str().unwrap_or_default(),
        q["resource"].as_str().unwrap_or_default(),
        q["context"]
    );
    if let Some(entities) = q["entities"].as_array() {
        for entity in entities {
            let _ = writeln!(out, "      entity {entity}");
        }
    }
    if let Some(base) = &cex.base {
        let _ = writeln!(out, "      before: {base}");
        let _ = writeln!(out, "      after:  {}", cex.answer);
    } else {
        let _ = writeln!(out, "      answer: {}", cex.answer);
    }
    if !cex.confirmed {
        let _ = writeln!(
            out,
            "      (the sidecar's answer does not show it: see the answers above)"
        );
    }
}
