//! Deciding fails closed: where Cedar skips a policy that errored, gatehouse denies.

use crate::common;

use cedar_policy::{Authorizer, Decision as CedarDecision};
use gatehouse::cedar_json::{Part, parse_entities};
use gatehouse::decide::{Verdict, decide, input, policies_for};
use serde_json::json;

#[test]
fn a_forbid_that_cannot_evaluate_turns_allow_into_deny() {
    let snapshot = common::bundled();
    // The host forgot the organization entity: the owner's permit still matches, but the
    // forbid that keeps sharing inside the organization cannot evaluate.
    let entities = json!([
        {"uid": {"type": "User", "id": "otto"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Project", "id": "op1"}, "attrs": {
            "owner": {"type": "User", "id": "otto"}, "organization": {"type": "Organization", "id": "acme"},
            "admins": {"type": "Group", "id": "a"}, "managers": {"type": "Group", "id": "m"},
            "editors": {"type": "Group", "id": "e"}, "viewers": {"type": "Group", "id": "v"},
            "phase": "planning", "archived": false, "public": false,
            "downloads_enabled": false, "editors_can_share": false}, "parents": []}
    ]);
    let entities = parse_entities(&snapshot.schema, &[("entities", &entities)]).expect("entities");
    let request = input::build_request(
        &snapshot,
        "User::\"otto\"".parse().expect("uid"),
        "Action::\"share\"".parse().expect("uid"),
        "Project::\"op1\"".parse().expect("uid"),
        Some(&json!({"role": "viewer", "target": {"type": "User", "id": "outsider"}})),
    )
    .expect("request");

    let cedar = Authorizer::new().is_authorized(&request, &snapshot.policies, &entities);
    assert_eq!(
        cedar.decision(),
        CedarDecision::Allow,
        "Cedar alone would allow"
    );
    let cedar_errors: Vec<String> = cedar
        .diagnostics()
        .errors()
        .map(|e| e.to_string())
        .collect();
    assert!(
        cedar_errors
            .iter()
            .any(|e| e.contains("sharing.target-in-organization")),
        "{cedar_errors:?}"
    );

    let decision = decide(&snapshot, &request, &entities);
    assert_eq!(decision.decision, Verdict::Deny);
    assert!(decision.reasons.is_empty());
    assert_eq!(
        decision.errors, cedar_errors,
        "every evaluation error is reported"
    );
}

#[test]
fn input_errors_name_the_field_and_value() {
    let snapshot = common::bundled();
    let uid = |s: &str| s.parse().expect("uid");
    let err = input::build_request(
        &snapshot,
        uid("User::\"a\""),
        uid("Action::\"edt\""),
        uid("Project::\"p\""),
        None,
    )
    .expect_err("unknown action");
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("action", "unknown action `Action::\"edt\"`")
    );

    let err = input::build_request(
        &snapshot,
        uid("Group::\"g\""),
        uid("Action::\"view\""),
        uid("Project::\"p\""),
        None,
    )
    .expect_err("wrong principal type");
    assert_eq!(err.field, "principal");
    assert!(
        err.message.contains("`Group::\"g\"`") && err.message.contains("`User`"),
        "{}",
        err.message
    );

    let err = input::build_request(
        &snapshot,
        uid("User::\"a\""),
        uid("Action::\"request_access\""),
        uid("Project::\"p\""),
        None,
    )
    .expect_err("wrong resource type");
    assert_eq!(err.field, "resource");
    assert!(err.message.contains("`ShareToken`"), "{}", err.message);

    let err = input::build_request(
        &snapshot,
        uid("User::\"a\""),
        uid("Action::\"share\""),
        uid("Project::\"p\""),
        Some(&json!({"role": 1})),
    )
    .expect_err("bad context");
    assert_eq!(err.field, "context");

    let bad =
        json!([{"uid": {"type": "Project", "id": "p1"}, "attrs": {"phase": 7}, "parents": []}]);
    let err = parse_entities(&snapshot.schema, &[("entities", &bad)]).expect_err("bad entity");
    assert_eq!(err.field, "entities");
    assert!(err.message.contains("`Project::\"p1\"`"), "{}", err.message);

    let err = input::parse_uid(Part::Principal, "principal", &json!(42)).expect_err("not a uid");
    assert_eq!(
        err.message,
        "`principal` must be an entity uid such as `User::\"alice\"`, got `42`"
    );
    let err = input::parse_uid(Part::Action, "action", &json!(42)).expect_err("not a uid");
    assert_eq!(
        err.message,
        "`action` must be an entity uid such as `Action::\"view\"` (or the action's id alone, `\"view\"`), got `42`"
    );
}

