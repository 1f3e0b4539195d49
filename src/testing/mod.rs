//! Policy unit tests that need no Rust: the suite format, its runner and its reports.
//!
//! A suite is a JSON file named `*.test.json`:
//!
//! ```json
//! {
//!   "name": "roles on an individual project",
//!   "fixtures": ["fixtures/people.json"],
//!   "entities": [{"uid": "Project::p1", "attrs": {"owner": "User::olga", "...": "..."}}],
//!   "context": {"now": "2026-06-01T00:00:00Z"},
//!   "cases": [
//!     {"name": "a viewer cannot edit", "principal": "User::vic", "action": "edit",
//!      "resource": "Project::p1", "expect": "Deny", "reasons": []}
//!   ],
//!   "matrices": [
//!     {"name": "role table", "resource": "Project::p1", "actions": ["view", "edit"],
//!      "allow": {"User::olga": ["view", "edit"], "User::vic": ["view"]}}
//!   ]
//! }
//! ```
//!
//! Fixtures are files holding a JSON array of entities, shared by many suites; a suite's own
//! `entities` replace fixture entities with the same uid, and a case's `entities` replace
//! both. Suite and matrix `context` are defaults: each case gets the keys its action
//! declares. A matrix expects every listed action allowed for each principal and every
//! other action denied. A list (`"lists"`) pins "which resources of a type may the principal
//! …?": the plan of `/v1/plan` and one-by-one decisions must both give exactly its ids. See
//! `tests/policies/README.md` for the whole format.
//!
//! The runner asks every case through [`Decider::answer`], exactly as the sidecar answers a
//! batch (`POST /v1/is_authorized/batch`): the suite's entities are the batch's shared
//! entities, uids are parsed, the request checked against the schema, entities parsed and
//! assembled on the batch's slice of the store. The decision cache is off, so every case is
//! evaluated; `tests/it/suites_over_http.rs` asks every bundled case again, one by one, over
//! HTTP, and requires the same answers. It records which policies decided, so that it can
//! report the policies no case exercised.

pub mod diff;
pub mod gate;
pub mod prove;
pub mod report;
mod suite;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use std::sync::Arc;

use crate::decide::input::{Part, build_request, parse_uid};
use crate::decide::{Decider, Decision, EntityList, InputError, Question, Uid, Verdict};
use crate::plan::{PlanQuestion, Planner};
use crate::policy::Snapshot;

pub use suite::{
    Case, ExpectedErrors, FixtureCache, ListCase, Suite, SuiteError, flexible_uid,
    load as load_suite,
};

/// The file name ending that marks a suite.
pub const SUITE_SUFFIX: &str = ".test.json";

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseOutcome {
    /// The case's name.
    pub name: String,
    /// The principal uid.
    pub principal: String,
    /// The action uid.
    pub action: String,
    /// The resource uid.
    pub resource: String,
    /// The context sent.
    pub context: Value,
    /// The expected decision.
    pub expected: Verdict,
    /// The expected deciding policies, when pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_reasons: Option<Vec<String>>,
    /// What the policies decided, unless the request could not be built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<Decision>,
    /// Why the request could not be built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The line of the case (or of its matrix) in its suite file.
    pub line: usize,
    /// What makes the case fail beyond its decision: an entity that exists nowhere, a
    /// `reasons` id that names no policy, evaluation errors it did not declare.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Whether the decision (and the reasons, when pinned) matched, with no problem.
    pub passed: bool,
}

/// The outcome of one suite file.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteOutcome {
    /// The suite file.
    pub file: PathBuf,
    /// The suite's name.
    pub name: String,
    /// Why the suite could not be read; then it has no cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its cases, in file order.
    pub cases: Vec<CaseOutcome>,
    /// Its lists, in file order.
    pub lists: Vec<ListOutcome>,
}

