//! Asks the bundled policy set one question from Rust, the way `gatehouse test` and the
//! sidecar do: load and validate the set, build the entities and the request from Cedar
//! JSON, decide (failing closed), print the decision and the deciding policies.
//!
//! Run with: `cargo run --example decide`

use gatehouse::decide::{decide, input};
use gatehouse::policy::{self, Sources};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let snapshot = policy::load(&Sources {
        policies: "policies".into(),
        schema: "schemas/project_sharing.cedarschema".into(),
        entities: None,
    })?;

    // vera is a shared editor of p1, which is in the processing phase.
    let entities = json!([
        {"uid": {"type": "User", "id": "vera"}, "attrs": {}, "parents": [{"type": "Group", "id": "p1-editors"}]},
        {"uid": {"type": "Project", "id": "p1"}, "parents": [], "attrs": {
            "owner": {"type": "User", "id": "olga"},
            "admins": {"type": "Group", "id": "p1-admins"}, "managers": {"type": "Group", "id": "p1-managers"},
            "editors": {"type": "Group", "id": "p1-editors"}, "viewers": {"type": "Group", "id": "p1-viewers"},
            "phase": "processing", "archived": false, "public": false,
            "downloads_enabled": false, "editors_can_share": false}},
        {"uid": {"type": "Item", "id": "draft-report"}, "parents": [], "attrs": {
            "project": {"type": "Project", "id": "p1"}, "phase": "report_ready"}}
    ]);
    let entities = input::parse_entities(&snapshot, &[("entities", &entities)])?;

    for (action, resource) in [
        ("edit", r#"Project::"p1""#),
        ("run_processing", r#"Project::"p1""#),
        ("export_report", r#"Project::"p1""#),
        ("view", r#"Item::"draft-report""#),
    ] {
        let request = input::build_request(
            &snapshot,
            r#"User::"vera""#.parse()?,
            format!(r#"Action::"{action}""#).parse()?,
            resource.parse()?,
            None,
        )?;
        let decision = decide(&snapshot, &request, &entities);
        println!(
            "vera {action:<15} {resource:<22} {:?} by [{}]",
            decision.decision,
            decision.reasons.join(", ")
        );
    }
    Ok(())
}