#[test]
fn the_index_decides_every_bundled_case_as_the_full_set() {
    use gatehouse::testing::{self, FixtureCache};
    let snapshot = common::bundled();
    let (max, mean) = snapshot.index.sizes();
    assert!(
        max < snapshot.info.len(),
        "the index narrows the set: max {max}"
    );
    eprintln!(
        "index: at most {max} policies per (action, resource type), {mean:.1} on average, of {}",
        snapshot.info.len()
    );
    let files = testing::discover(&[common::root().join("tests/policies")]).expect("suites");
    let mut fixtures = FixtureCache::default();
    let mut compared = 0;
    // Cases share their entity list (a suite's, a matrix's): parse each list once.
    let mut parsed: Vec<(
        std::sync::Arc<Vec<serde_json::Value>>,
        std::rc::Rc<cedar_policy::Entities>,
    )> = Vec::new();
    for file in &files {
        let suite = testing::load_suite(file, &snapshot, &mut fixtures).expect("suite");
        for case in &suite.cases {
            let uid = |s: &str| s.parse().expect("uid");
            let request = &input::build_request(
                &snapshot,
                uid(&case.principal),
                uid(&case.action),
                uid(&case.resource),
                Some(&case.context),
            )
            .expect("request");
            let entities = match parsed
                .iter()
                .find(|(e, _)| std::sync::Arc::ptr_eq(e, &case.entities))
            {
                Some((_, entities)) => std::rc::Rc::clone(entities),
                None => {
                    let entities = std::rc::Rc::new(
                        parse_entities(
                            &snapshot.schema,
                            &[(
                                "entities",
                                &serde_json::Value::Array(case.entities.to_vec()),
                            )],
                        )
                        .expect("entities"),
                    );
                    parsed.push((
                        std::sync::Arc::clone(&case.entities),
                        std::rc::Rc::clone(&entities),
                    ));
                    entities
                }
            };
            let full = Authorizer::new().is_authorized(request, &snapshot.policies, &entities);
            let indexed = Authorizer::new().is_authorized(
                request,
                policies_for(&snapshot, request),
                &entities,
            );
            assert_eq!(full.decision(), indexed.decision(), "{}", case.name);
            assert_eq!(
                common::reasons(&full),
                common::reasons(&indexed),
                "{}",
                case.name
            );
            let errors = |r: &cedar_policy::Response| {
                r.diagnostics()
                    .errors()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
            };
            assert_eq!(errors(&full), errors(&indexed), "{}", case.name);
            compared += 1;
        }
    }
    assert!(compared > 1000);
}

/// The organization-project example of docs/DOMAIN.md decides as the text says, and so do
/// the two variants it describes.
#[test]
fn the_domain_documents_example_decides_as_described() {
    use gatehouse::decide::Question;
    use gatehouse::decide::question::evaluate;
    let text = std::fs::read_to_string(common::root().join("docs/DOMAIN.md")).expect("DOMAIN.md");
    let section = text
        .split("### An organization's project")
        .nth(1)
        .expect("the section");
    let example = section
        .split("```json")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the JSON example");
    let example: serde_json::Value = serde_json::from_str(example).expect("valid JSON");
    let snapshot = common::bundled();
    let ask = |q: &serde_json::Value| {
        let question: Question = serde_json::from_value(q.clone()).expect("question");
        evaluate(&snapshot, &question).expect("answer")
    };

    let decision = ask(&example);
    assert_eq!(decision.decision, Verdict::Allow, "{decision:?}");
    assert_eq!(decision.reasons, ["sharing.editors-when-allowed"]);

    let without = |uid: &str| {
        let mut q = example.clone();
        q["entities"]
            .as_array_mut()
            .expect("entities")
            .retain(|e| e["uid"]["id"] != uid);
        q
    };
    let decision = ask(&without("acme"));
    assert_eq!(decision.decision, Verdict::Deny);
    assert!(!decision.errors.is_empty(), "{decision:?}");
    let decision = ask(&without("tom"));
    assert_eq!(decision.decision, Verdict::Deny);
    assert_eq!(decision.reasons, ["sharing.target-in-organization"]);
}
