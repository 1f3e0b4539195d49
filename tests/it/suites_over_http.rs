//! Every case of the bundled policy suites, asked over HTTP one by one: the sidecar gives the
//! answers the suites expect (the whole contract's table), the same as the test runner, which
//! asks them in batches; and every list's plan, as the runner made it.

use crate::common;

use gatehouse::decide::{Decider, Uid};
use gatehouse::testing::{self, FixtureCache};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_answers_every_bundled_case_as_expected() {
    let server = common::server::start_default().await;
    // String uids are asked of a sidecar without caches: the caches' digests read a uid in
    // either form as the same, so a cached answer would hide a string form it cannot parse.
    let uncached = common::server::start(common::server::Options {
        config: gatehouse::config::Config {
            cache_capacity: 0,
            entity_cache_capacity: 0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let snapshot = server.store.current();
    let files = testing::discover(&[common::root().join("tests/policies")]).expect("suites");
    let mut fixtures = FixtureCache::default();
    let mut asked = 0;
    let decider = Decider::new(0, 100_000, std::time::Duration::ZERO);
    for file in &files {
        let suite = testing::load_suite(file, &snapshot, &mut fixtures).expect("suite loads");
        let local = testing::answer_cases(&decider, &snapshot, &suite.cases);
        for (case, local) in suite.cases.iter().zip(local) {
            let local = local.expect("every bundled case can be asked");
            let (status, answer) = server
                .post("/v1/is_authorized", &case.question_json())
                .await;
            assert_eq!(status, 200, "{} › {}: {answer}", suite.name, case.name);
            let expected_body = json!({
                "decision": local.decision,
                "diagnostics": {"reason": local.reasons, "errors": local.errors, "missing": local.missing},
                "policy_version": snapshot.version,
            });
            assert_eq!(answer, expected_body, "{} › {}", suite.name, case.name);
            // The one uid grammar: every uid as a string, the action by its id alone (every
            // third case, each parsed cold: no caches).
            if asked % 3 == 0 {
                let strings = in_string_form(&case.question_json());
                let (status, mut answer) = uncached.post("/v1/is_authorized", &strings).await;
                // The same set, another scratch copy: its own version.
                answer["policy_version"] = json!(snapshot.version);
                let what = format!("{} › {} (strings: {strings})", suite.name, case.name);
                assert_eq!((status, &answer), (200, &expected_body), "{what}");
            }
            assert_eq!(
                answer["decision"],
                json!(case.expect),
                "{} › {}",
                suite.name,
                case.name
            );
            if let Some(reasons) = &case.reasons {
                assert_eq!(
                    answer["diagnostics"]["reason"],
                    json!(reasons),
                    "{} › {}",
                    suite.name,
                    case.name
                );
            }
            asked += 1;
        }
        // Each list's plan over HTTP is the plan the runner checked.
        for list in &suite.lists {
            let question = gatehouse::plan::PlanQuestion {
                principal: Uid::from(list.principal.as_str()),
                action: Uid::from(list.action.as_str()),
                resource_type: list.resource_type.clone(),
                context: Some(list.context.clone()),
                entities: Some(json!(*list.entities).into()),
                consistency: None,
                condition_version: None,
            };
            let (local, _) = gatehouse::plan::Planner::new(0, std::time::Duration::ZERO)
                .plan(&decider, &snapshot, &question)
                .expect("every bundled list can be planned");
            let (status, mut answer) = server.post("/v1/plan", &json!(question)).await;
            assert_eq!(status, 200, "{} › {}: {answer}", suite.name, list.name);
            assert_eq!(answer["policy_version"], json!(snapshot.version));
            answer
                .as_object_mut()
                .expect("object")
                .remove("policy_version");
            assert_eq!(answer, json!(*local), "{} › {}", suite.name, list.name);
            asked += 1;
        }
    }
    assert!(asked >= 1000, "only {asked} cases asked");
    server.stop().await;
    uncached.stop().await;
}

/// `question` with every uid written as a string (`User::vera` for an id that is a plain
/// word, `User::"o l"` otherwise) and the action by its id alone, as the suites write them.
fn in_string_form(question: &Value) -> Value {
    fn text(ty: &str, id: &str) -> String {
        let plain = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.@+".contains(c));
        if plain {
            format!("{ty}::{id}")
        } else {
            format!("{ty}::{}", json!(id))
        }
    }
    fn uid(value: &Value) -> Option<String> {
        let value = value.get("__entity").unwrap_or(value);
        let map = value.as_object()?;
        match (map.get("type"), map.get("id"), map.len()) {
            (Some(Value::String(ty)), Some(Value::String(id)), 2) => Some(text(ty, id)),
            _ => None,
        }
    }
    fn as_string(value: &Value) -> Value {
        match value {
            Value::String(s) => match gatehouse::testing::flexible_uid(s) {
                Some(u) => json!(text(&u.type_name().to_string(), u.id().unescaped())),
                None => value.clone(),
            },
            other => uid(other).map_or_else(|| other.clone(), Value::String),
        }
    }
    let mut q = question.clone();
    q["principal"] = as_string(&q["principal"]);
    q["resource"] = as_string(&q["resource"]);
    if let Some(action) = gatehouse::testing::flexible_uid(q["action"].as_str().unwrap_or("")) {
        q["action"] = json!(action.id().unescaped());
    }
    if let Some(context) = q["context"].as_object_mut() {
        for value in context.values_mut() {
            *value = as_string(value);
        }
    }
    if let Some(entities) = q["entities"].as_array_mut() {
        for entity in entities {
            entity["uid"] = as_string(&entity["uid"]);
            if let Some(parents) = entity["parents"].as_array_mut() {
                for parent in parents {
                    *parent = as_string(parent);
                }
            }
            if let Some(attrs) = entity["attrs"].as_object_mut() {
                for value in attrs.values_mut() {
                    *value = as_string(value);
                }
            }
        }
    }
    q
}
