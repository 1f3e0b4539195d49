//! The HTTP API end to end: a real server on 127.0.0.1:0, every route and shape.

use crate::common;

use common::server::{
    Options, TestServer, org_project, project, question, start, start_default, user,
};
use gatehouse::config::Config;
use serde_json::{Value, json};

fn p1_entities() -> Vec<Value> {
    vec![
        user("olga", &[]),
        user("vera", &["p1.editors"]),
        user("vic", &["p1.viewers"]),
        user("maya", &["p1.managers"]),
        project("p1", "olga", "processing", &[]),
    ]
}

async fn decide(server: &TestServer, body: &Value) -> (String, Vec<String>) {
    let (status, answer) = server.post("/v1/is_authorized", body).await;
    assert_eq!(status, 200, "{answer}");
    let reasons = answer["diagnostics"]["reason"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_string())
        .collect();
    (
        answer["decision"].as_str().unwrap_or_default().to_string(),
        reasons,
    )
}

#[tokio::test]
async fn is_authorized_answers_with_reasons_and_version() {
    let server = start_default().await;
    let (status, answer) = server
        .post(
            "/v1/is_authorized",
            &question("User::\"vera\"", "edit", "Project::\"p1\"", &p1_entities()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"decision": "Allow", "diagnostics": {"reason": ["roles.editor"], "errors": [], "missing": []}, "policy_version": server.version()})
    );
    // Object form of the uids; a viewer cannot edit.
    let body = json!({"principal": {"type": "User", "id": "vic"}, "action": {"type": "Action", "id": "edit"},
                      "resource": {"type": "Project", "id": "p1"}, "entities": p1_entities()});
    assert_eq!(decide(&server, &body).await, ("Deny".to_string(), vec![]));
    // A context, and a forbid that decides.
    let mut body = question("User::\"maya\"", "share", "Project::\"p1\"", &p1_entities());
    body["context"] = json!({"role": "admin", "target": {"type": "User", "id": "vic"}});
    assert_eq!(
        decide(&server, &body).await,
        (
            "Deny".to_string(),
            vec!["sharing.admin-role-by-privileged-only".to_string()]
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_reuses_the_callers() {
    let server = start_default().await;
    let response = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("get");
    let id = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(
        uuid::Uuid::parse_str(&id).expect("uuid").get_version_num(),
        4
    );
    let response = server
        .client
        .post(format!("{}/v1/is_authorized", server.base))
        .header("x-request-id", "caller-42")
        .body("{")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-request-id"], "caller-42");
    let response = server
        .client
        .get(format!("{}/nope", server.base))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 404);
    assert!(response.headers().contains_key("x-request-id"));
    server.stop().await;
}

#[tokio::test]
async fn batch_keeps_order_mixes_principals_and_isolates_a_bad_item() {
    let server = start_default().await;
    let body = json!({
        "entities": p1_entities(),
        "requests": [
            {"principal": "User::\"vera\"", "action": "Action::\"edit\"", "resource": "Project::\"p1\""},
            {"principal": "User::\"vic\"", "action": "Action::\"edit\"", "resource": "Project::\"p1\""},
            {"principal": "User::\"vic\"", "action": "Action::\"edt\"", "resource": "Project::\"p1\""},
            {"principal": "User::\"olga\"", "action": "Action::\"delete\"", "resource": "Project::\"p1\""},
            {"principal": "User::\"zed\"", "action": "Action::\"view\"", "resource": "Project::\"p2\"",
             "entities": [user("zed", &["p2.viewers"]), project("p2", "olga", "planning", &[])]},
            {"principal": "User::\"vic\"", "action": "Action::\"view\""}
        ]
    });
    let (status, answer) = server.post("/v1/is_authorized/batch", &body).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 6);
    assert_eq!(results[0]["decision"], "Allow");
    assert_eq!(results[1]["decision"], "Deny");
    assert_eq!(
        results[2],
        json!({"error": {"code": "invalid_action", "message": "unknown action `Action::\"edt\"`",
                         "field": "action", "index": 2}})
    );
    assert_eq!(
        results[3]["diagnostics"]["reason"],
        json!(["ownership.owner-and-org-admins"])
    );
    assert_eq!(results[4]["diagnostics"]["reason"], json!(["roles.viewer"]));
    assert!(
        results[5]["error"]["message"]
            .as_str()
            .expect("message")
            .contains("missing field `resource`")
    );
    server.stop().await;
}

