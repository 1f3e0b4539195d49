//! Query plans (`POST /v1/plan`): for random worlds, every user and every listable action,
//! the plan's condition and its residual policies select exactly the resources that the
//! sidecar allows when asked one by one; and the route's answers and errors.

use crate::common;

use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use common::server::{bundled_app, oneshot, runtime};
use common::world::{World, listings, world};
use gatehouse::config::Config;
use gatehouse::decide::{Decider, Question, Uid};
use gatehouse::plan::{Condition, Plan, PlanKind, PlanQuestion, Planner};
use gatehouse::policy::Snapshot;
use proptest::prelude::*;
use serde_json::{Value, json};

pub(crate) fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(common::bundled)
}

/// The plan for user `u` of the world, knowing only the users and organizations.
pub(crate) fn plan_for(w: &World, u: usize, rtype: &str, action: &str, context: &Value) -> Plan {
    let question = PlanQuestion {
        principal: Uid::new("User", World::user(u)),
        action: Uid::new("Action", action),
        resource_type: rtype.to_string(),
        context: Some(context.clone()),
        entities: Some(w.known_json().into()),
        consistency: None,
        condition_version: None,
    };
    let (plan, _) = Planner::new(0, Duration::ZERO)
        .plan(&Decider::uncached(), snapshot(), &question)
        .expect("a valid plan question");
    // As a host reads it: through its JSON, each value list named once in `sets`.
    let json = serde_json::to_value(&*plan).expect("json");
    serde_json::from_value(json).expect("a plan reads back")
}

/// The ids of `rtype` that the sidecar allows, asked one by one with every entity.
pub(crate) fn allowed_one_by_one(
    w: &World,
    u: usize,
    rtype: &str,
    action: &str,
    context: &Value,
) -> Vec<String> {
    let entities = w.all_json();
    w.ids_of(rtype)
        .into_iter()
        .filter(|id| {
            let question = Question {
                principal: Uid::new("User", World::user(u)),
                action: Uid::new("Action", action),
                resource: Uid::new(rtype, id),
                context: Some(context.clone()),
                entities: Some(entities.clone().into()),
                strict_entities: false,
                consistency: None,
            };
            let answer = gatehouse::decide::question::evaluate(snapshot(), &question)
                .expect("a valid question");
            assert!(
                answer.errors.is_empty(),
                "complete worlds evaluate without errors"
            );
            answer.decision == gatehouse::decide::Verdict::Allow
        })
        .collect()
}

fn cedar_request(u: usize, rtype: &str, id: &str, action: &str, context: &Value) -> Request {
    let action = EntityUid::from_str(&format!("Action::\"{action}\"")).expect("action");
    let context = Context::from_json_value(context.clone(), Some((&snapshot().schema, &action)))
        .expect("context");
    Request::new(
        EntityUid::from_str(&format!("User::\"{}\"", World::user(u))).expect("uid"),
        action,
        EntityUid::from_str(&format!("{rtype}::\"{id}\"")).expect("uid"),
        context,
        Some(&snapshot().schema),
    )
    .expect("request")
}

/// The ids where the plan's condition holds, each leaf evaluated by Cedar.
fn selected_by_condition(
    w: &World,
    u: usize,
    rtype: &str,
    action: &str,
    context: &Value,
    condition: &Condition,
) -> Vec<String> {
    let entities =
        Entities::from_json_value(w.all_json(), Some(&snapshot().schema)).expect("entities");
    w.ids_of(rtype)
        .into_iter()
        .filter(|id| {
            let request = cedar_request(u, rtype, id, action, context);
            gatehouse::plan::holds(condition, &request, &entities).expect("the leaves are Cedar")
        })
        .collect()
}

