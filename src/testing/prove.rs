//! Proofs about a policy set for *every* request and entity store its schema allows, with
//! Cedar's symbolic compiler (`cedar-policy-symcc`, verified in Lean) and the cvc5 SMT
//! solver: where a suite checks the questions it lists, a proof checks them all, and a
//! refutation comes with one concrete counterexample (a request and its entities).
//!
//! Three kinds of check, each run in every request environment of the schema (a principal
//! type, an action, a resource type):
//!
//! - **never errors**: no policy of the set can fail to evaluate on a well-formed request,
//!   so gatehouse's fail-closed Deny never hides a decision;
//! - **properties**: safety rules written as Cedar `permit` policies in a directory of their
//!   own, each annotated with what must hold of the set (see [`PropertyKind`]);
//! - **comparison** with a base set: per action, equivalent, more or less permissive, with a
//!   counterexample for each direction that differs.
//!
//! The proofs are about Cedar's semantics. Every counterexample is then asked of the set
//! through [`Decider::answer`], as the sidecar would answer it, and the answers are reported
//! beside it; `confirmed` says whether they show what the proof says.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cedar_policy::{Policy, PolicyId, RequestEnv};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet, Env};
use serde::Serialize;
use serde_json::Value;

use super::diff::Outcome;
use crate::decide::{Decider, Question, Verdict};
use crate::policy::{PolicyFiles, PolicyInfo, Snapshot};

/// The annotation naming a property's kind.
pub const PROPERTY_ANNOTATION: &str = "property";

/// Why a proof could not be carried out (as opposed to a property that does not hold).
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The solver could not be started.
    #[error(
        "cannot start the SMT solver `{path}`: {reason}. `gatehouse prove` needs cvc5: install it \
         (`apt-get install cvc5`) or set CVC5 to its path"
    )]
    Solver {
        /// The executable tried.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A check failed to run: a compile error, a solver error or an `unknown` answer.
    #[error("{check}: {reason}")]
    Check {
        /// The check, e.g. `never errors: roles.viewer in User, Action::"view", Project`.
        check: String,
        /// What went wrong.
        reason: String,
    },
    /// A property is not written as a property.
    #[error("{location}: {reason}")]
    Property {
        /// `file:LINE` of the property.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What a property says of the set. A property is a Cedar `permit` policy `P` annotated
/// `@property("…")`; `P` "matches" the requests its scope and conditions accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PropertyKind {
    /// The set allows no request `P` matches (`P` and the set are disjoint).
    Never,
    /// The set allows every request `P` matches (`P` implies the set).
    Always,
    /// Every request the set allows, among the actions and types of `P`'s scope, is one `P`
    /// matches (the set implies `P` there).
    Only,
}

impl FromStr for PropertyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "never" => Ok(Self::Never),
            "always" => Ok(Self::Always),
            "only" => Ok(Self::Only),
            other => Err(format!(
                "`@{PROPERTY_ANNOTATION}(\"{other}\")` is not a property kind: write \"never\", \"always\" or \"only\""
            )),
        }
    }
}

impl fmt::Display for PropertyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Always => "always",
            Self::Only => "only",
        })
    }
}

/// A concrete request and entity store the solver found, as a question gatehouse takes,
/// with what the sidecar answers to it.
#[derive(Debug, Clone, Serialize)]
pub struct Counterexample {
    /// The request environment it was found in: `principal type, action, resource type`.
    pub environment: String,
    /// The question (`principal`, `action`, `resource`, `context`, `entities`), ready for
    /// `POST /v1/is_authorized` or a suite case.
    pub question: Value,
    /// The base set's answer (comparisons only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Outcome>,
    /// The (working) set's answer.
    pub answer: Outcome,
    /// Whether the sidecar's answers show what the proof says (the two sets decide
    /// differently; the set allows or denies as the property says it must not; the policy
    /// reports an error).
    pub confirmed: bool,
}

/// A policy that can fail to evaluate.
#[derive(Debug, Clone, Serialize)]
pub struct ErringPolicy {
    /// Its `@id`.
    pub policy: String,
    /// `file:LINE`.
    pub location: String,
    /// A request on which it errors.
    pub counterexample: Counterexample,
}