#[tokio::test]
async fn batch_limits_and_shared_entities() {
    let server = start(Options {
        config: Config {
            max_batch: 3,
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    let item = json!({"principal": "User::\"vic\"", "action": "Action::\"view\"", "resource": "Project::\"p1\""});
    let (status, answer) = server
        .post(
            "/v1/is_authorized/batch",
            &json!({"requests": [item, item, item, item]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "batch_too_large");
    assert_eq!(
        answer["error"]["message"],
        "`requests` has 4 items; at most 3 are allowed"
    );
    let bad_shared = json!({"entities": [{"uid": {"type": "Project", "id": "p1"}, "attrs": {}, "parents": []}], "requests": [item]});
    let (status, answer) = server.post("/v1/is_authorized/batch", &bad_shared).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "invalid_entities");
    server.stop().await;
}

#[tokio::test]
async fn allowed_actions_lists_buttons_and_what_needs_context() {
    let server = start_default().await;
    let body = json!({"principal": "User::\"vera\"", "resource": "Project::\"p1\"", "entities": p1_entities()});
    let (status, answer) = server.post("/v1/allowed_actions", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["allowed"],
        json!([
            "copy",
            "edit",
            "leave",
            "run_processing",
            "view",
            "view_members"
        ])
    );
    // vera is a shared editor of a project that does not let editors share: no context
    // could allow her the sharing actions, so they are denied, not "needs context".
    assert_eq!(answer["needs_context"], json!([]));
    let denied = answer["denied"].as_array().expect("denied");
    for never in [
        "accept_access_request",
        "change_member_role",
        "remove_member",
        "share",
        "transfer_ownership",
        "delete",
    ] {
        assert!(denied.contains(&json!(never)), "{never}: {answer}");
    }
    assert_eq!(
        answer["diagnostics"]["reasons"]["edit"],
        json!(["roles.editor"])
    );
    assert_eq!(answer["diagnostics"]["reasons"]["share"], json!([]));
    assert_eq!(
        answer["diagnostics"]["reasons"]["export_report"],
        json!(["phases.report-when-ready"])
    );
    assert_eq!(answer["policy_version"], server.version());

    // A manager may share with some roles and not others: that one needs its context.
    let maya = json!({"principal": "User::\"maya\"", "resource": "Project::\"p1\"", "entities": p1_entities(),
                      "actions": ["share", "Action::\"view\"", {"type": "Action", "id": "delete"}]});
    let (status, answer) = server.post("/v1/allowed_actions", &maya).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["needs_context"], json!(["share"]));
    assert_eq!(answer["allowed"], json!(["view"]));
    assert_eq!(answer["denied"], json!(["delete"]));
    // Only actions of the schema that apply, each error naming its place in `actions`.
    for (actions, field) in [
        (json!(["fly"]), "actions[0]"),
        (json!(["view", "request_access"]), "actions[1]"),
    ] {
        let mut body = maya.clone();
        body["actions"] = actions;
        let (status, answer) = server.post("/v1/allowed_actions", &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_action", "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }

    // With a context, the sharing actions are decided too; each action gets its own keys.
    let mut body = json!({"principal": "User::\"maya\"", "resource": "Project::\"p1\"", "entities": p1_entities(),
                          "context": {"role": "editor", "target": {"type": "User", "id": "vic"}}});
    let (_, answer) = server.post("/v1/allowed_actions", &body).await;
    assert_eq!(answer["needs_context"], json!([]));
    assert_eq!(
        answer["allowed"],
        json!([
            "accept_access_request",
            "change_member_role",
            "generate_share_token",
            "leave",
            "reject_access_request",
            "remove_member",
            "share",
            "stop_sharing",
            "view",
            "view_members"
        ])
    );
    // A context with only a target: actions that also need a role still need context.
    body["context"] = json!({"target": {"type": "User", "id": "vic"}});
    let (_, answer) = server.post("/v1/allowed_actions", &body).await;
    assert_eq!(
        answer["needs_context"],
        json!(["accept_access_request", "change_member_role", "share"])
    );
    assert!(
        answer["allowed"]
            .as_array()
            .expect("allowed")
            .contains(&json!("remove_member"))
    );
    // Types no action applies to.
    let (status, answer) = server
        .post(
            "/v1/allowed_actions",
            &json!({"principal": "Group::\"g\"", "resource": "Project::\"p1\""}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("no action of the schema applies")
    );
    // No action asked: the entities are still read, and a wrong one refused.
    let (status, answer) = server
        .post(
            "/v1/allowed_actions",
            &json!({"principal": "User::\"vic\"", "resource": "Project::\"p1\"", "actions": [],
                    "entities": [{"uid": "", "attrs": null, "parents": []}]}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("entities"),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_a_clear_4xx() {
    let server = start(Options {
        config: Config {
            max_body: 4096,
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    let project_with = |attr: &str, value: Value| {
        let mut p = project("p1", "olga", "planning", &[]);
        p["attrs"][attr] = value;
        json!({"principal": "User::\"vic\"", "action": "Action::\"view\"", "resource": "Project::\"p1\"", "entities": [p]})
    };
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        ("not JSON", b"{\"principal\":".to_vec(), 400, "malformed_json", "EOF while parsing"),
        ("not UTF-8", b"{\"principal\": \"\xff\"}".to_vec(), 400, "malformed_json", "invalid unicode"),
        ("too deep", deep.into_bytes(), 400, "malformed_json", "recursion limit exceeded"),
        ("an array body", b"[]".to_vec(), 400, "invalid_request", "the body must be a JSON object"),
        ("missing resource", br#"{"principal": "User::\"a\"", "action": "Action::\"view\""}"#.to_vec(), 400, "invalid_request", "missing field `resource`"),
        ("unknown field", br#"{"principal": "User::\"a\"", "action": "Action::\"view\"", "resource": "Project::\"p\"", "contxt": {}}"#.to_vec(), 400, "invalid_request", "unknown field `contxt`"),
        ("unknown action", br#"{"principal": "User::\"a\"", "action": "Action::\"edt\"", "resource": "Project::\"p\""}"#.to_vec(), 400, "invalid_action", "unknown action `Action::\"edt\"`"),
        ("a uid that is not one", br#"{"principal": "alice", "action": "Action::\"view\"", "resource": "Project::\"p\""}"#.to_vec(), 400, "invalid_principal", "`principal` must be an entity uid such as `User::\"alice\"`, got `alice`"),
        ("a number for a uid", br#"{"principal": 7, "action": "Action::\"view\"", "resource": "Project::\"p\""}"#.to_vec(), 400, "invalid_principal", "`principal` must be an entity uid such as `User::\"alice\"`, got `7`"),
        ("wrong principal type", br#"{"principal": "Project::\"a\"", "action": "Action::\"view\"", "resource": "Project::\"p\""}"#.to_vec(), 400, "invalid_principal", "does not apply to principal `Project::\"a\"`"),
        ("wrong resource type", br#"{"principal": "User::\"a\"", "action": "Action::\"request_access\"", "resource": "Project::\"p\""}"#.to_vec(), 400, "invalid_resource", "must be of type `ShareToken`"),
        ("unknown type", br#"{"principal": "Usr::\"a\"", "action": "Action::\"view\"", "resource": "Project::\"p\""}"#.to_vec(), 400, "invalid_principal", "`Usr::\"a\"`"),
        ("missing context key", br#"{"principal": "User::\"a\"", "action": "Action::\"share\"", "resource": "Project::\"p\"", "context": {}}"#.to_vec(), 400, "invalid_context", "`role`"),
        ("wrong context type", br#"{"principal": "User::\"a\"", "action": "Action::\"share\"", "resource": "Project::\"p\"", "context": {"role": 3}}"#.to_vec(), 400, "invalid_context", "role"),
        ("extra context key", br#"{"principal": "User::\"a\"", "action": "Action::\"view\"", "resource": "Project::\"p\"", "context": {"now": 1}}"#.to_vec(), 400, "invalid_context", "`now` should not exist"),
        ("context not an object", br#"{"principal": "User::\"a\"", "action": "Action::\"view\"", "resource": "Project::\"p\"", "context": [1]}"#.to_vec(), 400, "invalid_context", "`context` must be a JSON object"),
        ("a bad datetime", br#"{"principal": "User::\"a\"", "action": "Action::\"request_access\"", "resource": "ShareToken::\"t\"", "context": {"now": "yesterday"}}"#.to_vec(), 400, "invalid_context", "yesterday"),
        ("an unknown extension function", br#"{"principal": "User::\"a\"", "action": "Action::\"request_access\"", "resource": "ShareToken::\"t\"", "context": {"now": {"__extn": {"fn": "evil", "arg": "x"}}}}"#.to_vec(), 400, "invalid_context", "evil"),
        ("an attribute of the wrong type", serde_json::to_vec(&project_with("phase", json!(3))).expect("json"), 400, "invalid_entities", "in attribute `phase` on `Project::\"p1\"`, type mismatch"),
        ("a missing attribute", serde_json::to_vec(&{ let mut q = project_with("phase", json!("x")); q["entities"][0]["attrs"].as_object_mut().expect("attrs").remove("owner"); q }).expect("json"), 400, "invalid_entities", "`owner`"),
        ("an unknown attribute", serde_json::to_vec(&project_with("colour", json!("red"))).expect("json"), 400, "invalid_entities", "`colour`"),
        ("entities not a list", br#"{"principal": "User::\"a\"", "action": "Action::\"view\"", "resource": "Project::\"p\"", "entities": {}}"#.to_vec(), 400, "invalid_entities", "`entities` must be a JSON array"),
        ("an entity twice", serde_json::to_vec(&json!({"principal": "User::\"a\"", "action": "Action::\"view\"", "resource": "Project::\"p\"", "entities": [user("a", &[]), user("a", &[])]})).expect("json"), 400, "invalid_entities", "lists entity `User::\"a\"` twice"),
        ("a wrong parent type", serde_json::to_vec(&json!({"principal": "User::\"a\"", "action": "Action::\"view\"", "resource": "Project::\"p\"", "entities": [{"uid": {"type": "User", "id": "a"}, "attrs": {}, "parents": [{"type": "Project", "id": "p"}]}]})).expect("json"), 400, "invalid_entities", "ancestor of type `Project`"),
        ("an entity without uid", br#"{"principal": "User::\"a\"", "action": "Action::\"view\"", "resource": "Project::\"p\"", "entities": [{"attrs": {}}]}"#.to_vec(), 400, "invalid_entities", "`entities[0]` has no `uid`"),
        ("a body too large", vec![b' '; 5000], 413, "body_too_large", "the body is 5000 bytes; at most 4096 are allowed"),
    ];
    for (name, body, status, code, fragment) in cases {
        let (got, answer) = server.post_raw("/v1/is_authorized", body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{name}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(fragment),
            "{name}: `{message}` lacks `{fragment}`"
        );
    }
    let (status, answer) = server.get("/v1/is_authorized").await;
    assert_eq!(status, 405, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(
        answer,
        json!({"error": {"code": "method_not_allowed", "message": "`GET` is not allowed on `/v1/is_authorized`"}})
    );
    let (status, answer) = server.get("/v2/nothing").await;
    assert_eq!(status, 404, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(
        answer,
        json!({"error": {"code": "not_found", "message": "no route `GET /v2/nothing`"}})
    );
    server.stop().await;
}

/// Every kind of question reads and checks its parts in one stage. A uid of the wrong shape
/// is refused as it is read, with its field's code, its path and the same words on every
/// route (a batch item, allowed actions' `actions[i]`, a plan); what only the schema can tell
/// (a type that is no entity type) is worded alike; a principal of the wrong type is refused
/// by a decision and a plan in the same words; and a context a decision accepts (a uid
/// written as a string) a plan accepts too.
#[tokio::test]
async fn every_kind_of_question_is_checked_by_one_stage() {
    let server = start_default().await;
    let action_words = "(or the action's id alone, `\"view\"`)";
    let cases: Vec<(&str, Value, &str, &str, String)> = vec![
        (
            "/v1/is_authorized",
            json!({"principal": [1], "action": "view", "resource": "Project::\"p\""}),
            "invalid_principal",
            "principal",
            "`principal` must be an entity uid such as `User::\"alice\"`, got `[1]`".into(),
        ),
        (
            "/v1/is_authorized",
            json!({"principal": "User::\"a\"", "action": "view", "resource": {"type": "no such", "id": "p"}}),
            "invalid_resource",
            "resource",
            "`resource` must be an entity uid such as {\"type\": \"Project\", \"id\": \"p1\"}, got `{\"type\":\"no such\",\"id\":\"p\"}`".into(),
        ),
        (
            "/v1/allowed_actions",
            json!({"principal": "User::\"a\"", "resource": "Project::\"p\"", "actions": ["view", 5]}),
            "invalid_action",
            "actions[1]",
            format!("`actions[1]` must be an entity uid such as `Action::\"view\"` {action_words}, got `5`"),
        ),
        (
            "/v1/plan",
            json!({"principal": {"type": "User"}, "action": "view", "resource_type": "Project"}),
            "invalid_principal",
            "principal",
            "`principal` must be an entity uid such as {\"type\": \"User\", \"id\": \"alice\"}, got `{\"type\":\"User\"}`".into(),
        ),
        (
            "/v1/plan",
            json!({"principal": "User::\"a\"", "action": null, "resource_type": "Project"}),
            "invalid_action",
            "action",
            format!("`action` must be an entity uid such as `Action::\"view\"` {action_words}, got `null`"),
        ),
    ];
    for (route, body, code, field, message) in cases {
        let (status, answer) = server.post(route, &body).await;
        assert_eq!(status, 400, "{route} {body}: {answer}");
        assert_eq!(
            answer["error"],
            json!({"code": code, "field": field, "message": message}),
            "{route} {body}"
        );
    }
    // A batch item: the same error, with its index, beside an item that is answered.
    let ok = json!({"principal": "User::\"a\"", "action": "view", "resource": "Project::\"p\""});
    let bad = json!({"principal": "User::\"a\"", "action": true, "resource": "Project::\"p\""});
    let (status, answer) = server
        .post("/v1/is_authorized/batch", &json!({"requests": [ok, bad]}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["decision"], "Deny", "{answer}");
    assert_eq!(
        answer["results"][1]["error"],
        json!({
            "code": "invalid_action",
            "field": "action",
            "index": 1,
            "message": format!("`action` must be an entity uid such as `Action::\"view\"` {action_words}, got `true`"),
        }),
        "{answer}"
    );
    // The schema's checks, in one stage: a principal of the wrong type.
    let (_, decided) = server
        .post(
            "/v1/is_authorized",
            &json!({"principal": "Project::\"a\"", "action": "view", "resource": "Project::\"p\""}),
        )
        .await;
    let (_, planned) = server
        .post(
            "/v1/plan",
            &json!({"principal": "Project::\"a\"", "action": "view", "resource_type": "Project"}),
        )
        .await;
    assert_eq!(decided["error"]["code"], "invalid_principal", "{decided}");
    assert_eq!(decided["error"], planned["error"], "{decided} {planned}");
    // A context with a uid written as a string: a decision and a plan both read it.
    let context = json!({"target": "User::\"bob\""});
    let (status, answer) = server
        .post(
            "/v1/is_authorized",
            &json!({"principal": "User::\"a\"", "action": "remove_member", "resource": "Project::\"p\"", "context": context}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = server
        .post(
            "/v1/plan",
            &json!({"principal": "User::\"a\"", "action": "remove_member", "resource_type": "Project", "context": context}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    server.stop().await;
}

/// The README's table of error codes is the API's: every code with its status, no other.
#[test]
fn the_readme_lists_every_error_code_with_its_status() {
    use gatehouse::http::error::ErrorCode;
    let readme = std::fs::read_to_string(common::root().join("README.md")).expect("README");
    // Rows whose second cell is an error status.
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            l.starts_with("| `")
                && cells
                    .get(2)
                    .and_then(|c| c.parse::<u16>().ok())
                    .is_some_and(|status| (400..600).contains(&status))
        })
        .collect();
    for code in ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
        assert!(
            rows.iter().any(|r| r.starts_with(&row)),
            "README lacks the row `{row}`"
        );
    }
    assert_eq!(rows.len(), ErrorCode::ALL.len(), "{rows:#?}");
}

#[tokio::test]
async fn health_readiness_metrics_status_and_policies() {
    let server = start_default().await;
    assert_eq!(
        server.get("/healthz").await,
        (200, r#"{"status":"ok"}"#.to_string())
    );
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200);
    assert!(body.contains(&server.version()));

    server
        .post(
            "/v1/is_authorized",
            &question("User::\"vera\"", "edit", "Project::\"p1\"", &p1_entities()),
        )
        .await;
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "gatehouse_http_requests_total{route=\"/v1/is_authorized\",method=\"POST\",status=\"200\"} 1",
        "gatehouse_http_request_duration_seconds_count{route=\"/v1/is_authorized\"} 1",
        "gatehouse_decisions_total{result=\"Allow\",source=\"is_authorized\"} 1",
        "gatehouse_decision_cache_lookups_total{result=\"miss\"} 1",
        "gatehouse_decision_cache_entries 1",
        "gatehouse_http_requests_in_flight 1",
        "gatehouse_policy_loads_total{result=\"ok\"} 1",
        "gatehouse_policy_files_valid 1",
        "gatehouse_build_info{version=\"0.1.0\",cedar=\"4.14.1\"} 1",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        &format!(
            "gatehouse_policy_info{{version=\"{}\"}} 1",
            server.version()
        ),
        "gatehouse_policies 41",
        "gatehouse_last_reload_success_timestamp_seconds",
    ] {
        assert!(metrics.contains(needle), "`{needle}` not in\n{metrics}");
    }

    let (status, body) = server.get("/v1/status").await;
    assert_eq!(status, 200);
    let status_json: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(status_json["policy_version"], server.version());
    assert_eq!(status_json["policy_count"], 41);
    assert_eq!(status_json["files"].as_array().expect("files").len(), 9);
    assert_eq!(status_json["last_reload"]["result"], "ok");

    let (status, body) = server.get("/v1/policies").await;
    assert_eq!(status, 200);
    let policies: Value = serde_json::from_str(&body).expect("json");
    let viewer = policies["policies"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] == "roles.viewer")
        .expect("roles.viewer")
        .clone();
    assert_eq!(viewer["effect"], "permit");
    assert!(
        viewer["file"]
            .as_str()
            .expect("file")
            .ends_with("roles.cedar")
    );
    assert_eq!(viewer["line"], 51);
    server.stop().await;
}

#[tokio::test]
async fn admin_routes_need_the_token_when_one_is_set() {
    admin_routes_need_the_token(Config {
        admin_token: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
}

#[tokio::test]
async fn the_admin_token_can_come_from_a_file() {
    let dir = tempfile::tempdir().expect("temp");
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cret\n").expect("write");
    admin_routes_need_the_token(Config {
        admin_token_file: Some(file),
        ..Config::default()
    })
    .await;
    // An empty file is refused at start-up rather than leaving the routes open.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let config = Config {
        listen: "127.0.0.1:0".into(),
        admin_token_file: Some(empty),
        ..Config::for_sources(&common::bundled_sources())
    };
    let error = gatehouse::app::build(&config)
        .await
        .expect_err("an empty token file is refused");
    assert!(error.to_string().contains("is empty"), "{error}");
    // Beyond loopback, open admin routes are refused unless asked for (issue 24: the image
    // listened on 0.0.0.0 with /v1/reload open).
    let beyond = Config {
        listen: "0.0.0.0:0".into(),
        ..Config::for_sources(&common::bundled_sources())
    };
    let error = gatehouse::app::build(&beyond)
        .await
        .expect_err("open admin routes beyond loopback are refused");
    assert!(error.to_string().contains("--open-admin"), "{error}");
    for config in [
        Config {
            admin_token: Some("s3cret".into()),
            ..beyond.clone()
        },
        Config {
            open_admin: true,
            ..beyond.clone()
        },
    ] {
        let app = gatehouse::app::build(&config).await;
        assert!(app.is_ok(), "{:?}", app.err());
    }
    // So is an empty `--admin-token` (or `GATEHOUSE_ADMIN_TOKEN`), which locked the admin
    // routes for good.
    for token in ["", "  "] {
        let config = Config {
            listen: "127.0.0.1:0".into(),
            admin_token: Some(token.into()),
            ..Config::for_sources(&common::bundled_sources())
        };
        let error = gatehouse::app::build(&config)
            .await
            .expect_err("an empty token is refused");
        assert!(error.to_string().contains("is empty"), "{error}");
    }
}

async fn admin_routes_need_the_token(config: Config) {
    let server = start(Options {
        config,
        ..Options::default()
    })
    .await;
    for (method, path) in [
        ("GET", "/v1/status"),
        ("GET", "/v1/policies"),
        ("POST", "/v1/reload"),
    ] {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cre"),
            Some("s3cret"),
            Some("Basic s3cret"),
        ] {
            let mut request = server.client.request(
                method.parse().expect("method"),
                format!("{}{path}", server.base),
            );
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.expect("send");
            assert_eq!(response.status(), 401, "{method} {path} with {auth:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["error"]["code"], "unauthorized");
        }
        // RFC 7235: the scheme is case-insensitive.
        for auth in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER s3cret",
            "Bearer  s3cret",
        ] {
            let response = server
                .client
                .request(
                    method.parse().expect("method"),
                    format!("{}{path}", server.base),
                )
                .header("authorization", auth)
                .send()
                .await
                .expect("send");
            assert_eq!(response.status(), 200, "{method} {path} with {auth:?}");
        }
    }
    // Decision routes and health stay open.
    let (status, _) = server
        .post(
            "/v1/is_authorized",
            &question("User::\"vera\"", "edit", "Project::\"p1\"", &p1_entities()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.get("/metrics").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_repeated_question_is_a_cache_hit_and_order_does_not_matter() {
    let server = start_default().await;
    let body = question("User::\"vera\"", "edit", "Project::\"p1\"", &p1_entities());
    let first = server.post("/v1/is_authorized", &body).await;
    let second = server.post("/v1/is_authorized", &body).await;
    assert_eq!(first, second);
    // The same entities in another order, object keys in another order: the same question.
    let mut reversed = p1_entities();
    reversed.reverse();
    let text = format!(
        r#"{{"resource": "Project::\"p1\"", "entities": {}, "action": "Action::\"edit\"", "principal": "User::\"vera\""}}"#,
        serde_json::to_string(&reversed).expect("json")
    );
    let third = server
        .post_raw("/v1/is_authorized", text.into_bytes())
        .await;
    assert_eq!(third, first);
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains("gatehouse_decision_cache_lookups_total{result=\"hit\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_decision_cache_lookups_total{result=\"miss\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn stored_entities_are_seen_and_a_request_entity_overrides_them() {
    let server = common::server::start_with_acme_stored().await;
    // The organization and erin's groups come from the stored file.
    let body = question(
        "User::\"erin\"",
        "edit",
        "Project::\"op1\"",
        &[org_project("op1", "otto", "acme", "planning")],
    );
    assert_eq!(
        decide(&server, &body).await,
        ("Allow".to_string(), vec!["roles.editor".to_string()])
    );
    // The request's erin (no groups) replaces the stored one.
    let body = question(
        "User::\"erin\"",
        "edit",
        "Project::\"op1\"",
        &[
            org_project("op1", "otto", "acme", "planning"),
            user("erin", &[]),
        ],
    );
    assert_eq!(decide(&server, &body).await, ("Deny".to_string(), vec![]));
    let (_, status) = server.get("/v1/status").await;
    let status: Value = serde_json::from_str(&status).expect("json");
    assert_eq!(status["entities"]["count"], 2);
    server.stop().await;
}

#[tokio::test]
async fn a_missing_entity_fails_closed_over_http() {
    let server = start_default().await;
    // The organization entity is missing: the owner's permit matches, the organization
    // forbid cannot evaluate, so the answer is Deny with the error.
    let mut body = question(
        "User::\"otto\"",
        "share",
        "Project::\"op1\"",
        &[org_project("op1", "otto", "acme", "planning")],
    );
    body["context"] = json!({"role": "viewer", "target": {"type": "User", "id": "zed"}});
    let (status, answer) = server.post("/v1/is_authorized", &body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["decision"], "Deny");
    let errors = answer["diagnostics"]["errors"].as_array().expect("errors");
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .unwrap_or_default()
            .contains("sharing.target-in-organization")),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_decision_log_has_one_line_per_decision() {
    let server = start(Options {
        decision_log: Some(("decisions.log", false)),
        ..Options::default()
    })
    .await;
    let path = server.dir().join("decisions.log");
    let response = server
        .client
        .post(format!("{}/v1/is_authorized", server.base))
        .header("x-request-id", "req-1")
        .json(&question(
            "User::\"vera\"",
            "edit",
            "Project::\"p1\"",
            &p1_entities(),
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    server
        .post(
            "/v1/is_authorized",
            &question("User::\"vera\"", "edit", "Project::\"p1\"", &p1_entities()),
        )
        .await;
    let version = server.version();
    let _dir = server.stop().await;
    let text = std::fs::read_to_string(&path).expect("log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let first = &lines[0];
    assert_eq!(first["request_id"], "req-1");
    assert_eq!(first["principal"], "User::\"vera\"");
    assert_eq!(first["action"], "Action::\"edit\"");
    assert_eq!(first["resource"], "Project::\"p1\"");
    assert_eq!(first["decision"], "Allow");
    assert_eq!(first["reasons"], json!(["roles.editor"]));
    assert_eq!(first["errors"], json!([]));
    assert_eq!(first["policy_version"], version);
    assert_eq!(first["cache_hit"], false);
    assert_eq!(lines[1]["cache_hit"], true);
    assert!(first["latency_us"].is_u64() && first["time"].is_string());
    assert!(
        first.get("context").is_none() && first.get("entities").is_none(),
        "context and entities are left out: {first}"
    );
}

#[tokio::test]
async fn the_full_decision_log_carries_context_and_entities() {
    let server = start(Options {
        decision_log: Some(("full.log", true)),
        ..Options::default()
    })
    .await;
    let path = server.dir().join("full.log");
    let mut body = question("User::\"maya\"", "share", "Project::\"p1\"", &p1_entities());
    body["context"] = json!({"role": "viewer"});
    server.post("/v1/is_authorized", &body).await;
    // Entities are logged as they came, but on one line even when they came pretty-printed.
    let pretty = serde_json::to_vec_pretty(&body).expect("json");
    assert_eq!(server.post_raw("/v1/is_authorized", pretty).await.0, 200);
    let _dir = server.stop().await;
    let log = std::fs::read_to_string(&path).expect("log");
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    for line in &lines {
        assert_eq!(line["context"], json!({"role": "viewer"}));
        assert_eq!(line["entities"], json!(p1_entities()));
    }
}

/// One uid grammar: an action's id alone (`"edit"`) is the action, on every route that takes
/// one, as in the test suites and `gatehouse check`, with the same answers as its uid.
#[tokio::test]
async fn one_uid_grammar_action_ids_and_string_uids() {
    let server = common::server::start_with_acme_stored().await;
    let entities = json!([
        user("vera", &["p1.editors"]),
        project("p1", "olga", "processing", &[]),
        common::server::org_project("op1", "olga", "acme", "processing"),
    ]);
    for (action, resource) in [
        ("edit", "Project::\"p1\""),
        ("delete", "Project::\"p1\""),
        ("edit", "Project::\"op1\""),
    ] {
        for principal in ["User::\"vera\"", "User::\"erin\""] {
            let by_uid = json!({"principal": principal, "action": format!("Action::\"{action}\""),
                                "resource": resource, "entities": entities});
            let mut by_id = by_uid.clone();
            by_id["action"] = json!(action);
            let (status, expected) = server.post("/v1/is_authorized", &by_uid).await;
            assert_eq!(status, 200, "{expected}");
            let (status, answer) = server.post("/v1/is_authorized", &by_id).await;
            assert_eq!(
                (status, &answer),
                (200, &expected),
                "{principal} {action} {resource}"
            );
            // In a batch, with the stored organization and its editor erin in the slice.
            let batch = json!({"entities": entities, "requests": [
                {"principal": principal, "action": action, "resource": resource}]});
            let (status, answer) = server.post("/v1/is_authorized/batch", &batch).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(
                answer["results"][0], expected,
                "batch: {principal} {action} {resource}"
            );
        }
    }
    // Every uid as a string, the suites' way (`User::erin`): the stored erin and acme are
    // found from the strings, and the project's string references are read as uids.
    let strings = json!({"principal": "User::erin", "action": "edit", "resource": "Project::op1",
        "entities": [{"uid": "Project::op1", "attrs": {
            "owner": "User::olga", "organization": "Organization::acme",
            "admins": "Group::op1.admins", "managers": "Group::op1.managers",
            "editors": "Group::op1.editors", "viewers": "Group::op1.viewers",
            "phase": "processing", "archived": false, "public": false,
            "downloads_enabled": false, "editors_can_share": false}}]});
    let (status, answer) = server.post("/v1/is_authorized", &strings).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["decision"], "Allow", "{answer}");
    assert_eq!(
        answer["diagnostics"]["reason"],
        json!(["roles.editor"]),
        "{answer}"
    );
    // erin edits the organization's project through her stored organization role.
    let (_, answer) = server
        .post(
            "/v1/is_authorized",
            &json!({"principal": "User::\"erin\"", "action": "edit",
                                           "resource": "Project::\"op1\"", "entities": entities}),
        )
        .await;
    assert_eq!(answer["decision"], "Allow", "{answer}");
    let plan = json!({"principal": "User::\"vera\"", "action": "view", "resource_type": "Project",
                      "entities": [user("vera", &["p1.editors"])]});
    let (status, answer) = server.post("/v1/plan", &plan).await;
    assert_eq!(
        (status, answer["filterable"].clone()),
        (200, json!(true)),
        "{answer}"
    );
    // A malformed action shows an action's example, not a user's.
    let bad = json!({"principal": "User::\"vera\"", "action": "Action::not an id", "resource": "Project::\"p1\""});
    let (status, answer) = server.post("/v1/is_authorized", &bad).await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.contains("`Action::\"view\"`"), "{message}");
    assert!(message.contains("the action's id alone"), "{message}");
    server.stop().await;
}

/// Answers say which entities they were decided without: the principal or resource unknown,
/// or an entity a policy read (`resource.organization`). Strict entities, asked by the
/// question or set for the server, turn that into a 400 naming them.
#[tokio::test]
async fn answers_name_the_entities_they_lacked_and_strict_ones_refuse() {
    let server = start_default().await;
    let org_project = common::server::org_project("op1", "olga", "acme", "processing");
    let vera = user("vera", &["acme.members", "acme.editors"]);
    let ask = |entities: Vec<Value>, strict: bool| {
        let mut q = question("User::\"vera\"", "edit", "Project::\"op1\"", &entities);
        if strict {
            q["strict_entities"] = json!(true);
        }
        q
    };
    let complete = vec![
        vera.clone(),
        org_project.clone(),
        common::server::organization("acme"),
    ];
    let (status, answer) = server
        .post("/v1/is_authorized", &ask(complete.clone(), true))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["decision"], "Allow", "{answer}");
    assert_eq!(answer["diagnostics"]["missing"], json!([]));
    // A plan for a principal nobody described says so too.
    let plan = |entities: Vec<Value>| {
        json!({"principal": "User::\"vera\"", "action": "view", "resource_type": "Project",
            "entities": entities})
    };
    let (status, answer) = server.post("/v1/plan", &plan(vec![])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["missing"], json!(["User::\"vera\""]), "{answer}");
    let (_, answer) = server.post("/v1/plan", &plan(vec![vera.clone()])).await;
    assert_eq!(answer["missing"], json!([]), "{answer}");

    // No organization: the rules that read it fail, and the answer says which entity.
    let (status, answer) = server
        .post(
            "/v1/is_authorized",
            &ask(vec![vera.clone(), org_project.clone()], false),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["decision"], "Deny");
    assert_eq!(
        answer["diagnostics"]["missing"],
        json!(["Organization::\"acme\""])
    );
    // No user: a plain Deny before; now it names her.
    let (_, answer) = server
        .post(
            "/v1/is_authorized",
            &ask(
                vec![org_project.clone(), common::server::organization("acme")],
                false,
            ),
        )
        .await;
    assert_eq!(answer["decision"], "Deny");
    assert_eq!(answer["diagnostics"]["missing"], json!(["User::\"vera\""]));

    // Strict: a 400 naming them.
    let (status, answer) = server
        .post(
            "/v1/is_authorized",
            &ask(vec![vera.clone(), org_project.clone()], true),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "missing_entity");
    assert_eq!(answer["error"]["field"], "entities");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.contains("`Organization::\"acme\"`"), "{message}");

    // A batch: strict for every item, or for one.
    let batch = |strict: bool, item_strict: bool| {
        json!({"entities": [vera, org_project], "strict_entities": strict, "requests": [
            {"principal": "User::\"vera\"", "action": "edit", "resource": "Project::\"op1\"",
             "strict_entities": item_strict},
            {"principal": "User::\"vera\"", "action": "edit", "resource": "Project::\"op1\"",
             "entities": [common::server::organization("acme")]}]})
    };
    let (status, answer) = server
        .post("/v1/is_authorized/batch", &batch(false, true))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"][0]["error"]["code"], "missing_entity",
        "{answer}"
    );
    assert_eq!(answer["results"][0]["error"]["index"], 0);
    assert_eq!(answer["results"][1]["decision"], "Allow", "{answer}");
    let (_, answer) = server
        .post("/v1/is_authorized/batch", &batch(true, false))
        .await;
    assert_eq!(
        answer["results"][0]["error"]["code"], "missing_entity",
        "{answer}"
    );
    assert_eq!(answer["results"][1]["decision"], "Allow", "{answer}");

    // The buttons of a page.
    let actions = json!({"principal": "User::\"vera\"", "resource": "Project::\"op1\"",
                         "entities": [vera, org_project]});
    let (status, answer) = server.post("/v1/allowed_actions", &actions).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["diagnostics"]["missing"],
        json!(["Organization::\"acme\""])
    );
    let mut strict = actions.clone();
    strict["strict_entities"] = json!(true);
    let (status, answer) = server.post("/v1/allowed_actions", &strict).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("missing_entity"))
    );
    server.stop().await;

    // `--strict-entities`: every question is strict.
    let server = common::server::start(common::server::Options {
        config: Config {
            strict_entities: true,
            ..Config::default()
        },
        ..Default::default()
    })
    .await;
    let (status, answer) = server
        .post(
            "/v1/is_authorized",
            &ask(vec![vera.clone(), org_project.clone()], false),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("missing_entity"))
    );
    let (status, _) = server
        .post("/v1/is_authorized", &ask(complete, false))
        .await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// A rejected datetime shows the forms that are accepted, in the context and in entities.
#[tokio::test]
async fn a_rejected_datetime_shows_the_accepted_forms() {
    let server = start_default().await;
    let token = |expires: &str| {
        json!({"uid": {"type": "ShareToken", "id": "t"}, "parents": [], "attrs": {
            "project": {"type": "Project", "id": "p"}, "revoked": false,
            "expires_at": {"__extn": {"fn": "datetime", "arg": expires}}}})
    };
    let ask = |now: &str, expires: &str| {
        json!({"principal": "User::\"vera\"", "action": "request_access", "resource": "ShareToken::\"t\"",
               "context": {"now": {"__extn": {"fn": "datetime", "arg": now}}},
               "entities": [token(expires)]})
    };
    for (body, code) in [
        (ask("yesterday", "2026-01-01"), "invalid_context"),
        (ask("2026-01-01", "soon"), "invalid_entities"),
    ] {
        let (status, answer) = server.post("/v1/is_authorized", &body).await;
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (400, json!(code)),
            "{answer}"
        );
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains("`2026-01-15T08:00:00Z`"), "{message}");
    }
    server.stop().await;
}
