//! The Python host (`examples/python_host/host.py`, standard library only) against a live
//! sidecar serving its database: it writes its records in its own SQL, asks by id alone a
//! decision, a batch and the allowed actions for an organization's project, and, right after
//! a revoke of its own, a question carrying the revoke's position; it reports what it got as
//! JSON.

use serde_json::{Value, json};

use crate::common;

#[tokio::test]
async fn the_python_host_asks_by_id_as_the_readme_says() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("host.db");
    let gatehouse = common::server::start(common::server::Options {
        config: gatehouse::config::Config {
            entities_db: Some(format!("sqlite://{}", database.display())),
            ..gatehouse::config::Config::default()
        },
        ..common::server::Options::default()
    })
    .await;
    let base = gatehouse.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/python_host/host.py"
            ))
            .arg(base)
            .arg(&database)
            .output()
            .expect("python3 runs (the tests need it: see the README)")
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "host.py failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(
        report["share"],
        json!({"decision": "Allow", "reason": ["sharing.editors-when-allowed"]})
    );
    assert_eq!(
        report["batch"],
        json!(["Allow", "Allow", "Deny", "invalid_action"])
    );
    assert_eq!(
        report["allowed_actions"],
        json!([
            "copy",
            "edit",
            "leave",
            "run_processing",
            "view",
            "view_members"
        ])
    );
    assert_eq!(report["may_delete"], false);
    assert_eq!(
        report["nobody"],
        json!({"decision": "Deny", "missing": ["User::\"nobody\""]})
    );
    // The revoke, seen by the question that carries its position.
    assert_eq!(report["share_after_revoke"], "Deny");
    assert_eq!(
        report["bad_question"],
        json!({"status": 400, "code": "invalid_resource", "field": "resource"})
    );
    // Unreachable: denied, and said why.
    assert_eq!(report["unreachable_may"], false);
    assert!(stderr.contains("unreachable"), "{stderr}");
    gatehouse.stop().await;
}
