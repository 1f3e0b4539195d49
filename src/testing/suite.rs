//! Reading policy test suites: JSON files whose cases become Cedar requests.
//!
//! On top of Cedar's JSON, a suite may write an entity uid as a string, either in Cedar's
//! form `User::"olga"` or, when the id is a plain word, as `User::olga`: for `uid`,
//! `parents`, `principal`, `resource`, and attributes or context keys the schema declares as
//! entities. An action may be written by its id alone: `view` for `Action::"view"`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cedar_policy::EntityUid;
use serde::Deserialize;
use serde_json::{Map, Value};

pub use crate::cedar_json::flexible_uid;
use crate::cedar_json::{
    Part, merge_layers, normalize_entities, normalize_entity, parse_entities, parse_uid,
    with_entity_refs,
};
use crate::decide::{Question, Uid, Verdict};
use crate::policy::{ActionCatalog, Snapshot};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: Option<String>,
    #[expect(dead_code, reason = "free text for the reader: accepted, never read")]
    description: Option<String>,
    #[serde(default)]
    fixtures: Vec<String>,
    #[serde(default)]
    entities: Vec<Value>,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    cases: Vec<CaseSpec>,
    #[serde(default)]
    matrices: Vec<MatrixSpec>,
    #[serde(default)]
    lists: Vec<ListSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListSpec {
    name: String,
    #[expect(dead_code, reason = "free text for the reader: accepted, never read")]
    description: Option<String>,
    principal: Value,
    action: Value,
    resource_type: String,
    context: Option<Map<String, Value>>,
    #[serde(default)]
    entities: Vec<Value>,
    allowed: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    name: String,
    #[expect(dead_code, reason = "free text for the reader: accepted, never read")]
    description: Option<String>,
    principal: Value,
    action: Value,
    resource: Value,
    context: Option<Map<String, Value>>,
    #[serde(default)]
    entities: Vec<Value>,
    expect: Verdict,
    reasons: Option<Vec<String>>,
    #[serde(default)]
    unknown_entities: bool,
    errors: Option<ExpectedErrors>,
}

/// The evaluation errors a case expects: the policies that fail to evaluate, or how many.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum ExpectedErrors {
    /// The ids of the policies whose evaluation errors, sorted.
    Policies(Vec<String>),
    /// How many errors.
    Count(usize),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixSpec {
    name: String,
    #[expect(dead_code, reason = "free text for the reader: accepted, never read")]
    description: Option<String>,
    resource: Value,
    actions: Vec<String>,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    entities: Vec<Value>,
    allow: Map<String, Value>,
    #[serde(default)]
    unknown_entities: bool,
    errors: Option<ExpectedErrors>,
}

/// What a case expects beyond its decision.
struct Exact {
    reasons: Option<Vec<String>>,
    unknown_entities: bool,
    errors: Option<ExpectedErrors>,
    line: usize,
}

/// Finds the line of each named item of a suite file, in order: the first line after the
/// previous find that holds `"name"` and the item's name as JSON.
struct Lines<'a> {
    lines: Vec<&'a str>,
    next: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.lines().collect(),
            next: 0,
        }
    }

    /// The 1-based line of the item named `name` (0 when not found).
    #[expect(
        clippy::indexing_slicing,
        reason = "`i` ranges over the positions of `lines`"
    )]
    fn of(&mut self, name: &str) -> usize {
        let quoted = serde_json::to_string(name).unwrap_or_default();
        let found = (self.next..self.lines.len())
            .chain(0..self.next)
            .find(|&i| self.lines[i].contains("\"name\"") && self.lines[i].contains(&quoted));
        match found {
            Some(i) => {
                self.next = i + 1;
                i + 1
            }
            None => 0,
        }
    }
}

/// A loaded suite, ready to run.
#[derive(Debug)]
pub struct Suite {
    /// The suite file.
    pub file: PathBuf,
    /// Its `name`, or the file name.
    pub name: String,
    /// Its single cases, then its matrices expanded, in file order.
    pub cases: Vec<Case>,
    /// Its lists, in file order.
    pub lists: Vec<ListCase>,
}

/// "Which resources of a type may the principal …?": the ids expected, among the entities of
/// that type the list sees. The runner checks the plan and one-by-one decisions against it.
#[derive(Debug)]
pub struct ListCase {
    /// `name`.
    pub name: String,
    /// The principal uid.
    pub principal: String,
    /// The action uid.
    pub action: String,
    /// The resource type listed.
    pub resource_type: String,
    /// The context sent, after defaults and string uids were filled in.
    pub context: Value,
    /// The entities the list sees, as for a case.
    pub entities: Arc<Vec<Value>>,
    /// The ids expected, sorted.
    pub allowed: Vec<String>,
    /// The list's line in the suite file.
    pub line: usize,
}

