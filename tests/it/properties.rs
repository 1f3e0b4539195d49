//! Properties over random worlds of the domain: the sidecar's decision equals a direct Cedar
//! evaluation of the full policy set (no index, no cache); a batch equals its singles; a
//! cache hit equals a fresh evaluation.

use crate::common;

use std::time::{Duration, SystemTime};

use cedar_policy::{Authorizer, Context, Entities, Request};
use common::server::{bundled_app, oneshot, runtime};
use gatehouse::config::Config;
use gatehouse::policy::PolicyStore;
use gatehouse_client::{Entity, Item, Organization, Phase, Project, Role, ShareToken, Uid, User};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};

use common::PROJECT_ACTIONS;

#[derive(Debug, Clone)]
struct World {
    owner: bool,
    project_role: Option<Role>,
    org: Option<Option<Role>>, // None: no organization; Some(role): member with that org role
    target_project_role: Option<Role>,
    target_org_role: Option<Option<Role>>,
    target_is_owner: bool,
    target_is_self: bool,
    phase: Option<Phase>,
    flags: [bool; 4],
    item_phase: Option<Phase>,
    token: (bool, bool),
    action: usize,
    resource: u8, // 0 project, 1 item, 2 token, 3 organization
    role: &'static str,
    with_target: bool,
}

fn role() -> impl Strategy<Value = Option<Role>> {
    prop_oneof![
        Just(None),
        Just(Some(Role::Viewer)),
        Just(Some(Role::Editor)),
        Just(Some(Role::Manager)),
        Just(Some(Role::Admin))
    ]
}

fn phase() -> impl Strategy<Value = Option<Phase>> {
    prop_oneof![
        Just(None),
        Just(Some(Phase::Planning)),
        Just(Some(Phase::Processing)),
        Just(Some(Phase::ReportReady))
    ]
}

fn world() -> impl Strategy<Value = World> {
    (
        (
            any::<bool>(),
            role(),
            prop::option::of(role()),
            role(),
            prop::option::of(role()),
            any::<bool>(),
            any::<bool>(),
        ),
        (phase(), any::<[bool; 4]>(), phase(), any::<(bool, bool)>()),
        (
            0..PROJECT_ACTIONS.len(),
            0u8..4,
            prop_oneof![
                Just("viewer"),
                Just("editor"),
                Just("manager"),
                Just("admin"),
                Just("owner")
            ],
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (
                    owner,
                    project_role,
                    org,
                    target_project_role,
                    target_org_role,
                    target_is_owner,
                    target_is_self,
                ),
                (phase, flags, item_phase, token),
                (action, resource, role, with_target),
            )| World {
                owner,
                project_role,
                org,
                target_project_role,
                target_org_role,
                target_is_owner,
                target_is_self,
                phase,
                flags,
                item_phase,
                token,
                action,
                resource,
                role,
                with_target,
            },
        )
}

fn user(id: &str, project_role: Option<Role>, org_role: Option<Option<Role>>) -> Entity {
    let mut u = User::new(id);
    if let Some(role) = project_role {
        u = u.member_of(Project::group("p", role));
    }
    if let Some(org_role) = org_role {
        u = u.member_of(Organization::members("acme"));
        if let Some(role) = org_role {
            u = u.member_of(Organization::group("acme", role));
        }
    }
    u.build()
}

/// The question (as the API takes it) and its entities.
fn build(w: &World) -> Value {
    let phase_name = |p: Option<Phase>| p.map_or("review", Phase::as_str).to_string();
    let owner = if w.owner { "me" } else { "olga" };
    let mut project = Project::new("p", owner)
        .archived(w.flags[0])
        .public(w.flags[1])
        .downloads_enabled(w.flags[2])
        .editors_can_share(w.flags[3]);
    if w.org.is_some() || w.target_org_role.is_some() {
        project = project.organization("acme");
    }
    let mut project = project.build();
    project
        .attrs
        .insert("phase".into(), json!(phase_name(w.phase)));
    let target = if w.target_is_self {
        "me"
    } else if w.target_is_owner {
        owner
    } else {
        "tina"
    };
    let mut item = Item::new("i", "p", Phase::Planning).build();
    item.attrs
        .insert("phase".into(), json!(phase_name(w.item_phase)));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let expiry = if w.token.0 {
        now + Duration::from_secs(60)
    } else {
        now - Duration::from_secs(60)
    };
    let token = ShareToken::new("t", "p", expiry).revoked(w.token.1).build();
    let mut entities = vec![
        user("me", w.project_role, w.org),
        project,
        item,
        token,
        Organization::new("acme").build(),
    ];
    if target != "me" {
        entities.push(user(target, w.target_project_role, w.target_org_role));
    }
    let (action, resource, context) = match w.resource {
        0 => {
            let action = PROJECT_ACTIONS[w.action];
            let mut context = serde_json::Map::new();
            if ["share", "change_member_role", "accept_access_request"].contains(&action) {
                context.insert("role".into(), json!(w.role));
            }
            let needs_target = [
                "change_member_role",
                "remove_member",
                "transfer_ownership",
                "accept_access_request",
            ]
            .contains(&action);
            if needs_target || (action == "share" && w.with_target) {
                context.insert(
                    "target".into(),
                    json!({"__entity": {"type": "User", "id": target}}),
                );
            }
            (action, Uid::project("p"), Value::Object(context))
        }
        1 => (
            ["view", "download", "edit", "delete"][w.action % 4],
            Uid::item("i"),
            json!({}),
        ),
        2 => (
            "request_access",
            Uid::share_token("t"),
            json!({"now": gatehouse_client::datetime(now)}),
        ),
        _ => (
            ["view", "create_project", "manage_roles"][w.action % 3],
            Uid::organization("acme"),
            json!({}),
        ),
    };
    json!({"principal": Uid::user("me"), "action": Uid::action(action), "resource": resource, "context": context, "entities": entities})
}