/// The ids that plain Cedar allows with the residual policies alone.
fn selected_by_residuals(
    w: &World,
    u: usize,
    rtype: &str,
    action: &str,
    context: &Value,
    residuals: &[String],
) -> Vec<String> {
    let policies = PolicySet::from_str(&residuals.join("\n")).expect("residuals are Cedar");
    let entities =
        Entities::from_json_value(w.all_json(), Some(&snapshot().schema)).expect("entities");
    w.ids_of(rtype)
        .into_iter()
        .filter(|id| {
            let request = cedar_request(u, rtype, id, action, context);
            Authorizer::new()
                .is_authorized(&request, &policies, &entities)
                .decision()
                == cedar_policy::Decision::Allow
        })
        .collect()
}

fn listing() -> impl Strategy<Value = (World, usize, usize)> {
    world().prop_flat_map(|w| {
        let (users, count) = (w.users, listings(w.users).len());
        (Just(w), 0..users, 0..count)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    /// The plan, its condition and its residuals select exactly what one-by-one decisions
    /// allow; every bundled listing is filterable.
    #[test]
    fn a_plan_selects_what_one_by_one_decisions_allow((w, u, l) in listing()) {
        let (rtype, action, context) = listings(w.users)[l].clone();
        let plan = plan_for(&w, u, rtype, action, &context);
        let expected = allowed_one_by_one(&w, u, rtype, action, &context);
        prop_assert!(plan.filterable, "{action} on {rtype}: {:?}", plan.unsupported);
        prop_assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        let condition = plan.condition.as_ref().expect("filterable");
        prop_assert_eq!(&selected_by_condition(&w, u, rtype, action, &context, condition), &expected,
            "condition {} for u{} {} {} {}", serde_json::to_string(condition).unwrap(), u, action, rtype, context);
        prop_assert_eq!(&selected_by_residuals(&w, u, rtype, action, &context, &plan.residuals), &expected,
            "residuals {:#?}", plan.residuals);
        match plan.kind {
            PlanKind::AlwaysAllowed => prop_assert_eq!(expected, w.ids_of(rtype)),
            PlanKind::AlwaysDenied => prop_assert!(expected.is_empty()),
            PlanKind::Conditional => {}
        }
    }
}

fn app() -> &'static (axum::Router, std::sync::Arc<gatehouse::policy::PolicyStore>) {
    static APP: OnceLock<(axum::Router, std::sync::Arc<gatehouse::policy::PolicyStore>)> =
        OnceLock::new();
    APP.get_or_init(|| bundled_app(Config::default()))
}

fn post(body: Value) -> (u16, Value) {
    runtime().block_on(oneshot(
        &app().0,
        "/v1/plan",
        serde_json::to_vec(&body).expect("json"),
    ))
}

/// The README's example: an organization editor listing what she may edit. Her groups are
/// named once, in `sets` (language 2); asked for language 1, every leaf lists them.
#[test]
fn an_organization_editor_gets_a_filter_over_her_groups() {
    let question = json!({
        "principal": "User::\"erin\"",
        "action": "Action::\"edit\"",
        "resource_type": "Project",
        "entities": [
            {"uid": {"type": "User", "id": "erin"}, "attrs": {},
             "parents": [{"type": "Group", "id": "acme.editors"}, {"type": "Group", "id": "acme.members"}]}
        ]
    });
    let mut old = question.clone();
    old["condition_version"] = json!(1);
    let (status, plan_v1) = post(old);
    assert_eq!(status, 200, "{plan_v1}");
    assert_eq!(plan_v1["condition_version"], 1);
    assert!(plan_v1.get("sets").is_none(), "{plan_v1}");
    let (status, plan) = post(question);
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["kind"], "conditional");
    assert_eq!(plan["filterable"], true);
    assert_eq!(plan["condition_version"], 2);
    assert_eq!(
        plan["sets"],
        json!({"set_0": {"type": "Group", "ids": ["acme.editors", "acme.members"]}})
    );
    // Read back, either version is the same plan.
    let read: gatehouse::plan::Plan = serde_json::from_value(plan.clone()).expect("a plan");
    let read_v1: gatehouse::plan::Plan = serde_json::from_value(plan_v1.clone()).expect("a plan");
    assert_eq!(read, read_v1);
    let groups = r#"[{"type":"Group","id":"acme.editors"},{"type":"Group","id":"acme.members"}]"#;
    for (plan, named) in [
        (&plan, r#""set":"set_0""#.to_string()),
        (&plan_v1, format!(r#""values":{groups}"#)),
    ] {
        let text = plan["condition"].to_string();
        for part in [
            // Her organization role reaches the projects of her organization; `in` became a
            // list of her groups, kept to the attribute's type.
            format!(
                r#"{{"op":"and","args":[{{"op":"has","path":["organization"]}},{{"op":"in_set","path":["organization","editors"],{named}}}]}}"#
            ),
            format!(r#"{{"op":"in_set","path":["editors"],{named}}}"#),
            r#"{"op":"eq","path":["owner"],"value":{"type":"User","id":"erin"}}"#.to_string(),
            r#"{"op":"not","arg":{"op":"eq","path":["archived"],"value":true}}"#.to_string(),
        ] {
            assert!(text.contains(&part), "{part} in {text}");
        }
    }
    let (status, refused) = post(json!({"principal": "User::\"erin\"", "action": "edit",
        "resource_type": "Project", "condition_version": 3}));
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "condition_version");
    let ids: Vec<&str> = plan["residuals"]
        .as_array()
        .expect("residuals")
        .iter()
        .map(|r| r.as_str().expect("text").lines().next().expect("line"))
        .collect();
    assert_eq!(
        ids,
        [
            "@id(\"archive.frozen\")",
            "@id(\"roles.editor\")",
            "@id(\"roles.privileged\")"
        ]
    );
    assert_eq!(plan["policy_version"], app().1.current().version);
}

#[test]
fn a_plan_that_needs_no_resource_data_is_constant() {
    // Managing an organization's roles: its admins only; a user in no group manages none.
    let (status, plan) = post(json!({
        "principal": {"type": "User", "id": "nobody"},
        "action": {"type": "Action", "id": "manage_roles"},
        "resource_type": "Organization"
    }));
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["kind"], "always_denied", "{plan}");
    assert_eq!(plan["condition"], json!({"op": "false"}));
    // Cedar keeps `User::"nobody" in resource.admins`: an unknown user is in no group, so
    // no admins group can hold her.
    assert_eq!(
        plan["residuals"].as_array().expect("residuals").len(),
        1,
        "{plan}"
    );
}

#[test]
fn an_unknown_context_is_not_filterable_and_says_why() {
    let (status, plan) = post(json!({
        "principal": "User::\"erin\"",
        "action": "Action::\"share\"",
        "resource_type": "Project"
    }));
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["kind"], "conditional");
    assert_eq!(plan["filterable"], false);
    assert_eq!(plan["condition"], Value::Null);
    assert!(
        plan["unsupported"]
            .as_str()
            .expect("why")
            .contains("context"),
        "{plan}"
    );
    assert!(!plan["residuals"].as_array().expect("residuals").is_empty());
}

#[test]
fn bad_plan_questions_name_the_field() {
    for (body, code, field) in [
        (
            json!({"principal": "User::\"a\"", "action": "Action::\"view\"", "resource_type": "Nope"}),
            "invalid_resource",
            "resource_type",
        ),
        (
            json!({"principal": "User::\"a\"", "action": "Action::\"view_members\"", "resource_type": "Item"}),
            "invalid_resource",
            "resource_type",
        ),
        (
            json!({"principal": "Project::\"a\"", "action": "Action::\"view\"", "resource_type": "Project"}),
            "invalid_principal",
            "principal",
        ),
        (
            json!({"principal": "User::\"a\"", "action": "Action::\"fly\"", "resource_type": "Project"}),
            "invalid_action",
            "action",
        ),
        (
            json!({"principal": "User::\"a\"", "action": "Action::\"share\"", "resource_type": "Project", "context": {"role": 3}}),
            "invalid_context",
            "context",
        ),
        (
            json!({"principal": "User::\"a\"", "action": "Action::\"view\"", "resource_type": "Project", "entities": [{"uid": {"type": "User", "id": "a"}, "attrs": {"email": 1}, "parents": []}]}),
            "invalid_entities",
            "entities[0]",
        ),
        (
            json!({"principal": "User::\"a\"", "action": "Action::\"view\""}),
            "invalid_request",
            "",
        ),
    ] {
        let (status, answer) = post(body.clone());
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} → {answer}");
        if !field.is_empty() {
            assert!(
                answer["error"]["field"]
                    .as_str()
                    .expect("field")
                    .starts_with(field),
                "{body} → {answer}"
            );
        }
    }
}