/// One question and its expected answer.
#[derive(Debug)]
pub struct Case {
    /// `name`, or `matrix name › principal › action` for a matrix cell.
    pub name: String,
    /// The principal, action and resource, as written out in reports.
    pub principal: String,
    /// The action uid.
    pub action: String,
    /// The resource uid.
    pub resource: String,
    /// The context sent, after defaults and string uids were filled in.
    pub context: Value,
    /// The entities the case sees (fixtures, then the suite's, then its own), as Cedar
    /// entity JSON.
    pub entities: Arc<Vec<Value>>,
    /// The expected decision.
    pub expect: Verdict,
    /// The expected deciding policy ids, when the case pins them.
    pub reasons: Option<Vec<String>>,
    /// Whether the case names entities that exist nowhere on purpose.
    pub unknown_entities: bool,
    /// The evaluation errors the case expects (none when absent).
    pub errors: Option<ExpectedErrors>,
    /// The line of the case (or of its matrix) in the suite file.
    pub line: usize,
}

impl Case {
    /// The case as a question in the sidecar's JSON (`POST /v1/is_authorized`).
    pub fn question_json(&self) -> Value {
        serde_json::json!({
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "context": self.context,
            "entities": *self.entities,
        })
    }

    /// The case as the runner asks it: its entities go as a batch's shared entities.
    pub fn question(&self) -> Question {
        Question {
            principal: Uid::from(self.principal.as_str()),
            action: Uid::from(self.action.as_str()),
            resource: Uid::from(self.resource.as_str()),
            context: Some(self.context.clone()),
            entities: None,
            strict_entities: false,
            consistency: None,
        }
    }
}

/// A suite that could not be read: bad JSON, a missing fixture, an entity the schema rejects.
#[derive(Debug, Clone)]
pub struct SuiteError {
    /// The file at fault (the suite, or one of its fixtures).
    pub file: PathBuf,
    /// What is wrong, with `line:col` when it is a JSON syntax error.
    pub message: String,
}

impl std::fmt::Display for SuiteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

/// Reads fixture files once each, however many suites share them.
#[derive(Default)]
pub struct FixtureCache {
    files: HashMap<PathBuf, Arc<Vec<Value>>>,
}

