//! The OpenAPI contract: `/openapi.json` is the checked-in `docs/openapi.json`, every
//! route it describes is served, and what the sidecar answers conforms to it (each body
//! validated against the documented schema of its route and status). `GET /v1/schema`'s
//! JSON Schemas accept the bundled fixtures and refuse broken entities.

use gatehouse::config::Config;
use gatehouse::policy::Sources;
use serde_json::{Value, json};

use crate::common::{
    self,
    server::{Options, TestServer, project, question, start, start_with_acme_stored, user},
};

fn checked_in() -> Value {
    let path = common::root().join("docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json")).expect("json")
}

/// Validates `body` against the schema the document gives for `method path` answering
/// `status`; panics naming every violation.
fn assert_conforms(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "`{method} {path}` is not described");
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "`{method} {path}` answered {status}, which the document does not list: {body}"
    );
    let Some(schema) = response.pointer("/content/application~1json/schema") else {
        return;
    };
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "`{method} {path}` {status} does not conform: {errors:?}\n{body}"
    );
}

async fn exchange(
    server: &TestServer,
    doc: &Value,
    method: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let (status, answer) = match method {
        "get" => {
            let (status, text) = server.get(path).await;
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }
        _ => server.post(path, body).await,
    };
    assert_conforms(doc, method, path, status, &answer);
    (status, answer)
}

#[tokio::test]
async fn the_served_document_is_the_checked_in_one() {
    let server = common::server::start_default().await;
    let (status, text) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    let served: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(served["openapi"], "3.1.0");
    assert!(
        served == checked_in(),
        "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json`"
    );
    // Every schema compiles, every reference resolving.
    let schemas = served["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for name in schemas.keys() {
        let mut root = json!({ "$ref": format!("#/components/schemas/{name}") });
        root["components"] = served["components"].clone();
        if let Err(e) = jsonschema::validator_for(&root) {
            panic!("schema `{name}` does not compile: {e}");
        }
    }
    server.stop().await;
}

/// Every described operation is served (no 404, no 405), and what it answers to an empty
/// or a minimal body conforms to its description.
#[tokio::test]
async fn every_described_route_is_served_and_answers_as_described() {
    let doc = checked_in();
    let server = start_with_acme_stored().await;
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 21, "{:?}", paths.keys().collect::<Vec<_>>());
    for (path, item) in paths {
        for method in ["get", "post"] {
            if item.get(method).is_none() {
                continue;
            }
            for body in [json!({}), json!([]), json!({"principal": 1})] {
                let (status, answer) = exchange(&server, &doc, method, path, &body).await;
                assert!(
                    status != 404 && status != 405,
                    "`{method} {path}` is described but not served: {answer}"
                );
            }
        }
    }
    server.stop().await;
}

/// Real answers of every kind, each validated against the document.
#[tokio::test]
async fn answers_conform_to_the_document() {
    let doc = checked_in();
    let server = start_with_acme_stored().await;
    let entities = vec![
        user("ann", &["p1.viewers"]),
        project("p1", "olga", "planning", &[]),
    ];
    let ask = question("User::\"ann\"", "view", "Project::\"p1\"", &entities);
    let (status, _) = exchange(&server, &doc, "post", "/v1/is_authorized", &ask).await;
    assert_eq!(status, 200);
    let missing = question("User::\"ann\"", "view", "Project::\"nowhere\"", &[]);
    exchange(&server, &doc, "post", "/v1/is_authorized", &missing).await;
    let bad = json!({"principal": "User::\"ann\"", "action": "fly", "resource": "Project::\"p1\""});
    let (status, _) = exchange(&server, &doc, "post", "/v1/is_authorized", &bad).await;
    assert_eq!(status, 400);
    let batch = json!({"entities": entities, "requests": [
        {"principal": "User::\"ann\"", "action": "view", "resource": "Project::\"p1\""},
        {"principal": 7, "action": "view", "resource": "Project::\"p1\""},
    ]});
    let (_, answer) = exchange(&server, &doc, "post", "/v1/is_authorized/batch", &batch).await;
    assert_eq!(answer["results"][1]["error"]["index"], 1);
    let actions =
        json!({"principal": "User::\"ann\"", "resource": "Project::\"p1\"", "entities": entities});
    exchange(&server, &doc, "post", "/v1/allowed_actions", &actions).await;
    let plan = json!({"principal": "User::\"erin\"", "action": "edit", "resource_type": "Project"});
    let (status, _) = exchange(&server, &doc, "post", "/v1/plan", &plan).await;
    assert_eq!(status, 200);
    let list =
        json!({"principal": "User::\"erin\"", "action": "view", "resource_type": "Organization"});
    let (status, answer) = exchange(&server, &doc, "post", "/v1/list", &list).await;
    assert_eq!(
        (status, &answer["ids"]),
        (200, &json!(["acme"])),
        "{answer}"
    );
    let subjects = json!({"actions": ["view", "create_project"], "resource": "Organization::\"acme\"", "principal_type": "User"});
    let (status, answer) = exchange(&server, &doc, "post", "/v1/list/subjects", &subjects).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["subjects"],
        json!([{"id": "erin", "actions": ["view", "create_project"]}])
    );
    for path in [
        "/v1/schema",
        "/v1/status",
        "/v1/policies",
        "/healthz",
        "/readyz",
        "/openapi.json",
    ] {
        let (status, _) = exchange(&server, &doc, "get", path, &Value::Null).await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, _) = exchange(&server, &doc, "post", "/v1/reload", &Value::Null).await;
    assert_eq!(status, 200);
    server.stop().await;

    let dir = common::root().join("examples/authzen/search");
    let server = start(Options {
        sources: Some(Sources {
            policies: dir.join("policies"),
            schema: dir.join("search.cedarschema"),
            entities: Some(dir.join("entities.json")),
        }),
        config: Config::default(),
        ..Options::default()
    })
    .await;
    let subject = json!({"type": "user", "id": "erin"});
    let one = json!({"subject": subject, "action": {"name": "view"},
        "resource": {"type": "record", "id": "105"}});
    exchange(&server, &doc, "post", "/access/v1/evaluation", &one).await;
    let many = json!({"subject": subject, "action": {"name": "view"}, "evaluations": [
        {"resource": {"type": "record", "id": "105"}},
        {"resource": {"type": "folder", "id": "1"}},
    ]});
    exchange(&server, &doc, "post", "/access/v1/evaluations", &many).await;
    exchange(&server, &doc, "post", "/access/v1/evaluations", &one).await;
    let search = json!({"subject": {"type": "user"}, "action": {"name": "view"},
        "resource": {"type": "record", "id": "105"}, "page": {"limit": 2}});
    exchange(&server, &doc, "post", "/access/v1/search/subject", &search).await;
    let search =
        json!({"subject": subject, "action": {"name": "view"}, "resource": {"type": "record"}});
    exchange(&server, &doc, "post", "/access/v1/search/resource", &search).await;
    let search = json!({"subject": subject, "resource": {"type": "record", "id": 117}});
    exchange(&server, &doc, "post", "/access/v1/search/action", &search).await;
    exchange(
        &server,
        &doc,
        "get",
        "/.well-known/authzen-configuration",
        &Value::Null,
    )
    .await;
    server.stop().await;
}

