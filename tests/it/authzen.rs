//! The AuthZEN Authorization API 1.0 routes, on the two interop scenarios shipped under
//! `examples/authzen/`: their decision tables asked exactly as the interop harnesses ask
//! them, the evaluations semantics and defaults, search paging, the metadata, and errors
//! that name the AuthZEN field.

use std::collections::BTreeMap;

use gatehouse::config::Config;
use gatehouse::policy::{self, Sources};
use gatehouse::testing::{self, report};
use serde_json::{Value, json};

use crate::common::{
    self,
    server::{Options, TestServer, start},
};

fn scenario(name: &str) -> Sources {
    let dir = common::root().join("examples/authzen").join(name);
    Sources {
        policies: dir.join("policies"),
        schema: dir.join(format!("{name}.cedarschema")),
        entities: Some(dir.join("entities.json")),
    }
}

async fn serve(name: &str, config: Config) -> TestServer {
    start(Options {
        sources: Some(scenario(name)),
        config,
        ..Options::default()
    })
    .await
}

fn table(name: &str) -> Value {
    let path = common::root()
        .join("examples/authzen")
        .join(name)
        .join("interop.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("table")).expect("json")
}

#[test]
fn the_scenario_suites_pass_and_cover_every_policy() {
    for name in ["todo", "search"] {
        let snapshot = policy::load(&scenario(name)).expect("the scenario loads");
        let dir = common::root()
            .join("examples/authzen")
            .join(name)
            .join("tests");
        let files = testing::discover(&[dir]).expect("suites");
        let outcome = testing::run(&snapshot, &files);
        assert!(outcome.success(), "{}", report::human(&outcome));
        assert!(outcome.uncovered.is_empty(), "{:?}", outcome.uncovered);
        assert!(
            outcome.passed >= 50,
            "{name}: only {} cases",
            outcome.passed
        );
    }
}

/// The Todo scenario's table, each row sent as the Todo backend sends it.
#[tokio::test]
async fn the_todo_interop_table_passes_one_by_one_and_boxcarred() {
    let server = serve("todo", Config::default()).await;
    let table = table("todo");
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 40);
    let mut items = Vec::new();
    let mut expected = Vec::new();
    for row in rows {
        let [user, action, kind, id, owner, allowed] = row.as_array().expect("row").as_slice()
        else {
            panic!("row {row}")
        };
        let mut resource = json!({"type": kind, "id": id});
        if !owner.is_null() {
            resource["properties"] = json!({ "ownerID": owner });
        }
        let request = json!({
            "subject": {"type": "user", "id": table["pids"][user.as_str().expect("user")]},
            "action": {"name": action},
            "resource": resource,
            "context": {},
        });
        let (status, answer) = server.post("/access/v1/evaluation", &request).await;
        assert_eq!(status, 200, "{request} → {answer}");
        assert_eq!(&answer["decision"], allowed, "{request} → {answer}");
        let policies = answer["context"]["policies"].as_array().expect("policies");
        assert_eq!(
            !policies.is_empty(),
            allowed == &json!(true),
            "an allowed answer names its permits, a denial here none: {answer}"
        );
        items.push(request);
        expected.push(allowed.clone());
    }
    let (status, answer) = server
        .post("/access/v1/evaluations", &json!({"evaluations": items}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let got: Vec<Value> = answer["evaluations"]
        .as_array()
        .expect("evaluations")
        .iter()
        .map(|e| e["decision"].clone())
        .collect();
    assert_eq!(got, expected);
    server.stop().await;
}

fn sorted(values: &[Value], key: &str) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .map(|v| v[key].as_str().expect("string").to_string())
        .collect();
    out.sort();
    out
}

fn strings(value: &Value) -> Vec<String> {
    let mut out: Vec<String> = value
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect();
    out.sort();
    out
}

/// The search scenario's three tables, sent as its harness sends them (record ids as
/// numbers in the action search), compared as it compares them (sorted), over its entities
/// file.
#[tokio::test]
async fn the_search_interop_tables_pass() {
    let server = serve("search", Config::default()).await;
    search_tables(&server).await;
    server.stop().await;
}

/// The same tables with the scenario's entities in a database (SQLite, then PostgreSQL) in
/// its own tables (`tables.sql`, read through `mapping.toml`): the searches are answered
/// there, in SQL (`listed_by` of the same list on `/v1/list` says so).
#[tokio::test]
async fn the_search_interop_tables_pass_from_a_database() {
    use sqlx::Executor;
    let dir = common::root().join("examples/authzen/search");
    let tables = std::fs::read_to_string(dir.join("tables.sql")).expect("tables.sql");
    let mapping = std::fs::read_to_string(dir.join("mapping.toml")).expect("mapping.toml");
    let world: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("entities.json")).expect("file"))
            .expect("json");
    let (_dir, urls) = crate::source::databases("search").await;
    for (name, url) in urls {
        sqlx::any::install_default_drivers();
        let creating = if name == "sqlite" {
            format!("{url}?mode=rwc")
        } else {
            url.clone()
        };
        let pool = sqlx::AnyPool::connect(&creating).await.expect("connects");
        pool.execute(tables.as_str()).await.expect("tables");
        pool.close().await;
        let mut sources = scenario("search");
        sources.entities = None;
        let snapshot = policy::load(&sources).expect("loads");
        let source = gatehouse_source::Source::open(
            &url,
            &gatehouse_source::MappingFile::Text(mapping.clone()),
            &snapshot,
        )
        .await
        .expect("opens");
        source.import(&snapshot, &world).await.expect("imports");
        let server = start(Options {
            sources: Some(sources),
            config: Config {
                entities_db: Some(url.clone()),
                entities_map: Some(dir.join("mapping.toml")),
                ..Config::default()
            },
            ..Options::default()
        })
        .await;
        search_tables(&server).await;
        let list =
            json!({"principal": "User::\"bob\"", "action": "view", "resource_type": "Record"});
        let (status, answer) = server.post("/v1/list", &list).await;
        assert_eq!(
            (status, &answer["listed_by"]),
            (200, &json!("sql")),
            "{name}: {answer}"
        );
        server.stop().await;
    }
}

