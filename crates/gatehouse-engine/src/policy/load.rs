//! Builds a [`Snapshot`] from files: every `*.cedar` file of the policies directory, re-ided
//! by `@id`, and the schema; validated strictly. All or nothing: either a complete, valid
//! snapshot or every problem found, each at `file:line:col`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use cedar_policy::{
    Effect, Entities, Policy, PolicyId, PolicySet, Schema, ValidationMode, Validator,
};

use super::catalog::ActionCatalog;
use super::problem::Problem;
use super::{LoadError, PolicyInfo, Snapshot, Sources};

/// The annotation whose value becomes a policy's id.
pub const ID_ANNOTATION: &str = "id";

/// Loads and validates the whole set named by `sources`.
pub fn load(sources: &Sources) -> Result<Snapshot, LoadError> {
    let mut problems = Vec::new();
    // The policy version digests the schema and the policies; the inputs digest adds the
    // stored entities: data, which changes what is decided but not the policy set.
    let mut hasher = blake3::Hasher::new();

    let schema_text = read(&sources.schema, &mut problems);
    let schema = schema_text
        .as_ref()
        .and_then(|text| parse_schema(&sources.schema, text, &mut problems));
    if let Some(text) = &schema_text {
        digest_file(&mut hasher, &sources.schema, text);
    }

    let files = policy_files(&sources.policies, &mut problems);
    let mut parsed = ParsedSet::default();
    for file in &files {
        if let Some(text) = read(file, &mut problems) {
            digest_file(&mut hasher, file, &text);
            parsed.add_file(file, text, &mut problems);
        }
    }

    if let Some(schema) = &schema {
        parsed.validate(schema, &mut problems);
    }
    // Read and parsed even when the schema failed, so that its own problems are reported too;
    // checked against the schema when there is one.
    let mut stored = None;
    let mut inputs = hasher.clone();
    if let Some(path) = &sources.entities
        && let Some(text) = read(path, &mut problems)
    {
        digest_file(&mut inputs, path, &text);
        stored = parse_stored_entities(path, &text, schema.as_ref(), &mut problems);
    }
    let catalog = match (&schema, &schema_text) {
        (Some(schema), Some(text)) => ActionCatalog::build(schema, text)
            .map_err(|e| problems.push(Problem::whole_file(&sources.schema, e.to_string())))
            .ok(),
        _ => None,
    };

    match (schema, catalog) {
        (Some(schema), Some(catalog)) if problems.is_empty() => {
            let (entities, stored_json) = match stored {
                Some((entities, json)) => (entities, Some(json)),
                None => (
                    schema
                        .action_entities()
                        .unwrap_or_else(|_| Entities::empty()),
                    None,
                ),
            };
            Ok(Snapshot {
                index: super::PolicyIndex::build(&parsed.set, &schema, &catalog),
                reach: super::Reach::build(&entities, stored_json.as_ref(), &parsed.set)
                    .with_referable_types(&catalog.referable_types()),
                policies: parsed.set,
                stored_entities: stored_json
                    .as_ref()
                    .and_then(|j| j.as_array())
                    .map_or(0, Vec::len),
                entities,
                schema,
                catalog,
                info: parsed.info,
                files,
                version: version(&hasher),
                inputs: version(&inputs),
                loaded_at: SystemTime::now(),
            })
        }
        _ => Err(LoadError { problems }),
    }
}

/// Policies read from files and validated against a schema, without a whole set's other
/// parts: the properties `gatehouse prove` and the reload gates check a set against.
#[derive(Debug)]
pub struct PolicyFiles {
    /// The policies, each with its `@id` as policy id.
    pub policies: PolicySet,
    /// Where each was written, in file then source order.
    pub info: Vec<PolicyInfo>,
}

/// Reads `files` (a `*.cedar` file, or a directory of them) as [`load`] reads a policies
/// directory, re-ids each policy by its `@id` and validates them strictly against `schema`.
pub fn load_policies(path: &Path, schema: &Schema) -> Result<PolicyFiles, LoadError> {
    let mut problems = Vec::new();
    let files = if path.is_dir() {
        policy_files(path, &mut problems)
    } else {
        vec![path.to_path_buf()]
    };
    let mut parsed = ParsedSet::default();
    for file in &files {
        if let Some(text) = read(file, &mut problems) {
            parsed.add_file(file, text, &mut problems);
        }
    }
    parsed.validate(schema, &mut problems);
    if problems.is_empty() {
        Ok(PolicyFiles {
            policies: parsed.set,
            info: parsed.info,
        })
    } else {
        Err(LoadError { problems })
    }
}

