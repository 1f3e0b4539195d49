//! The `gatehouse` binary as a user runs it: output and exit codes.

use crate::common::{self, gatehouse, text};

use std::path::Path;
use std::process::Command;

#[test]
fn validate_the_bundled_set_by_default() {
    let out = gatehouse(&["validate"], &common::root());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: 41 policies in 9 files"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn validate_a_broken_set_prints_file_line_col_and_exits_3() {
    let (_dir, sources) = common::scratch_copy();
    common::edit(
        &sources.policies.join("tokens.cedar"),
        "resource.revoked",
        "resource.revokd",
    );
    let out = gatehouse(
        &[
            "validate",
            "--policies",
            &sources.policies.display().to_string(),
            "--schema",
            &sources.schema.display().to_string(),
        ],
        &common::root(),
    );
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("tokens.cedar:27:8]"), "{stderr}");
    assert!(stderr.contains("resource.revokd"), "{stderr}");
    assert!(stderr.contains("did you mean `revoked`?"), "{stderr}");
    assert!(
        stderr.contains("error: the policy set is not valid (1 problem)"),
        "{stderr}"
    );
}

#[test]
fn test_runs_every_bundled_suite() {
    let out = gatehouse(&["test", "--require-coverage"], &common::root());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let summary = stdout.lines().last().expect("summary");
    assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
    assert!(stdout.contains("coverage: every one of the 41 policies decided at least one case"));
}

#[test]
fn a_failing_case_is_shown_in_full_and_exits_4() {
    let dir = tempfile::tempdir().expect("temp");
    let suite = dir.path().join("wrong.test.json");
    std::fs::write(
        &suite,
        r#"{"entities": [{"uid": "User::s"}, {"uid": "User::o"}, {"uid": "Project::p", "attrs": {"owner": "User::o", "admins": "Group::a", "managers": "Group::m", "editors": "Group::e", "viewers": "Group::v", "phase": "planning", "archived": false, "public": false, "downloads_enabled": false, "editors_can_share": false}}],
            "cases": [
              {"name": "a stranger edits (wrong on purpose)", "principal": "User::s", "action": "edit", "resource": "Project::p", "expect": "Allow"},
              {"name": "the owner edits", "principal": "User::o", "action": "edit", "resource": "Project::p", "expect": "Allow", "reasons": ["roles.privileged"]}
            ]}"#,
    )
    .expect("write");
    let root = common::root();
    let args = [
        "test",
        "--policies",
        "policies",
        "--schema",
        "schemas/project_sharing.cedarschema",
    ];
    let out = gatehouse(
        &[&args[..], &[suite.to_str().expect("utf-8")]].concat(),
        &root,
    );
    assert_eq!(out.status.code(), Some(4));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("✗ a stranger edits (wrong on purpose)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("request:  User::\"s\" Action::\"edit\" Project::\"p\""),
        "{stdout}"
    );
    assert!(stdout.contains("expected: Allow"), "{stdout}");
    assert!(stdout.contains("actual:   Deny by []"), "{stdout}");
    assert!(stdout.ends_with("1 passed, 1 failed\n"), "{stdout}");

    let out = gatehouse(
        &[
            &args[..],
            &["--format", "json", suite.to_str().expect("utf-8")],
        ]
        .concat(),
        &root,
    );
    assert_eq!(out.status.code(), Some(4));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["passed"], 1);
    assert_eq!(report["failed"], 1);
    assert_eq!(
        report["suites"][0]["cases"][0]["actual"]["decision"],
        "Deny"
    );

    let out = gatehouse(
        &[
            &args[..],
            &["--format", "junit", suite.to_str().expect("utf-8")],
        ]
        .concat(),
        &root,
    );
    assert_eq!(out.status.code(), Some(4));
    let xml = text(&out.stdout);
    assert!(
        xml.contains("<testsuites name=\"gatehouse policy tests\" tests=\"3\" failures=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("<failure message=\"expected Allow\""), "{xml}");
}

