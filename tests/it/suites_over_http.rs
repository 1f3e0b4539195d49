//! Every case of the bundled policy suites, asked over HTTP: the sidecar gives the answers
//! the suites expect (the whole DOMAIN.md table), the same as in-process evaluation.

use crate::common;

use gatehouse::decide::decide;
use gatehouse::testing::{self, FixtureCache};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_answers_every_bundled_case_as_expected() {
    let server = common::server::start_default().await;
    let snapshot = server.store.current();
    let files = testing::discover(&[common::root().join("tests/policies")]).expect("suites");
    let mut fixtures = FixtureCache::default();
    let mut asked = 0;
    for file in &files {
        let suite = testing::load_suite(file, &snapshot, &mut fixtures).expect("suite loads");
        for case in &suite.cases {
            let request = case
                .request
                .as_ref()
                .expect("every bundled case is a valid request");
            let local = decide(&snapshot, request, &case.entities);
            let (status, answer) = server.post("/v1/is_authorized", &case.question()).await;
            assert_eq!(status, 200, "{} › {}: {answer}", suite.name, case.name);
            let expected_body = json!({
                "decision": local.decision,
                "diagnostics": {"reason": local.reasons, "errors": local.errors},
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
    }
    assert!(asked >= 1000, "only {asked} cases asked");
    server.stop().await;
}
