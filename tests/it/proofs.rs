//! `gatehouse prove`: the bundled set never errors and keeps its safety properties, for every
//! request and entity store (Cedar's symbolic compiler and cvc5); a broken rule, a policy
//! that can error and a change to the set are each found with a counterexample that the
//! sidecar's own answers confirm. These tests need cvc5 (`scripts/test` installs it) and fail
//! without it: a proof that is not run is not a pass.

use std::path::Path;
use std::process::Command;

use gatehouse::policy::{self, PolicyFiles, Sources};
use gatehouse::testing::prove::{Holds, ProveError, Prover};

use crate::common::{self, gatehouse, text};

fn prover() -> Prover {
    Prover::start().unwrap_or_else(|e| {
        panic!("{e}\n(these tests need cvc5: `scripts/test` installs it, or set CVC5)")
    })
}

fn properties_in(dir: &Path, schema: &Path) -> PolicyFiles {
    let schema = policy::load(&Sources {
        policies: common::root().join("policies"),
        schema: schema.to_path_buf(),
        entities: None,
    })
    .expect("the set loads")
    .schema;
    policy::load_policies(dir, &schema).expect("the properties load")
}

fn bundled_properties() -> PolicyFiles {
    properties_in(
        &common::root().join("tests/properties"),
        &common::bundled_sources().schema,
    )
}

#[test]
fn the_bundled_set_never_errors_and_keeps_its_safety_properties() {
    let bundled = common::bundled();
    let mut prover = prover();
    let never = prover.never_errors(&bundled).expect("never-errors runs");
    assert_eq!(never.policies, 41);
    assert_eq!(never.environments, 30);
    assert!(never.erring.is_empty(), "{:#?}", never.erring);
    let results = prover
        .properties(&bundled, &bundled_properties())
        .expect("properties run");
    assert_eq!(results.len(), 11);
    for result in &results {
        assert_eq!(result.outcome, Holds::Proven, "{result:#?}");
        assert!(!result.environments.is_empty(), "{result:#?}");
    }
    // The three rules are among them.
    for id in [
        "shared-users-never-delete-projects",
        "organization-admins-keep-their-access",
        "archived-projects-invisible-to-shared-users",
    ] {
        assert!(results.iter().any(|r| r.id == id), "{id}");
    }
}

/// Unfreezing `edit` on archived projects refutes exactly the property that says they are
/// frozen, with a request the sidecar allows.
#[test]
fn a_broken_rule_refutes_its_property_with_a_counterexample_the_sidecar_confirms() {
    let (_dir, sources) = common::scratch_copy();
    common::edit(
        &sources.policies.join("archive.cedar"),
        "[Action::\"edit\",",
        "[",
    );
    let broken = policy::load(&sources).expect("loads");
    let results = prover()
        .properties(&broken, &bundled_properties())
        .expect("properties run");
    let refuted: Vec<&str> = results
        .iter()
        .filter(|r| r.outcome != Holds::Proven)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(refuted, ["archived-projects-are-frozen"]);
    let result = results
        .iter()
        .find(|r| r.id == "archived-projects-are-frozen")
        .expect("result");
    assert_eq!(result.outcome, Holds::Refuted);
    let cex = result.counterexample.as_ref().expect("a counterexample");
    assert!(cex.confirmed, "{cex:#?}");
    assert_eq!(cex.question["action"], "Action::\"edit\"");
    assert_eq!(
        cex.answer.decision,
        Some(gatehouse::decide::Verdict::Allow),
        "{cex:#?}"
    );
    // The project it edits is archived.
    let resource = cex.question["resource"].as_str().expect("uid");
    let project = cex.question["entities"]
        .as_array()
        .expect("entities")
        .iter()
        .find(|e| {
            format!(
                "{}::{}",
                e["uid"]["type"].as_str().unwrap_or_default(),
                e["uid"]["id"]
            ) == resource
        })
        .unwrap_or_else(|| panic!("{resource} in {cex:#?}"));
    assert_eq!(project["attrs"]["archived"], true);
}

/// A policy that can overflow a datetime is found, with a request on which the sidecar
/// reports its error.
#[test]
fn a_policy_that_can_error_is_found() {
    let (_dir, sources) = common::scratch_copy();
    std::fs::write(
        sources.policies.join("grace.cedar"),
        "@id(\"tokens.grace\")\npermit (principal, action == Action::\"request_access\", resource is ShareToken)\nwhen { context.now.offset(duration(\"1d\")) < resource.expires_at };\n",
    )
    .expect("write");
    let set = policy::load(&sources).expect("loads");
    let never = prover().never_errors(&set).expect("never-errors runs");
    let ids: Vec<&str> = never.erring.iter().map(|e| e.policy.as_str()).collect();
    assert_eq!(ids, ["tokens.grace"]);
    let erring = &never.erring[0];
    assert!(
        erring.location.ends_with("grace.cedar:1"),
        "{}",
        erring.location
    );
    assert!(
        erring.counterexample.confirmed,
        "{:#?}",
        erring.counterexample
    );
    assert!(
        erring
            .counterexample
            .answer
            .errors
            .iter()
            .any(|e| e.contains("tokens.grace")),
        "{:#?}",
        erring.counterexample
    );
}