#[test]
fn coverage_is_required_only_on_request() {
    let root = common::root();
    // One suite: how many policies it left uncovered, not the whole set's list...
    let out = gatehouse(&["test", "tests/policies/public.test.json"], &root);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("policies decided no case (--coverage lists them)\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("  roles.editor\n"), "{stdout}");
    // ...unless asked: then every policy with its count of cases.
    let out = gatehouse(
        &["test", "--coverage", "tests/policies/public.test.json"],
        &root,
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("policies decided no case:\n"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("public.view-and-copy "))
        .unwrap_or_else(|| panic!("no count for public.view-and-copy: {stdout}"));
    let count: usize = line
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(count > 0, "{line}");
    assert!(stdout.contains("  roles.editor "), "{stdout}");
    // A filtered run says so.
    let out = gatehouse(&["test", "--filter", "transfer_ownership"], &root);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("(among the cases run)"));
    let out = gatehouse(
        &[
            "test",
            "--require-coverage",
            "tests/policies/public.test.json",
        ],
        &root,
    );
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn a_missing_path_exits_1_and_a_broken_set_exits_3() {
    let root = common::root();
    let out = gatehouse(&["test", "tests/policies/nope.test.json"], &root);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no such file or directory: `tests/policies/nope.test.json`")
    );
    let out = gatehouse(&["test", "--policies", "schemas"], &root);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn paths_come_from_the_environment_too() {
    let (_dir, sources) = common::scratch_copy();
    common::edit(
        &sources.policies.join("public.cedar"),
        "when { resource.public };",
        "when { resource.publik };",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("validate")
        .current_dir(common::root())
        .env("GATEHOUSE_POLICIES", &sources.policies)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}

/// `gatehouse fmt`: the bundled policies are formatted; an unformatted file is found by
/// `--check` (exit 6), formatted in place with its comments and ids, and then stays as it is;
/// a file that does not parse is an error (exit 3).
#[test]
fn fmt_formats_keeps_comments_and_ids_and_checks() {
    let root = common::root();
    let out = gatehouse(&["fmt", "--check", "policies", "examples/authzen"], &root);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let dir = tempfile::tempdir().expect("temp");
    let file = dir.path().join("p.cedar");
    let messy = "// who may view\n@id(\"v\") permit(principal,action==Action::\"view\",resource)\n  when {resource.public   &&   !resource.archived};  // public ones\n";
    std::fs::write(&file, messy).expect("write");
    let path = file.to_str().expect("utf-8");
    let out = gatehouse(&["fmt", "--check", path], &root);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        text(&out.stdout).contains("not formatted:"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        messy,
        "--check writes nothing"
    );
    let out = gatehouse(&["fmt", path], &root);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let formatted = std::fs::read_to_string(&file).expect("read");
    assert_ne!(formatted, messy);
    for kept in [
        "// who may view",
        "// public ones",
        "@id(\"v\")",
        "resource.public && !resource.archived",
    ] {
        assert!(formatted.contains(kept), "`{kept}` lost:\n{formatted}");
    }
    let out = gatehouse(&["fmt", "--check", path], &root);
    assert_eq!(
        out.status.code(),
        Some(0),
        "formatting is idempotent:\n{formatted}"
    );
    std::fs::write(&file, "permit(principal, action, resource) when {").expect("write");
    let out = gatehouse(&["fmt", path], &root);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("p.cedar"),
        "{}",
        text(&out.stderr)
    );
}

/// `gatehouse test --watch`: after the first run it re-runs on a save and prints only what
/// changed: a case that newly fails, in full, then the same case fixed.
#[test]
fn test_watch_reruns_on_save_and_prints_what_changed() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    let (dir, sources) = common::scratch_copy();
    let suites = dir.path().join("suites");
    std::fs::create_dir(&suites).expect("mkdir");
    std::fs::create_dir(suites.join("fixtures")).expect("mkdir");
    std::fs::copy(
        common::root().join("tests/policies/fixtures/individual.json"),
        suites.join("fixtures/individual.json"),
    )
    .expect("copy");
    let suite = suites.join("w.test.json");
    let good = r#"{"fixtures": ["fixtures/individual.json"], "cases": [
        {"name": "a viewer views", "principal": "User::vic", "action": "view", "resource": "Project::p1", "expect": "Allow"}]}"#;
    std::fs::write(&suite, good).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["test", "--watch", "--policies"])
        .arg(&sources.policies)
        .arg("--schema")
        .arg(&sources.schema)
        .arg(&suites)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    /// Stops the watcher however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let _child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str| {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return;
                }
            }
        }
        panic!("`{needle}` never came; output:\n{}", seen.join("\n"));
    };
    wait_for("watching: 1 passed, 0 failed");
    std::fs::write(&suite, good.replace("\"Allow\"", "\"Deny\"")).expect("write");
    wait_for("newly failing:");
    wait_for("✗ a viewer views");
    wait_for("watching: 0 passed, 1 failed");
    std::fs::write(&suite, good).expect("write");
    wait_for("fixed:");
    wait_for("watching: 1 passed, 0 failed");
    // A policy edit re-runs every suite: removing the viewer's permit fails the case.
    common::edit(
        &sources.policies.join("roles.cedar"),
        "@id(\"roles.viewer\")\npermit",
        "@id(\"roles.viewer\")\nforbid",
    );
    wait_for("newly failing:");
}