/// Cedar alone, over every policy, with the entities parsed by Cedar.
fn direct(store: &PolicyStore, q: &Value) -> (String, Vec<String>) {
    let snapshot = store.current();
    let uid = |v: &Value| match v.as_str() {
        Some(text) => text.parse::<cedar_policy::EntityUid>().expect("uid"),
        None => cedar_policy::EntityUid::from_json(v.clone()).expect("uid"),
    };
    let action = uid(&q["action"]);
    let context = Context::from_json_value(q["context"].clone(), Some((&snapshot.schema, &action)))
        .expect("context");
    let request = Request::new(
        uid(&q["principal"]),
        action,
        uid(&q["resource"]),
        context,
        Some(&snapshot.schema),
    )
    .expect("request");
    let entities =
        Entities::from_json_value(q["entities"].clone(), Some(&snapshot.schema)).expect("entities");
    let response = Authorizer::new().is_authorized(&request, &snapshot.policies, &entities);
    assert_eq!(
        response.diagnostics().errors().count(),
        0,
        "complete entities evaluate without errors"
    );
    (
        format!("{:?}", response.decision()),
        common::reasons(&response),
    )
}

fn app() -> &'static (axum::Router, std::sync::Arc<PolicyStore>) {
    static APP: std::sync::OnceLock<(axum::Router, std::sync::Arc<PolicyStore>)> =
        std::sync::OnceLock::new();
    APP.get_or_init(|| bundled_app(Config::default()))
}

fn ask(q: &Value) -> Value {
    let (status, answer) = runtime().block_on(oneshot(
        &app().0,
        "/v1/is_authorized",
        serde_json::to_vec(q).expect("json"),
    ));
    assert_eq!(status, 200, "{answer}\n{q}");
    answer
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_sidecar_decides_as_cedar_over_the_full_set(w in world()) {
        let q = build(&w);
        let answer = ask(&q);
        let (decision, reasons) = direct(&app().1, &q);
        prop_assert_eq!(answer["decision"].as_str().expect("decision"), decision.as_str(), "{:?}", w);
        prop_assert_eq!(&answer["diagnostics"]["reason"], &json!(reasons), "{:?}", w);
        // Asked again, the answer comes from the cache and is the same.
        prop_assert_eq!(ask(&q), answer);
    }

    #[test]
    fn a_batch_answers_as_its_singles(worlds in prop::collection::vec(world(), 1..8)) {
        let questions: Vec<Value> = worlds.iter().map(build).collect();
        let singles: Vec<Value> = questions.iter().map(ask).collect();
        let body = serde_json::to_vec(&json!({"requests": questions})).expect("json");
        let (status, answer) = runtime().block_on(oneshot(&app().0, "/v1/is_authorized/batch", body));
        prop_assert_eq!(status, 200);
        prop_assert_eq!(&answer["results"], &json!(singles));
    }
}

#[test]
fn a_cache_hit_equals_a_fresh_evaluation() {
    let snapshot = app().1.current();
    let cached = gatehouse::decide::Decider::new(100, 100, Duration::from_secs(60));
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..200 {
        let w = world().new_tree(&mut runner).expect("tree").current();
        let q: gatehouse::decide::Question = serde_json::from_value(build(&w)).expect("question");
        let first = cached.answer(&snapshot, &q, None).expect("answer");
        let again = cached.answer(&snapshot, &q, None).expect("answer");
        assert!(again.cache_hit);
        let fresh = gatehouse::decide::question::evaluate(&snapshot, &q).expect("answer");
        assert_eq!(*again.decision, fresh, "{w:?}");
        assert_eq!(first.decision, again.decision);
    }
}

/// Request entities are digested from the bytes they came in: entities that differ anywhere
/// (the same uid with other attributes, as every world here has) are told apart by the
/// entity, store and decision caches; the same entities written another way (pretty-printed,
/// keys in another order) are parsed again and answered alike.
#[test]
fn entities_are_told_apart_by_their_bytes_and_answered_alike_in_any_layout() {
    let snapshot = app().1.current();
    let cached = gatehouse::decide::Decider::new(1000, 1000, Duration::from_secs(60));
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..300 {
        let w = world().new_tree(&mut runner).expect("tree").current();
        let q = build(&w);
        let question: gatehouse::decide::Question =
            serde_json::from_value(q.clone()).expect("question");
        let fresh = gatehouse::decide::question::evaluate(&snapshot, &question).expect("answer");
        for text in [
            serde_json::to_string(&q),
            serde_json::to_string_pretty(&q),
            serde_json::to_string(&reversed(&q)),
        ] {
            let text = text.expect("json");
            let question: gatehouse::decide::Question =
                serde_json::from_str(&text).expect("question");
            let answer = cached.answer(&snapshot, &question, None).expect("answer");
            assert_eq!(*answer.decision, fresh, "{w:?}\n{text}");
        }
    }
}

