//! Shadow evaluation (`serve --shadow-policies DIR`): every decision is asked of a candidate
//! set too, off the response path; disagreements are counted by action and logged with both
//! answers, and answers never change. The counts are checked against each set asked
//! directly, the candidate is hot-reloaded, and a full queue drops rather than waits.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::config::Config;
use gatehouse::decide::{Decider, Question, Verdict};
use gatehouse::policy::{self, Sources};
use serde_json::{Value, json};

use crate::common;
use crate::common::server::{self, Options, TestServer, org_project, organization, project, user};

/// A copy of the bundled policies in which editors share whether or not the project lets
/// them (the README's demo change), and the viewer's permit has another id (the same
/// decisions, by another policy).
fn candidate() -> (tempfile::TempDir, Sources) {
    let (dir, sources) = common::scratch_copy();
    common::demo_change(&sources);
    common::edit(
        &sources.policies.join("roles.cedar"),
        "@id(\"roles.viewer\")",
        "@id(\"roles.viewer-renamed\")",
    );
    (dir, sources)
}

async fn start(candidate: &Path, log: bool) -> TestServer {
    server::start(Options {
        config: Config {
            shadow_policies: Some(candidate.to_path_buf()),
            ..Config::default()
        },
        decision_log: log.then_some(("decisions.log", false)),
        ..Options::default()
    })
    .await
}

