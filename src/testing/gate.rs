//! The reload gates of `serve --require-properties` and `--require-suites`: a candidate set
//! goes live only when every safety property is proven of it (Cedar's symbolic compiler and
//! cvc5, as `gatehouse prove`) and every case of the policy suites passes (as `gatehouse
//! test`). The properties and the suites are read again for every candidate, against its
//! schema, so that a change to them is checked as a change to the policies is.
//!
//! A gate that cannot decide refuses: a property that cannot be checked (the solver died,
//! the property does not validate) or a suite that does not read is a failure, never a pass.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde_json::json;

use super::prove::{Holds, PropertyKind, PropertyResult, ProveError, Prover};
use super::{CaseOutcome, ListOutcome, discover};
use crate::policy::{Gate, GateFailure, GateKind, Snapshot, load_policies};

/// How many failed suite cases a refusal lists; the rest are counted in one more entry.
const MAX_CASES_LISTED: usize = 20;

/// Why the gates cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// A gate's path does not exist.
    #[error("`{flag} {}`: no such file or directory", path.display())]
    Missing {
        /// The flag that named it.
        flag: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The solver the properties need does not start.
    #[error("--require-properties needs an SMT solver: {0}")]
    Solver(#[source] ProveError),
}

/// [`Gates::new`] as the server opens its gates (an [`gatehouse_server::app::OpenGates`]):
/// `gatehouse serve` and the tests build the sidecar with it.
pub fn open(
    properties: Option<&Path>,
    suites: Option<&Path>,
) -> Result<Option<Box<dyn Gate>>, gatehouse_server::app::GateSetupError> {
    let gates = Gates::new(properties, suites)?;
    Ok(gates.map(|gates| Box::new(gates) as Box<dyn Gate>))
}

/// The properties and suites a candidate set must satisfy.
pub struct Gates {
    properties: Option<PathBuf>,
    suites: Option<PathBuf>,
    /// The solver, started once and started again after it failed.
    prover: Mutex<Option<Prover>>,
}

impl std::fmt::Debug for Gates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gates")
            .field("properties", &self.properties)
            .field("suites", &self.suites)
            .finish_non_exhaustive()
    }
}

impl Gates {
    /// The gates of `--require-properties` (a `.cedar` file or a directory of them) and
    /// `--require-suites` (a directory of `*.test.json` suites, or one suite); `None` when
    /// neither is given. With properties, the solver is started now: a gate that could never
    /// pass is refused before serving, with the reason.
    pub fn new(
        properties: Option<&Path>,
        suites: Option<&Path>,
    ) -> Result<Option<Self>, GateError> {
        for (flag, path) in [
            ("--require-properties", properties),
            ("--require-suites", suites),
        ] {
            if let Some(path) = path.filter(|p| !p.exists()) {
                return Err(GateError::Missing {
                    flag,
                    path: path.to_path_buf(),
                });
            }
        }
        if properties.is_none() && suites.is_none() {
            return Ok(None);
        }
        let prover = match properties {
            Some(_) => Some(Prover::start().map_err(GateError::Solver)?),
            None => None,
        };
        Ok(Some(Self {
            properties: properties.map(Path::to_path_buf),
            suites: suites.map(Path::to_path_buf),
            prover: Mutex::new(prover),
        }))
    }

    fn properties(&self, candidate: &Snapshot, path: &Path) -> Vec<GateFailure> {
        let unchecked = |name: &str, location: String, message: String| GateFailure {
            gate: GateKind::Property,
            name: name.to_string(),
            location,
            message,
            detail: None,
        };
        let properties = match load_policies(path, &candidate.schema) {
            Ok(properties) => properties,
            Err(error) => {
                return error
                    .problems
                    .iter()
                    .map(|p| {
                        let location = p.location.map_or_else(
                            || p.file.display().to_string(),
                            |(line, _)| format!("{}:{line}", p.file.display()),
                        );
                        unchecked("", location, format!("cannot be checked: {}", p.message))
                    })
                    .collect();
            }
        };
        let mut prover = self.prover.lock().unwrap_or_else(PoisonError::into_inner);
        if prover.is_none() {
            match Prover::start() {
                Ok(started) => *prover = Some(started),
                Err(e) => {
                    return vec![unchecked(
                        "",
                        path.display().to_string(),
                        format!("cannot be checked: {e}"),
                    )];
                }
            }
        }
        let Some(solver) = prover.as_mut() else {
            return Vec::new();
        };
        match solver.properties(candidate, &properties) {
            Ok(results) => results.iter().filter_map(property_failure).collect(),
            Err(e) => {
                // Started again for the next candidate: a solver that failed once may be
                // in any state.
                *prover = None;
                vec![unchecked(
                    "",
                    path.display().to_string(),
                    format!("cannot be checked: {e}"),
                )]
            }
        }
    }
}