/// The question with its principal, action and resource in Cedar's string form
/// (`User::"me"`), which the slice reads without Cedar's parser.
fn with_string_uids(mut q: Value) -> Value {
    for key in ["principal", "action", "resource"] {
        let uid = cedar_policy::EntityUid::from_json(q[key].clone()).expect("uid");
        q[key] = json!(uid.to_string());
    }
    q
}

/// The bundled set with `stored` as its stored-entities file.
fn with_stored(stored: &[Value]) -> gatehouse::policy::Snapshot {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("entities.json");
    std::fs::write(&file, serde_json::to_vec(stored).expect("json")).expect("write");
    gatehouse::policy::load(&gatehouse::policy::Sources {
        entities: Some(file),
        ..common::bundled_sources()
    })
    .expect("loads")
}

/// Entities no question names: organizations with their groups and members.
fn decoys() -> Vec<Value> {
    let mut decoys = Vec::new();
    for o in 0..20 {
        let org = format!("org{o}");
        decoys.push(serde_json::to_value(Organization::new(&org).build()).expect("json"));
        for role in [Role::Viewer, Role::Editor, Role::Admin] {
            let group = Organization::group(&org, role);
            decoys.push(json!({"uid": group, "attrs": {}, "parents": []}));
            decoys.push(
                serde_json::to_value(
                    User::new(format!("{org}-{role:?}"))
                        .member_of(group)
                        .build(),
                )
                .expect("json"),
            );
        }
    }
    decoys
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// A question sees only its slice of the stored entities (what it can reach): whichever
    /// of its entities are stored rather than sent, among unrelated ones, the decision is
    /// Cedar's over the whole store.
    #[test]
    fn stored_entities_decide_as_cedar_over_the_whole_store(w in world(), stored_mask in any::<[bool; 6]>(), strings in any::<bool>()) {
        let q = build(&w);
        let q = if strings { with_string_uids(q) } else { q };
        let all = q["entities"].as_array().expect("entities").clone();
        let (mut stored, mut sent) = (decoys(), Vec::new());
        for (i, entity) in all.iter().enumerate() {
            if stored_mask[i % 6] { stored.push(entity.clone()) } else { sent.push(entity.clone()) }
        }
        let snapshot = with_stored(&stored);
        let mut asked = q.clone();
        asked["entities"] = json!(sent);
        let question: gatehouse::decide::Question = serde_json::from_value(asked).expect("question");
        let answer = gatehouse::decide::Decider::new(0, 0, Duration::ZERO)
            .answer(&snapshot, &question, None)
            .expect("answer");
        let mut whole = q.clone();
        whole["entities"] = json!(stored.iter().chain(&sent).collect::<Vec<_>>());
        let (decision, reasons) = direct(&app().1, &whole);
        prop_assert_eq!(format!("{:?}", answer.decision.decision), decision, "{:?} {:?}", w, stored_mask);
        prop_assert_eq!(&answer.decision.reasons, &reasons, "{:?} {:?}", w, stored_mask);
        prop_assert!(answer.decision.errors.is_empty(), "{:?}", answer.decision.errors);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    /// A batch whose questions bring no entities of their own is decided on one store: the
    /// union of the questions' slices of the stored entities, with the shared entities on
    /// top. Each answer is Cedar's over the whole store.
    #[test]
    fn a_batch_over_stored_entities_decides_as_cedar_over_the_whole_store(
        w in world(),
        actions in prop::collection::vec(0..PROJECT_ACTIONS.len(), 1..5),
        stored_mask in any::<[bool; 6]>(),
        strings in any::<bool>(),
    ) {
        let questions: Vec<Value> = actions
            .iter()
            .map(|&action| build(&World { action, ..w.clone() }))
            .map(|q| if strings { with_string_uids(q) } else { q })
            .collect();
        let all = questions[0]["entities"].as_array().expect("entities").clone();
        let (mut stored, mut sent) = (decoys(), Vec::new());
        for (i, entity) in all.iter().enumerate() {
            if stored_mask[i % 6] { stored.push(entity.clone()) } else { sent.push(entity.clone()) }
        }
        let snapshot = with_stored(&stored);
        let requests: Vec<Value> = questions
            .iter()
            .map(|q| {
                let mut q = q.clone();
                q.as_object_mut().expect("object").remove("entities");
                q
            })
            .collect();
        let decider = gatehouse::decide::Decider::new(0, 0, Duration::ZERO);
        let read: Vec<gatehouse::decide::Question> = requests
            .iter()
            .map(|request| serde_json::from_value(request.clone()).expect("question"))
            .collect();
        let batch = decider.batch(&snapshot, &json!(sent).into(), &read).expect("batch");
        for (question, q) in read.iter().zip(&questions) {
            let answer = decider.answer(&snapshot, question, Some(&batch)).expect("answer");
            let mut whole = q.clone();
            whole["entities"] = json!(stored.iter().chain(&sent).collect::<Vec<_>>());
            let (decision, reasons) = direct(&app().1, &whole);
            prop_assert_eq!(format!("{:?}", answer.decision.decision), decision, "{:?} {:?}", w, stored_mask);
            prop_assert_eq!(&answer.decision.reasons, &reasons, "{:?} {:?}", w, stored_mask);
            prop_assert!(answer.decision.errors.is_empty(), "{:?}", answer.decision.errors);
        }
    }
}

/// The context names a stored entity the question sends nothing about: the slice must hold
/// it, or the organization admin's access could be changed from the project.
#[test]
fn a_stored_entity_named_only_by_the_context_is_in_the_slice() {
    let tina = User::new("tina")
        .member_of(Organization::members("acme"))
        .member_of(Organization::group("acme", Role::Admin))
        .build();
    let mut stored = decoys();
    stored.push(serde_json::to_value(tina).expect("json"));
    stored.push(serde_json::to_value(Organization::new("acme").build()).expect("json"));
    let snapshot = with_stored(&stored);
    let me = User::new("me")
        .member_of(Project::group("p", Role::Admin))
        .build();
    let project = Project::new("p", "olga").organization("acme").build();
    let question: gatehouse::decide::Question = serde_json::from_value(json!({
        "principal": Uid::user("me"),
        "action": Uid::action("change_member_role"),
        "resource": Uid::project("p"),
        "context": {"role": "viewer", "target": {"__entity": {"type": "User", "id": "tina"}}},
        "entities": [me, project],
    }))
    .expect("question");
    let answer = gatehouse::decide::Decider::new(0, 0, Duration::ZERO)
        .answer(&snapshot, &question, None)
        .expect("answer");
    assert_eq!(answer.decision.decision, gatehouse::decide::Verdict::Deny);
    assert_eq!(answer.decision.reasons, ["sharing.org-admin-access-fixed"]);
}

/// A context value of every kind a host might send for a key, right or wrong.
fn context_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("viewer")),
        Just(json!("admin")),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!(null)),
        Just(json!(["viewer"])),
        Just(json!({"role": "viewer"})),
        Just(json!({"type": "User", "id": "stan"})),
        Just(json!({"type": "Group", "id": "g"})),
        Just(json!({"type": "Nope", "id": "g"})),
        Just(json!({"__entity": {"type": "User", "id": "stan"}})),
        Just(json!({"__entity": {"type": "User", "id": "stan"}, "x": 1})),
        Just(json!({"__entity": {"type": "User", "id": "stan", "x": 1}})),
        Just(json!({"type": "User", "id": "stan", "extra": true})),
        Just(json!({"type": "User", "id": 5})),
        Just(json!({"type": "User"})),
        Just(json!({"type": " User", "id": "stan"})),
        Just(json!({"type": "User ", "id": "stan"})),
        Just(json!({"type": "Us er", "id": "stan"})),
        Just(json!({"__entity": {"type": "User //x\n", "id": "stan"}})),
        Just(json!("User::\"stan\"")),
        Just(json!("User::stan")),
        Just(json!("nobody")),
        Just(json!({"__extn": {"fn": "datetime", "arg": "2026-06-01T00:00:00Z"}})),
        Just(json!("2026-06-01T00:00:00Z")),
    ]
}