async fn search_tables(server: &TestServer) {
    let table = table("search");
    let subjects = table["subject_search"].as_object().expect("subjects");
    assert_eq!(subjects.len(), 20);
    // Who may do what on each record, to derive the action-search table.
    let mut actions: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (record, by_action) in subjects {
        for (action, users) in by_action.as_object().expect("actions") {
            let request = json!({
                "subject": {"type": "user"},
                "action": {"name": action},
                "resource": {"type": "record", "id": record},
            });
            let (status, answer) = server.post("/access/v1/search/subject", &request).await;
            assert_eq!(status, 200, "{answer}");
            let results = answer["results"].as_array().expect("results");
            assert!(results.iter().all(|r| r["type"] == "user"), "{answer}");
            assert_eq!(sorted(results, "id"), strings(users), "{request}");
            assert_eq!(answer["page"]["next_token"], "");
            for user in strings(users) {
                actions
                    .entry((user, record.clone()))
                    .or_default()
                    .push(action.clone());
            }
        }
    }
    for (user, by_action) in table["resource_search"].as_object().expect("resources") {
        for (action, records) in by_action.as_object().expect("actions") {
            let request = json!({
                "subject": {"type": "user", "id": user},
                "action": {"name": action},
                "resource": {"type": "record"},
            });
            let (status, answer) = server.post("/access/v1/search/resource", &request).await;
            assert_eq!(status, 200, "{answer}");
            let results = answer["results"].as_array().expect("results");
            assert_eq!(sorted(results, "id"), strings(records), "{request}");
        }
    }
    let users = ["alice", "bob", "carol", "dan", "erin", "felix"];
    for user in users {
        for record in 101..=120 {
            let mut expected = actions
                .get(&(user.to_string(), record.to_string()))
                .cloned()
                .unwrap_or_default();
            expected.sort();
            let request = json!({
                "subject": {"type": "user", "id": user},
                "resource": {"type": "record", "id": record},
            });
            let (status, answer) = server.post("/access/v1/search/action", &request).await;
            assert_eq!(status, 200, "{answer}");
            let results = answer["results"].as_array().expect("results");
            assert_eq!(sorted(results, "name"), expected, "{request}");
            // What a search returns, an evaluation allows.
            for name in &expected {
                let ask = json!({
                    "subject": {"type": "user", "id": user},
                    "action": {"name": name},
                    "resource": {"type": "record", "id": record.to_string()},
                });
                let (_, decided) = server.post("/access/v1/evaluation", &ask).await;
                assert_eq!(decided["decision"], true, "{ask}");
            }
        }
    }
}