impl Gate for Gates {
    fn check(&self, candidate: &Snapshot) -> Vec<GateFailure> {
        let mut failures = Vec::new();
        if let Some(suites) = &self.suites {
            failures.extend(suite_failures(candidate, suites));
        }
        if let Some(properties) = &self.properties {
            failures.extend(self.properties(candidate, properties));
        }
        failures
    }

    fn inputs(&self) -> Vec<PathBuf> {
        self.properties
            .iter()
            .chain(self.suites.iter())
            .cloned()
            .collect()
    }
}

/// A property that does not hold, as a refusal.
fn property_failure(result: &PropertyResult) -> Option<GateFailure> {
    let message = match (result.outcome, result.kind) {
        (Holds::Proven, _) => return None,
        (Holds::Vacuous, _) => {
            "vacuous: it matches no request of the set's schema, so it proves nothing".to_string()
        }
        (Holds::Refuted, PropertyKind::Never) => {
            "refuted: the set allows a request the property says it never allows".to_string()
        }
        (Holds::Refuted, PropertyKind::Always) => {
            "refuted: the set denies a request the property says it always allows".to_string()
        }
        (Holds::Refuted, PropertyKind::Only) => {
            "refuted: the set allows a request outside what the property allows".to_string()
        }
    };
    Some(GateFailure {
        gate: GateKind::Property,
        name: result.id.clone(),
        location: result.location.clone(),
        message,
        detail: result
            .counterexample
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok()),
    })
}

/// Every failed case and list of the suites at `path`, and every suite that does not read.
fn suite_failures(candidate: &Snapshot, path: &Path) -> Vec<GateFailure> {
    let files = match discover(&[path.to_path_buf()]) {
        Ok(files) if !files.is_empty() => files,
        Ok(_) => {
            return vec![suite_failure(
                "",
                path.display().to_string(),
                "no `*.test.json` suite found: a gate with no cases proves nothing".into(),
                None,
            )];
        }
        Err(e) => {
            return vec![suite_failure(
                "",
                path.display().to_string(),
                e.to_string(),
                None,
            )];
        }
    };
    let report = super::run(candidate, &files);
    let mut failures = Vec::new();
    let mut unlisted = 0;
    for suite in &report.suites {
        let file = suite.file.display();
        if let Some(error) = &suite.error {
            failures.push(suite_failure(
                &suite.name,
                file.to_string(),
                format!("cannot be read: {error}"),
                None,
            ));
        }
        let cases = suite.cases.iter().filter(|c| !c.passed).map(|c| {
            let detail = json!({"principal": c.principal, "action": c.action,
                "resource": c.resource, "context": c.context, "expected": c.expected,
                "expected_reasons": c.expected_reasons, "actual": c.actual,
                "problems": c.problems});
            (&c.name, c.line, case_message(c), detail)
        });
        let lists = suite.lists.iter().filter(|l| !l.passed).map(|l| {
            let detail = json!({"principal": l.principal, "action": l.action,
                "resource_type": l.resource_type, "expected": l.expected,
                "by_plan": l.by_plan, "one_by_one": l.one_by_one});
            (&l.name, l.line, list_message(l), detail)
        });
        for (name, line, message, detail) in cases.chain(lists) {
            if failures.len() < MAX_CASES_LISTED {
                failures.push(suite_failure(
                    name,
                    format!("{file}:{line}"),
                    message,
                    Some(detail),
                ));
            } else {
                unlisted += 1;
            }
        }
    }
    if unlisted > 0 {
        failures.push(suite_failure(
            "",
            path.display().to_string(),
            format!("and {unlisted} more cases failed"),
            None,
        ));
    }
    failures
}

fn suite_failure(
    name: &str,
    location: String,
    message: String,
    detail: Option<serde_json::Value>,
) -> GateFailure {
    GateFailure {
        gate: GateKind::Suite,
        name: name.to_string(),
        location,
        message,
        detail,
    }
}

/// `expected Deny by [archive.frozen], got Allow by [roles.editor]`, and any problem.
fn case_message(case: &CaseOutcome) -> String {
    let by = |reasons: &[String]| format!(" by [{}]", reasons.join(", "));
    let expected = format!(
        "expected {:?}{}",
        case.expected,
        case.expected_reasons.as_deref().map(by).unwrap_or_default()
    );
    let got = match (&case.actual, &case.error) {
        (Some(actual), _) => format!("got {:?}{}", actual.decision, by(&actual.reasons)),
        (None, Some(error)) => format!("could not be asked: {error}"),
        (None, None) => "got nothing".to_string(),
    };
    let mut message = format!("{expected}, {got}");
    for problem in &case.problems {
        message.push_str("; ");
        message.push_str(problem);
    }
    message
}

fn list_message(list: &ListOutcome) -> String {
    format!(
        "list: expected [{}], one by one [{}]{}",
        list.expected.join(", "),
        list.one_by_one.join(", "),
        list.error
            .as_deref()
            .map(|e| format!("; {e}"))
            .unwrap_or_default()
    )
}
