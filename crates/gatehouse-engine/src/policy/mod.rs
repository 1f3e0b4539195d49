//! The policy store: loads a whole policy set and its schema from files, validates it, and
//! hands out the result as an immutable [`Snapshot`].
//!
//! A snapshot is built completely and validated strictly before anyone sees it; a set with
//! any error or warning is never returned. [`PolicyStore`] holds the live snapshot and swaps
//! in a new one on reload; [`watch`] reloads it when the files change. This module knows
//! nothing of HTTP, of questions or of requests: what a snapshot holds for deciding (the
//! index, the entity graph) is built here, once per snapshot; walking it for one question is
//! [`crate::decide`]'s work.

mod catalog;
pub mod gate;
mod index;
pub mod json_schema;
mod load;
mod problem;
pub mod program;
mod reach;
pub mod store;
pub mod watch;

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use cedar_policy::{Entities, PolicySet, Schema};

pub use catalog::{ActionCatalog, ActionInfo, AmbiguousAction, AttrType, Attribute, CatalogError};
pub use gate::{Gate, GateFailure, GateKind};
pub use index::PolicyIndex;
pub use load::{ID_ANNOTATION, PolicyFiles, inputs_of, load, load_policies};
pub use problem::Problem;
pub use reach::Reach;
pub use store::{
    LoadResult, Pending, PendingReason, PolicyStore, ProblemReport, ReloadOutcome, ReloadStatus,
};

/// Where a policy set comes from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Directory whose `*.cedar` files make up the set.
    pub policies: PathBuf,
    /// Cedar schema file, human syntax.
    pub schema: PathBuf,
    /// Cedar entity JSON that every decision sees, if any.
    pub entities: Option<PathBuf>,
}

/// A complete, validated policy set with its schema. Immutable once built.
#[derive(Debug)]
pub struct Snapshot {
    /// The policies, each with its `@id` as policy id.
    pub policies: PolicySet,
    /// The same policies by action and resource type: what a request is decided with.
    pub index: PolicyIndex,
    /// The schema every request, entity and policy is checked against.
    pub schema: Schema,
    /// The requestable actions of the schema.
    pub catalog: ActionCatalog,
    /// The stored entities (from `Sources::entities`), validated against the schema, plus
    /// the schema's action entities.
    pub entities: Entities,
    /// What a question can reach among `entities`: its slice of the store.
    pub reach: Reach,
    /// How many entities the stored-entities file holds (0 without one).
    pub stored_entities: usize,
    /// Where each policy was written, in file then source order.
    pub info: Vec<PolicyInfo>,
    /// The policy files read, sorted.
    pub files: Vec<PathBuf>,
    /// The policy version: a digest of the schema's and the policy files' names and
    /// contents. The stored entities are data, not policy: they are not part of it.
    pub version: String,
    /// A digest of every input file's name and content, the stored entities included:
    /// equal inputs, equal answers. Every cache of decisions and parsed entities is keyed
    /// by it, and a reload swaps a set whose inputs changed.
    pub inputs: String,
    /// When this snapshot was built.
    pub loaded_at: SystemTime,
}

impl Snapshot {
    /// The ids of the stored entities of `entity_type` (its name as Cedar writes it), sorted,
    /// those after `after` only: the candidates of a search over the stored entities.
    pub fn stored_ids(&self, entity_type: &str, after: Option<&str>) -> Vec<String> {
        let mut ids: Vec<String> = self
            .entities
            .iter()
            .map(|e| e.uid())
            .filter(|uid| uid.type_name().to_string() == entity_type)
            .map(|uid| uid.id().unescaped().to_string())
            .filter(|id| after.is_none_or(|after| id.as_str() > after))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Whether a policy permits or forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PolicyEffect {
    /// `permit`
    Permit,
    /// `forbid`
    Forbid,
}

/// One policy's id and where it was written.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyInfo {
    /// The policy's `@id`.
    pub id: String,
    /// permit or forbid.
    pub effect: PolicyEffect,
    /// The file it is in.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub file: PathBuf,
    /// The 1-based line its text starts on (its first annotation).
    pub line: usize,
}

/// Why a snapshot could not be built: every problem found, in file order.
#[derive(Debug)]
pub struct LoadError {
    /// The problems, never empty.
    pub problems: Vec<Problem>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [] => write!(f, "the policy set could not be loaded"),
            [only] => write!(f, "{only}"),
            [first, rest @ ..] => write!(f, "{first} (and {} more)", rest.len()),
        }
    }
}

impl std::error::Error for LoadError {}