/// The inputs digest the files named by `sources` would load to, read now: the digest
/// [`load`] computes ([`Snapshot::inputs`](super::Snapshot::inputs)), without parsing
/// anything; `None` when a file cannot be read. A reload compares it with the set it loaded,
/// to know that no file changed while the set was read.
pub fn inputs_of(sources: &Sources) -> Option<String> {
    let mut hasher = blake3::Hasher::new();
    let mut problems = Vec::new();
    let schema = read(&sources.schema, &mut problems)?;
    digest_file(&mut hasher, &sources.schema, &schema);
    for file in policy_files(&sources.policies, &mut problems) {
        digest_file(&mut hasher, &file, &read(&file, &mut problems)?);
    }
    if let Some(path) = &sources.entities {
        digest_file(&mut hasher, path, &read(path, &mut problems)?);
    }
    Some(version(&hasher))
}

/// A digest's first 16 hex digits.
fn version(hasher: &blake3::Hasher) -> String {
    hasher.finalize().to_hex()[..16].to_string()
}

/// The `*.cedar` files directly in `dir`, sorted. Hidden entries are skipped: Kubernetes
/// mounts a ConfigMap as `..data/` plus symlinks, and editors leave `.x.cedar.swp` files.
pub fn policy_files(dir: &Path, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(Problem::whole_file(
                dir,
                format!("cannot read the policies directory: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let visible = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'));
            visible && p.extension().is_some_and(|e| e == "cedar") && p.is_file()
        })
        .collect();
    files.sort();
    if files.is_empty() {
        problems.push(Problem::whole_file(
            dir,
            "no `.cedar` files in the policies directory",
        ));
    }
    files
}

fn read(path: &Path, problems: &mut Vec<Problem>) -> Option<Arc<str>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text.into()),
        Err(e) => {
            problems.push(Problem::whole_file(path, format!("cannot read: {e}")));
            None
        }
    }
}

fn digest_file(hasher: &mut blake3::Hasher, path: &Path, text: &str) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    for part in [name.as_bytes(), text.as_bytes()] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
}

/// The stored-entities file: a JSON array of Cedar entities, checked against the schema.
fn parse_stored_entities(
    path: &Path,
    text: &Arc<str>,
    schema: Option<&Schema>,
    problems: &mut Vec<Problem>,
) -> Option<(Entities, serde_json::Value)> {
    let json: serde_json::Value = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(e) => {
            let offset = offset_of(text, e.line(), e.column());
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            problems.push(Problem::at(
                path,
                text,
                offset,
                0,
                format!("invalid JSON: {message}"),
            ));
            return None;
        }
    };
    let schema = schema?;
    match crate::cedar_json::parse_entities(schema, &[("entities", &json)]) {
        Ok(entities) => Some((entities, json)),
        Err(e) => {
            problems.push(Problem::whole_file(path, e.message));
            None
        }
    }
}

/// The byte offset of 1-based `line` and `col` in `text`.
fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + col.saturating_sub(1)).min(text.len())
}

fn parse_schema(path: &Path, text: &Arc<str>, problems: &mut Vec<Problem>) -> Option<Schema> {
    match Schema::from_cedarschema_str(text) {
        Ok((schema, warnings)) => {
            let before = problems.len();
            problems.extend(warnings.map(|w| Problem::from_diagnostic(path, text, &w)));
            (problems.len() == before).then_some(schema)
        }
        Err(e) => {
            problems.push(Problem::from_diagnostic(path, text, &e));
            None
        }
    }
}

/// Policies gathered from several files, re-ided by `@id`, remembering where each came from.
#[derive(Default)]
struct ParsedSet {
    set: PolicySet,
    info: Vec<PolicyInfo>,
    /// Policy id -> its file and that file's text, to locate validation errors.
    origin: HashMap<String, (PathBuf, Arc<str>)>,
}