/// The outcome of one list.
#[derive(Debug, Clone, Serialize)]
pub struct ListOutcome {
    /// The list's name.
    pub name: String,
    /// The principal uid.
    pub principal: String,
    /// The action uid.
    pub action: String,
    /// The resource type listed.
    pub resource_type: String,
    /// The ids expected.
    pub expected: Vec<String>,
    /// The ids the plan's condition selects among the list's entities; `None` when the plan
    /// is not filterable or could not be made.
    pub by_plan: Option<Vec<String>>,
    /// The ids one-by-one decisions allow.
    pub one_by_one: Vec<String>,
    /// Why the plan is not filterable, or what could not be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The list's line in its suite file.
    pub line: usize,
    /// Whether the plan and the decisions both give the expected ids.
    pub passed: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed, plus suites that could not be read.
    pub failed: usize,
    /// Each suite, in the order run.
    pub suites: Vec<SuiteOutcome>,
    /// How many policies the set has.
    pub policies: usize,
    /// Policy ids that decided no case (never in a reason set), sorted.
    pub uncovered: Vec<String>,
    /// How many cases (and list decisions) each policy decided, every policy listed.
    pub hits: BTreeMap<String, usize>,
    /// Whether a filter left cases out (coverage then speaks of the cases run only).
    pub filtered: bool,
    /// Whether an uncovered policy fails the run (the whole bundled set was run).
    pub coverage_required: bool,
}

impl Report {
    /// Whether every case passed, every suite could be read and, when required, every
    /// policy decided some case.
    pub fn success(&self) -> bool {
        self.failed == 0 && (self.uncovered.is_empty() || !self.coverage_required)
    }
}

/// A path given to the test runner that does not exist.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no such file or directory: `{}`", .0.display())]
pub struct MissingPath(pub PathBuf);

/// The suite files named by `paths`: files as given, directories searched (recursively)
/// for `*.test.json`, each list sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, MissingPath> {
    files_ending(paths, SUITE_SUFFIX)
}

/// The files named by `paths`: files as given, directories searched (recursively) for
/// files whose name ends with `suffix`, each directory's sorted. Hidden files and
/// directories are skipped and symbolic links followed, so that a Kubernetes ConfigMap's
/// mount (`..data/` and a `..<timestamp>/` directory, a link per file) is read as its files.
pub fn files_ending(paths: &[PathBuf], suffix: &str) -> Result<Vec<PathBuf>, MissingPath> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let hidden = |e: &walkdir::DirEntry| {
                e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.')
            };
            let mut found: Vec<PathBuf> = walkdir::WalkDir::new(path)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| !hidden(e))
                .filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name().to_string_lossy();
                    e.file_type().is_file() && name.ends_with(suffix)
                })
                .map(|e| e.into_path())
                .collect();
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(MissingPath(path.clone()));
        }
    }
    Ok(files)
}

/// Parsed suite entities kept while running: enough for every fixture entity of the bundled
/// suites many times over.
const ENTITY_CACHE: u64 = 100_000;

/// Runs every suite file against the snapshot.
pub fn run(snapshot: &Snapshot, files: &[PathBuf]) -> Report {
    run_filtered(snapshot, files, None)
}

/// Whether `filter` keeps an item of a suite named `suite` in `file`: the suite's name or
/// file, the item's own name, or its action contains the text.
fn kept(filter: Option<&str>, (suite, file): (&str, &Path), name: &str, action: &str) -> bool {
    filter.is_none_or(|f| {
        suite.contains(f)
            || file.to_string_lossy().contains(f)
            || name.contains(f)
            || action.contains(f)
    })
}

/// Runs the suite files against the snapshot, only the cases and lists `filter` keeps (those
/// whose suite name or file, own name, or action contains it); suites left with nothing are
/// left out of the report.
pub fn run_filtered(snapshot: &Snapshot, files: &[PathBuf], filter: Option<&str>) -> Report {
    let decider = Decider::new(0, ENTITY_CACHE, std::time::Duration::ZERO);
    let mut fixtures = FixtureCache::default();
    let mut decided = BTreeMap::new();
    let mut suites = Vec::new();
    for file in files {
        suites.push(match load_suite(file, snapshot, &mut fixtures) {
            Ok(mut suite) => {
                let (name, path) = (suite.name.clone(), suite.file.clone());
                let keep = |item: &str, action: &str| kept(filter, (&name, &path), item, action);
                let cases: Vec<Case> = std::mem::take(&mut suite.cases)
                    .into_iter()
                    .filter(|c| keep(&c.name, &c.action))
                    .collect();
                let lists: Vec<ListCase> = std::mem::take(&mut suite.lists)
                    .into_iter()
                    .filter(|l| keep(&l.name, &l.action))
                    .collect();
                if filter.is_some() && cases.is_empty() && lists.is_empty() {
                    continue;
                }
                suite.cases = cases;
                suite.lists = lists;
                run_suite(&decider, snapshot, &suite, &mut decided)
            }
            Err(e) => SuiteOutcome {
                file: file.clone(),
                name: display_name(file),
                error: Some(e.to_string()),
                cases: Vec::new(),
                lists: Vec::new(),
            },
        });
    }
    let passed = suites
        .iter()
        .map(|s| {
            s.cases.iter().filter(|c| c.passed).count()
                + s.lists.iter().filter(|l| l.passed).count()
        })
        .sum();
    let failed_cases: usize = suites
        .iter()
        .map(|s| {
            s.cases.iter().filter(|c| !c.passed).count()
                + s.lists.iter().filter(|l| !l.passed).count()
        })
        .sum();
    let broken_suites = suites.iter().filter(|s| s.error.is_some()).count();
    let hits: BTreeMap<String, usize> = snapshot
        .info
        .iter()
        .map(|p| (p.id.clone(), decided.get(&p.id).copied().unwrap_or(0)))
        .collect();
    let uncovered = hits
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| id.clone())
        .collect();
    Report {
        passed,
        failed: failed_cases + broken_suites,
        suites,
        policies: snapshot.info.len(),
        uncovered,
        hits,
        filtered: filter.is_some(),
        coverage_required: false,
    }
}

