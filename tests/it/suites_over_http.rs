//! Every case of the bundled policy suites, asked over HTTP one by one: the sidecar gives the
//! answers the suites expect (the whole contract's table), the same as the test runner, which
//! asks them in batches; and every list's plan, as the runner made it.

use crate::common;

use gatehouse::decide::Decider;
use gatehouse::testing::{self, FixtureCache};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_answers_every_bundled_case_as_expected() {
    let server = common::server::start_default().await;
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
                principal: json!(list.principal),
                action: json!(list.action),
                resource_type: list.resource_type.clone(),
                context: Some(list.context.clone()),
                entities: Some(json!(*list.entities)),
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
}
