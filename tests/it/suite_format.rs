//! The policy test format: conveniences, defaults, and errors that name the place.

use crate::common;

use std::path::PathBuf;

use gatehouse::testing::{self, flexible_uid};

fn run_suite(json: &str) -> gatehouse::testing::Report {
    let dir = tempfile::tempdir().expect("temp");
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir(&fixtures).expect("mkdir");
    std::fs::copy(
        common::root().join("tests/policies/fixtures/individual.json"),
        fixtures.join("individual.json"),
    )
    .expect("copy");
    let file = dir.path().join("s.test.json");
    std::fs::write(&file, json).expect("write");
    testing::run(&common::bundled(), &[file])
}

fn only_error(report: &gatehouse::testing::Report) -> String {
    report.suites[0].error.clone().expect("a suite error")
}

#[test]
fn uids_in_cedar_form_or_as_plain_words() {
    assert_eq!(
        flexible_uid("User::olga").expect("plain").to_string(),
        "User::\"olga\""
    );
    assert_eq!(
        flexible_uid("User::\"o l\"").expect("cedar").to_string(),
        "User::\"o l\""
    );
    assert_eq!(
        flexible_uid("Item::p1.plan").expect("dots").to_string(),
        "Item::\"p1.plan\""
    );
    assert!(flexible_uid("User::o l").is_none());
    assert!(flexible_uid("olga").is_none());
    assert!(flexible_uid("User::").is_none());
}

#[test]
fn defaults_apply_per_action_and_null_removes_one() {
    let report = run_suite(
        r#"{"fixtures": ["fixtures/individual.json"], "context": {"role": "viewer", "target": "User::tom", "now": "2026-01-01T00:00:00Z"},
            "cases": [
              {"name": "view takes no context: the defaults are dropped", "principal": "User::vic", "action": "view", "resource": "Project::p1", "expect": "Allow"},
              {"name": "share takes role and target", "principal": "User::olga", "action": "share", "resource": "Project::p1", "expect": "Allow"},
              {"name": "an e-mail invitation", "principal": "User::olga", "action": "share", "resource": "Project::p1", "context": {"target": null}, "expect": "Allow"},
              {"name": "the case's own keys are strict", "principal": "User::olga", "action": "view", "resource": "Project::p1", "context": {"rol": "x"}, "expect": "Allow"}
            ]}"#,
    );
    let cases = &report.suites[0].cases;
    assert!(
        cases[0].passed && cases[1].passed && cases[2].passed,
        "{cases:#?}"
    );
    assert_eq!(cases[2].context, serde_json::json!({"role": "viewer"}));
    assert!(!cases[3].passed);
    assert!(
        cases[3]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("`rol` should not exist"),
        "{:?}",
        cases[3].error
    );
}

#[test]
fn a_json_syntax_error_gives_line_and_column() {
    let report = run_suite("{\"cases\": [\n  {\"name\": \"x\",,}\n]}");
    let error = only_error(&report);
    assert!(error.contains("s.test.json: 2:16: "), "{error}");
    assert_eq!(report.failed, 1);
}

#[test]
fn unknown_fields_are_refused() {
    let report = run_suite(
        r#"{"cases": [{"name": "x", "principal": "User::a", "action": "view", "resource": "Project::p1", "expected": "Allow"}]}"#,
    );
    assert!(
        only_error(&report).contains("unknown field `expected`"),
        "{}",
        only_error(&report)
    );
}

#[test]
fn a_matrix_action_must_be_listed() {
    let report = run_suite(
        r#"{"fixtures": ["fixtures/individual.json"], "matrices": [{"name": "m", "resource": "Project::p1", "actions": ["view"], "allow": {"User::vic": ["veiw"]}}]}"#,
    );
    assert!(
        only_error(&report)
            .contains("matrix `m`: `allow.User::vic` lists `veiw`, which is not in `actions`"),
        "{}",
        only_error(&report)
    );
}