/// `gatehouse diff`: letting editors share without `editors_can_share` flips exactly
/// `share`, `change_member_role` and `remove_member`, against a base directory and against
/// a git revision; listing the flips in `--accept` lets the diff pass.
#[test]
fn diff_lists_what_a_change_flips_and_accepts_intended_flips() {
    let root = common::root();
    // The base: the set as it was, in a git repository of its own and in a directory.
    let (dir, sources, base) = common::scratch_with_bases();
    common::demo_change(&sources);
    let suite = root.join("tests/policies/sharing.test.json");
    let diff = |base: &str, cwd: &Path, extra: &[&str]| {
        let mut args = vec![
            "diff",
            "--base",
            base,
            "--policies",
            sources.policies.to_str().expect("utf-8"),
            "--schema",
            sources.schema.to_str().expect("utf-8"),
            suite.to_str().expect("utf-8"),
        ];
        args.extend(extra);
        gatehouse(&args, cwd)
    };
    for (base, cwd) in [
        (base.to_str().expect("utf-8"), root.as_path()),
        ("HEAD", dir.path()),
    ] {
        let out = diff(base, cwd, &[]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(7), "{stdout}{}", text(&out.stderr));
        let by_action = stdout
            .lines()
            .find(|l| l.starts_with("flips by action:"))
            .unwrap_or_else(|| panic!("{stdout}"));
        for action in ["share", "change_member_role", "remove_member"] {
            assert!(
                by_action.contains(&format!("Action::\"{action}\"")),
                "{by_action}"
            );
        }
        assert_eq!(by_action.matches("Action::").count(), 3, "{by_action}");
        assert!(
            stdout.contains("after:  Allow by [sharing.editors-when-allowed]"),
            "{stdout}"
        );
    }
    // A decision log's questions are asked too.
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/policies/fixtures/individual.json"))
            .expect("fixture"),
    )
    .expect("json");
    let line = serde_json::json!({
        "principal": "User::\"eddie\"", "action": "Action::\"share\"", "resource": "Project::\"p1\"",
        "context": {"role": "viewer", "target": "User::\"stan\""}, "entities": fixture,
    });
    let log = dir.path().join("decisions.log");
    std::fs::write(&log, format!("{line}\n")).expect("write");
    let out = diff(
        base.to_str().expect("utf-8"),
        &root,
        &["--log", log.to_str().expect("utf-8")],
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("from:   log line 1"), "{stdout}");
    assert!(stdout.contains("1 from decision log"), "{stdout}");
    // Accept every flip: the diff passes.
    let out = diff(base.to_str().expect("utf-8"), &root, &["--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let flips = report["flips"].as_array().expect("flips");
    assert!(!flips.is_empty());
    let accept: Vec<serde_json::Value> = flips
        .iter()
        .map(|f| serde_json::json!({"principal": f["principal"], "action": f["action"], "resource": f["resource"]}))
        .collect();
    let accept_file = dir.path().join("accept.json");
    std::fs::write(&accept_file, serde_json::to_string(&accept).expect("json")).expect("write");
    let out = diff(
        base.to_str().expect("utf-8"),
        &root,
        &["--accept", accept_file.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Against itself, nothing flips.
    let out = gatehouse(
        &[
            "diff",
            "--base",
            base.to_str().expect("utf-8"),
            "--policies",
            base.to_str().expect("utf-8"),
            "--schema",
            sources.schema.to_str().expect("utf-8"),
            suite.to_str().expect("utf-8"),
        ],
        &root,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("0 flipped"));
}

/// `gatehouse diff` counts decision flips and reason changes apart: a copy of an existing
/// forbid under a new `@id` changes no decision (exit 0) but the deciding policies of many
/// (reason changes, which gate only with `--fail-on-reason-changes`); a new forbid's flips
/// are counted apart from its reason changes; `--format junit` is JUnit XML whose failures
/// are the changes that fail the diff.
#[test]
fn diff_counts_decision_flips_and_reason_changes_apart() {
    let root = common::root();
    let (_dir, sources, base) = common::scratch_with_bases();
    let frozen = std::fs::read_to_string(sources.policies.join("archive.cedar")).expect("read");
    let start = frozen
        .find("@id(\"archive.frozen\")")
        .expect("archive.frozen");
    let end = start + frozen[start..].find(";\n").expect("end of policy") + 2;
    let copy = frozen[start..end].replace("archive.frozen", "archive.frozen-again");
    let extra = sources.policies.join("extra.cedar");
    std::fs::write(&extra, &copy).expect("write");
    let suite = root.join("tests/policies/archive.test.json");
    let diff = |extra: &[&str]| {
        let mut args = vec![
            "diff",
            "--base",
            base.to_str().expect("utf-8"),
            "--policies",
            sources.policies.to_str().expect("utf-8"),
            "--schema",
            sources.schema.to_str().expect("utf-8"),
            suite.to_str().expect("utf-8"),
        ];
        args.extend(extra);
        gatehouse(&args, &root)
    };
    let out = diff(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["flips"], serde_json::json!([]), "{report}");
    let changes = report["reason_changes"].as_array().expect("reason changes");
    assert!(!changes.is_empty(), "{report}");
    for change in changes {
        assert_eq!(change["kind"], "reasons");
        assert_eq!(change["before"]["decision"], "Deny");
        assert_eq!(change["after"]["decision"], "Deny");
        let mut expected: Vec<&str> = change["before"]["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .filter_map(|r| r.as_str())
            .chain(["archive.frozen-again"])
            .collect();
        expected.sort_unstable();
        assert_eq!(
            change["after"]["reasons"],
            serde_json::json!(expected),
            "{change}"
        );
    }
    let human = diff(&[]);
    let stdout = text(&human.stdout);
    assert_eq!(human.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "0 flipped (0 accepted), {} reason changes (0 accepted)",
            changes.len()
        )),
        "{stdout}"
    );
    // Grouped by the policies a change adds and drops, a few examples each.
    assert!(
        stdout.contains(&format!(
            "\n  Deny, now also by [archive.frozen-again]: {} questions\n",
            changes.len()
        )),
        "{stdout}"
    );
    assert_eq!(stdout.matches("\n  e.g. ").count(), 3, "{stdout}");
    assert!(!stdout.contains("FLIP "), "{stdout}");
    // Reason changes gate on request.
    let out = diff(&["--fail-on-reason-changes"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("REASONS "),
        "{}",
        text(&out.stdout)
    );
    let out = diff(&["--fail-on-reason-changes", "--format", "junit"]);
    assert_eq!(out.status.code(), Some(7));
    let xml = quick_junit::Report::deserialize_from_str(&text(&out.stdout)).expect("JUnit XML");
    assert_eq!(xml.tests, changes.len());
    assert_eq!(xml.failures, changes.len());
    let out = diff(&["--format", "junit"]);
    assert_eq!(out.status.code(), Some(0));
    let xml = quick_junit::Report::deserialize_from_str(&text(&out.stdout)).expect("JUnit XML");
    assert_eq!((xml.tests, xml.failures), (changes.len(), 0));

    // A new forbid: the decisions it changes are flips, the Denies it joins reason changes.
    let new = copy
        .replace("archive.frozen-again", "archive.frozen-always")
        .replace("when { resource.archived }", "when { true }");
    std::fs::write(&extra, new).expect("write");
    let out = diff(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let flips = report["flips"].as_array().expect("flips");
    let changes = report["reason_changes"].as_array().expect("reason changes");
    assert!(!flips.is_empty() && !changes.is_empty(), "{report}");
    for flip in flips {
        assert_eq!(flip["kind"], "decision");
        assert_eq!(flip["before"]["decision"], "Allow", "{flip}");
        assert_eq!(
            flip["after"],
            serde_json::json!({"decision": "Deny", "reasons": ["archive.frozen-always"], "errors": []}),
        );
    }
    for change in changes {
        assert_eq!(change["before"]["decision"], "Deny", "{change}");
        assert_eq!(change["after"]["decision"], "Deny", "{change}");
    }
    let xml = diff(&["--format", "junit"]);
    let xml = quick_junit::Report::deserialize_from_str(&text(&xml.stdout)).expect("JUnit XML");
    assert_eq!(xml.tests, flips.len() + changes.len());
    assert_eq!(xml.failures, flips.len());
}