/// The never-errors proof of a set.
#[derive(Debug, Clone, Serialize)]
pub struct NeverErrors {
    /// Policies checked.
    pub policies: usize,
    /// Request environments checked.
    pub environments: usize,
    /// The policies that can error, each with a counterexample; empty when proven.
    pub erring: Vec<ErringPolicy>,
}

/// Whether a property holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Holds {
    /// It holds for every request and entity store.
    Proven,
    /// A counterexample shows it does not.
    Refuted,
    /// It matches no request of the schema (its scope fits no action, or its conditions
    /// never hold): it would hold of any set, so it proves nothing.
    Vacuous,
}

/// One property's result.
#[derive(Debug, Clone, Serialize)]
pub struct PropertyResult {
    /// Its `@id`.
    pub id: String,
    /// `file:LINE`.
    pub location: String,
    /// What it says of the set.
    pub kind: PropertyKind,
    /// Proven, refuted or vacuous.
    pub outcome: Holds,
    /// The request environments it was checked in.
    pub environments: Vec<String>,
    /// For a refuted property, a request that breaks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Counterexample>,
}

/// How an action's decisions changed from the base set to the working one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The same decision on every request and entity store.
    Equivalent,
    /// Everything allowed before still is, and more is allowed.
    MorePermissive,
    /// Everything allowed now was before, and less is allowed.
    LessPermissive,
    /// Some requests newly allowed, others newly denied.
    Both,
}

/// One action's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ActionChange {
    /// The action uid.
    pub action: String,
    /// How it changed.
    pub change: Change,
    /// The request environments compared.
    pub environments: usize,
    /// A request the working set allows and the base set denies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newly_allowed: Option<Counterexample>,
    /// A request the base set allows and the working set denies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newly_denied: Option<Counterexample>,
}

/// Runs the checks, one solver query at a time.
pub struct Prover {
    // INVARIANT: the compiler (and its solver's pipes) is dropped before the runtime.
    compiler: CedarSymCompiler<LocalSolver>,
    runtime: Background,
    /// Solver queries made so far.
    pub queries: usize,
}

