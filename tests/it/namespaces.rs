//! Namespaced schemas: every name resolves exactly as Cedar resolves it. An unqualified type
//! inside a namespace is that namespace's type when the namespace declares it, and the empty
//! namespace's type otherwise. Each world below is asked through `gatehouse check`'s path,
//! over HTTP, and through the suite runner, and each answer is compared with Cedar's own.

use cedar_policy::{Authorizer, Context, Entities, Request};
use gatehouse::decide::question::evaluate;
use gatehouse::decide::{Question, Verdict};
use gatehouse::policy::{self, AttrType, Snapshot, Sources};
use gatehouse::testing;
use serde_json::{Value, json};

use crate::common;

/// One schema, its policy, and a question Cedar allows.
struct World {
    name: &'static str,
    schema: &'static str,
    policy: &'static str,
    entities: Value,
    principal: &'static str,
    resource: &'static str,
    context: Value,
    /// The principal's type as Cedar resolves it.
    principal_type: &'static str,
}

fn worlds() -> Vec<World> {
    vec![
        World {
            // The issue's schema: `User` lives in the empty namespace only.
            name: "types in the empty namespace",
            schema: r#"
                entity User;
                namespace App {
                  entity Doc { owner: User };
                  action "read" appliesTo { principal: [User], resource: [Doc] };
                }"#,
            policy: r#"@id("p") permit(principal, action == App::Action::"read", resource) when { resource.owner == principal };"#,
            entities: json!([
                {"uid": {"type": "User", "id": "a"}, "attrs": {}, "parents": []},
                {"uid": {"type": "App::Doc", "id": "d"}, "attrs": {"owner": {"__entity": {"type": "User", "id": "a"}}}, "parents": []}
            ]),
            principal: r#"User::"a""#,
            resource: r#"App::Doc::"d""#,
            context: json!({}),
            principal_type: "User",
        },
        World {
            name: "types in the namespace",
            schema: r#"
                namespace App {
                  entity User;
                  entity Doc { owner: User };
                  action "read" appliesTo { principal: [User], resource: [Doc] };
                }"#,
            policy: r#"@id("p") permit(principal, action == App::Action::"read", resource) when { resource.owner == principal };"#,
            entities: json!([
                {"uid": {"type": "App::User", "id": "a"}, "attrs": {}, "parents": []},
                {"uid": {"type": "App::Doc", "id": "d"}, "attrs": {"owner": {"__entity": {"type": "App::User", "id": "a"}}}, "parents": []}
            ]),
            principal: r#"App::User::"a""#,
            resource: r#"App::Doc::"d""#,
            context: json!({}),
            principal_type: "App::User",
        },
        World {
            // `User` is declared in `App`, `Team` only in the empty namespace; context and
            // attributes use both, through a common type.
            name: "types in both",
            schema: r#"
                entity Team;
                namespace App {
                  entity User in [Team];
                  type Who = { by: User, team: Team };
                  entity Doc { owner: User, team: Team };
                  action "read" appliesTo { principal: [User], resource: [Doc], context: Who };
                }"#,
            policy: r#"@id("p") permit(principal, action == App::Action::"read", resource)
                when { resource.owner == principal && principal in resource.team && context.by == principal && context.team == resource.team };"#,
            entities: json!([
                {"uid": {"type": "Team", "id": "t"}, "attrs": {}, "parents": []},
                {"uid": {"type": "App::User", "id": "a"}, "attrs": {}, "parents": [{"type": "Team", "id": "t"}]},
                {"uid": {"type": "App::Doc", "id": "d"}, "attrs": {
                    "owner": {"__entity": {"type": "App::User", "id": "a"}},
                    "team": {"__entity": {"type": "Team", "id": "t"}}}, "parents": []}
            ]),
            principal: r#"App::User::"a""#,
            resource: r#"App::Doc::"d""#,
            context: json!({"by": {"__entity": {"type": "App::User", "id": "a"}}, "team": {"__entity": {"type": "Team", "id": "t"}}}),
            principal_type: "App::User",
        },
    ]
}

/// Writes the world's schema and policy to a temporary directory and loads them.
fn load(world: &World) -> (tempfile::TempDir, Sources, Snapshot) {
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("mkdir");
    std::fs::write(policies.join("p.cedar"), world.policy).expect("write policy");
    let schema = dir.path().join("app.cedarschema");
    std::fs::write(&schema, world.schema).expect("write schema");
    let sources = Sources {
        policies,
        schema,
        entities: None,
    };
    let snapshot =
        policy::load(&sources).unwrap_or_else(|e| panic!("{}: the world loads: {e}", world.name));
    (dir, sources, snapshot)
}