/// The value of a metric line starting with `name` (0 when absent).
async fn metric(server: &TestServer, name: &str) -> u64 {
    let (_, text) = server.get("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Shadow evaluations done so far, whatever their result.
async fn evaluated(server: &TestServer) -> u64 {
    let mut total = 0;
    for result in ["agree", "reasons_differ", "disagree", "error"] {
        total += metric(
            server,
            &format!("gatehouse_shadow_evaluations_total{{result=\"{result}\"}}"),
        )
        .await;
    }
    total
}

/// Waits until the worker has evaluated `n` decisions.
async fn wait_evaluated(server: &TestServer, n: u64) {
    let started = Instant::now();
    while evaluated(server).await < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} of {n} shadow evaluations after 10 s",
            evaluated(server).await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn entities() -> Vec<Value> {
    vec![
        project("p1", "olga", "planning", &[]),
        project("p2", "olga", "planning", &["editors_can_share"]),
        org_project("op1", "olga", "acme", "planning"),
        organization("acme"),
        user("olga", &[]),
        user("eddie", &["p1.editors", "p2.editors", "acme.members"]),
        user("erin", &["acme.editors", "acme.members"]),
        user("mona", &["p1.managers", "p2.managers", "acme.members"]),
        user("vic", &["p1.viewers", "p2.viewers"]),
        user("stan", &["acme.members"]),
    ]
}

/// A grid of questions over the entities: every user, on every project, for the sharing
/// actions and a few others.
fn grid() -> Vec<Value> {
    let mut questions = Vec::new();
    for principal in ["olga", "eddie", "erin", "mona", "vic", "stan"] {
        for resource in ["p1", "p2", "op1"] {
            for action in [
                "share",
                "change_member_role",
                "remove_member",
                "view",
                "edit",
            ] {
                let context = match action {
                    "share" | "change_member_role" => {
                        json!({"role": "viewer", "target": "User::\"stan\""})
                    }
                    "remove_member" => json!({"target": "User::\"vic\""}),
                    _ => json!({}),
                };
                let mut q = server::question(
                    &format!("User::\"{principal}\""),
                    action,
                    &format!("Project::\"{resource}\""),
                    &entities(),
                );
                q["context"] = context;
                questions.push(q);
            }
        }
    }
    questions
}

/// Each question of the grid asked once by `/v1/is_authorized`, once in a batch and once
/// through AuthZEN: the answers are the live set's, and the disagreements counted per action
/// are exactly those of the two sets asked directly.
#[tokio::test]
async fn disagreements_are_counted_per_action_as_the_two_sets_decide() {
    let (_keep, sources) = candidate();
    let server = start(&sources.policies, false).await;
    let live = server.store.current();
    let shadow = policy::load(&Sources {
        schema: server.sources.schema.clone(),
        ..sources.clone()
    })
    .expect("candidate loads");
    let questions = grid();
    let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
    let mut reasons_differ = 0;
    for q in &questions {
        let question: Question = serde_json::from_value(q.clone()).expect("question");
        let ask = |s| {
            Decider::uncached()
                .answer(s, &question, None)
                .expect("asks")
        };
        let (before, after) = (ask(&live), ask(&shadow));
        if before.decision.decision != after.decision.decision {
            *expected
                .entry(q["action"].as_str().expect("action").to_string())
                .or_default() += 1;
        } else if before.decision.reasons != after.decision.reasons {
            reasons_differ += 1;
        }
        // The answer is the live set's.
        let (status, body) = server.post("/v1/is_authorized", q).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["decision"],
            json!(before.decision.decision),
            "{q} answered {body}"
        );
    }
    // The demo change flips exactly the three sharing actions here.
    let flipped: Vec<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(
        flipped,
        [
            "Action::\"change_member_role\"",
            "Action::\"remove_member\"",
            "Action::\"share\""
        ]
    );
    wait_evaluated(&server, questions.len() as u64).await;
    for (action, n) in &expected {
        let name = format!(
            "gatehouse_shadow_disagreements_total{{action=\"{}\"}}",
            action.replace('"', "\\\"")
        );
        assert_eq!(metric(&server, &name).await, *n, "{name}");
    }
    let total: u64 = expected.values().sum();
    assert_eq!(
        metric(
            &server,
            "gatehouse_shadow_evaluations_total{result=\"disagree\"}"
        )
        .await,
        total
    );
    // The renamed viewer permit decides vic's views: the same decision by another policy.
    assert!(reasons_differ > 0);
    assert_eq!(
        metric(
            &server,
            "gatehouse_shadow_evaluations_total{result=\"reasons_differ\"}"
        )
        .await,
        reasons_differ
    );
    // The same questions again, in one batch: twice the counts.
    let (status, body) = server
        .post("/v1/is_authorized/batch", &json!({"requests": questions}))
        .await;
    assert_eq!(status, 200, "{body}");
    wait_evaluated(&server, 2 * questions.len() as u64).await;
    assert_eq!(
        metric(
            &server,
            "gatehouse_shadow_evaluations_total{result=\"disagree\"}"
        )
        .await,
        2 * total
    );
    // Asked again, answered from the hot cache and compared from the worker's memo of the
    // body: still shadowed, and still a disagreement (eddie, an editor, shares p1).
    let again = &questions[15];
    assert_eq!(again["principal"], "User::\"eddie\"");
    assert_eq!(again["action"], "Action::\"share\"");
    assert_eq!(again["resource"], "Project::\"p1\"");
    let disagree = "gatehouse_shadow_evaluations_total{result=\"disagree\"}";
    let before = metric(&server, disagree).await;
    server.post("/v1/is_authorized", again).await;
    wait_evaluated(&server, 2 * questions.len() as u64 + 1).await;
    assert_eq!(metric(&server, disagree).await, before + 1);
    assert_eq!(metric(&server, "gatehouse_shadow_dropped_total").await, 0);
    server.stop().await;
}

/// A disagreement is written to the decision log with both answers; an AuthZEN evaluation is
/// shadowed too; the candidate reloads when its files change, and once it equals the live set
/// the disagreements stop.
#[tokio::test]
async fn disagreements_are_logged_with_both_answers_and_the_candidate_reloads() {
    let (_keep, sources) = candidate();
    let server = start(&sources.policies, true).await;
    let mut share = server::question("User::\"eddie\"", "share", "Project::\"p1\"", &entities());
    share["context"] = json!({"role": "viewer", "target": "User::\"stan\""});
    let (_, body) = server.post("/v1/is_authorized", &share).await;
    assert_eq!(body["decision"], "Deny", "{body}");
    // The same question through AuthZEN.
    let authzen = json!({
        "subject": {"type": "user", "id": "eddie"},
        "action": {"name": "share"},
        "resource": {"type": "project", "id": "p1"},
        "context": {"role": "viewer", "target": "User::\"stan\""},
    });
    let (status, body) = server.post("/access/v1/evaluation", &authzen).await;
    assert_eq!(status, 200, "{body}");
    wait_evaluated(&server, 2).await;
    // The candidate goes back to the live rule: reloaded, it agrees.
    let shadow_store = Arc::clone(
        server
            .state
            .shadow
            .as_ref()
            .expect("shadow configured")
            .store(),
    );
    let before = shadow_store.current().version.clone();
    let (_, status) = server.get("/v1/status").await;
    let status: Value = serde_json::from_str(&status).expect("json");
    assert_eq!(
        status["shadow"]["policy_version"],
        json!(before),
        "{status}"
    );
    assert_eq!(status["shadow"]["policy_count"], 41, "{status}");
    common::edit(
        &sources.policies.join("sharing.cedar"),
        "  true &&\n",
        "  resource.editors_can_share &&\n",
    );
    let started = Instant::now();
    while shadow_store.current().version == before {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "candidate not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let agree = "gatehouse_shadow_evaluations_total{result=\"agree\"}";
    let disagree = "gatehouse_shadow_evaluations_total{result=\"disagree\"}";
    let (agreed, disagreed) = (
        metric(&server, agree).await,
        metric(&server, disagree).await,
    );
    assert_eq!(disagreed, 1);
    server.post("/v1/is_authorized", &share).await;
    wait_evaluated(&server, 3).await;
    assert_eq!(metric(&server, agree).await, agreed + 1);
    assert_eq!(metric(&server, disagree).await, disagreed);
    let dir = server.stop().await;
    let log = std::fs::read_to_string(dir.path().join("decisions.log")).expect("log");
    let shadow_lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|l| l.get("shadow").is_some())
        .collect();
    // The AuthZEN question carries no entities of its own here: the candidate may decide it
    // alike; the HTTP question disagrees.
    let line = shadow_lines
        .iter()
        .find(|l| l["shadow"] == "disagree")
        .unwrap_or_else(|| panic!("no disagreement in\n{log}"));
    assert_eq!(line["principal"], "User::\"eddie\"");
    assert_eq!(line["action"], "Action::\"share\"");
    assert_eq!(line["live"]["decision"], "Deny");
    assert_eq!(line["candidate"]["decision"], "Allow");
    assert_eq!(
        line["candidate"]["reasons"],
        json!(["sharing.editors-when-allowed"])
    );
    assert_ne!(
        line["live"]["policy_version"],
        line["candidate"]["policy_version"]
    );
    assert!(line["request_id"].as_str().is_some_and(|id| !id.is_empty()));
}

/// A queue that is full drops the job, counted, and never waits: a thousand batches offered
/// at once to a queue of one are answered, most of their shadow jobs dropped.
#[tokio::test]
async fn a_full_queue_drops_and_never_waits() {
    let (_keep, sources) = candidate();
    let server = server::start(Options {
        config: Config {
            shadow_policies: Some(sources.policies.clone()),
            shadow_queue: 1,
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    let questions = grid();
    let batch = json!({"requests": questions});
    let shadow = server.state.shadow.as_ref().expect("shadow").clone();
    let live = server.store.current();
    let body = axum::body::Bytes::from(serde_json::to_vec(&batch).expect("json"));
    let started = Instant::now();
    for _ in 0..1000 {
        shadow.offer(gatehouse::shadow::Job {
            request_id: String::new(),
            input: gatehouse::shadow::Input::Batch(body.clone()),
            live: Arc::clone(&live),
            decisions: vec![
                Some(Arc::new(gatehouse::decide::Decision {
                    decision: Verdict::Deny,
                    reasons: vec![],
                    errors: vec![],
                    missing: vec![],
                }));
                questions.len()
            ],
        });
    }
    let offering = started.elapsed();
    let dropped = metric(&server, "gatehouse_shadow_dropped_total").await;
    assert!(dropped >= 900, "{dropped} of 1000 dropped in {offering:?}");
    server.stop().await;
}

/// A candidate set that does not load stops `serve` with its problems, exit 3.
#[test]
fn serve_refuses_an_invalid_candidate() {
    let (dir, sources) = candidate();
    common::edit(
        &sources.policies.join("tokens.cedar"),
        "resource.revoked",
        "resource.revokd",
    );
    let candidate = sources.policies.to_str().expect("utf-8");
    let out = common::gatehouse(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--shadow-policies",
            candidate,
        ],
        &common::root(),
    );
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("tokens.cedar:"), "{stderr}");
    assert!(stderr.contains("--shadow-policies"), "{stderr}");
    drop(dir);
}

/// `--shadow-sample PERCENT` shadows exactly that many of every hundred requests.
#[tokio::test]
async fn sampling_takes_exactly_the_percentage_asked() {
    let (_keep, sources) = candidate();
    let server = start(&sources.policies, false).await;
    let shadow = server.state.shadow.as_ref().expect("shadow").clone();
    for percent in [1, 10, 33, 50, 99, 100] {
        let sampler = shadow.clone().sampling(percent);
        let taken = (0..1000).filter(|_| sampler.sampled()).count();
        assert_eq!(taken, 10 * usize::from(percent), "{percent}%");
    }
    server.stop().await;
}