fn context_map() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop_oneof![Just("role"), Just("target"), Just("now"), Just("other")]
            .prop_map(String::from),
        context_value(),
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The context built directly from plain JSON (no Cedar JSON parser) is the context
    /// Cedar's parser gives, and a request it makes is one Cedar accepts; a context it does
    /// not take is left to Cedar.
    #[test]
    fn a_plain_context_is_the_context_cedar_parses(
        action in prop::sample::select(vec![
            "share", "change_member_role", "remove_member", "transfer_ownership",
            "accept_access_request", "request_access", "view", "edit",
        ]),
        context in context_map(),
    ) {
        static SNAPSHOT: std::sync::OnceLock<gatehouse::policy::Snapshot> = std::sync::OnceLock::new();
        let snapshot = SNAPSHOT.get_or_init(common::bundled);
        let uid: cedar_policy::EntityUid = format!("Action::\"{action}\"").parse().expect("uid");
        let info = snapshot.catalog.get(&uid).expect("a requestable action");
        // As build_request gives it: string uids for entity-typed keys read as uids.
        let Value::Object(map) = context else { unreachable!("a map") };
        let context = Value::Object(gatehouse::cedar_json::with_entity_refs(map, &uid, &snapshot.catalog));
        let cedar = Context::from_json_value(context.clone(), Some((&snapshot.schema, &uid)));
        let principal: cedar_policy::EntityUid = "User::\"me\"".parse().expect("uid");
        let resource: cedar_policy::EntityUid = if action == "request_access" {
            "ShareToken::\"t\"".parse().expect("uid")
        } else {
            "Project::\"p\"".parse().expect("uid")
        };
        if let Some(plain) = gatehouse::decide::input::plain_context(&context, info, &snapshot.catalog) {
            let cedar = cedar.unwrap_or_else(|e| panic!("plain took {context}, Cedar refuses it: {e}"));
            prop_assert_eq!(
                plain.to_json_value().expect("json"),
                cedar.to_json_value().expect("json"),
                "{}", context
            );
            let request = Request::new(principal, uid, resource, plain, Some(&snapshot.schema));
            prop_assert!(request.is_ok(), "{context}: {:?}", request.err());
        }
    }
}

