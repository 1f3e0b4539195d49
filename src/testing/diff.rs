//! What a policy change flips: the same questions asked of two policy sets (the base and
//! the working one), and every question whose decision differs (a flip) or whose decision
//! stays but is made by other policies (a reason change).
//!
//! The questions are every case of the suites, every question of a decision log written with
//! `--decision-log-full`, and a sweep: for each set of entities the suites' cases see, every
//! action applicable to every principal × resource pair among those entities (with the
//! context the suite's cases gave that action, or none when it needs none). Each question is
//! asked through [`Decider::answer`] under each set, as the sidecar would ask it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Suite;
use crate::decide::{Decider, Decision, Question, Uid, Verdict};
use crate::policy::Snapshot;

/// A decision as the diff shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Allow or Deny; `None` when the question could not be asked of this set.
    pub decision: Option<Verdict>,
    /// The deciding policies.
    pub reasons: Vec<String>,
    /// Evaluation errors, or why the question could not be asked.
    pub errors: Vec<String>,
}

impl Outcome {
    pub(crate) fn of(answer: Result<Decision, String>) -> Self {
        match answer {
            Ok(d) => Self {
                decision: Some(d.decision),
                reasons: d.reasons,
                errors: d.errors,
            },
            Err(error) => Self {
                decision: None,
                reasons: Vec::new(),
                errors: vec![error],
            },
        }
    }

    /// How `after` differs from `self`, when it does.
    fn change_to(&self, after: &Self) -> Option<ChangeKind> {
        if self.decision != after.decision {
            Some(ChangeKind::Decision)
        } else if self.reasons != after.reasons {
            Some(ChangeKind::Reasons)
        } else {
            None
        }
    }
}

/// What changed of a question's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Allow became Deny, or Deny Allow (or the question could be asked of one set only).
    Decision,
    /// The same decision, made by other policies.
    Reasons,
}

impl std::fmt::Display for Outcome {
    /// `Allow by [roles.owner]`, `Deny by [] (errors: …)`, `not asked: …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decision {
            Some(d) => {
                write!(f, "{d:?} by [{}]", self.reasons.join(", "))?;
                if !self.errors.is_empty() {
                    write!(f, " (errors: {})", self.errors.join("; "))?;
                }
                Ok(())
            }
            None => write!(f, "not asked: {}", self.errors.join("; ")),
        }
    }
}

/// One question whose answer changed.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// A decision flip or a reason change.
    pub kind: ChangeKind,
    /// Where the question came from: `case <suite> › <name>`, `log line N`, `sweep <suite>`.
    pub source: String,
    /// The principal uid.
    pub principal: String,
    /// The action uid.
    pub action: String,
    /// The resource uid.
    pub resource: String,
    /// The context sent.
    pub context: Value,
    /// Under the base set.
    pub before: Outcome,
    /// Under the working set.
    pub after: Outcome,
    /// Whether `--accept` lists it as intended.
    pub accepted: bool,
}

/// An intended change (a flip, or a reason change), as `--accept` lists them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The principal uid, as the diff prints it.
    pub principal: String,
    /// The action uid, as the diff prints it.
    pub action: String,
    /// The resource uid, as the diff prints it.
    pub resource: String,
}

/// The outcome of a diff.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// Questions asked of both sets, by where they came from.
    pub asked: BTreeMap<String, usize>,
    /// Every question whose decision changed, in the order asked.
    pub flips: Vec<Change>,
    /// Decision flips by action uid.
    pub by_action: BTreeMap<String, usize>,
    /// Every question decided alike by other policies, in the order asked.
    pub reason_changes: Vec<Change>,
    /// Reason changes by action uid.
    pub reason_changes_by_action: BTreeMap<String, usize>,
}

impl DiffReport {
    /// The decision flips `--accept` does not list.
    pub fn unaccepted_flips(&self) -> usize {
        self.flips.iter().filter(|f| !f.accepted).count()
    }

