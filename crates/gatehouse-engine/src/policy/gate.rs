//! Reload gates: what a candidate set must satisfy, beyond loading, before it goes live.
//!
//! A set that loads is valid Cedar, but validity says nothing of what the set means: a file
//! emptied by a save in progress leaves a valid set without that file's forbids. A gate
//! knows what must stay true (safety properties proven for every request, policy suites
//! passing) and is asked by [`super::PolicyStore`] about every candidate; any failure keeps
//! the last good set live. This module only names the contract: the gates themselves are
//! built from the prover and the test runner (`gatehouse::testing::gate`), which the engine does
//! not know.

use std::path::PathBuf;

use serde::Serialize;

use super::Snapshot;

/// What a candidate must satisfy before it is swapped in. Asked on the reloading thread,
/// with no lock but the store's reload lock held; it may take seconds (a proof).
pub trait Gate: Send + Sync + std::fmt::Debug {
    /// Every way `candidate` fails the gate; empty when it passes. A gate that cannot run
    /// (its solver died, its suites do not read) fails: a check not made is not a pass.
    fn check(&self, candidate: &Snapshot) -> Vec<GateFailure>;

    /// The files and directories the gate reads (properties, suites): a change there is a
    /// reason to ask again, so they are watched like the policies.
    fn inputs(&self) -> Vec<PathBuf>;
}

/// Which gate refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum GateKind {
    /// A safety property (`--require-properties`) refuted, vacuous or not checkable.
    Property,
    /// A policy suite case (`--require-suites`) that failed, or a suite that does not read.
    Suite,
}

/// One reason a candidate was refused.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateFailure {
    /// The gate.
    pub gate: GateKind,
    /// The property's `@id`, or the case's name.
    pub name: String,
    /// Where it is written: `file:line`.
    pub location: String,
    /// What went wrong, in one sentence.
    pub message: String,
    /// The counterexample of a refuted property (a question, with the candidate's answer),
    /// or a failed case's expected and actual answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, serde_json::Value>>))]
    pub detail: Option<serde_json::Value>,
}

impl std::fmt::Display for GateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gate = match self.gate {
            GateKind::Property => "property",
            GateKind::Suite => "suite case",
        };
        write!(
            f,
            "{}: {gate} `{}`: {}",
            self.location, self.name, self.message
        )
    }
}