impl ParsedSet {
    fn add_file(&mut self, file: &Path, text: Arc<str>, problems: &mut Vec<Problem>) {
        let parsed = match text.parse::<PolicySet>() {
            Ok(set) => set,
            Err(errors) => {
                problems.extend(
                    errors
                        .iter()
                        .map(|e| Problem::from_diagnostic(file, &text, e)),
                );
                return;
            }
        };
        for template in parsed.templates() {
            let offset = text.find(&template.to_string()).unwrap_or(0);
            problems.push(Problem::at(
                file,
                &text,
                offset,
                0,
                "templates are not supported: a policy must not contain `?principal` or `?resource`",
            ));
        }
        // Cedar names the policies of one text `policy0`, `policy1`… in source order; walk
        // them in that order so each policy's text is found after the previous one's.
        let mut policies: Vec<_> = parsed.policies().collect();
        policies.sort_by_key(|p| {
            p.id()
                .to_string()
                .trim_start_matches("policy")
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        let mut cursor = 0;
        for policy in policies {
            let source_text = policy.to_string();
            let offset = text[cursor..]
                .find(&source_text)
                .map_or(cursor, |i| cursor + i);
            cursor = offset + source_text.len().min(text.len() - offset);
            if let Err(problem) = self.add_policy(file, &text, offset, policy) {
                problems.push(*problem);
            }
        }
    }

    /// Adds `policy`, found at `offset` of `file`'s `text`, under its `@id`; the problem
    /// that keeps it out otherwise (no id, an empty one, one taken, one Cedar refuses).
    fn add_policy(
        &mut self,
        file: &Path,
        text: &Arc<str>,
        offset: usize,
        policy: &Policy,
    ) -> Result<(), Box<Problem>> {
        let problem = |message: String| Box::new(Problem::at(file, text, offset, 0, message));
        let Some(id) = policy.annotation(ID_ANNOTATION).map(str::trim) else {
            let help =
                "give every policy a unique id, e.g. `@id(\"roles.viewer\")` on the line above it";
            return Err(Box::new(
                Problem::at(file, text, offset, 0, "policy has no `@id` annotation")
                    .with_help(help),
            ));
        };
        if id.is_empty() {
            return Err(problem("policy has an empty `@id`".into()));
        }
        if let Some(first) = self.info.iter().find(|i| i.id == id) {
            return Err(problem(format!(
                "duplicate policy id `{id}`: also at {}:{}",
                first.file.display(),
                first.line
            )));
        }
        let (line, _) = super::problem::line_col(text, offset);
        let renamed = policy.new_id(PolicyId::new(id));
        let effect = renamed.effect();
        self.set.add(renamed).map_err(|e| problem(e.to_string()))?;
        self.info.push(PolicyInfo {
            id: id.to_string(),
            effect: match effect {
                Effect::Permit => super::PolicyEffect::Permit,
                Effect::Forbid => super::PolicyEffect::Forbid,
            },
            file: file.to_path_buf(),
            line,
        });
        self.origin
            .insert(id.to_string(), (file.to_path_buf(), Arc::clone(text)));
        Ok(())
    }

    fn validate(&self, schema: &Schema, problems: &mut Vec<Problem>) {
        let result = Validator::new(schema.clone()).validate(&self.set, ValidationMode::Strict);
        // INVARIANT: every id in the set has an origin; an unlocated error is still an
        // error, reported against the schema so that it can never be dropped.
        let locate = |id: &PolicyId, diagnostic: &dyn miette::Diagnostic| match self
            .origin
            .get(AsRef::<str>::as_ref(id))
        {
            Some((file, text)) => Problem::from_diagnostic(file, text, diagnostic),
            None => {
                Problem::whole_file(Path::new(AsRef::<str>::as_ref(id)), diagnostic.to_string())
            }
        };
        for error in result.validation_errors() {
            problems.push(locate(error.policy_id(), error));
        }
        for warning in result.validation_warnings() {
            let mut p = locate(warning.policy_id(), warning);
            p.message = format!("warning treated as an error: {}", p.message);
            problems.push(p);
        }
    }
}
