//! Asks the bundled policy set questions from Rust, the way the sidecar and `gatehouse test`
//! do: load and validate the set, then answer each question through a `Decider` (uids and
//! context checked against the schema, entities parsed once and cached, failing closed),
//! and print the decision and the deciding policies.
//!
//! Run with: `cargo run --example decide`

use std::time::Duration;

use gatehouse::decide::{Decider, Question, Uid};
use gatehouse::policy::{self, Sources};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let snapshot = policy::load(&Sources {
        policies: "policies".into(),
        schema: "schemas/project_sharing.cedarschema".into(),
        entities: None,
    })?;
    let decider = Decider::new(1_000, 1_000, Duration::from_secs(60));

    // vera is a shared editor of p1, which is in the processing phase.
    let entities = json!([
        {"uid": {"type": "User", "id": "vera"}, "attrs": {}, "parents": [{"type": "Group", "id": "p1.editors"}]},
        {"uid": {"type": "Project", "id": "p1"}, "parents": [], "attrs": {
            "owner": {"type": "User", "id": "olga"},
            "admins": {"type": "Group", "id": "p1.admins"}, "managers": {"type": "Group", "id": "p1.managers"},
            "editors": {"type": "Group", "id": "p1.editors"}, "viewers": {"type": "Group", "id": "p1.viewers"},
            "phase": "processing", "archived": false, "public": false,
            "downloads_enabled": false, "editors_can_share": false}},
        {"uid": {"type": "Item", "id": "draft-report"}, "parents": [], "attrs": {
            "project": {"type": "Project", "id": "p1"}, "phase": "report_ready"}}
    ]);

    for (action, resource) in [
        ("edit", r#"Project::"p1""#),
        ("run_processing", r#"Project::"p1""#),
        ("export_report", r#"Project::"p1""#),
        ("view", r#"Item::"draft-report""#),
    ] {
        let question = Question {
            principal: Uid::from(r#"User::"vera""#),
            action: Uid::from(action),
            resource: Uid::from(resource),
            context: None,
            entities: Some(entities.clone().into()),
            strict_entities: false,
            consistency: None,
        };
        let answer = decider.answer(&snapshot, &question, None)?;
        println!(
            "vera {action:<15} {resource:<22} {:?} by [{}]",
            answer.decision.decision,
            answer.decision.reasons.join(", ")
        );
    }
    Ok(())
}