#[test]
fn a_repeated_plan_comes_from_the_cache_and_a_new_set_is_planned_anew() {
    let (_copy, sources) = common::scratch_copy();
    let store = gatehouse::policy::PolicyStore::open(sources.clone()).expect("opens");
    let planner = Planner::new(100, Duration::from_secs(60));
    let decider = Decider::uncached();
    let question = PlanQuestion {
        principal: Uid::from("User::\"u\""),
        action: Uid::from("Action::\"view\""),
        resource_type: "Project".into(),
        context: None,
        entities: None,
        consistency: None,
        condition_version: None,
    };
    let (first, hit) = planner
        .plan(&decider, &store.current(), &question)
        .expect("plan");
    assert!(!hit);
    let (again, hit) = planner
        .plan(&decider, &store.current(), &question)
        .expect("plan");
    assert!(hit);
    assert_eq!(first, again);
    // Only archived public projects stay open to anyone: the new set's plan says so.
    common::edit(
        &sources.policies.join("public.cedar"),
        "when { resource.public };",
        "when { resource.public && resource.archived };",
    );
    let outcome = store.reload();
    assert!(
        matches!(outcome, gatehouse::policy::ReloadOutcome::Swapped(_)),
        "{outcome:?}"
    );
    let (after, hit) = planner
        .plan(&decider, &store.current(), &question)
        .expect("plan");
    assert!(
        !hit,
        "a plan of the old set is never served for the new one"
    );
    let changed = "resource.public && resource.archived";
    assert!(!first.residuals.iter().any(|r| r.contains(changed)));
    assert!(
        after.residuals.iter().any(|r| r.contains(changed)),
        "{:#?}",
        after.residuals
    );
}