/// Counts one decision's deciding policies.
fn count(decided: &mut BTreeMap<String, usize>, reasons: &[String]) {
    for id in reasons {
        *decided.entry(id.clone()).or_default() += 1;
    }
}

/// The ids of the policies named by evaluation errors (`error while evaluating policy
/// `id`: …`), sorted.
fn erroring_policies(errors: &[String]) -> Vec<String> {
    let mut ids: Vec<String> = errors
        .iter()
        .filter_map(|e| {
            e.strip_prefix("error while evaluating policy `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(id, _)| id.to_string())
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// What a suite's cases are checked against, computed once per suite: the policy ids, and
/// the uids each set of case entities defines (cases share their sets).
struct Known<'a> {
    policies: BTreeSet<&'a str>,
    defined: HashMap<*const Vec<Value>, BTreeSet<String>>,
}

impl<'a> Known<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        Self {
            policies: snapshot.info.iter().map(|p| p.id.as_str()).collect(),
            defined: HashMap::new(),
        }
    }

    /// The uids `entities` defines, as text.
    fn defined(&mut self, entities: &Arc<Vec<Value>>) -> &BTreeSet<String> {
        self.defined
            .entry(Arc::as_ptr(entities))
            .or_insert_with(|| {
                entities
                    .iter()
                    .filter_map(|e| cedar_policy::EntityUid::from_json(e["uid"].clone()).ok())
                    .map(|uid| uid.to_string())
                    .collect()
            })
    }
}

/// What makes a decided case fail beyond its decision (see [`CaseOutcome::problems`]).
fn problems(
    snapshot: &Snapshot,
    known: &mut Known<'_>,
    case: &Case,
    decision: &Decision,
) -> Vec<String> {
    let mut problems = Vec::new();
    if !case.unknown_entities {
        let unknown = unknown_entities(snapshot, known.defined(&case.entities), case);
        if !unknown.is_empty() {
            problems.push(format!(
                "{} is not an entity of the suite, its fixtures or the stored entities \
                 (a misspelt uid is denied like a real one; say `\"unknown_entities\": true` \
                 when the case means it)",
                unknown.join(", ")
            ));
        }
    }
    if let Some(reasons) = &case.reasons {
        for id in reasons
            .iter()
            .filter(|id| !known.policies.contains(id.as_str()))
        {
            problems.push(format!(
                "`reasons` names `{id}`, which is no policy of the set"
            ));
        }
    }
    let erroring = erroring_policies(&decision.errors);
    let declared = match &case.errors {
        None => decision.errors.is_empty(),
        Some(ExpectedErrors::Policies(ids)) => *ids == erroring,
        Some(ExpectedErrors::Count(n)) => *n == decision.errors.len(),
    };
    if !declared {
        let expected = match &case.errors {
            None => "none".to_string(),
            Some(ExpectedErrors::Policies(ids)) => format!("[{}]", ids.join(", ")),
            Some(ExpectedErrors::Count(n)) => format!("{n}"),
        };
        problems.push(format!(
            "evaluation errors: expected {expected}, got [{}]{}",
            erroring.join(", "),
            if decision.errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", decision.errors.join("; "))
            }
        ));
    }
    problems
}