fn question(world: &World, principal: &str) -> Question {
    serde_json::from_value(json!({
        "principal": principal,
        "action": r#"App::Action::"read""#,
        "resource": world.resource,
        "context": world.context,
        "entities": world.entities,
    }))
    .expect("question")
}

/// What Cedar itself decides, with the request validated against the schema.
fn cedar(world: &World, snapshot: &Snapshot) -> cedar_policy::Decision {
    let action = r#"App::Action::"read""#.parse().expect("action");
    let context =
        Context::from_json_value(world.context.clone(), Some((&snapshot.schema, &action)))
            .expect("Cedar accepts the context");
    let request = Request::new(
        world.principal.parse().expect("principal"),
        action,
        world.resource.parse().expect("resource"),
        context,
        Some(&snapshot.schema),
    )
    .expect("Cedar validates the request");
    let entities = Entities::from_json_value(world.entities.clone(), Some(&snapshot.schema))
        .expect("Cedar accepts the entities");
    Authorizer::new()
        .is_authorized(&request, &snapshot.policies, &entities)
        .decision()
}

#[test]
fn catalog_resolves_names_as_cedar_does() {
    for world in worlds() {
        let (_dir, _sources, snapshot) = load(&world);
        let read = snapshot
            .catalog
            .get(&r#"App::Action::"read""#.parse().expect("uid"))
            .unwrap_or_else(|| panic!("{}: `read` is requestable", world.name));
        assert_eq!(read.principals, [world.principal_type], "{}", world.name);
        assert_eq!(read.resources, ["App::Doc"], "{}", world.name);
        assert_eq!(
            snapshot
                .catalog
                .entity_attr("App::Doc", "owner")
                .map(|a| &a.ty),
            Some(&AttrType::Entity(world.principal_type.to_string())),
            "{}",
            world.name
        );
    }
    let both = &worlds()[2];
    let (_dir, _sources, snapshot) = load(both);
    let read = snapshot
        .catalog
        .get(&r#"App::Action::"read""#.parse().expect("uid"))
        .expect("read");
    let types: Vec<(&str, &AttrType)> = read
        .context
        .iter()
        .map(|(k, a)| (k.as_str(), &a.ty))
        .collect();
    assert_eq!(
        types,
        [
            ("by", &AttrType::Entity("App::User".into())),
            ("team", &AttrType::Entity("Team".into()))
        ],
        "the common type is inlined, each name resolved"
    );
}

#[test]
fn check_path_answers_as_cedar_does() {
    for world in worlds() {
        let (_dir, _sources, snapshot) = load(&world);
        assert_eq!(
            cedar(&world, &snapshot),
            cedar_policy::Decision::Allow,
            "{}",
            world.name
        );
        let decision = evaluate(&snapshot, &question(&world, world.principal))
            .unwrap_or_else(|e| panic!("{}: {e}", world.name));
        assert_eq!(decision.decision, Verdict::Allow, "{}", world.name);
        assert_eq!(decision.reasons, ["p"], "{}", world.name);
    }
}

#[test]
fn a_principal_of_the_wrong_type_is_refused_naming_the_resolved_type() {
    // In "types in both", `User::"a"` (a type of the empty namespace) is not what `read`
    // takes.
    let world = &worlds()[2];
    let (_dir, _sources, snapshot) = load(world);
    let error = evaluate(&snapshot, &question(world, r#"User::"a""#)).expect_err("wrong type");
    assert_eq!(error.field, "principal");
    assert!(
        error.message.contains("must be of type `App::User`"),
        "{}",
        error.message
    );
}

#[test]
fn suites_take_plain_action_ids_and_string_uids_in_namespaces() {
    for world in worlds() {
        let (dir, _sources, snapshot) = load(&world);
        let owner = world.principal.replace('"', "");
        // The document again as `d2`, its entity-typed attributes written as string uids.
        let doc = world
            .entities
            .as_array()
            .and_then(|e| e.last())
            .expect("doc");
        let attrs: serde_json::Map<String, Value> = doc["attrs"]
            .as_object()
            .expect("attrs")
            .iter()
            .map(|(k, v)| {
                let uid = &v["__entity"];
                let text = format!(
                    "{}::{}",
                    uid["type"].as_str().expect("type"),
                    uid["id"].as_str().expect("id")
                );
                (k.clone(), Value::String(text))
            })
            .collect();
        let mut entities = world.entities.as_array().expect("list").clone();
        entities.push(json!({"uid": "App::Doc::d2", "attrs": attrs}));
        let suite = json!({
            "entities": entities,
            "cases": [
                {"name": "string uids in attributes", "principal": owner, "action": "read",
                 "resource": "App::Doc::d2", "context": world.context, "expect": "Allow", "reasons": ["p"]},
                {"name": "the owner reads", "principal": owner, "action": "read",
                 "resource": world.resource, "context": world.context, "expect": "Allow", "reasons": ["p"]},
                {"name": "a stranger does not", "principal": world.principal.replace("\"a\"", "\"z\""),
                 "action": "read", "resource": world.resource, "context": world.context,
                 "entities": [{"uid": world.principal.replace("\"a\"", "\"z\""), "parents": []}],
                 "expect": "Deny", "reasons": []}
            ]
        });
        let file = dir.path().join("ns.test.json");
        std::fs::write(&file, suite.to_string()).expect("write suite");
        let report = testing::run(&snapshot, &[file]);
        assert_eq!(
            (report.passed, report.failed),
            (3, 0),
            "{}: {}",
            world.name,
            testing::report::human(&report)
        );
    }
}

#[test]
fn the_bundled_schema_still_reads_the_same() {
    let snapshot = common::bundled();
    let share = snapshot
        .catalog
        .get(&r#"Action::"share""#.parse().expect("uid"))
        .expect("share");
    assert_eq!(share.principals, ["User"]);
    assert_eq!(share.resources, ["Project"]);
    assert_eq!(
        share.required_context().collect::<Vec<_>>(),
        ["role"],
        "`target` is optional"
    );
    assert_eq!(
        snapshot
            .catalog
            .entity_attr("ShareToken", "expires_at")
            .map(|a| &a.ty),
        Some(&AttrType::Extension("datetime".into()))
    );
}

#[test]
fn a_namespace_type_shadowing_an_empty_namespace_type_is_refused() {
    // Cedar warns that `App::User` shadows `User`; warnings are errors here.
    let mut world = worlds().remove(2);
    world.schema = r#"
        entity User;
        entity Team;
        namespace App {
          entity User in [Team];
          entity Doc { owner: User, team: Team };
          action "read" appliesTo { principal: [User], resource: [Doc] };
        }"#;
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("mkdir");
    std::fs::write(
        policies.join("p.cedar"),
        r#"@id("p") permit(principal, action, resource);"#,
    )
    .expect("write");
    let schema = dir.path().join("app.cedarschema");
    std::fs::write(&schema, world.schema).expect("write");
    let error = policy::load(&Sources {
        policies,
        schema,
        entities: None,
    })
    .expect_err("shadowing is refused");
    assert!(error.problems[0].to_string().contains("shadows"), "{error}");
}

#[tokio::test]
async fn the_sidecar_answers_namespaced_questions_over_http() {
    for world in worlds() {
        let (_dir, sources, _snapshot) = load(&world);
        let config = gatehouse::config::Config {
            listen: "127.0.0.1:0".into(),
            ..gatehouse::config::Config::for_sources(&sources)
        };
        let app = gatehouse::app::build(&config)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", world.name));
        let router = app.router();
        let body = serde_json::to_vec(&json!({
            "principal": world.principal,
            "action": r#"App::Action::"read""#,
            "resource": world.resource,
            "context": world.context,
            "entities": world.entities,
        }))
        .expect("json");
        let (status, answer) = common::server::oneshot(&router, "/v1/is_authorized", body).await;
        assert_eq!(status, 200, "{}: {answer}", world.name);
        assert_eq!(answer["decision"], "Allow", "{}: {answer}", world.name);
        assert_eq!(
            answer["diagnostics"]["reason"],
            json!(["p"]),
            "{}",
            world.name
        );

        let body = serde_json::to_vec(&json!({
            "principal": world.principal,
            "resource": world.resource,
            "context": world.context,
            "entities": world.entities,
        }))
        .expect("json");
        let (status, answer) = common::server::oneshot(&router, "/v1/allowed_actions", body).await;
        assert_eq!(status, 200, "{}: {answer}", world.name);
        assert_eq!(
            answer["allowed"],
            json!(["read"]),
            "{}: {answer}",
            world.name
        );
    }
}