    /// The reason changes `--accept` does not list.
    pub fn unaccepted_reason_changes(&self) -> usize {
        self.reason_changes.iter().filter(|f| !f.accepted).count()
    }
}

/// One question to ask of both sets, with the entities it sees.
struct Asked {
    source: String,
    question: Question,
    /// Shared entities (a batch's), or `None` for a logged question carrying its own.
    shared: Option<Arc<Vec<Value>>>,
}

/// Asks every question of the suites, of `log` and of the sweep, under `base` and `work`.
pub fn diff(
    base: &Snapshot,
    work: &Snapshot,
    suites: &[Suite],
    log: &[Question],
    accept: &[Accepted],
) -> DiffReport {
    let (questions, asked) = questions(work, suites, log);
    let before = ask(base, &questions);
    let after = ask(work, &questions);
    let accept: HashSet<&Accepted> = accept.iter().collect();
    let mut report = DiffReport {
        asked,
        flips: Vec::new(),
        by_action: BTreeMap::new(),
        reason_changes: Vec::new(),
        reason_changes_by_action: BTreeMap::new(),
    };
    for ((asked, before), after) in questions.iter().zip(before).zip(after) {
        let (before, after) = (Outcome::of(before), Outcome::of(after));
        if let Some(kind) = before.change_to(&after) {
            report.add(kind, asked, before, after, &accept);
        }
    }
    report
}

/// The questions to ask: every suite case, every logged question, and the sweep's that no
/// case asks already; with how many came from each.
fn questions(
    work: &Snapshot,
    suites: &[Suite],
    log: &[Question],
) -> (Vec<Asked>, BTreeMap<String, usize>) {
    let mut questions = Vec::new();
    let mut seen = HashSet::new();
    let key = |q: &Question, shared: &Option<Arc<Vec<Value>>>| {
        let set = shared.as_ref().map_or(0, |s| Arc::as_ptr(s) as usize);
        format!(
            "{set}|{}|{}|{}|{:?}",
            q.principal, q.action, q.resource, q.context
        )
    };
    for suite in suites {
        for case in &suite.cases {
            let asked = Asked {
                source: format!("case {} › {}", suite.name, case.name),
                question: case.question(),
                shared: Some(Arc::clone(&case.entities)),
            };
            seen.insert(key(&asked.question, &asked.shared));
            questions.push(asked);
        }
    }
    let cases = questions.len();
    for (i, question) in log.iter().enumerate() {
        questions.push(Asked {
            source: format!("log line {}", i + 1),
            question: question.clone(),
            shared: None,
        });
    }
    let logged = log.len();
    for asked in sweep(work, suites) {
        if seen.insert(key(&asked.question, &asked.shared)) {
            questions.push(asked);
        }
    }
    let swept = questions.len() - cases - logged;
    let counts = BTreeMap::from([
        ("suite cases".to_string(), cases),
        ("decision log".to_string(), logged),
        ("sweep".to_string(), swept),
    ]);
    (questions, counts)
}

impl DiffReport {
    /// Records one question whose answer changed (`kind`), accepted when `accept` lists it.
    fn add(
        &mut self,
        kind: ChangeKind,
        asked: &Asked,
        before: Outcome,
        after: Outcome,
        accept: &HashSet<&Accepted>,
    ) {
        let text = |uid: &Uid| uid.to_string();
        let change = Change {
            kind,
            source: asked.source.clone(),
            principal: text(&asked.question.principal),
            action: text(&asked.question.action),
            resource: text(&asked.question.resource),
            context: asked.question.context.clone().unwrap_or(Value::Null),
            before,
            after,
            accepted: false,
        };
        let accepted = accept.contains(&Accepted {
            principal: change.principal.clone(),
            action: change.action.clone(),
            resource: change.resource.clone(),
        });
        let (list, counts) = match kind {
            ChangeKind::Decision => (&mut self.flips, &mut self.by_action),
            ChangeKind::Reasons => (&mut self.reason_changes, &mut self.reason_changes_by_action),
        };
        *counts.entry(change.action.clone()).or_insert(0) += 1;
        list.push(Change { accepted, ..change });
    }
}