#[test]
fn an_unknown_action_fails_its_case() {
    let report = run_suite(
        r#"{"fixtures": ["fixtures/individual.json"], "cases": [{"name": "typo", "principal": "User::vic", "action": "veiw", "resource": "Project::p1", "expect": "Deny"}]}"#,
    );
    let case = &report.suites[0].cases[0];
    assert!(
        !case.passed,
        "a request that cannot be built never passes, even expecting Deny"
    );
    assert_eq!(
        case.error.as_deref(),
        Some("unknown action `Action::\"veiw\"`")
    );
}

#[test]
fn entities_are_checked_against_the_schema() {
    let report =
        run_suite(r#"{"entities": [{"uid": "Project::p", "attrs": {"phase": 3}}], "cases": []}"#);
    assert!(
        only_error(&report).contains("Project::\"p\""),
        "{}",
        only_error(&report)
    );
    let report =
        run_suite(r#"{"entities": [{"uid": "User::a"}, {"uid": "User::a"}], "cases": []}"#);
    assert!(
        only_error(&report).contains("lists entity `User::\"a\"` twice"),
        "{}",
        only_error(&report)
    );
    let report = run_suite(r#"{"fixtures": ["fixtures/nope.json"]}"#);
    assert!(
        only_error(&report).contains("nope.json: cannot read"),
        "{}",
        only_error(&report)
    );
}

#[test]
fn suite_entities_replace_fixture_entities() {
    let report = run_suite(
        r#"{"fixtures": ["fixtures/individual.json"],
            "entities": [{"uid": "User::stan", "parents": ["Group::p1.viewers"]}],
            "cases": [{"name": "stan is now a viewer", "principal": "User::stan", "action": "view", "resource": "Project::p1", "expect": "Allow", "reasons": ["roles.viewer"]},
                      {"name": "and a case can undo it", "principal": "User::stan", "action": "view", "resource": "Project::p1", "entities": [{"uid": "User::stan"}], "expect": "Deny"}]}"#,
    );
    assert!(
        report.success(),
        "{}",
        gatehouse::testing::report::human(&report)
    );
}

#[test]
fn discover_finds_suites_not_fixtures() {
    let files = testing::discover(&[common::root().join("tests/policies")]).expect("discover");
    assert!(
        files
            .iter()
            .all(|f| f.to_string_lossy().ends_with(".test.json"))
    );
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with(common::root().join("tests/policies/fixtures")))
    );
    assert!(testing::discover(&[PathBuf::from("/nonexistent")]).is_err());
}

