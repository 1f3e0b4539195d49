//! Hostile input and load limits: always a clear 4xx (or a 503 when saturated), never a 5xx,
//! a panic, a hang or unbounded work.

use crate::common;

use std::io::Write;
use std::time::Duration;

use common::server::{Options, bundled_app, oneshot, project, question, runtime, start, user};
use gatehouse::config::Config;
use proptest::prelude::*;
use serde_json::{Value, json};

/// One app for every generated case: loading the policy set per case would dominate.
fn shared_app() -> &'static axum::Router {
    static APP: std::sync::OnceLock<axum::Router> = std::sync::OnceLock::new();
    APP.get_or_init(|| bundled_app(Config::default()).0)
}

fn valid() -> Value {
    question(
        "User::\"vera\"",
        "edit",
        "Project::\"p1\"",
        &[
            user("vera", &["p1.editors"]),
            project("p1", "olga", "processing", &[]),
        ],
    )
}

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("User::\"vera\"")),
        Just(json!({"type": "User", "id": "vera"})),
        Just(json!({"__extn": {"fn": "datetime", "arg": "2026-01-01"}})),
        Just(json!({"__extn": {"fn": "nope", "arg": "x"}})),
        Just(json!({"__entity": {"type": "Group", "id": "g"}})),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid question with one path replaced by any value.
fn mutated() -> impl Strategy<Value = Value> {
    let paths = prop_oneof![
        Just("/principal"),
        Just("/action"),
        Just("/resource"),
        Just("/context"),
        Just("/entities"),
        Just("/entities/0"),
        Just("/entities/0/uid"),
        Just("/entities/0/parents"),
        Just("/entities/0/parents/0"),
        Just("/entities/1/attrs"),
        Just("/entities/1/attrs/phase"),
        Just("/entities/1/attrs/owner"),
        Just("/entities/1/attrs/archived"),
        Just("/entities/1/uid/type"),
        Just("/action/id"),
    ];
    (paths, json_value()).prop_map(|(path, value)| {
        let mut q = valid();
        if let Some(slot) = q.pointer_mut(path) {
            *slot = value;
        }
        q
    })
}

