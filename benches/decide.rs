//! In-process cost of answering a typical question: a shared editor asks to edit a project,
//! with the entities a host sends (the user with their groups and the project).
//!
//! Run with: `cargo bench --bench decide`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::decide::input::{build_request, parse_entities, parse_uid};
use gatehouse::decide::question::evaluate;
use gatehouse::decide::{Decider, Question, decide};
use gatehouse::policy::{self, Sources};
use serde_json::json;

fn question() -> serde_json::Value {
    json!({
        "principal": "User::\"vera\"",
        "action": "Action::\"edit\"",
        "resource": "Project::\"p1\"",
        "entities": [
            {"uid": {"type": "User", "id": "vera"}, "attrs": {}, "parents": [{"type": "Group", "id": "p1-editors"}]},
            {"uid": {"type": "Project", "id": "p1"}, "parents": [], "attrs": {
                "owner": {"type": "User", "id": "olga"},
                "admins": {"type": "Group", "id": "p1-admins"}, "managers": {"type": "Group", "id": "p1-managers"},
                "editors": {"type": "Group", "id": "p1-editors"}, "viewers": {"type": "Group", "id": "p1-viewers"},
                "phase": "processing", "archived": false, "public": false,
                "downloads_enabled": false, "editors_can_share": false}}
        ]
    })
}

fn bench(c: &mut Criterion) {
    let snapshot = policy::load(&Sources {
        policies: "policies".into(),
        schema: "schemas/project_sharing.cedarschema".into(),
        entities: None,
    })
    .expect("the bundled set loads");
    let body = serde_json::to_vec(&question()).expect("json");
    let q: Question = serde_json::from_slice(&body).expect("question");

    c.bench_function("json: parse the body", |b| {
        b.iter(|| serde_json::from_slice::<Question>(&body).expect("question"))
    });
    c.bench_function("entities: parse with the schema", |b| {
        let entities = q.entities.clone().expect("entities");
        b.iter(|| parse_entities(&snapshot, &[("entities", &entities)]).expect("entities"))
    });
    let request = build_request(
        &snapshot,
        parse_uid("principal", &q.principal).expect("uid"),
        parse_uid("action", &q.action).expect("uid"),
        parse_uid("resource", &q.resource).expect("uid"),
        None,
    )
    .expect("request");
    let entities = parse_entities(
        &snapshot,
        &[("entities", q.entities.as_ref().expect("entities"))],
    )
    .expect("entities");
    c.bench_function("cedar: evaluate the indexed policies", |b| {
        b.iter(|| decide(&snapshot, &request, &entities))
    });
    c.bench_function("cedar: evaluate all 41 policies", |b| {
        let authorizer = cedar_policy::Authorizer::new();
        b.iter(|| authorizer.is_authorized(&request, &snapshot.policies, &entities))
    });
    c.bench_function("decide: a cold miss (parse, validate, evaluate)", |b| {
        b.iter(|| evaluate(&snapshot, &q).expect("answer"))
    });
    let warm = Decider::entities_only(10_000);
    c.bench_function("decide: a miss, entities parsed before", |b| {
        b.iter(|| warm.answer(&snapshot, &q, None).expect("answer"))
    });
    let decider = Decider::new(10_000, 10_000, Duration::from_secs(300));
    decider.answer(&snapshot, &q, None).expect("warm");
    c.bench_function("decide: a cache hit (body parse, key, lookup)", |b| {
        b.iter(|| {
            let q: Question = serde_json::from_slice(&body).expect("question");
            decider.answer(&snapshot, &q, None).expect("answer")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