/// `/v1/schema`: Cedar's JSON form, and a JSON Schema per entity type that every bundled
/// fixture entity satisfies and a broken one does not.
#[tokio::test]
async fn the_schema_route_gives_json_schemas_that_check_entities() {
    let server = common::server::start_default().await;
    let (status, text) = server.get("/v1/schema").await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&text).expect("json");
    assert!(
        answer["cedar"][""]["entityTypes"]["Project"].is_object(),
        "{answer}"
    );
    assert_eq!(answer["actions"]["view"]["uid"], "Action::\"view\"");
    let types = answer["entity_types"].as_object().expect("types");
    let validator =
        |ty: &str| jsonschema::validator_for(&types[ty]).unwrap_or_else(|e| panic!("{ty}: {e}"));
    let mut checked = 0;
    for fixture in ["individual.json", "organization.json", "items.json"] {
        let path = common::root().join("tests/policies/fixtures").join(fixture);
        let entities: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
        for entity in entities {
            let uid = entity["uid"].as_str().expect("a string uid");
            let ty = uid.split("::").next().expect("type");
            let errors: Vec<String> = validator(ty)
                .iter_errors(&entity)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{entity}: {errors:?}");
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} fixture entities");
    let project = validator("Project");
    let good = project_entity();
    assert!(project.is_valid(&good));
    for (what, broken) in [
        ("an attribute of the wrong type", {
            let mut e = project_entity();
            e["attrs"]["public"] = json!("yes");
            e
        }),
        ("an attribute the schema does not declare", {
            let mut e = project_entity();
            e["attrs"]["colour"] = json!("red");
            e
        }),
        ("a parent of a type the schema does not allow", {
            let mut e = project_entity();
            e["parents"] = json!(["User::\"olga\""]);
            e
        }),
        ("a reference of the wrong type", {
            let mut e = project_entity();
            e["attrs"]["owner"] = json!({"type": "Group", "id": "g"});
            e
        }),
    ] {
        assert!(!project.is_valid(&broken), "{what} passed: {broken}");
    }
    server.stop().await;
}

/// A Project as the sidecar accepts it, built from the bundled set's own fixture.
fn project_entity() -> Value {
    let path = common::root().join("tests/policies/fixtures/individual.json");
    let entities: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    entities
        .into_iter()
        .find(|e| e["uid"] == "Project::p1")
        .expect("Project::p1 in the fixture")
}

/// The document speaks to hosts in any language: no description carries a Rust doc link,
/// and every object schema says what it holds (its properties, or what other keys may hold),
/// so that generated types accept a context or attributes (a bare `"type": "object"` is
/// `Record<string, never>` to openapi-typescript).
#[test]
fn the_document_has_no_rust_links_and_no_closed_empty_objects() {
    fn walk(at: &str, value: &Value, faults: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                let types = match map.get("type") {
                    Some(Value::String(t)) => vec![t.as_str()],
                    Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                if types.contains(&"object")
                    && !map.contains_key("properties")
                    && !map.contains_key("additionalProperties")
                {
                    faults.push(format!("{at}: an object with no properties, closed"));
                }
                for key in ["description", "summary"] {
                    if let Some(Value::String(text)) = map.get(key)
                        && (text.contains("crate::") || text.contains("[`"))
                    {
                        faults.push(format!("{at}/{key}: a Rust doc link: {text}"));
                    }
                }
                for (key, value) in map {
                    walk(&format!("{at}/{key}"), value, faults);
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    walk(&format!("{at}/{i}"), value, faults);
                }
            }
            _ => {}
        }
    }
    let mut faults = Vec::new();
    walk("", &checked_in(), &mut faults);
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}