/// The entity references in a context record: `{"__entity": uid}` values, which is what
/// entity-typed keys become (a plain string that looks like a uid is a string).
fn entity_refs(json: &Value, found: &mut Vec<String>) {
    match json {
        Value::Object(map) => match map.get("__entity") {
            Some(uid) => {
                if let Ok(uid) = cedar_policy::EntityUid::from_json(uid.clone()) {
                    found.push(uid.to_string());
                }
            }
            None => map.values().for_each(|v| entity_refs(v, found)),
        },
        Value::Array(items) => items.iter().for_each(|v| entity_refs(v, found)),
        _ => {}
    }
}

/// The principal, resource and context uids of `case` that neither its entities (which
/// define `defined`) nor the stored entities hold, as text.
fn unknown_entities(snapshot: &Snapshot, defined: &BTreeSet<String>, case: &Case) -> Vec<String> {
    let mut named = Vec::new();
    for text in [&case.principal, &case.resource] {
        named.push(text.clone());
    }
    entity_refs(&case.context, &mut named);
    let mut unknown: Vec<String> = named
        .into_iter()
        .filter(|uid| !defined.contains(uid))
        .filter(|uid| flexible_uid(uid).is_none_or(|uid| snapshot.entities.get(&uid).is_none()))
        .collect();
    unknown.sort();
    unknown.dedup();
    unknown
}

fn run_suite(
    decider: &Decider,
    snapshot: &Snapshot,
    suite: &Suite,
    decided: &mut BTreeMap<String, usize>,
) -> SuiteOutcome {
    let answers = answer_cases(decider, snapshot, &suite.cases);
    let mut known = Known::new(snapshot);
    let cases = suite
        .cases
        .iter()
        .zip(answers)
        .map(|(case, answer)| {
            let (actual, error) = match answer {
                Ok(decision) => (Some(decision), None),
                Err(e) => (None, Some(e.message)),
            };
            let problems = actual
                .as_ref()
                .map(|d| problems(snapshot, &mut known, case, d))
                .unwrap_or_default();
            let passed = problems.is_empty()
                && actual.as_ref().is_some_and(|d| {
                    d.decision == case.expect
                        && case.reasons.as_ref().is_none_or(|r| *r == d.reasons)
                });
            if let Some(d) = &actual {
                count(decided, &d.reasons);
            }
            CaseOutcome {
                name: case.name.clone(),
                principal: case.principal.clone(),
                action: case.action.clone(),
                resource: case.resource.clone(),
                context: case.context.clone(),
                expected: case.expect,
                expected_reasons: case.reasons.clone(),
                actual,
                error,
                line: case.line,
                problems,
                passed,
            }
        })
        .collect();
    let lists = suite
        .lists
        .iter()
        .map(|list| run_list(decider, snapshot, list, decided))
        .collect();
    SuiteOutcome {
        file: suite.file.clone(),
        name: suite.name.clone(),
        error: None,
        cases,
        lists,
    }
}

/// Checks a list: the plan (its condition, each leaf evaluated by Cedar on the list's
/// entities) and one-by-one decisions must both give exactly the expected ids.
#[expect(
    clippy::indexing_slicing,
    reason = "serde_json::Value's index reads Null for a missing key, never panics"
)]
fn run_list(
    decider: &Decider,
    snapshot: &Snapshot,
    list: &ListCase,
    decided: &mut BTreeMap<String, usize>,
) -> ListOutcome {
    let mut outcome = ListOutcome {
        name: list.name.clone(),
        principal: list.principal.clone(),
        action: list.action.clone(),
        resource_type: list.resource_type.clone(),
        expected: list.allowed.clone(),
        by_plan: None,
        one_by_one: Vec::new(),
        error: None,
        line: list.line,
        passed: false,
    };
    let entities = Value::Array(list.entities.to_vec());
    let candidates: Vec<String> = list
        .entities
        .iter()
        .filter(|e| e["uid"]["type"] == list.resource_type.as_str())
        .filter_map(|e| e["uid"]["id"].as_str().map(str::to_string))
        .collect();
    let questions: Vec<Question> = candidates
        .iter()
        .map(|id| Question {
            principal: Uid::from(list.principal.as_str()),
            action: Uid::from(list.action.as_str()),
            resource: Uid::new(&list.resource_type, id),
            context: Some(list.context.clone()),
            entities: None,
            strict_entities: false,
            consistency: None,
        })
        .collect();
    let shared = EntityList::from(entities.clone());
    let batch = match decider.batch(snapshot, &shared, &questions) {
        Ok(batch) => batch,
        Err(e) => {
            outcome.error = Some(e.message);
            return outcome;
        }
    };
    for (id, question) in candidates.iter().zip(&questions) {
        match decider.answer(snapshot, question, Some(&batch)) {
            Ok(answer) => {
                count(decided, &answer.decision.reasons);
                if answer.decision.decision == Verdict::Allow {
                    outcome.one_by_one.push(id.clone());
                }
            }
            Err(e) => {
                outcome.error = Some(e.message);
                return outcome;
            }
        }
    }
    outcome.one_by_one.sort();
    match selected_by_plan(decider, snapshot, list, &entities, &candidates) {
        Ok(mut ids) => {
            ids.sort();
            outcome.by_plan = Some(ids);
        }
        Err(e) => outcome.error = Some(e),
    }
    outcome.passed = outcome.by_plan.as_ref() == Some(&outcome.expected)
        && outcome.one_by_one == outcome.expected;
    outcome
}