fn alice_views(resources: &[&str]) -> Value {
    let evaluations: Vec<Value> = resources
        .iter()
        .map(|id| json!({"resource": {"type": "record", "id": id}}))
        .collect();
    json!({
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "view"},
        "evaluations": evaluations,
    })
}

fn decisions(answer: &Value) -> Vec<bool> {
    answer["evaluations"]
        .as_array()
        .expect("evaluations")
        .iter()
        .map(|e| e["decision"].as_bool().expect("bool"))
        .collect()
}

/// Defaults, per-item overrides, the three semantics, and an item's own error.
#[tokio::test]
async fn evaluations_take_defaults_and_stop_as_their_semantic_says() {
    let server = serve("search", Config::default()).await;
    // erin views 105, 111, 115, 117 and nothing else.
    let mut body = alice_views(&["105", "101", "111", "102"]);
    let (status, answer) = server.post("/access/v1/evaluations", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(decisions(&answer), [true, false, true, false]);
    body["options"] = json!({"evaluations_semantic": "deny_on_first_deny"});
    let (_, answer) = server.post("/access/v1/evaluations", &body).await;
    assert_eq!(decisions(&answer), [true, false], "{answer}");
    body["options"] = json!({"evaluations_semantic": "permit_on_first_permit"});
    let (_, answer) = server.post("/access/v1/evaluations", &body).await;
    assert_eq!(decisions(&answer), [true], "{answer}");
    body["options"] = json!({"evaluations_semantic": "execute_all"});
    let (_, answer) = server.post("/access/v1/evaluations", &body).await;
    assert_eq!(decisions(&answer), [true, false, true, false]);

    // An item replaces a default: erin edits 105 (hers) but not 115.
    let body = json!({
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "view"},
        "evaluations": [
            {"resource": {"type": "record", "id": "115"}},
            {"action": {"name": "edit"}, "resource": {"type": "record", "id": "115"}},
            {"action": {"name": "edit"}, "resource": {"type": "record", "id": "105"}},
            {"subject": {"type": "user", "id": "dan"}, "action": {"name": "edit"},
             "resource": {"type": "record", "id": "115"}},
        ],
    });
    let (_, answer) = server.post("/access/v1/evaluations", &body).await;
    assert_eq!(decisions(&answer), [true, false, true, true], "{answer}");

    // One item wrong: its own closed decision with the error; the others are answered.
    let body = json!({
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "view"},
        "evaluations": [
            {"resource": {"type": "record", "id": "105"}},
            {"resource": {"type": "folder", "id": "105"}},
            {"resource": {"type": "record", "id": "111"}},
            "record 117",
        ],
    });
    let (status, answer) = server.post("/access/v1/evaluations", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(decisions(&answer), [true, false, true, false]);
    assert_eq!(
        answer["evaluations"][3]["context"]["error"]["field"],
        "evaluations[3]"
    );
    let error = &answer["evaluations"][1]["context"]["error"];
    assert_eq!(error["status"], 400, "{answer}");
    assert_eq!(error["field"], "evaluations[1].resource.type", "{answer}");
    assert!(
        error["message"].as_str().expect("message").contains("User"),
        "the message lists the known types: {error}"
    );
    // A wrong default is every item's error, named at the top level.
    let body = json!({
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "fly"},
        "evaluations": [{"resource": {"type": "record", "id": "105"}}],
    });
    let (_, answer) = server.post("/access/v1/evaluations", &body).await;
    assert_eq!(
        answer["evaluations"][0]["context"]["error"]["field"],
        "action.name"
    );

    // Without items, the request is one evaluation.
    let single = json!({
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "view"},
        "resource": {"type": "record", "id": "105"},
        "evaluations": [],
    });
    let (status, answer) = server.post("/access/v1/evaluations", &single).await;
    assert_eq!(
        (status, &answer["decision"]),
        (200, &json!(true)),
        "{answer}"
    );

    for (body, field) in [
        (
            json!({"evaluations": [], "options": {"evaluations_semantic": "first"}}),
            "options.evaluations_semantic",
        ),
        (json!({"evaluations": {}}), "evaluations"),
    ] {
        let (status, answer) = server.post("/access/v1/evaluations", &body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    server.stop().await;
}

/// Pages of a resource search, the token carried from one to the next, concatenate to
/// the whole answer; the last page's token is empty.
#[tokio::test]
async fn searches_page_with_next_token() {
    let server = serve("search", Config::default()).await;
    let mut token = String::new();
    let mut all = Vec::new();
    let mut pages = Vec::new();
    loop {
        let request = json!({
            "subject": {"type": "user", "id": "dan"},
            "action": {"name": "view"},
            "resource": {"type": "record"},
            "page": {"token": token, "limit": 7},
        });
        let (status, answer) = server.post("/access/v1/search/resource", &request).await;
        assert_eq!(status, 200, "{answer}");
        let results = answer["results"].as_array().expect("results");
        assert_eq!(answer["page"]["count"], results.len());
        pages.push(results.len());
        all.extend(
            results
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_string()),
        );
        token = answer["page"]["next_token"]
            .as_str()
            .expect("token")
            .to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, [7, 7, 6]);
    let expected: Vec<String> = (101..=120).map(|i| i.to_string()).collect();
    assert_eq!(all, expected);
    // A full last page says that nothing follows: no empty page to fetch.
    let request = json!({
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "view"},
        "resource": {"type": "record"},
        "page": {"limit": 4},
    });
    let (_, answer) = server.post("/access/v1/search/resource", &request).await;
    assert_eq!(answer["page"]["next_token"], "", "{answer}");
    assert_eq!(answer["results"].as_array().expect("results").len(), 4);

    for (page, field) in [
        (json!({"token": "not-ours"}), "page.token"),
        (json!({"limit": 0}), "page.limit"),
        (json!({"limit": "ten"}), "page.limit"),
        (json!([]), "page"),
    ] {
        let request = json!({
            "subject": {"type": "user", "id": "dan"},
            "action": {"name": "view"},
            "resource": {"type": "record"},
            "page": page,
        });
        let (status, answer) = server.post("/access/v1/search/resource", &request).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    server.stop().await;
}

