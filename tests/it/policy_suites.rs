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
            !suite.cases.is_empty(),
            "{} has no cases",
            suite.file.display()
        );
    }
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