/// The prover's own runtime, shut down without waiting when dropped: a prover kept by the
/// reload gates may be dropped on an async thread, where waiting is not allowed.
struct Background(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for Background {
    type Target = tokio::runtime::Runtime;
    #[expect(clippy::expect_used, reason = "`Some` until dropped")]
    fn deref(&self) -> &Self::Target {
        // INVARIANT: `Some` until dropped.
        self.0
            .as_ref()
            .expect("the prover's runtime lives as long as the prover")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for Prover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prover")
            .field("queries", &self.queries)
            .finish_non_exhaustive()
    }
}

impl Prover {
    /// Starts cvc5 (`CVC5`, or `cvc5` on the `PATH`) and checks that it answers.
    pub fn start() -> Result<Self, ProveError> {
        let path = std::env::var("CVC5")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "cvc5".into());
        let failed = |reason: String| ProveError::Solver {
            path: path.clone(),
            reason,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let solver = runtime
            .block_on(async { LocalSolver::cvc5() })
            .map_err(|e| failed(e.to_string()))?;
        let compiler = CedarSymCompiler::new(solver).map_err(|e| failed(e.to_string()))?;
        let mut prover = Self {
            compiler,
            runtime: Background(Some(runtime)),
            queries: 0,
        };
        // A solver that starts but cannot answer (a wrong binary) fails here, not mid-proof.
        prover.probe().map_err(failed)?;
        Ok(prover)
    }

    /// One trivial query, to learn that the solver answers.
    fn probe(&mut self) -> Result<(), String> {
        let schema = cedar_policy::Schema::from_cedarschema_str(
            "entity U; action a appliesTo { principal: U, resource: U };",
        )
        .map_err(|e| e.to_string())?
        .0;
        let policy =
            Policy::from_str("permit(principal, action, resource);").map_err(|e| e.to_string())?;
        let env = schema
            .request_envs()
            .next()
            .ok_or("the probe schema has no request environment")?;
        let compiled =
            CompiledPolicy::compile(&policy, &env, &schema).map_err(|e| e.to_string())?;
        let never_errors = self
            .runtime
            .block_on(self.compiler.check_never_errors_opt(&compiled))
            .map_err(|e| e.to_string())?;
        if never_errors {
            Ok(())
        } else {
            Err("the solver says `permit(principal, action, resource);` can error".into())
        }
    }

    /// Proves that no policy of `snapshot` errors on a well-formed request, or finds, for
    /// each policy that can, a request on which it does.
    pub fn never_errors(&mut self, snapshot: &Snapshot) -> Result<NeverErrors, ProveError> {
        let envs: Vec<RequestEnv> = snapshot.schema.request_envs().collect();
        let mut erring = Vec::new();
        for info in &snapshot.info {
            let Some(policy) = snapshot.policies.policy(&PolicyId::new(&info.id)) else {
                continue;
            };
            for env in &envs {
                let check = || format!("never errors: {} in {}", info.id, describe(env));
                let compiled = CompiledPolicy::compile(policy, env, &snapshot.schema)
                    .map_err(|e| failed(check(), e))?;
                self.queries += 1;
                let found = self
                    .runtime
                    .block_on(
                        self.compiler
                            .check_never_errors_with_counterexample_opt(&compiled),
                    )
                    .map_err(|e| failed(check(), e))?;
                if let Some(cex) = found {
                    let counterexample = counterexample(env, &cex, None, snapshot, |_, answer| {
                        answer.errors.iter().any(|e| e.contains(&info.id))
                    });
                    erring.push(ErringPolicy {
                        policy: info.id.clone(),
                        location: format!("{}:{}", info.file.display(), info.line),
                        counterexample,
                    });
                    break;
                }
            }
        }
        Ok(NeverErrors {
            policies: snapshot.info.len(),
            environments: envs.len(),
            erring,
        })
    }

    /// Checks every property of `properties` (loaded like policies, so each has its
    /// `@id`, its place and has been validated against the schema) of `snapshot`'s set.
    pub fn properties(
        &mut self,
        snapshot: &Snapshot,
        properties: &PolicyFiles,
    ) -> Result<Vec<PropertyResult>, ProveError> {
        let envs: Vec<RequestEnv> = snapshot.schema.request_envs().collect();
        let mut results = Vec::new();
        for info in &properties.info {
            if let Some(property) = properties.policies.policy(&PolicyId::new(&info.id)) {
                results.push(self.property(snapshot, &envs, info, property)?);
            }
        }
        Ok(results)
    }

    /// One property, checked in every request environment its scope matches until one
    /// breaks it.
    fn property(
        &mut self,
        snapshot: &Snapshot,
        envs: &[RequestEnv],
        info: &PolicyInfo,
        property: &Policy,
    ) -> Result<PropertyResult, ProveError> {
        let location = format!("{}:{}", info.file.display(), info.line);
        let unusable = |reason| ProveError::Property {
            location: location.clone(),
            reason,
        };
        let kind = property_kind(property).map_err(unusable)?;
        let scope = scope_of(property).map_err(unusable)?;
        let mut result = PropertyResult {
            id: info.id.clone(),
            location,
            kind,
            outcome: Holds::Vacuous,
            environments: Vec::new(),
            counterexample: None,
        };
        // Whether the property matches some request: one that matches none says nothing.
        let mut matches = false;
        for env in envs {
            let check = || format!("property {} in {}", info.id, describe(env));
            let scope = CompiledPolicy::compile(&scope, env, &snapshot.schema)
                .map_err(|e| failed(check(), e))?;
            self.queries += 1;
            let outside = self
                .runtime
                .block_on(self.compiler.check_never_matches_opt(&scope))
                .map_err(|e| failed(check(), e))?;
            if outside {
                continue;
            }
            result.environments.push(describe(env));
            let compiled = CompiledPolicy::compile(property, env, &snapshot.schema)
                .map_err(|e| failed(check(), e))?;
            if kind != PropertyKind::Only && !matches {
                // A `never` or `always` whose conditions match nothing holds of any set.
                self.queries += 1;
                matches = !self
                    .runtime
                    .block_on(self.compiler.check_never_matches_opt(&compiled))
                    .map_err(|e| failed(check(), e))?;
            }
            let set = CompiledPolicySet::compile(&snapshot.policies, env, &snapshot.schema)
                .map_err(|e| failed(check(), e))?;
            let found = self.breaking(kind, &set, &compiled.into_compiled_policyset(), check)?;
            if let Some(cex) = found {
                // Never and only: the set allows what it must not; always: it denies.
                let broken = if kind == PropertyKind::Always {
                    Verdict::Deny
                } else {
                    Verdict::Allow
                };
                result.counterexample =
                    Some(counterexample(env, &cex, None, snapshot, |_, answer| {
                        answer.decision == Some(broken)
                    }));
                result.outcome = Holds::Refuted;
                break;
            }
            result.outcome = Holds::Proven;
        }
        result.environments.sort();
        if result.outcome == Holds::Proven && kind != PropertyKind::Only && !matches {
            result.outcome = Holds::Vacuous;
        }
        Ok(result)
    }

    /// A request and store on which `set` breaks a property of `kind`, if there is one:
    /// one query. A `never` is broken by a request both allow, an `always` by one the
    /// property allows and the set does not, an `only` by one the set allows and the
    /// property does not. A failed query is an error naming `check`.
    fn breaking(
        &mut self,
        kind: PropertyKind,
        set: &CompiledPolicySet,
        property: &CompiledPolicySet,
        check: impl Fn() -> String,
    ) -> Result<Option<Env>, ProveError> {
        self.queries += 1;
        let compiler = &mut self.compiler;
        let found = self.runtime.block_on(async {
            match kind {
                PropertyKind::Never => {
                    compiler
                        .check_disjoint_with_counterexample_opt(set, property)
                        .await
                }
                PropertyKind::Always => {
                    compiler
                        .check_implies_with_counterexample_opt(property, set)
                        .await
                }
                PropertyKind::Only => {
                    compiler
                        .check_implies_with_counterexample_opt(set, property)
                        .await
                }
            }
        });
        found.map_err(|e| failed(check(), e))
    }

    /// Compares `work` with `base`, action by action, in every request environment of the
    /// working schema (the base set is compiled against it too).
    pub fn compare(
        &mut self,
        base: &Snapshot,
        work: &Snapshot,
    ) -> Result<Vec<ActionChange>, ProveError> {
        let mut by_action: BTreeMap<String, ActionChange> = BTreeMap::new();
        for env in work.schema.request_envs() {
            let check = || format!("comparison in {}", describe(&env));
            let before = CompiledPolicySet::compile(&base.policies, &env, &work.schema)
                .map_err(|e| failed(format!("{}, the base set", check()), e))?;
            let after = CompiledPolicySet::compile(&work.policies, &env, &work.schema)
                .map_err(|e| failed(check(), e))?;
            self.queries += 2;
            let (allowed, denied) = self
                .runtime
                .block_on(async {
                    let allowed = self
                        .compiler
                        .check_implies_with_counterexample_opt(&after, &before)
                        .await?;
                    let denied = self
                        .compiler
                        .check_implies_with_counterexample_opt(&before, &after)
                        .await?;
                    Ok::<_, cedar_policy_symcc::err::Error>((allowed, denied))
                })
                .map_err(|e| failed(check(), e))?;
            let entry = by_action
                .entry(env.action().to_string())
                .or_insert_with(|| ActionChange {
                    action: env.action().to_string(),
                    change: Change::Equivalent,
                    environments: 0,
                    newly_allowed: None,
                    newly_denied: None,
                });
            entry.environments += 1;
            let differ = |base: Option<&Outcome>, answer: &Outcome| {
                base.is_some_and(|b| b.decision.is_some() && b.decision != answer.decision)
            };
            if entry.newly_allowed.is_none()
                && let Some(cex) = allowed
            {
                entry.newly_allowed = Some(counterexample(&env, &cex, Some(base), work, differ));
            }
            if entry.newly_denied.is_none()
                && let Some(cex) = denied
            {
                entry.newly_denied = Some(counterexample(&env, &cex, Some(base), work, differ));
            }
            entry.change = match (&entry.newly_allowed, &entry.newly_denied) {
                (None, None) => Change::Equivalent,
                (Some(_), None) => Change::MorePermissive,
                (None, Some(_)) => Change::LessPermissive,
                (Some(_), Some(_)) => Change::Both,
            };
        }
        Ok(by_action.into_values().collect())
    }
}

fn failed(check: String, error: impl fmt::Display) -> ProveError {
    ProveError::Check {
        check,
        reason: error.to_string(),
    }
}

/// `User, Action::"view", Project`.
fn describe(env: &RequestEnv) -> String {
    format!("{}, {}, {}", env.principal(), env.action(), env.resource())
}

/// A property's kind, from its annotation; properties are permits.
fn property_kind(property: &Policy) -> Result<PropertyKind, String> {
    if property.effect() != cedar_policy::Effect::Permit {
        return Err(
            "a property is a `permit` describing requests; `forbid` has no meaning here".into(),
        );
    }
    property
        .annotation(PROPERTY_ANNOTATION)
        .ok_or_else(|| {
            format!("a property needs `@{PROPERTY_ANNOTATION}(\"never\" | \"always\" | \"only\")`")
        })?
        .parse()
}

/// The property with its conditions removed: what its scope alone matches, to learn which
/// request environments it speaks of.
fn scope_of(property: &Policy) -> Result<Policy, String> {
    let mut json = property.to_json().map_err(|e| e.to_string())?;
    if let Some(object) = json.as_object_mut() {
        object.insert("conditions".into(), Value::Array(Vec::new()));
    }
    Policy::from_json(Some(property.id().clone()), json).map_err(|e| e.to_string())
}

/// A solver's counterexample as a question, asked of `work` (and `base`), with `confirms`
/// judging whether the answers show what the proof says.
fn counterexample(
    env: &RequestEnv,
    cex: &Env,
    base: Option<&Snapshot>,
    work: &Snapshot,
    confirms: impl Fn(Option<&Outcome>, &Outcome) -> bool,
) -> Counterexample {
    let question = question_of(cex);
    let ask = |snapshot: &Snapshot| {
        let answer = serde_json::from_value::<Question>(question.clone())
            .map_err(|e| e.to_string())
            .and_then(|q| {
                Decider::uncached()
                    .answer(snapshot, &q, None)
                    .map(|a| (*a.decision).clone())
                    .map_err(|e| e.message)
            });
        Outcome::of(answer)
    };
    let before = base.map(ask);
    let answer = ask(work);
    Counterexample {
        environment: describe(env),
        confirmed: confirms(before.as_ref(), &answer),
        question,
        base: before,
        answer,
    }
}

/// The question gatehouse takes for a counterexample: uids in their string form, the
/// context and the entities in Cedar's JSON.
#[expect(
    clippy::indexing_slicing,
    reason = "serde_json::Value's index reads Null for a missing key, never panics"
)]
fn question_of(cex: &Env) -> Value {
    let uid = |uid: Option<&cedar_policy::EntityUid>| {
        Value::String(uid.map(ToString::to_string).unwrap_or_default())
    };
    let request = &cex.request;
    let context = request
        .context()
        .and_then(|c| c.to_json_value().ok())
        .unwrap_or_else(|| Value::Object(Default::default()));
    let entities = cex
        .entities
        .to_json_value()
        .unwrap_or_else(|_| Value::Array(Vec::new()));
    // Action entities are the schema's: the question must not carry them. Sorted by uid, so
    // that a report reads the same every run.
    let entities = match entities {
        Value::Array(list) => {
            let mut list: Vec<Value> = list
                .into_iter()
                .filter(|e| {
                    e.pointer("/uid/type")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t != "Action" && !t.ends_with("::Action"))
                })
                .collect();
            list.sort_by_key(|e| (e["uid"]["type"].to_string(), e["uid"]["id"].to_string()));
            Value::Array(list)
        }
        other => other,
    };
    serde_json::json!({
        "principal": uid(request.principal()),
        "action": uid(request.action()),
        "resource": uid(request.resource()),
        "context": context,
        "entities": entities,
    })
}