/// Properties are the entity's attributes for this question, laid over the stored ones.
#[tokio::test]
async fn properties_overlay_the_stored_attributes() {
    let server = serve("search", Config::default()).await;
    let ask = |resource: Value| {
        json!({
            "subject": {"type": "user", "id": "bob"},
            "action": {"name": "edit"},
            "resource": resource,
        })
    };
    let stored = ask(json!({"type": "record", "id": "101"}));
    let (_, answer) = server.post("/access/v1/evaluation", &stored).await;
    assert_eq!(answer["decision"], false, "{answer}");
    let owned = ask(json!({"type": "record", "id": "101",
        "properties": {"owner": {"type": "User", "id": "bob"}}}));
    let (_, answer) = server.post("/access/v1/evaluation", &owned).await;
    assert_eq!(answer["decision"], true, "{answer}");
    assert_eq!(
        answer["context"]["policies"],
        json!(["records-owners-edit"])
    );
    // A record the store does not hold, described whole by its properties.
    let new = ask(json!({"type": "record", "id": "900", "properties":
        {"title": "Pericles", "department": "Legal", "owner": "User::\"bob\""}}));
    let (_, answer) = server.post("/access/v1/evaluation", &new).await;
    assert_eq!(answer["decision"], true, "{answer}");
    // Described in part, it fails the schema, named as the properties it came from.
    let partial = ask(json!({"type": "record", "id": "900", "properties": {"title": 7}}));
    let (status, answer) = server.post("/access/v1/evaluation", &partial).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "resource.properties", "{answer}");
    server.stop().await;
}