/// A property that matches nothing proves nothing, and says so; a property without its
/// kind is an error at its line.
#[test]
fn vacuous_and_malformed_properties_are_reported() {
    let bundled = common::bundled();
    let schema = common::bundled_sources().schema;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("p.cedar"),
        "@id(\"contradiction\")\n@property(\"never\")\npermit (principal, action == Action::\"edit\", resource is Project)\nwhen { resource.archived && !resource.archived };\n",
    )
    .expect("write");
    let results = prover()
        .properties(&bundled, &properties_in(dir.path(), &schema))
        .expect("runs");
    assert_eq!(results[0].outcome, Holds::Vacuous, "{results:#?}");
    std::fs::write(
        dir.path().join("p.cedar"),
        "// no kind\n@id(\"kindless\")\npermit (principal, action == Action::\"edit\", resource is Project);\n",
    )
    .expect("write");
    let error = prover()
        .properties(&bundled, &properties_in(dir.path(), &schema))
        .expect_err("a property needs its kind");
    assert!(matches!(error, ProveError::Property { .. }), "{error}");
    assert!(error.to_string().contains("p.cedar:2"), "{error}");
    assert!(error.to_string().contains("@property"), "{error}");
}

/// The README's demo: let editors share without `editors_can_share`, and `prove --base HEAD`
/// (or a base directory) finds exactly share, change_member_role and remove_member more
/// permissive, each with a request the base denies and the change allows.
#[test]
fn prove_base_shows_what_a_change_makes_more_permissive() {
    let root = common::root();
    let (dir, sources, base) = common::scratch_with_bases();
    common::demo_change(&sources);
    let properties = root.join("tests/properties");
    let prove = |base: &str, cwd: &Path, extra: &[&str]| {
        let mut args = vec![
            "prove",
            "--base",
            base,
            "--policies",
            sources.policies.to_str().expect("utf-8"),
            "--schema",
            sources.schema.to_str().expect("utf-8"),
            "--properties",
            properties.to_str().expect("utf-8"),
        ];
        args.extend(extra);
        gatehouse(&args, cwd)
    };
    let changed = ["change_member_role", "remove_member", "share"];
    for (base, cwd) in [
        ("HEAD", dir.path()),
        (base.to_str().expect("utf-8"), root.as_path()),
    ] {
        let out = prove(base, cwd, &[]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(8), "{stdout}{}", text(&out.stderr));
        for action in changed {
            assert!(
                stdout.contains(&format!("MORE PERMISSIVE Action::\"{action}\"")),
                "{stdout}"
            );
        }
        assert!(stdout.contains("3 of 25 actions changed"), "{stdout}");
        assert!(stdout.contains("11 of 11 properties proven"), "{stdout}");
        assert!(stdout.contains("before: Deny by []"), "{stdout}");
        assert!(
            stdout.contains("after:  Allow by [sharing.editors-when-allowed]"),
            "{stdout}"
        );
        assert!(!stdout.contains("does not show it"), "{stdout}");
    }
    let out = prove("HEAD", dir.path(), &["--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let actions = report["comparison"]["actions"].as_array().expect("actions");
    let mut more: Vec<&str> = actions
        .iter()
        .filter(|a| a["change"] != "equivalent")
        .map(|a| {
            assert_eq!(a["change"], "more_permissive", "{a}");
            let cex = &a["newly_allowed"];
            assert_eq!(cex["confirmed"], true, "{a}");
            assert_eq!(cex["base"]["decision"], "Deny", "{a}");
            assert_eq!(cex["answer"]["decision"], "Allow", "{a}");
            a["action"].as_str().expect("action")
        })
        .collect();
    more.sort_unstable();
    assert_eq!(
        more,
        changed
            .map(|a| format!("Action::\"{a}\""))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    // Against itself, everything is equivalent and the proof passes.
    let out = gatehouse(
        &[
            "prove",
            "--base",
            base.to_str().expect("utf-8"),
            "--policies",
            base.to_str().expect("utf-8"),
            "--schema",
            sources.schema.to_str().expect("utf-8"),
        ],
        &root,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("0 of 25 actions changed"));
}

/// Without the solver, `prove` fails loudly and says how to get it.
#[test]
fn prove_without_the_solver_says_how_to_install_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["prove"])
        .current_dir(common::root())
        .env("CVC5", "/nonexistent/cvc5")
        .output()
        .expect("run gatehouse");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("/nonexistent/cvc5"), "{stderr}");
    assert!(stderr.contains("apt-get install cvc5"), "{stderr}");
}
