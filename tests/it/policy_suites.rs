//! The bundled policy test suites, run through the same runner as `gatehouse test`: a
//! policy change that breaks a rule of docs/DOMAIN.md fails `cargo test`.

use crate::common;

use gatehouse::testing::{self, report};

#[test]
fn bundled_suites_pass_and_cover_every_policy() {
    let snapshot = common::bundled();
    let files = testing::discover(&[common::root().join("tests/policies")]).expect("suites");
    assert!(
        files.len() >= 9,
        "expected the nine bundled suites, found {files:?}"
    );
    let outcome = testing::run(&snapshot, &files);
    assert!(outcome.success(), "{}", report::human(&outcome));
    assert_eq!(outcome.failed, 0);
    assert!(
        outcome.uncovered.is_empty(),
        "policies that decided no case: {:?}",
        outcome.uncovered
    );
    assert!(outcome.passed >= 1000, "only {} cases", outcome.passed);
    for suite in &outcome.suites {
        assert!(
            !suite.cases.is_empty() || !suite.lists.is_empty(),
            "{} has no cases",
            suite.file.display()
        );
    }
    let lists: usize = outcome.suites.iter().map(|s| s.lists.len()).sum();
    assert!(lists >= 8, "only {lists} lists");
}

/// A list whose plan or decisions differ from its ids fails, saying what each gave.
#[test]
fn a_wrong_list_fails_and_shows_the_plan_and_the_decisions() {
    let snapshot = common::bundled();
    let dir = tempfile::tempdir().expect("dir");
    let suite = dir.path().join("wrong.test.json");
    std::fs::create_dir_all(dir.path().join("fixtures")).expect("dir");
    std::fs::copy(
        common::root().join("tests/policies/fixtures/individual.json"),
        dir.path().join("fixtures/individual.json"),
    )
    .expect("copy");
    std::fs::write(
        &suite,
        r#"{"fixtures": ["fixtures/individual.json"], "lists": [
            {"name": "stan", "principal": "User::stan", "action": "view", "resource_type": "Project", "allowed": ["p1"]}]}"#,
    )
    .expect("write");
    let outcome = testing::run(&snapshot, &[suite]);
    assert_eq!((outcome.passed, outcome.failed), (0, 1));
    let list = &outcome.suites[0].lists[0];
    assert_eq!(
        list.by_plan.as_deref(),
        Some(&["p1-public".to_string()][..])
    );
    assert_eq!(list.one_by_one, ["p1-public"]);
    let text = report::human(&outcome);
    assert!(text.contains("by plan:    [p1-public]"), "{text}");
    assert!(text.contains("expected:   [p1]"), "{text}");
}

#[test]
fn every_policy_of_the_set_is_counted_for_coverage() {
    let snapshot = common::bundled();
    let files = testing::discover(&[common::root().join("tests/policies/public.test.json")])
        .expect("suite");
    let outcome = testing::run(&snapshot, &files);
    assert_eq!(outcome.policies, snapshot.info.len());
    // One suite alone leaves most rule families undecided, and says so.
    assert!(outcome.uncovered.contains(&"tokens.expired".to_string()));
    assert!(
        !outcome
            .uncovered
            .contains(&"public.view-and-copy".to_string())
    );
}