/// A request the PDP cannot ask is a 400 naming the AuthZEN field, never a decision.
#[tokio::test]
async fn bad_requests_name_the_authzen_field() {
    let server = serve("search", Config::default()).await;
    let good = json!({
        "subject": {"type": "user", "id": "bob"},
        "action": {"name": "view"},
        "resource": {"type": "record", "id": "101"},
    });
    let cases = [
        ("/subject", Value::Null, "subject"),
        ("/subject/type", json!("robot"), "subject.type"),
        ("/subject/type", json!(""), "subject.type"),
        ("/subject/id", json!(true), "subject.id"),
        ("/action/name", json!("fly"), "action.name"),
        ("/action", json!("view"), "action"),
        (
            "/action/properties",
            json!({"method": "GET"}),
            "action.properties",
        ),
        ("/resource/properties", json!([1]), "resource.properties"),
        ("/context", json!([]), "context"),
    ];
    for (pointer, value, field) in cases {
        let mut body = good.clone();
        if value.is_null() {
            body.as_object_mut().expect("object").remove("subject");
        } else {
            let (parent, key) = pointer.rsplit_once('/').expect("pointer");
            body.pointer_mut(parent).expect("parent")[key] = value;
        }
        let (status, answer) = server.post("/access/v1/evaluation", &body).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["field"], field, "{body} → {answer}");
    }
    let (status, answer) = server
        .post_raw("/access/v1/evaluation", b"[]".to_vec())
        .await;
    assert_eq!(status, 400, "{answer}");
    // The type map: any case, with or without the namespace.
    let mut upper = good.clone();
    upper["subject"]["type"] = json!("USER");
    upper["resource"]["type"] = json!("Record");
    let (status, answer) = server.post("/access/v1/evaluation", &upper).await;
    assert_eq!(
        (status, &answer["decision"]),
        (200, &json!(true)),
        "{answer}"
    );
    // An action the schema does not know is searched by nobody: an empty answer.
    let search = json!({
        "subject": {"type": "user"},
        "action": {"name": "fly"},
        "resource": {"type": "record", "id": "101"},
    });
    let (status, answer) = server.post("/access/v1/search/subject", &search).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn a_configured_type_map_and_public_url() {
    let config = Config {
        authzen_types: "person=User, doc=Record".into(),
        public_url: Some("https://pdp.example.com/".into()),
        ..Config::default()
    };
    let server = serve("search", config).await;
    let body = json!({
        "subject": {"type": "person", "id": "erin"},
        "action": {"name": "view"},
        "resource": {"type": "doc", "id": "105"},
    });
    let (status, answer) = server.post("/access/v1/evaluation", &body).await;
    assert_eq!(
        (status, &answer["decision"]),
        (200, &json!(true)),
        "{answer}"
    );
    let (status, text) = server.get("/.well-known/authzen-configuration").await;
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(metadata["policy_decision_point"], "https://pdp.example.com");
    assert_eq!(
        metadata["access_evaluations_endpoint"],
        "https://pdp.example.com/access/v1/evaluations"
    );
    server.stop().await;

    let server = serve("todo", Config::default()).await;
    let (_, text) = server.get("/.well-known/authzen-configuration").await;
    let metadata: Value = serde_json::from_str(&text).expect("json");
    let base = server.base.clone();
    assert_eq!(metadata["policy_decision_point"], base);
    for (key, path) in [
        ("access_evaluation_endpoint", "evaluation"),
        ("search_subject_endpoint", "search/subject"),
        ("search_resource_endpoint", "search/resource"),
        ("search_action_endpoint", "search/action"),
    ] {
        assert_eq!(metadata[key], format!("{base}/access/v1/{path}"));
    }
    server.stop().await;

    let bad = Config {
        authzen_types: "person".into(),
        ..Config::default()
    };
    let sources = scenario("search");
    let config = Config {
        listen: "127.0.0.1:0".into(),
        ..Config::for_sources(&sources)
    };
    let config = Config {
        authzen_types: bad.authzen_types,
        ..config
    };
    let error = gatehouse::app::build(&config)
        .await
        .expect_err("a type map without `=` is refused");
    assert!(error.to_string().contains("--authzen-types"), "{error}");
}