use common::CONTEXT_ACTIONS;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// `allowed_actions` decides an action asked without its context only when partial
    /// evaluation says every context decides it alike: then every context does.
    #[test]
    fn an_action_decided_for_any_context_is_decided_so_for_every_context(
        (w, u, a, p) in world().prop_flat_map(|w| {
            let (users, projects) = (w.users, w.projects.len());
            (Just(w), 0..users, 0..CONTEXT_ACTIONS.len(), 0..projects)
        })
    ) {
        let action = CONTEXT_ACTIONS[a];
        let id = format!("p{p}");
        let entities = Entities::from_json_value(w.all_json(), Some(&snapshot().schema)).expect("entities");
        let uid = |text: String| EntityUid::from_str(&text).expect("uid");
        let decided = gatehouse::plan::for_any_context(
            snapshot(),
            &uid(format!("User::\"{}\"", World::user(u))),
            &uid(format!("Action::\"{action}\"")),
            &uid(format!("Project::\"{id}\"")),
            &entities,
        );
        let gatehouse::plan::ForAnyContext::Decided(decided) = decided else {
            return Ok(());
        };
        for (_, _, context) in listings(w.users).iter().filter(|(t, a, _)| *t == "Project" && *a == action) {
            let question = Question {
                principal: Uid::new("User", World::user(u)),
                action: Uid::new("Action", action),
                resource: Uid::new("Project", &id),
                context: Some(context.clone()),
                entities: Some(w.all_json().into()),
                strict_entities: false,
                consistency: None,
            };
            let answer = gatehouse::decide::question::evaluate(snapshot(), &question).expect("valid");
            prop_assert_eq!(answer.decision, decided.decision, "{} {} {} {}", u, action, id, context);
        }
    }
}