/// The candidates where the plan's condition holds.
fn selected_by_plan(
    decider: &Decider,
    snapshot: &Snapshot,
    list: &ListCase,
    entities: &Value,
    candidates: &[String],
) -> Result<Vec<String>, String> {
    let question = PlanQuestion {
        principal: Uid::from(list.principal.as_str()),
        action: Uid::from(list.action.as_str()),
        resource_type: list.resource_type.clone(),
        context: Some(list.context.clone()),
        entities: Some(EntityList::from(entities.clone())),
        consistency: None,
        condition_version: None,
    };
    let (plan, _) = Planner::new(0, std::time::Duration::ZERO)
        .plan(decider, snapshot, &question)
        .map_err(|e| e.message)?;
    let Some(condition) = &plan.condition else {
        return Err(format!(
            "the plan is not filterable: {}",
            plan.unsupported.as_deref().unwrap_or("")
        ));
    };
    let store = crate::cedar_json::parse_entities(&snapshot.schema, &[("entities", entities)])
        .map_err(|e| e.message)?;
    // The principal and action are the list's, parsed once; only the resource varies.
    let principal = parse_uid(
        Part::Principal,
        "principal",
        &Value::String(list.principal.clone()),
    )
    .map_err(|e| e.message)?;
    let action = parse_uid(Part::Action, "action", &Value::String(list.action.clone()))
        .map_err(|e| e.message)?;
    let mut selected = Vec::new();
    for id in candidates {
        let resource = parse_uid(
            Part::Resource,
            "resource",
            &serde_json::json!({"type": list.resource_type, "id": id}),
        )
        .map_err(|e| e.message)?;
        let request = build_request(
            snapshot,
            principal.clone(),
            action.clone(),
            resource,
            Some(&list.context),
        )
        .map_err(|e| e.message)?;
        if crate::plan::holds(condition, &request, &store)? {
            selected.push(id.clone());
        }
    }
    Ok(selected)
}

/// Answers cases as the sidecar answers a batch: the cases that see the same entities (a
/// suite's, or a matrix's) are one batch whose entities are parsed and assembled once, and
/// each case is asked through [`Decider::answer`]. The answers come in the cases' order.
#[expect(
    clippy::indexing_slicing,
    reason = "every index is a case's position, for which `answers` was made the same length"
)]
pub fn answer_cases(
    decider: &Decider,
    snapshot: &Snapshot,
    cases: &[Case],
) -> Vec<Result<Decision, InputError>> {
    let mut groups: Vec<(&Arc<Vec<Value>>, Vec<usize>)> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|(e, _)| Arc::ptr_eq(e, &case.entities))
        {
            Some((_, members)) => members.push(i),
            None => groups.push((&case.entities, vec![i])),
        }
    }
    let mut answers: Vec<Option<Result<Decision, InputError>>> =
        cases.iter().map(|_| None).collect();
    for (entities, members) in groups {
        let questions: Vec<Question> = members.iter().map(|&i| cases[i].question()).collect();
        let batch = decider.batch(
            snapshot,
            &EntityList::from(Value::Array(entities.to_vec())),
            &questions,
        );
        for (&i, question) in members.iter().zip(&questions) {
            let answer = match &batch {
                Ok(batch) => decider
                    .answer(snapshot, question, Some(batch))
                    .map(|a| (*a.decision).clone()),
                Err(e) => Err(e.clone()),
            };
            answers[i] = Some(answer);
        }
    }
    answers.into_iter().flatten().collect()
}

fn display_name(file: &Path) -> String {
    file.file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_end_matches(SUITE_SUFFIX)
                .to_string()
        })
        .unwrap_or_default()
}