/// `/access/v1/search/action` on the bundled policies, whose actions declare different
/// context keys: each action is decided with the keys it declares (so a context for `share`
/// does not make `advance_phase` a 400), and one whose required keys are absent is found only
/// when every context would allow it, as `/v1/allowed_actions` decides it. An action that
/// needs no context is found exactly when its own evaluation allows it.
#[tokio::test]
async fn action_search_decides_each_action_with_the_context_it_declares() {
    let root = common::root();
    let server = start(Options {
        sources: Some(Sources {
            policies: root.join("policies"),
            schema: root.join("schemas/project_sharing.cedarschema"),
            entities: Some(root.join("tests/api/entities.json")),
        }),
        ..Options::default()
    })
    .await;
    let search = |user: &str, context: Value| {
        json!({"subject": {"type": "user", "id": user},
               "resource": {"type": "project", "id": "p1"}, "context": context})
    };
    let found = |answer: &Value| -> Vec<String> {
        answer["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["name"].as_str().expect("name").to_string())
            .collect()
    };
    let schema: Value = serde_json::from_str(&server.get("/v1/schema").await.1).expect("json");
    let needs_context = |action: &str| {
        schema["actions"][action]["required_context"]
            .as_array()
            .is_some_and(|keys| !keys.is_empty())
    };
    for user in ["olga", "maya", "eddie", "vic", "stan"] {
        let (status, answer) = server
            .post("/access/v1/search/action", &search(user, Value::Null))
            .await;
        assert_eq!(status, 200, "{user}: {answer}");
        let found = found(&answer);
        let actions: Vec<String> = schema["actions"]
            .as_object()
            .expect("actions")
            .iter()
            .filter(|(_, a)| {
                a["resources"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!("Project")))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for action in actions.iter().filter(|a| !needs_context(a)) {
            let evaluation = json!({"subject": {"type": "user", "id": user},
                "action": {"name": action}, "resource": {"type": "project", "id": "p1"}});
            let (_, decided) = server.post("/access/v1/evaluation", &evaluation).await;
            assert_eq!(
                found.contains(action),
                decided["decision"] == true,
                "{user} {action}: found {found:?}, evaluated {decided}"
            );
        }
    }
    // A manager may share as a viewer but not as an admin: without a role, `share` depends
    // on the context and is not found; with one, it is, and the key is not given to actions
    // that do not declare it.
    let (_, answer) = server
        .post("/access/v1/search/action", &search("maya", Value::Null))
        .await;
    assert!(!found(&answer).contains(&"share".to_string()), "{answer}");
    assert!(found(&answer).contains(&"view".to_string()), "{answer}");
    let context = json!({"role": "viewer", "target": {"__entity": {"type": "User", "id": "stan"}}});
    let (status, answer) = server
        .post("/access/v1/search/action", &search("maya", context))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(found(&answer).contains(&"share".to_string()), "{answer}");
    assert!(found(&answer).contains(&"view".to_string()), "{answer}");
    let context = json!({"role": "admin", "target": {"__entity": {"type": "User", "id": "stan"}}});
    let (_, answer) = server
        .post("/access/v1/search/action", &search("maya", context))
        .await;
    assert!(!found(&answer).contains(&"share".to_string()), "{answer}");
    // A viewer shares with no role at all: denied for every context, not found, no 400.
    let (status, answer) = server
        .post("/access/v1/search/action", &search("vic", Value::Null))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(!found(&answer).contains(&"share".to_string()), "{answer}");
    // A key no action declares is named, as `/v1/allowed_actions` names it.
    let (status, answer) = server
        .post(
            "/access/v1/search/action",
            &search("maya", json!({"colour": "red"})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "context.colour", "{answer}");
    server.stop().await;
}