/// A request `build_request` makes is one Cedar's request validation accepts, and the other
/// way round: the action and the principal and resource types are checked as Cedar checks
/// them (a plain context is not validated again by Cedar).
#[test]
fn requests_are_built_exactly_when_cedar_validates_them() {
    let snapshot = common::bundled();
    let types: Vec<String> = snapshot
        .schema
        .entity_types()
        .map(ToString::to_string)
        .collect();
    let mut built = 0;
    for action in snapshot.catalog.iter() {
        for principal in &types {
            for resource in &types {
                let principal: cedar_policy::EntityUid =
                    format!("{principal}::\"a\"").parse().expect("uid");
                let resource: cedar_policy::EntityUid =
                    format!("{resource}::\"b\"").parse().expect("uid");
                let ours = gatehouse::decide::input::build_request(
                    &snapshot,
                    principal.clone(),
                    action.uid.clone(),
                    resource.clone(),
                    Some(&json!({})),
                );
                let cedar = Request::new(
                    principal,
                    action.uid.clone(),
                    resource,
                    Context::empty(),
                    Some(&snapshot.schema),
                );
                assert_eq!(
                    ours.is_ok(),
                    cedar.is_ok(),
                    "{} {:?}",
                    action.uid,
                    ours.err()
                );
                built += usize::from(ours.is_ok());
            }
        }
    }
    assert!(built > 20, "{built}");
}

/// The contexts hosts send for the sharing actions are plain: the fast path is taken.
#[test]
fn the_usual_contexts_are_plain() {
    let snapshot = common::bundled();
    for (action, context) in [
        (
            "share",
            json!({"role": "viewer", "target": {"type": "User", "id": "stan"}}),
        ),
        ("share", json!({"role": "editor"})),
        (
            "remove_member",
            json!({"target": {"__entity": {"type": "User", "id": "vic"}}}),
        ),
        ("view", json!({})),
    ] {
        let uid: cedar_policy::EntityUid = format!("Action::\"{action}\"").parse().expect("uid");
        let info = snapshot.catalog.get(&uid).expect("action");
        assert!(
            gatehouse::decide::input::plain_context(&context, info, &snapshot.catalog).is_some(),
            "{action} {context}"
        );
    }
}

proptest! {
    /// A uid object read without Cedar's JSON parser (as a JSON value, and as a question's
    /// wire type reads it) is the uid Cedar reads, and one Cedar refuses is refused.
    #[test]
    fn a_uid_object_reads_as_cedar_reads_it(
        ty in prop_oneof![
            Just("User".to_string()), Just("Group".to_string()), Just(" User".to_string()),
            Just("User ".to_string()), Just("Ns::User".to_string()), Just("Ns :: User".to_string()),
            Just("User//c\n".to_string()), Just("".to_string()), Just("1User".to_string()),
            Just("Action".to_string()), "[A-Za-z:_ ]{0,8}",
        ],
        id in prop_oneof![
            Just("stan".to_string()), Just("".to_string()), Just("a\"b".to_string()),
            Just(" stan ".to_string()), "[ a-z]{0,4}", ".{0,6}",
        ],
        extra in any::<bool>(),
        escaped in any::<bool>(),
    ) {
        let mut object = json!({"type": ty, "id": id});
        if extra {
            object["x"] = json!(1);
        }
        let value = if escaped { json!({"__entity": object.clone()}) } else { object.clone() };
        let ours = gatehouse::cedar_json::parse_uid(gatehouse::decide::Part::Principal, "principal", &value);
        let cedar = cedar_policy::EntityUid::from_json(object.clone());
        match (&ours, &cedar) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "{value}: ours {:?}, Cedar {:?}", ours.as_ref().map(ToString::to_string), cedar.as_ref().map(ToString::to_string).map_err(ToString::to_string)),
        }
        if let Some(fast) = object.as_object().and_then(gatehouse::cedar_json::uid_object) {
            prop_assert_eq!(Some(&fast), cedar.as_ref().ok(), "{}", value);
        }
        // A question's uid as the wire type reads it, then the engine: the uid Cedar reads,
        // refused where Cedar refuses it.
        static SNAPSHOT: std::sync::OnceLock<gatehouse::policy::Snapshot> = std::sync::OnceLock::new();
        let catalog = &SNAPSHOT.get_or_init(common::bundled).catalog;
        let wire = gatehouse::decide::Uid::principal(value.clone())
            .map_err(|e| e.to_string())
            .and_then(|uid| {
                gatehouse::cedar_json::read_uid(catalog, gatehouse::decide::Part::Principal, "principal", &uid)
                    .map_err(|e| e.message)
            });
        match (&wire, &cedar) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "{value}: the wire's {:?}, Cedar's {:?}", wire.as_ref().map(ToString::to_string), cedar.as_ref().map(ToString::to_string).map_err(ToString::to_string)),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
    /// A type name looked up among the schema's declared types is the name Cedar parses from
    /// the same text, and one Cedar refuses is refused.
    #[test]
    fn a_declared_type_name_is_the_parsed_one(
        names in prop::collection::vec(prop_oneof![
            Just("User".to_string()), Just("Group".to_string()), Just("Project".to_string()),
            Just("Organization".to_string()), Just("Item".to_string()), Just("ShareToken".to_string()),
            Just("Action".to_string()), Just("Ns::User".to_string()), Just("User ".to_string()),
            Just(" Group".to_string()), Just("".to_string()),
            "[A-Za-z:_ ]{0,8}", "(User|Group|Project)(::[A-C]{1,2})?",
        ], 1..50),
    ) {
        static SNAPSHOT: std::sync::OnceLock<gatehouse::policy::Snapshot> = std::sync::OnceLock::new();
        let catalog = &SNAPSHOT.get_or_init(common::bundled).catalog;
        for name in &names {
            let parsed = name.parse::<cedar_policy::EntityTypeName>().ok();
            prop_assert_eq!(&catalog.type_name(name), &parsed, "{:?}", name);
            if let Some(declared) = catalog.declared_type(name) {
                prop_assert_eq!(Some(&declared), parsed.as_ref(), "{:?}", name);
                prop_assert_eq!(declared.to_string(), name.clone());
            }
        }
    }
}