/// Every applicable action × principal × resource among the entities each group of suite
/// cases sees, with the context its cases gave the action (or none, when it needs none).
fn sweep(work: &Snapshot, suites: &[Suite]) -> Vec<Asked> {
    let mut out = Vec::new();
    let mut done: HashSet<usize> = HashSet::new();
    for suite in suites {
        for case in &suite.cases {
            let set = &case.entities;
            if !done.insert(Arc::as_ptr(set) as usize) {
                continue;
            }
            // The context the suite's cases on these entities gave each action.
            let mut contexts: BTreeMap<&str, &Value> = BTreeMap::new();
            for other in suite.cases.iter().filter(|c| Arc::ptr_eq(&c.entities, set)) {
                contexts
                    .entry(other.action.as_str())
                    .or_insert(&other.context);
            }
            let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for entity in set.iter() {
                if let Ok(uid) = cedar_policy::EntityUid::from_json(entity["uid"].clone()) {
                    by_type
                        .entry(uid.type_name().to_string())
                        .or_default()
                        .push(uid.to_string());
                }
            }
            for action in work.catalog.iter() {
                let uid = action.uid.to_string();
                let context = match contexts.get(uid.as_str()) {
                    Some(context) => (*context).clone(),
                    None if action.required_context().next().is_none() => {
                        Value::Object(Default::default())
                    }
                    None => continue,
                };
                for principal in action
                    .principals
                    .iter()
                    .filter_map(|t| by_type.get(t))
                    .flatten()
                {
                    for resource in action
                        .resources
                        .iter()
                        .filter_map(|t| by_type.get(t))
                        .flatten()
                    {
                        out.push(Asked {
                            source: format!("sweep {}", suite.name),
                            question: Question {
                                principal: Uid::from(principal.as_str()),
                                action: Uid::from(uid.as_str()),
                                resource: Uid::from(resource.as_str()),
                                context: Some(context.clone()),
                                entities: None,
                                strict_entities: false,
                                consistency: None,
                            },
                            shared: Some(Arc::clone(set)),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Asks every question of `snapshot`: those sharing entities as one batch each, as the
/// sidecar answers a batch.
#[expect(
    clippy::indexing_slicing,
    reason = "every index is a question's position, for which `answers` was made the same length, and a group has at least one member"
)]
fn ask(snapshot: &Snapshot, questions: &[Asked]) -> Vec<Result<Decision, String>> {
    let decider = Decider::new(0, 100_000, std::time::Duration::ZERO);
    let mut answers: Vec<Option<Result<Decision, String>>> = vec![None; questions.len()];
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, asked) in questions.iter().enumerate() {
        match &asked.shared {
            None => {
                answers[i] = Some(
                    decider
                        .answer(snapshot, &asked.question, None)
                        .map(|a| (*a.decision).clone())
                        .map_err(|e| e.message),
                );
            }
            Some(set) => {
                let ptr = Arc::as_ptr(set) as usize;
                match groups.iter_mut().find(|(p, _)| *p == ptr) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((ptr, vec![i])),
                }
            }
        }
    }
    for (_, members) in groups {
        let Some(set) = questions[members[0]].shared.as_ref() else {
            continue;
        };
        let batch = decider.batch(
            snapshot,
            &crate::decide::EntityList::from(Value::Array(set.to_vec())),
            members.iter().map(|&i| &questions[i].question),
        );
        for &i in &members {
            answers[i] = Some(match &batch {
                Ok(batch) => decider
                    .answer(snapshot, &questions[i].question, Some(batch))
                    .map(|a| (*a.decision).clone())
                    .map_err(|e| e.message),
                Err(e) => Err(e.message.clone()),
            });
        }
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err("not asked".into())))
        .collect()
}