impl FixtureCache {
    fn get(&mut self, path: &Path, catalog: &ActionCatalog) -> Result<Arc<Vec<Value>>, SuiteError> {
        if let Some(found) = self.files.get(path) {
            return Ok(Arc::clone(found));
        }
        let value: Value = read_json(path)?;
        let Value::Array(items) = value else {
            return Err(SuiteError {
                file: path.to_path_buf(),
                message: "a fixture file must be a JSON array of entities".into(),
            });
        };
        let items = items
            .iter()
            .enumerate()
            .map(|(i, e)| {
                normalize_entity(e, catalog).map_err(|m| at(path, format!("entity {i}: {m}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let items = Arc::new(items);
        self.files.insert(path.to_path_buf(), Arc::clone(&items));
        Ok(items)
    }
}

fn at(file: &Path, message: impl Into<String>) -> SuiteError {
    SuiteError {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SuiteError> {
    let text = std::fs::read_to_string(path).map_err(|e| at(path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| SuiteError {
        file: path.to_path_buf(),
        message: format!(
            "{}:{}: {}",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        ),
    })
}

/// serde_json appends " at line L column C"; the position is already in front.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Loads the suite at `path` against the snapshot's schema.
pub fn load(
    path: &Path,
    snapshot: &Snapshot,
    fixtures: &mut FixtureCache,
) -> Result<Suite, SuiteError> {
    let file: SuiteFile = read_json(path)?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut reader = Reader::new(path, snapshot, fixtures, &file, &text)?;
    let mut cases = Vec::new();
    for spec in &file.cases {
        cases.push(reader.case(spec)?);
    }
    for matrix in &file.matrices {
        reader.matrix(matrix, &mut cases)?;
    }
    let lists = file
        .lists
        .iter()
        .map(|spec| reader.list(spec))
        .collect::<Result<_, _>>()?;
    let name = file.name.clone().unwrap_or_else(|| {
        path.file_name()
            .map(|n| {
                n.to_string_lossy()
                    .trim_end_matches(".test.json")
                    .to_string()
            })
            .unwrap_or_default()
    });
    Ok(Suite {
        file: path.to_path_buf(),
        name,
        cases,
        lists,
    })
}

/// Reads one suite file's items: the entity layers every item starts from, the suite's
/// context defaults, and where each item's name stands in the file.
struct Reader<'a> {
    path: &'a Path,
    snapshot: &'a Snapshot,
    defaults: &'a Map<String, Value>,
    lines: Lines<'a>,
    fixture_layer: Value,
    suite_layer: Value,
    /// The fixtures and the suite's entities merged: what an item without entities sees.
    shared: Arc<Vec<Value>>,
}

impl<'a> Reader<'a> {
    fn new(
        path: &'a Path,
        snapshot: &'a Snapshot,
        fixtures: &mut FixtureCache,
        file: &'a SuiteFile,
        text: &'a str,
    ) -> Result<Self, SuiteError> {
        let catalog = &snapshot.catalog;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut fixture_entities = Vec::new();
        for fixture in &file.fixtures {
            fixture_entities.extend(fixtures.get(&dir.join(fixture), catalog)?.iter().cloned());
        }
        let suite_entities = normalize_entities(&file.entities, catalog)
            .map_err(|m| at(path, format!("`entities`: {m}")))?;
        let fixture_layer = Value::Array(fixture_entities);
        let suite_layer = Value::Array(suite_entities);
        let shared = merged(
            snapshot,
            &[("fixtures", &fixture_layer), ("entities", &suite_layer)],
        )
        .map_err(|e| at(path, e.message))?;
        Ok(Self {
            path,
            snapshot,
            defaults: &file.context,
            lines: Lines::new(text),
            fixture_layer,
            suite_layer,
            shared,
        })
    }

    /// An error of the item `owner` (``case `x` ``).
    fn at(&self, owner: &str, message: impl std::fmt::Display) -> SuiteError {
        at(self.path, format!("{owner}: {message}"))
    }

    /// The entities an item sees: the shared ones, with its `own` on top.
    fn entities_for(&self, own: &[Value], owner: &str) -> Result<Arc<Vec<Value>>, SuiteError> {
        if own.is_empty() {
            return Ok(Arc::clone(&self.shared));
        }
        let own = Value::Array(
            normalize_entities(own, &self.snapshot.catalog)
                .map_err(|m| self.at(owner, format!("`entities`: {m}")))?,
        );
        merged(
            self.snapshot,
            &[
                ("fixtures", &self.fixture_layer),
                ("entities", &self.suite_layer),
                ("entities", &own),
            ],
        )
        .map_err(|e| self.at(owner, e.message))
    }

    /// The context of an item asking `action`: the suite's defaults for the keys the action
    /// declares, then the item's own context as written (so a misspelt key is an error, not
    /// silently dropped); a key set to `null` removes a default.
    fn context(&self, action: &EntityUid, own: Option<&Map<String, Value>>) -> Map<String, Value> {
        let mut context = defaults_for(self.defaults, action, &self.snapshot.catalog);
        context.extend(own.cloned().unwrap_or_default());
        context.retain(|_, v| !v.is_null());
        context
    }

    fn case(&mut self, spec: &CaseSpec) -> Result<Case, SuiteError> {
        let owner = format!("case `{}`", spec.name);
        let entities = self.entities_for(&spec.entities, &owner)?;
        let principal = uid_field(&spec.principal, "principal").map_err(|m| self.at(&owner, m))?;
        let resource = uid_field(&spec.resource, "resource").map_err(|m| self.at(&owner, m))?;
        let action =
            action_uid(&spec.action, &self.snapshot.catalog).map_err(|m| self.at(&owner, m))?;
        let context = self.context(&action, spec.context.as_ref());
        Ok(make_case(
            self.snapshot,
            spec.name.clone(),
            principal,
            action,
            resource,
            context,
            entities,
            spec.expect,
            Exact {
                reasons: spec.reasons.clone(),
                unknown_entities: spec.unknown_entities,
                errors: spec.errors.clone(),
                line: self.lines.of(&spec.name),
            },
        ))
    }

    /// A matrix's cases: one per principal of `allow` and action of `actions`.
    fn matrix(&mut self, matrix: &MatrixSpec, cases: &mut Vec<Case>) -> Result<(), SuiteError> {
        let owner = format!("matrix `{}`", matrix.name);
        let line = self.lines.of(&matrix.name);
        let entities = self.entities_for(&matrix.entities, &owner)?;
        let resource = uid_field(&matrix.resource, "resource").map_err(|m| self.at(&owner, m))?;
        let catalog = &self.snapshot.catalog;
        let actions = matrix
            .actions
            .iter()
            .map(|a| action_uid(&Value::String(a.clone()), catalog).map(|uid| (a.clone(), uid)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| self.at(&owner, m))?;
        for (principal_text, allowed) in &matrix.allow {
            let principal = uid_field(&Value::String(principal_text.clone()), "allow")
                .map_err(|m| self.at(&owner, m))?;
            let allowed = self.allowed(matrix, &owner, principal_text, allowed)?;
            for (name, action) in &actions {
                let mut context = defaults_for(self.defaults, action, catalog);
                context.extend(defaults_for(&matrix.context, action, catalog));
                let expect = if allowed.contains(name) {
                    Verdict::Allow
                } else {
                    Verdict::Deny
                };
                cases.push(make_case(
                    self.snapshot,
                    format!("{} › {principal_text} › {name}", matrix.name),
                    principal.clone(),
                    action.clone(),
                    resource.clone(),
                    context,
                    Arc::clone(&entities),
                    expect,
                    Exact {
                        reasons: None,
                        unknown_entities: matrix.unknown_entities,
                        errors: matrix.errors.clone(),
                        line,
                    },
                ));
            }
        }
        Ok(())
    }

    /// A matrix's `allow.<principal>`: action names, each one of the matrix's `actions`.
    fn allowed(
        &self,
        matrix: &MatrixSpec,
        owner: &str,
        principal: &str,
        allowed: &Value,
    ) -> Result<Vec<String>, SuiteError> {
        let allowed: Vec<String> = serde_json::from_value(allowed.clone()).map_err(|_| {
            self.at(
                owner,
                format!("`allow.{principal}` must be a list of action names"),
            )
        })?;
        if let Some(stray) = allowed.iter().find(|a| !matrix.actions.contains(a)) {
            return Err(self.at(
                owner,
                format!("`allow.{principal}` lists `{stray}`, which is not in `actions`"),
            ));
        }
        Ok(allowed)
    }

    fn list(&mut self, spec: &ListSpec) -> Result<ListCase, SuiteError> {
        let owner = format!("list `{}`", spec.name);
        let entities = self.entities_for(&spec.entities, &owner)?;
        let principal = uid_field(&spec.principal, "principal").map_err(|m| self.at(&owner, m))?;
        let catalog = &self.snapshot.catalog;
        let action = action_uid(&spec.action, catalog).map_err(|m| self.at(&owner, m))?;
        let context = self.context(&action, spec.context.as_ref());
        let mut allowed = spec.allowed.clone();
        allowed.sort();
        Ok(ListCase {
            name: spec.name.clone(),
            principal: principal.to_string(),
            context: Value::Object(with_entity_refs(context, &action, catalog)),
            action: action.to_string(),
            resource_type: spec.resource_type.clone(),
            entities,
            allowed,
            line: self.lines.of(&spec.name),
        })
    }
}

/// Entity layers as Cedar JSON, checked against the schema here so that a wrong entity makes
/// the suite unreadable instead of failing its cases one by one.
fn merged(
    snapshot: &Snapshot,
    layers: &[(&str, &Value)],
) -> Result<Arc<Vec<Value>>, crate::cedar_json::InputError> {
    parse_entities(&snapshot.schema, layers)?;
    Ok(Arc::new(merge_layers(layers)?))
}

#[expect(
    clippy::too_many_arguments,
    reason = "a case is these things; a struct would only rename them"
)]
fn make_case(
    snapshot: &Snapshot,
    name: String,
    principal: EntityUid,
    action: EntityUid,
    resource: EntityUid,
    context: Map<String, Value>,
    entities: Arc<Vec<Value>>,
    expect: Verdict,
    exact: Exact,
) -> Case {
    let context = Value::Object(with_entity_refs(context, &action, &snapshot.catalog));
    let Exact {
        reasons,
        unknown_entities,
        errors,
        line,
    } = exact;
    let errors = errors.map(|errors| match errors {
        ExpectedErrors::Policies(mut ids) => {
            ids.sort();
            ExpectedErrors::Policies(ids)
        }
        count => count,
    });
    Case {
        name,
        principal: principal.to_string(),
        action: action.to_string(),
        resource: resource.to_string(),
        context,
        entities,
        expect,
        reasons: reasons.map(|mut r| {
            r.sort();
            r
        }),
        unknown_entities,
        errors,
        line,
    }
}

/// The keys of `defaults` that `action` declares in its context.
fn defaults_for(
    defaults: &Map<String, Value>,
    action: &EntityUid,
    catalog: &ActionCatalog,
) -> Map<String, Value> {
    let Some(info) = catalog.get(action) else {
        return Map::new();
    };
    defaults
        .iter()
        .filter(|(k, _)| info.context.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn uid_field(value: &Value, field: &str) -> Result<EntityUid, String> {
    match value {
        Value::String(s) => {
            flexible_uid(s).ok_or_else(|| format!("`{field}` `{s}` is not an entity uid"))
        }
        other => parse_uid(Part::Entities, field, other).map_err(|e| e.message),
    }
}

fn action_uid(value: &Value, catalog: &ActionCatalog) -> Result<EntityUid, String> {
    match value {
        Value::String(s) if !s.contains("::") => catalog.action_named(s).map_err(|e| e.to_string()),
        other => uid_field(other, "action"),
    }
}