/// Random JSON, objects nested.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(("[a-d]{1,2}", inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// The same JSON with every object's keys in reverse order.
fn reversed(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut pairs: Vec<(String, Value)> =
                map.iter().map(|(k, v)| (k.clone(), reversed(v))).collect();
            pairs.reverse();
            Value::Object(pairs.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

proptest! {
    /// The digest every cache key is made of: equal for equal JSON whatever the key order,
    /// different for different JSON.
    #[test]
    fn the_canonical_digest_is_key_order_free_and_tells_values_apart(a in json_value(), b in json_value()) {
        use gatehouse::decide::cache::digest;
        prop_assert_eq!(digest(&a), digest(&reversed(&a)));
        prop_assert_eq!(digest(&a) == digest(&b), a == b, "{} / {}", a, b);
    }
}

/// Without stored entities only the schema's actions are in the store, which no entity data
/// can refer to: request entities are not walked. With stored organizations and groups, they
/// are.
#[test]
fn request_entities_are_walked_only_when_they_can_name_a_stored_entity() {
    assert!(!common::bundled().reach.entities_can_name());
    assert!(with_stored(&decoys()).reach.entities_can_name());
}

/// A schema with every shape the plain-entity path must leave to Cedar: an `enum` type (whose
/// ids Cedar checks), `tags`, records, sets and extension types, beside plain attributes.
const SHAPES_SCHEMA: &str = r#"
entity Color enum ["red", "blue"];
entity Box;
entity Tagged { n: Long } tags String;
entity Thing in [Color, Box] {
  n: Long,
  s?: String,
  b?: Bool,
  owner?: Box,
  color?: Color,
  r?: { x: Long },
  set?: Set<Long>,
  when?: datetime,
};
action act appliesTo { principal: [Thing], resource: [Box] };
"#;

fn shapes_snapshot() -> gatehouse::policy::Snapshot {
    {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
        std::fs::write(
            dir.path().join("policies/p.cedar"),
            r#"@id("p") permit (principal, action, resource);"#,
        )
        .expect("write");
        std::fs::write(dir.path().join("s.cedarschema"), SHAPES_SCHEMA).expect("write");
        gatehouse::policy::load(&gatehouse::policy::Sources {
            policies: dir.path().join("policies"),
            schema: dir.path().join("s.cedarschema"),
            entities: None,
        })
        .expect("the shapes schema loads")
    }
}

/// Entity JSON near the shapes of both schemas: right and wrong types, values and keys.
fn entity_json() -> impl Strategy<Value = Value> {
    let uid = prop::sample::select(vec![
        json!({"type": "Thing", "id": "t"}),
        json!({"type": "Thing", "id": "t2"}),
        json!({"type": "Color", "id": "blue"}),
        json!({"type": "Box", "id": "b"}),
        json!({"type": "Color", "id": "red"}),
        json!({"type": "Color", "id": "green"}),
        json!({"type": "Tagged", "id": "x"}),
        json!({"type": "User", "id": "u"}),
        json!({"type": "Group", "id": "g"}),
        json!({"type": "Project", "id": "p"}),
        json!({"type": "Nowhere", "id": "n"}),
        json!({"__entity": {"type": "Box", "id": "b2"}}),
        json!({"type": "Box", "id": "b", "extra": 1}),
    ]);
    let value = prop_oneof![
        Just(json!("text")),
        Just(json!(7)),
        Just(json!(-3)),
        Just(json!(1.5)),
        Just(json!(u64::MAX)),
        Just(json!(true)),
        Just(Value::Null),
        Just(json!({"x": 1})),
        Just(json!([1, 2])),
        Just(json!({"type": "Box", "id": "b"})),
        Just(json!({"type": "Box", "id": "b"})),
        Just(json!({"__entity": {"type": "Box", "id": "b"}})),
        Just(json!({"type": "Color", "id": "blue"})),
        Just(json!({"type": "Color", "id": "blue"})),
        Just(json!({"type": "Color", "id": "green"})),
        Just(json!({"type": "Group", "id": "g"})),
        Just(json!({"type": "User", "id": "u"})),
        Just(json!({"__extn": {"fn": "datetime", "arg": "2026-01-01"}})),
        Just(json!("2026-01-01")),
        // Strings that read as uids, escapes, a uid of a stored group (see
        // `an_entity_read_from_its_text_is_the_entity_read_from_its_tree`).
        Just(json!("Group::\"g2\"")),
        Just(json!("Group::g2")),
        Just(json!("say \"hi\"\n")),
        Just(json!({"type": "Box", "id": "b\"q"})),
        Just(json!({"type": "Group", "id": "g2"})),
    ];
    let name = prop::sample::select(vec![
        "n", "s", "b", "owner", "owner", "color", "color", "r", "set", "when", "email", "admins",
        "members", "phase", "archived", "extra", "type", "id",
    ]);
    (
        uid.clone(),
        prop::option::of(prop::collection::btree_map(name, value, 0..5)),
        prop::option::of(prop::collection::vec(uid, 0..3)),
        prop::sample::select(vec![None, None, None, Some("tags"), Some("other")]),
        any::<bool>(),
    )
        .prop_map(|(uid, attrs, parents, extra, with_n)| {
            let mut entity = json!({"uid": uid});
            if let Some(attrs) = attrs {
                let mut attrs: serde_json::Map<String, Value> =
                    attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                // Most things get their one required attribute right, so that the other
                // attributes decide.
                if with_n {
                    attrs.insert("n".into(), json!(7));
                }
                entity["attrs"] = Value::Object(attrs);
            }
            if let Some(parents) = parents {
                entity["parents"] = Value::Array(parents);
            }
            if let Some(key) = extra {
                entity[key] = json!({});
            }
            entity
        })
}

/// An entity as plain data: its JSON with parents sorted (they come in hash order).
fn entity_data(entity: &cedar_policy::Entity) -> Value {
    let mut json = entity.to_json_value().expect("json");
    if let Some(Value::Array(parents)) = json.get_mut("parents") {
        parents.sort_by_key(ToString::to_string);
    }
    json
}

/// The entity built directly from plain JSON (no Cedar JSON parser, no schema conformance
/// pass) is the entity Cedar's schema-based parser gives, and one it does not take is left
/// to Cedar; on both schemas, over right and wrong shapes. Both paths are taken often.
#[test]
fn a_plain_entity_is_the_entity_cedar_parses() {
    use proptest::test_runner::{Config, TestRunner};
    let snapshots = [common::bundled(), shapes_snapshot()];
    let mut runner = TestRunner::new(Config::with_cases(4096));
    let (mut plain, mut parsed) = (0, 0);
    for _ in 0..4096 {
        let item = entity_json().new_tree(&mut runner).expect("tree").current();
        for snapshot in &snapshots {
            let Ok(uid) = gatehouse::cedar_json::parse_uid(
                gatehouse::decide::Part::Entities,
                "uid",
                &item["uid"],
            ) else {
                continue;
            };
            let cedar = gatehouse::cedar_json::normalize_entity(&item, &snapshot.catalog)
                .map_err(|e| e.to_string())
                .and_then(|normal| {
                    cedar_policy::Entity::from_json_value(normal, Some(&snapshot.schema))
                        .map_err(|e| e.to_string())
                });
            parsed += usize::from(cedar.is_ok());
            if let Some(entity) =
                gatehouse::decide::input::plain_entity(&item, &uid, &snapshot.catalog)
            {
                plain += 1;
                let cedar =
                    cedar.unwrap_or_else(|e| panic!("plain took {item}, Cedar refuses it: {e}"));
                assert_eq!(entity_data(&entity), entity_data(&cedar), "{item}");
            }
        }
    }
    assert!(
        plain > 200 && parsed > plain,
        "plain {plain}, parsed by Cedar {parsed}"
    );
}

/// Users and groups of the bundled schema naming stored groups (`g`, `g2`; `g3` is not
/// stored) in every way the slice's walk finds a uid: parents, wrapped or not, strings that
/// read as uids, uids whose id reads as one.
fn naming_json() -> impl Strategy<Value = Value> {
    let group = |id: &str| json!({"type": "Group", "id": id});
    let uid = prop::sample::select(vec![
        json!({"type": "User", "id": "u"}),
        json!({"type": "User", "id": "Group::\"g2\""}),
        group("g"),
        group("g3"),
    ]);
    let email = prop::sample::select(vec![
        "u@example.com",
        "Group::\"g2\"",
        "Group::g",
        "Box::\"b\"",
    ]);
    let parent = prop::sample::select(vec![
        group("g"),
        group("g2"),
        group("g3"),
        json!({"__entity": group("g2")}),
        group("Group::\"g\""),
    ]);
    (
        uid,
        prop::option::of(email),
        prop::collection::vec(parent, 0..3),
    )
        .prop_map(|(uid, email, parents)| {
            let attrs = email.map_or_else(|| json!({}), |e| json!({"email": e}));
            json!({"uid": uid, "attrs": attrs, "parents": parents})
        })
}

/// An entity read straight from its text (no tree: the request path for an entity the
/// cache has not seen) is the entity read from its tree, and names the same stored
/// entities; in any layout, on both schemas and over a store its entities can name. One it
/// does not read goes the tree's way. Both are taken often.
#[test]
fn an_entity_read_from_its_text_is_the_entity_read_from_its_tree() {
    use gatehouse::decide::entities::{parse_tree, plain_from_text};
    use proptest::test_runner::{Config, TestRunner};
    let mut stored = decoys();
    for id in ["g", "g2"] {
        stored.push(json!({"uid": {"type": "Group", "id": id}, "attrs": {}, "parents": []}));
    }
    let snapshots = [common::bundled(), shapes_snapshot(), with_stored(&stored)];
    assert!(snapshots[2].reach.entities_can_name());
    let mut runner = TestRunner::new(Config::with_cases(4096));
    let (mut from_text, mut named, mut replaces) = (0, 0, 0);
    for case in 0..6144 {
        let (item, snapshots) = if case < 4096 {
            let item = entity_json().new_tree(&mut runner).expect("tree").current();
            (item, &snapshots[..])
        } else {
            let item = naming_json().new_tree(&mut runner).expect("tree").current();
            (item, &snapshots[2..])
        };
        for snapshot in snapshots {
            let tree = parse_tree(snapshot, "entities", 0, &item);
            for text in [
                item.to_string(),
                serde_json::to_string_pretty(&item).expect("json"),
                reversed(&item).to_string(),
            ] {
                let Some(read) = plain_from_text(snapshot, &text) else {
                    continue;
                };
                from_text += 1;
                let tree = tree
                    .as_ref()
                    .unwrap_or_else(|e| panic!("read {text}, the tree's way refuses it: {e}"));
                assert_eq!(
                    entity_data(&read.entity),
                    entity_data(&tree.entity),
                    "{text}"
                );
                let sorted = |named: &Option<Box<[usize]>>| {
                    named.as_ref().map(|n| {
                        let mut n = n.to_vec();
                        n.sort_unstable();
                        n
                    })
                };
                assert_eq!(sorted(&read.named), sorted(&tree.named), "{text}");
                named += usize::from(read.named.as_ref().is_some_and(|n| !n.is_empty()));
                replaces += usize::from(read.named.is_none());
            }
        }
    }
    assert!(
        from_text > 2000 && named > 500 && replaces > 500,
        "read from text {from_text}, naming stored entities {named}, replacing one {replaces}"
    );
}

/// A key written twice, which a tree keeps the last of, is not the plain shape: such an
/// entity is left to the tree's way, whatever the text path would have made of it.
#[test]
fn an_entity_with_a_repeated_key_is_left_to_the_tree() {
    let bundled = common::bundled();
    for text in [
        r#"{"uid": {"type": "User", "id": "u"}, "attrs": {"email": "a", "email": "b"}}"#,
        r#"{"uid": {"type": "User", "id": "u"}, "attrs": {}, "attrs": {"email": "b"}}"#,
        r#"{"uid": {"type": "User", "id": "u"}, "parents": [], "parents": []}"#,
        r#"{"uid": {"type": "User", "id": "u", "id": "v"}}"#,
        r#"{"uid": {"type": "User", "id": "u"}, "uid": {"type": "User", "id": "v"}}"#,
        r#"{"uid": {"__entity": {"type": "User", "id": "u"}, "type": "User"}}"#,
        r#"{"uid": {"type": "User", "id": "u"}, "parents": [{"__entity": {"type": "Group", "id": "g"}, "__entity": {"type": "Group", "id": "h"}}]}"#,
    ] {
        assert!(
            gatehouse::decide::entities::plain_from_text(&bundled, text).is_none(),
            "{text}"
        );
    }
    // The same entities without the repeat are read from their text.
    let once = r#"{"uid": {"type": "User", "id": "u"}, "attrs": {"email": "b"}, "parents": [{"__entity": {"type": "Group", "id": "g"}}]}"#;
    assert!(gatehouse::decide::entities::plain_from_text(&bundled, once).is_some());
}

/// Shapes the plain-entity path must refuse, each one Cedar refuses too; and the usual
/// shapes, which it must take.
#[test]
fn the_plain_entity_path_refuses_what_cedar_refuses_and_takes_the_usual_shapes() {
    let shapes = shapes_snapshot();
    let bundled = common::bundled();
    let parse = |snapshot: &gatehouse::policy::Snapshot, item: &Value| {
        let uid = cedar_policy::EntityUid::from_json(item["uid"].clone()).expect("uid");
        let plain = gatehouse::decide::input::plain_entity(item, &uid, &snapshot.catalog);
        let cedar = cedar_policy::Entity::from_json_value(item.clone(), Some(&snapshot.schema));
        (plain.is_some(), cedar.is_ok())
    };
    for wrong in [
        json!({"uid": {"type": "Thing", "id": "t"}, "attrs": {"n": 7, "owner": {"type": "Color", "id": "red"}}, "parents": []}),
        json!({"uid": {"type": "Thing", "id": "t"}, "attrs": {"n": 7, "color": {"type": "Color", "id": "green"}}, "parents": []}),
        json!({"uid": {"type": "Thing", "id": "t"}, "attrs": {"n": 7}, "parents": [{"type": "Color", "id": "green"}]}),
        json!({"uid": {"type": "Thing", "id": "t"}, "attrs": {"n": 7}, "parents": [{"type": "Thing", "id": "u"}]}),
        json!({"uid": {"type": "Thing", "id": "t"}, "attrs": {}, "parents": []}),
        json!({"uid": {"type": "Thing", "id": "t"}, "attrs": {"n": "7"}, "parents": []}),
        json!({"uid": {"type": "Color", "id": "green"}, "attrs": {}, "parents": []}),
    ] {
        assert_eq!(parse(&shapes, &wrong), (false, false), "{wrong}");
    }
    let project = json!({"uid": {"type": "Project", "id": "p"}, "attrs": {
        "owner": {"type": "User", "id": "o"}, "organization": {"type": "Organization", "id": "acme"},
        "admins": {"type": "Group", "id": "a"}, "managers": {"type": "Group", "id": "m"},
        "editors": {"type": "Group", "id": "e"}, "viewers": {"type": "Group", "id": "v"},
        "phase": "planning", "archived": false, "public": false, "downloads_enabled": true,
        "editors_can_share": true}, "parents": []});
    for usual in [
        json!({"uid": {"type": "User", "id": "u"}, "attrs": {}, "parents": [{"type": "Group", "id": "g"}]}),
        json!({"uid": {"type": "User", "id": "u"}, "attrs": {"email": "u@example.com"}, "parents": []}),
        json!({"uid": {"type": "Group", "id": "g"}, "attrs": {}, "parents": []}),
        project,
    ] {
        assert_eq!(parse(&bundled, &usual), (true, true), "{usual}");
    }
}