fn assert_clean(status: u16, answer: &Value, what: &str) {
    assert!(
        matches!(status, 200 | 400 | 413),
        "{what}: status {status}: {answer}"
    );
    if status != 200 {
        assert!(
            answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
            "{what}: {answer}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_get_a_clean_answer(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let app = shared_app();
        for path in ["/v1/is_authorized", "/v1/is_authorized/batch", "/v1/allowed_actions", "/v1/plan"] {
            let (status, answer) = runtime().block_on(oneshot(app, path, bytes.clone()));
            assert_clean(status, &answer, path);
        }
    }

    #[test]
    fn any_mutation_of_a_question_gets_a_clean_answer(q in mutated()) {
        let app = shared_app();
        let body = serde_json::to_vec(&q).expect("json");
        let (status, answer) = runtime().block_on(oneshot(app, "/v1/is_authorized", body.clone()));
        assert_clean(status, &answer, &q.to_string());
        let batch = serde_json::to_vec(&json!({"requests": [q.clone(), valid()]})).expect("json");
        let (status, answer) = runtime().block_on(oneshot(app, "/v1/is_authorized/batch", batch));
        assert_clean(status, &answer, "batch");
        let allowed = serde_json::to_vec(&json!({"principal": q["principal"], "resource": q["resource"], "entities": q["entities"]})).expect("json");
        let (status, answer) = runtime().block_on(oneshot(app, "/v1/allowed_actions", allowed));
        assert_clean(status, &answer, "allowed_actions");
        let resource_type = q["resource"]["type"].clone();
        let plan = serde_json::to_vec(&json!({"principal": q["principal"], "action": q["action"], "resource_type": resource_type, "context": q["context"], "entities": q["entities"]})).expect("json");
        let (status, answer) = runtime().block_on(oneshot(app, "/v1/plan", plan));
        assert_clean(status, &answer, "plan");
    }

    #[test]
    fn any_json_body_gets_a_clean_answer(v in json_value()) {
        let app = shared_app();
        let (status, answer) = runtime().block_on(oneshot(app, "/v1/is_authorized", serde_json::to_vec(&v).expect("json")));
        assert_clean(status, &answer, &v.to_string());
    }
}

#[test]
fn pathological_inputs() {
    let config = Config {
        max_body: 8 << 20,
        ..Config::default()
    };
    let (app, _) = bundled_app(config);
    let send = |path: &str, body: Vec<u8>| runtime().block_on(oneshot(&app, path, body));

    let deep = format!(
        "{{\"principal\": {}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, answer) = send("/v1/is_authorized", deep.into_bytes());
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("malformed_json"))
    );

    let mut huge = valid();
    huge["principal"] = json!(format!("User::\"{}\"", "x".repeat(4 << 20)));
    let (status, _) = send(
        "/v1/is_authorized",
        serde_json::to_vec(&huge).expect("json"),
    );
    assert_eq!(
        status, 200,
        "a 4 MiB id under the body limit is just an unknown user"
    );

    let items: Vec<Value> = (0..10_000).map(|_| json!({"principal": "User::\"a\"", "action": "Action::\"view\"", "resource": "Project::\"p\""})).collect();
    let (status, answer) = send(
        "/v1/is_authorized/batch",
        serde_json::to_vec(&json!({"requests": items})).expect("json"),
    );
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("batch_too_large"))
    );

    let many: Vec<Value> = (0..10_001).map(|i| user(&format!("u{i}"), &[])).collect();
    let (status, answer) = send(
        "/v1/is_authorized",
        serde_json::to_vec(&question("User::\"a\"", "view", "Project::\"p\"", &many))
            .expect("json"),
    );
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("too_many_entities"))
    );

    // Parents can only point at Groups, which have no parents: no cycle can be declared.
    let cycle = vec![
        json!({"uid": {"type": "Group", "id": "a"}, "attrs": {}, "parents": [{"type": "Group", "id": "b"}]}),
        json!({"uid": {"type": "Group", "id": "b"}, "attrs": {}, "parents": [{"type": "Group", "id": "a"}]}),
    ];
    let (status, answer) = send(
        "/v1/is_authorized",
        serde_json::to_vec(&question("User::\"a\"", "view", "Project::\"p\"", &cycle))
            .expect("json"),
    );
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("invalid_entities")),
        "{answer}"
    );
    // A user who is its own group's member twice over is fine.
    let twice = vec![user("a", &["g", "g"])];
    let (status, _) = send(
        "/v1/is_authorized",
        serde_json::to_vec(&question("User::\"a\"", "view", "Project::\"p\"", &twice))
            .expect("json"),
    );
    assert_eq!(status, 200);
}

