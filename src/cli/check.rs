//! `gatehouse check`: one decision from the shell, through the same path as the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::{PolicyArgs, exit, report_load_error};
use crate::decide::question::evaluate;
use crate::decide::{Question, Uid, Verdict};
use crate::policy::{self, ActionCatalog, Sources};

/// Arguments of `gatehouse check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The policy set.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The principal, e.g. `User::"vera"` (or Cedar's JSON uid).
    #[arg(long)]
    pub principal: String,
    /// The action: `view` or `Action::"view"`.
    #[arg(long)]
    pub action: String,
    /// The resource, e.g. `Project::"p1"`.
    #[arg(long)]
    pub resource: String,
    /// The context, a JSON object.
    #[arg(long, value_name = "JSON")]
    pub context: Option<String>,
    /// The question's entities: a JSON array in Cedar's entity format.
    #[arg(long, value_name = "FILE")]
    pub entities: Option<PathBuf>,
    /// Stored entities, as `serve --entities` takes them.
    #[arg(long, env = "GATEHOUSE_ENTITIES", value_name = "FILE")]
    pub stored_entities: Option<PathBuf>,
}

/// Prints the decision and the deciding policies. Exit 0 on Allow, 5 on Deny, 1 when the
/// question is malformed, 3 when the policy set is not valid.
pub fn check(args: &CheckArgs) -> ExitCode {
    let snapshot = match policy::load(&Sources {
        entities: args.stored_entities.clone(),
        ..args.policy.sources()
    }) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            report_load_error(&error);
            return ExitCode::from(exit::INVALID);
        }
    };
    let question = match question(args, &snapshot.catalog) {
        Ok(question) => question,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let decision = match evaluate(&snapshot, &question) {
        Ok(decision) => decision,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let mut out = format!("{:?}\n", decision.decision);
    let reasons = if decision.reasons.is_empty() {
        "none (nothing permits it)".to_string()
    } else {
        decision.reasons.join(", ")
    };
    out.push_str(&format!("  deciding policies: {reasons}\n"));
    for error in &decision.errors {
        out.push_str(&format!("  error: {error}\n"));
    }
    out.push_str(&format!("  policy version: {}", snapshot.version));
    super::emit(&out);
    match decision.decision {
        Verdict::Allow => ExitCode::from(exit::OK),
        Verdict::Deny => ExitCode::from(exit::DENIED),
    }
}

fn question(args: &CheckArgs, catalog: &ActionCatalog) -> Result<Question, String> {
    let uid = |s: &str| -> Uid {
        // A JSON uid object is read as one; anything else is Cedar's string form.
        serde_json::from_str::<Value>(s)
            .ok()
            .filter(Value::is_object)
            .and_then(|object| Uid::of_value(&object))
            .unwrap_or_else(|| Uid::from(s))
    };
    let action = if args.action.contains("::") {
        uid(&args.action)
    } else {
        let action = catalog
            .action_named(&args.action)
            .map_err(|e| e.to_string())?;
        Uid::Text(action.to_string())
    };
    let context = args
        .context
        .as_deref()
        .map(|c| serde_json::from_str(c).map_err(|e| format!("`--context` is not valid JSON: {e}")))
        .transpose()?;
    let entities = args
        .entities
        .as_ref()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| format!("`{}` is not valid JSON: {e}", path.display()))
        })
        .transpose()?;
    Ok(Question {
        principal: uid(&args.principal),
        action,
        resource: uid(&args.resource),
        context,
        entities,
        strict_entities: false,
        consistency: None,
    })
}
