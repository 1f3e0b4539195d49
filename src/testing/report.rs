//! Writing a test [`Report`] for people (`human`), for programs (`json`) and for CI
//! dashboards (`junit`).

use std::fmt::Write as _;

use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};

use super::{CaseOutcome, ListOutcome, Report};

/// How much of the coverage the human report prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// A line: every policy covered, or how many are not (a partial run).
    Summary,
    /// The uncovered policies by id (a full run).
    Uncovered,
    /// Every policy with how many cases it decided (`--coverage`).
    Counts,
}

/// Failures in full (at `file:line`), a line per suite, coverage, and the `N passed, N
/// failed` summary; the uncovered policies listed.
pub fn human(report: &Report) -> String {
    human_with(report, Coverage::Uncovered)
}

/// [`human`], with as much coverage as `coverage` says.
pub fn human_with(report: &Report, coverage: Coverage) -> String {
    let mut out = String::new();
    for suite in &report.suites {
        let failed = suite.cases.iter().filter(|c| !c.passed).count()
            + suite.lists.iter().filter(|l| !l.passed).count();
        match &suite.error {
            Some(error) => {
                let _ = writeln!(out, "ERROR {}\n  {error}", suite.file.display());
            }
            None => {
                let status = if failed == 0 { "ok   " } else { "FAIL " };
                let lists = match suite.lists.len() {
                    0 => String::new(),
                    1 => ", 1 list".to_string(),
                    n => format!(", {n} lists"),
                };
                let _ = writeln!(
                    out,
                    "{status}{} ({} cases{lists}{})",
                    suite.file.display(),
                    suite.cases.len(),
                    if failed == 0 {
                        String::new()
                    } else {
                        format!(", {failed} failed")
                    }
                );
            }
        }
        let file = suite.file.display();
        for case in suite.cases.iter().filter(|c| !c.passed) {
            let _ = writeln!(out, "  {file}:{}", case.line);
            out.push_str(&failure(case));
        }
        for list in suite.lists.iter().filter(|l| !l.passed) {
            let _ = writeln!(out, "  {file}:{}", list.line);
            out.push_str(&list_failure(list));
        }
    }
    let _ = writeln!(out);
    let of_run = if report.filtered {
        " (among the cases run)"
    } else {
        ""
    };
    if report.uncovered.is_empty() {
        let _ = writeln!(
            out,
            "coverage: every one of the {} policies decided at least one case{of_run}",
            report.policies
        );
    } else {
        let _ = writeln!(
            out,
            "coverage: {} of {} policies decided no case{of_run}{}",
            report.uncovered.len(),
            report.policies,
            if coverage == Coverage::Summary {
                " (--coverage lists them)"
            } else {
                ":"
            }
        );
        if coverage == Coverage::Uncovered {
            for id in &report.uncovered {
                let _ = writeln!(out, "  {id}");
            }
        }
    }
    if coverage == Coverage::Counts {
        let width = report.hits.keys().map(String::len).max().unwrap_or(0);
        for (id, hits) in &report.hits {
            let _ = writeln!(out, "  {id:width$}  {hits}");
        }
    }
    let _ = writeln!(out, "{} passed, {} failed", report.passed, report.failed);
    out
}

/// One failing case in full: its request, what was expected, what came, and its problems.
pub fn failure(case: &CaseOutcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  ✗ {}", case.name);
    let _ = writeln!(
        out,
        "      request:  {} {} {}  context {}",
        case.principal, case.action, case.resource, case.context
    );
    let expected_reasons = case
        .expected_reasons
        .as_ref()
        .map(|r| format!(" by [{}]", r.join(", ")))
        .unwrap_or_default();
    let _ = writeln!(out, "      expected: {:?}{expected_reasons}", case.expected);
    match (&case.actual, &case.error) {
        (Some(actual), _) => {
            let _ = writeln!(
                out,
                "      actual:   {:?} by [{}]",
                actual.decision,
                actual.reasons.join(", ")
            );
            for error in &actual.errors {
                let _ = writeln!(out, "      error:    {error}");
            }
        }
        (None, Some(error)) => {
            let _ = writeln!(
                out,
                "      actual:   the request could not be built: {error}"
            );
        }
        (None, None) => {}
    }
    for problem in &case.problems {
        let _ = writeln!(out, "      problem:  {problem}");
    }
    out
}

fn list_failure(list: &ListOutcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  ✗ {} (list)", list.name);
    let _ = writeln!(
        out,
        "      list:       {} {} every {}",
        list.principal, list.action, list.resource_type
    );
    let _ = writeln!(out, "      expected:   [{}]", list.expected.join(", "));
    if let Some(by_plan) = &list.by_plan {
        let _ = writeln!(out, "      by plan:    [{}]", by_plan.join(", "));
    }
    let _ = writeln!(out, "      one by one: [{}]", list.one_by_one.join(", "));
    if let Some(error) = &list.error {
        let _ = writeln!(out, "      error:      {error}");
    }
    out
}

/// The whole report as one JSON document.
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// JUnit XML: a test suite per suite file, a test case per case; coverage gaps are a
/// failing case of their own, so dashboards show them.
pub fn junit(report: &Report) -> String {
    let mut junit = JunitReport::new("gatehouse policy tests");
    for suite in &report.suites {
        let mut ts = TestSuite::new(suite.file.display().to_string());
        if let Some(error) = &suite.error {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(error.clone());
            ts.add_test_case(TestCase::new("load", status));
        }
        for case in &suite.cases {
            let status = if case.passed {
                TestCaseStatus::success()
            } else {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(format!("expected {:?}", case.expected));
                status.set_description(failure(case));
                status
            };
            let mut tc = TestCase::new(case.name.clone(), status);
            tc.set_classname(suite.name.clone());
            ts.add_test_case(tc);
        }
        for list in &suite.lists {
            let status = if list.passed {
                TestCaseStatus::success()
            } else {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(format!("expected [{}]", list.expected.join(", ")));
                status.set_description(list_failure(list));
                status
            };
            let mut tc = TestCase::new(format!("list: {}", list.name), status);
            tc.set_classname(suite.name.clone());
            ts.add_test_case(tc);
        }
        junit.add_test_suite(ts);
    }
    let mut coverage = TestSuite::new("coverage");
    let status = if report.uncovered.is_empty() || !report.coverage_required {
        TestCaseStatus::success()
    } else {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status.set_message(format!(
            "policies that decided no case: {}",
            report.uncovered.join(", ")
        ));
        status
    };
    coverage.add_test_case(TestCase::new("every policy decides a case", status));
    junit.add_test_suite(coverage);
    junit
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot write JUnit XML: {e} -->"))
}