/// Past `--max-concurrency`, a question is shed with 503 and `Retry-After`; health and
/// metrics still answer (issue 23: a liveness probe that is shed restarts the pod under
/// load).
#[tokio::test]
async fn saturation_answers_503_with_retry_after_but_health_and_metrics_answer() {
    let server = start(Options {
        config: Config {
            max_concurrency: 1,
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    let addr = server.base.trim_start_matches("http://").to_string();
    // Hold the only slot with a request whose body never finishes arriving.
    let held = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        write!(
            stream,
            "POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{"
        )
        .expect("write");
        std::thread::sleep(Duration::from_millis(800));
        drop(stream);
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = server
        .client
        .post(format!("{}/v1/is_authorized", server.base))
        .body(serde_json::to_vec(&valid()).expect("json"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "overloaded");
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(server.get(path).await.0, 200, "{path} while saturated");
    }
    held.join().expect("join");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = server.post("/v1/is_authorized", &valid()).await;
    assert_eq!(status, 200, "the slot is free again");
    // The shed request is counted: the metrics layer is outside the limit.
    let (_, metrics) = server.get("/metrics").await;
    for needle in [
        "gatehouse_http_requests_shed_total 1",
        "gatehouse_http_requests_total{route=\"/v1/is_authorized\",method=\"POST\",status=\"503\"} 1",
        "gatehouse_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(needle), "`{needle}` not in\n{metrics}");
    }
    server.stop().await;
}

/// Sends `head` (and no body) on a connection of its own, and reads the answer for up to
/// `wait`.
fn answer_to_head(base: &str, head: &str, wait: Duration) -> String {
    use std::io::Read;
    let mut stream =
        std::net::TcpStream::connect(base.trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    stream.write_all(head.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.ends_with(b"}}") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A `Content-Length` over the limit is refused at once with 413 naming the limit, before
/// any of the body arrives (it waited for the request timeout and answered 408).
#[tokio::test]
async fn a_huge_content_length_is_413_at_once() {
    let server = start(Options {
        config: Config {
            request_timeout: 30,
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    let base = server.base.clone();
    let answer = tokio::task::spawn_blocking(move || {
        answer_to_head(
            &base,
            "POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
            Duration::from_secs(5),
        )
    })
    .await
    .expect("join");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body: Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).expect("body")).expect("json");
    assert_eq!(body["error"]["code"], "body_too_large", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("at most 1048576"),
        "{body}"
    );
    // A body of no announced length is cut off at the limit, and the answer names the flag.
    let base = server.base.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let chunk = vec![b' '; (1 << 20) + 1];
        let mut head = format!(
            "POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            chunk.len()
        )
        .into_bytes();
        head.extend_from_slice(&chunk);
        head.extend_from_slice(b"\r\n0\r\n\r\n");
        answer_to_head(&base, &String::from_utf8(head).expect("ascii"), Duration::from_secs(5))
    })
    .await
    .expect("join");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("--max-body"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_slow_request_gets_408_in_the_error_shape_and_is_counted() {
    let server = start(Options {
        config: Config {
            request_timeout: 1,
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    let addr = server.base.trim_start_matches("http://").to_string();
    // A body that never finishes arriving.
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            stream,
            "POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{"
        )
        .expect("write");
        let mut answer = Vec::new();
        let mut buf = [0; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || answer.ends_with(b"}}") {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&answer).contains("}}") {
                break;
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("join");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).expect("body");
    let body: Value = serde_json::from_str(body).expect("json body");
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
    let (_, metrics) = server.get("/metrics").await;
    let needle = "gatehouse_http_requests_total{route=\"/v1/is_authorized\",method=\"POST\",status=\"408\"} 1";
    assert!(metrics.contains(needle), "`{needle}` not in\n{metrics}");
    server.stop().await;
}

/// `value` as JSON text with the first key of its `k`-th non-empty object (in document
/// order) written a second time, and that key's path; `None` when it has fewer.
fn with_duplicate(value: &Value, k: usize) -> Option<(String, String)> {
    fn write(
        value: &Value,
        path: &str,
        k: &mut usize,
        out: &mut String,
        found: &mut Option<String>,
    ) {
        match value {
            Value::Object(map) => {
                // Only objects with a key to write twice are counted.
                let mine = *k == 0 && !map.is_empty();
                if !map.is_empty() {
                    *k = k.wrapping_sub(1);
                }
                out.push('{');
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    let inner = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    write(item, &inner, k, out, found);
                }
                if mine {
                    let (key, item) = map.iter().next().expect("non-empty");
                    out.push(',');
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    out.push_str(&item.to_string());
                    *found = Some(if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    });
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, &format!("{path}[{i}]"), k, out, found);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let (mut out, mut found, mut k) = (String::new(), None, k);
    write(value, "", &mut k, &mut out, &mut found);
    found.map(|path| (out, path))
}

/// A question, a batch, an allowed-actions question, a plan and the AuthZEN bodies, each
/// valid.
fn every_body() -> Vec<(&'static str, Value)> {
    let entities = json!([
        {"uid": {"type": "User", "id": "vera"}, "attrs": {}, "parents": [{"type": "Group", "id": "p1.editors"}]},
        project("p1", "olga", "processing", &[]),
    ]);
    let attrs = project("p1", "olga", "processing", &[])["attrs"].clone();
    let party = |kind: &str, id: &str| json!({"type": kind, "id": id, "properties": attrs});
    vec![
        (
            "/v1/is_authorized",
            json!({"principal": {"type": "User", "id": "vera"}, "action": "edit", "resource": "Project::\"p1\"", "context": {}, "entities": entities}),
        ),
        (
            "/v1/is_authorized/batch",
            json!({"entities": entities, "requests": [{"principal": "User::\"vera\"", "action": "share", "resource": "Project::\"p1\"", "context": {"role": "viewer"}}]}),
        ),
        (
            "/v1/allowed_actions",
            json!({"principal": {"type": "User", "id": "vera"}, "resource": "Project::\"p1\"", "context": {"role": "viewer"}, "entities": entities}),
        ),
        (
            "/v1/plan",
            json!({"principal": {"type": "User", "id": "vera"}, "action": "share", "resource_type": "Project", "context": {"role": "viewer"}, "entities": entities}),
        ),
        (
            "/access/v1/evaluation",
            json!({"subject": {"type": "user", "id": "vera"}, "action": {"name": "edit"}, "resource": party("project", "p1")}),
        ),
        (
            "/access/v1/evaluations",
            json!({"subject": {"type": "user", "id": "vera"}, "evaluations": [{"action": {"name": "edit"}, "resource": party("project", "p1")}]}),
        ),
        (
            "/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "action": {"name": "edit"}, "resource": party("project", "p1")}),
        ),
        (
            "/access/v1/search/resource",
            json!({"subject": {"type": "user", "id": "vera"}, "action": {"name": "edit"}, "resource": {"type": "project"}}),
        ),
        (
            "/access/v1/search/action",
            json!({"subject": {"type": "user", "id": "vera"}, "resource": party("project", "p1")}),
        ),
    ]
}

/// Issue 23: inside a uid, an entity's `attrs` or an AuthZEN body, the last of two equal
/// keys won (`{"type": "User", "id": "stan", "id": "olga"}` was olga, allowed to delete her
/// project), while a proxy reading the first saw stan. Every key written twice, in every
/// object of every body of every route, is now a 400 naming its path.
#[test]
fn a_key_written_twice_is_refused_in_every_object_of_every_body() {
    let app = shared_app();
    let send =
        |path: &str, body: &str| runtime().block_on(oneshot(app, path, body.as_bytes().to_vec()));
    // The issue's question: stan may not delete olga's project; olga may.
    let p1 = serde_json::to_string(&[project("p1", "olga", "processing", &[])]).expect("json");
    let delete = |principal: &str| {
        format!(
            r#"{{"principal": {principal}, "action": "delete", "resource": "Project::\"p1\"", "entities": {p1}}}"#
        )
    };
    assert_eq!(
        send(
            "/v1/is_authorized",
            &delete(r#"{"type": "User", "id": "olga"}"#)
        )
        .1["decision"],
        "Allow"
    );
    assert_eq!(
        send(
            "/v1/is_authorized",
            &delete(r#"{"type": "User", "id": "stan"}"#)
        )
        .1["decision"],
        "Deny"
    );
    for (principal, field) in [
        (
            r#"{"type": "User", "id": "stan", "id": "olga"}"#,
            "principal.id",
        ),
        (
            r#"{"type": "User", "id": "stan", "\u0069d": "olga"}"#,
            "principal.id",
        ),
    ] {
        let (status, answer) = send("/v1/is_authorized", &delete(principal));
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    // Every object of every body.
    let mut checked = 0;
    for (path, body) in every_body() {
        // Read as written without duplicates.
        let (status, answer) = send(path, &body.to_string());
        assert_eq!(status, 200, "{path}: the body without duplicates: {answer}");
        for k in 0.. {
            let Some((text, field)) = with_duplicate(&body, k) else {
                break;
            };
            let (status, answer) = send(path, &text);
            // A key of a batch's item is that item's error; a key of an entity is the
            // entity's fault, found where it is parsed.
            let (item, field) = match field.strip_prefix("requests[0].") {
                Some(rest) => (Some(0), rest.to_string()),
                None => (None, field),
            };
            let code = if field.starts_with("entities[") {
                "invalid_entities"
            } else {
                "invalid_request"
            };
            let (status, error) = match item {
                Some(i) => {
                    assert_eq!(status, 200, "{path}: {text}: {answer}");
                    (400, answer["results"][i]["error"].clone())
                }
                None => (status, answer["error"].clone()),
            };
            assert_eq!(
                (status, error["code"].as_str(), error["field"].as_str()),
                (400, Some(code), Some(field.as_str())),
                "{path}: {text}: {answer}"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} objects");
}

/// The other small defects of issue 23: a positional array is not a question, and
/// `allowed_actions` refuses a context key no action asked declares, as a single question
/// does.
#[test]
fn positional_arrays_and_undeclared_context_keys_are_refused() {
    let app = shared_app();
    let send = |path: &str, body: Value| {
        runtime().block_on(oneshot(app, path, serde_json::to_vec(&body).expect("json")))
    };
    let positional = json!(["User::\"vera\"", "edit", "Project::\"p1\""]);
    let (status, answer) = send("/v1/is_authorized", positional.clone());
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("must be a JSON object"),
        "{answer}"
    );
    let (status, answer) = send(
        "/v1/is_authorized/batch",
        json!({"requests": [positional, valid()]}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"][0]["error"]["code"], "invalid_request",
        "{answer}"
    );
    assert_eq!(answer["results"][1]["decision"], "Allow", "{answer}");
    for path in ["/v1/allowed_actions", "/v1/plan", "/access/v1/evaluation"] {
        let (status, answer) = send(path, json!([1, 2, 3]));
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{path}: {answer}"
        );
    }

    let entities = valid()["entities"].clone();
    let asked = |context: Value| json!({"principal": "User::\"vera\"", "resource": "Project::\"p1\"", "context": context, "entities": entities});
    let (status, answer) = send("/v1/allowed_actions", asked(json!({"rol": "viewer"})));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_context", "{answer}");
    assert_eq!(answer["error"]["field"], "context.rol", "{answer}");
    // A key one of the actions declares is that action's, and the others do without it.
    let (status, answer) = send("/v1/allowed_actions", asked(json!({"role": "viewer"})));
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = send("/v1/is_authorized", {
        let mut q = valid();
        q["context"] = json!({"rol": "viewer"});
        q
    });
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("invalid_context")),
        "{answer}"
    );
}

/// A JSON tree whose objects may repeat a key, written with escapes and spacing of its own.
#[derive(Debug, Clone)]
enum Node {
    Leaf(Value),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        Just(Node::Leaf(Value::Null)),
        any::<bool>().prop_map(|b| Node::Leaf(json!(b))),
        any::<i32>().prop_map(|n| Node::Leaf(json!(n))),
        "[a-c\"\\\\é{},:\\[\\] ]{0,6}".prop_map(|s| Node::Leaf(json!(s))),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Node::Array),
            prop::collection::vec(
                (
                    prop_oneof![4 => "[ab\"é]{1,2}", 1 => Just("entities".to_string())],
                    inner
                ),
                0..5
            )
            .prop_map(Node::Object),
        ]
    })
}

/// Writes `node`, each key escaped (`\u` for every character) when `escape` says so.
fn write_node(node: &Node, escape: &mut impl Iterator<Item = bool>, out: &mut String) {
    match node {
        Node::Leaf(value) => out.push_str(&value.to_string()),
        Node::Array(items) => {
            out.push_str("[ ");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(" ,");
                }
                write_node(item, escape, out);
            }
            out.push(']');
        }
        Node::Object(entries) => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if escape.next().unwrap_or(false) {
                    out.push('"');
                    for unit in key.encode_utf16() {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                    out.push('"');
                } else {
                    out.push_str(&Value::String(key.clone()).to_string());
                }
                out.push_str(" :\n");
                write_node(value, escape, out);
            }
            out.push('}');
        }
    }
}

/// The path of the first key written twice, in document order, read off the tree; with
/// `skip`, not looking into an array under a key `entities`.
fn first_duplicate(node: &Node, path: &str, skip: bool) -> Option<String> {
    match node {
        Node::Leaf(_) => None,
        Node::Array(_) if skip && (path == "entities" || path.ends_with(".entities")) => None,
        Node::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| first_duplicate(item, &format!("{path}[{i}]"), skip)),
        Node::Object(entries) => {
            let mut seen = std::collections::HashSet::new();
            entries.iter().find_map(|(key, value)| {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if !seen.insert(key) {
                    return Some(at);
                }
                first_duplicate(value, &at, skip)
            })
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    /// The hand-written scan finds exactly the first key written twice (escaped or not), and
    /// nothing in a document without one.
    #[test]
    fn the_duplicate_scan_finds_exactly_the_first_key_written_twice(
        tree in node(),
        escapes in prop::collection::vec(any::<bool>(), 64),
    ) {
        let mut text = String::new();
        write_node(&tree, &mut escapes.into_iter(), &mut text);
        prop_assert!(serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok(), "{}", text);
        use gatehouse::json_keys::{Skip, duplicate_key};
        prop_assert_eq!(
            duplicate_key(text.as_bytes(), Skip::Nothing),
            first_duplicate(&tree, "", false),
            "{}",
            text
        );
        prop_assert_eq!(
            duplicate_key(text.as_bytes(), Skip::EntityLists),
            first_duplicate(&tree, "", true),
            "skipping entity lists: {}",
            text
        );
    }
}