/// A case passes only by its policies: a misspelt uid, a `reasons` id that names no policy and
/// an undeclared evaluation error each fail it, saying why, at its line.
#[test]
fn exact_suites_refuse_passes_by_accident() {
    let report = run_suite(
        r#"{"fixtures": ["fixtures/individual.json"],
            "cases": [
              {"name": "a misspelt principal", "principal": "User::vikc", "action": "edit", "resource": "Project::p1", "expect": "Deny"},
              {"name": "a misspelt resource", "principal": "User::vic", "action": "edit", "resource": "Project::p9", "expect": "Deny"},
              {"name": "a misspelt context uid", "principal": "User::olga", "action": "share", "resource": "Project::p1", "context": {"role": "viewer", "target": "User::tomm"}, "expect": "Allow"},
              {"name": "unknown on purpose", "principal": "User::nobody", "action": "edit", "resource": "Project::p1", "expect": "Deny", "unknown_entities": true},
              {"name": "a reason that is no policy", "principal": "User::vic", "action": "edit", "resource": "Project::p1", "expect": "Deny", "reasons": ["roles.nonesuch"]},
              {"name": "a deny by error", "principal": "User::vic", "action": "view", "resource": "Project::p1", "entities": [{"uid": "Project::p1", "attrs": {"owner": "User::olga", "admins": "Group::p1.admins", "managers": "Group::p1.managers", "editors": "Group::p1.editors", "viewers": "Group::p1.viewers", "phase": "planning", "archived": false, "public": false, "downloads_enabled": false, "editors_can_share": false, "organization": "Organization::gone"}}], "expect": "Deny"},
              {"name": "the same error, declared", "principal": "User::vic", "action": "view", "resource": "Project::p1", "entities": [{"uid": "Project::p1", "attrs": {"owner": "User::olga", "admins": "Group::p1.admins", "managers": "Group::p1.managers", "editors": "Group::p1.editors", "viewers": "Group::p1.viewers", "phase": "planning", "archived": false, "public": false, "downloads_enabled": false, "editors_can_share": false, "organization": "Organization::gone"}}], "expect": "Deny", "errors": ["roles.editor", "roles.manager", "roles.privileged"]}
            ]}"#,
    );
    let cases = &report.suites[0].cases;
    let by_name = |name: &str| {
        cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    for name in [
        "a misspelt principal",
        "a misspelt resource",
        "a misspelt context uid",
    ] {
        let case = by_name(name);
        assert!(!case.passed, "{name} passed: {case:#?}");
        assert!(
            case.problems
                .iter()
                .any(|p| p.contains("is not an entity of the suite")),
            "{case:#?}"
        );
    }
    assert!(by_name("a misspelt principal").problems[0].contains("User::\"vikc\""));
    assert!(by_name("a misspelt context uid").problems[0].contains("User::\"tomm\""));
    assert!(by_name("unknown on purpose").passed, "{cases:#?}");
    let reason = by_name("a reason that is no policy");
    assert!(!reason.passed);
    assert!(
        reason
            .problems
            .iter()
            .any(|p| p.contains("`roles.nonesuch`, which is no policy"))
    );
    let error = by_name("a deny by error");
    assert_eq!(
        error.actual.as_ref().map(|d| d.decision),
        Some(gatehouse::decide::Verdict::Deny)
    );
    assert!(!error.passed, "a fail-closed Deny passed: {error:#?}");
    assert!(
        error
            .problems
            .iter()
            .any(|p| p.starts_with("evaluation errors: expected none")),
        "{error:#?}"
    );
    let declared = by_name("the same error, declared");
    assert!(declared.passed, "{declared:#?}");
    // Each failure points at its line.
    assert_eq!(by_name("a misspelt principal").line, 3);
    assert_eq!(by_name("a deny by error").line, 8);
    let text = gatehouse::testing::report::human(&report);
    assert!(text.contains("s.test.json:3\n"), "{text}");
    assert!(text.contains("problem:"), "{text}");
}

/// `--filter` keeps the cases whose suite, name or action contains the text, and coverage
/// counts how many cases each policy decided.
#[test]
fn a_filter_runs_part_and_coverage_counts_hits() {
    let snapshot = common::bundled();
    let files = testing::discover(&[common::root().join("tests/policies")]).expect("suites");
    let all = testing::run(&snapshot, &files);
    let filtered = testing::run_filtered(&snapshot, &files, Some("transfer_ownership"));
    assert!(filtered.filtered);
    assert!(
        filtered.passed > 0 && filtered.passed < all.passed / 4,
        "{}",
        filtered.passed
    );
    for suite in &filtered.suites {
        for case in &suite.cases {
            assert!(
                case.action.contains("transfer_ownership")
                    || case.name.contains("transfer_ownership")
                    || suite.name.contains("transfer_ownership"),
                "{}",
                case.name
            );
        }
    }
    let by_suite = testing::run_filtered(&snapshot, &files, Some("archive"));
    assert!(
        by_suite
            .suites
            .iter()
            .any(|s| s.file.ends_with("archive.test.json"))
    );
    assert_eq!(all.hits.len(), all.policies);
    assert!(all.hits.values().all(|&n| n > 0), "{:?}", all.hits);
    let decided: usize = all
        .suites
        .iter()
        .flat_map(|s| &s.cases)
        .filter_map(|c| c.actual.as_ref())
        .map(|d| d.reasons.len())
        .sum();
    let lists: usize = all.hits.values().sum::<usize>() - decided;
    assert!(lists > 0, "list decisions count too");
}
