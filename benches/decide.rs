//! In-process cost of answering the domain's typical questions, each with the realistic
//! entity slice a host sends: the user, the project, its organization and seven groups (ten
//! entities, the same slice `benches/http` posts), plus the item or share token asked about.
//!
//! Run with: `cargo bench --bench decide` (figures in BENCHMARKS.md).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gatehouse::cedar_json::parse_entities;
use gatehouse::decide::question::evaluate;
use gatehouse::decide::{Decider, Question, Verdict, decide};
use gatehouse::policy::{self, Snapshot, Sources};
use serde_json::{Value, json};

/// The allocator the `gatehouse` binary uses, so that these figures are the sidecar's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/slice.rs"]
mod slice_of;
use slice_of::slice;

/// A typical question: its name, the question, and the decision the policies must give.
struct Typical {
    name: &'static str,
    question: Question,
    expected: Verdict,
}

fn question_json(
    user: &str,
    action: &str,
    resource: Value,
    context: Value,
    extra: &[Value],
) -> Value {
    let mut entities = slice(user);
    entities.extend_from_slice(extra);
    json!({
        "principal": {"type": "User", "id": user},
        "action": {"type": "Action", "id": action},
        "resource": resource,
        "context": context,
        "entities": entities,
    })
}

fn question(
    user: &str,
    action: &str,
    resource: Value,
    context: Value,
    extra: &[Value],
) -> Question {
    serde_json::from_value(question_json(user, action, resource, context, extra))
        .expect("a question")
}

fn typical() -> Vec<Typical> {
    let p1 = json!({"type": "Project", "id": "p1"});
    let item = json!({"uid": {"type": "Item", "id": "i1"}, "parents": [{"type": "Project", "id": "p1"}],
                      "attrs": {"project": {"type": "Project", "id": "p1"}, "phase": "processing"}});
    let token = json!({"uid": {"type": "ShareToken", "id": "t1"}, "parents": [], "attrs": {
        "project": {"type": "Project", "id": "p1"},
        "expires_at": {"__extn": {"fn": "datetime", "arg": "2026-12-31T00:00:00Z"}},
        "revoked": false}});
    vec![
        Typical {
            name: "owner archives their project",
            question: question("olga", "archive", p1.clone(), json!({}), &[]),
            expected: Verdict::Allow,
        },
        Typical {
            name: "shared editor edits an org project",
            question: question("vera", "edit", p1.clone(), json!({}), &[]),
            expected: Verdict::Allow,
        },
        Typical {
            name: "token request",
            question: question(
                "stan",
                "request_access",
                json!({"type": "ShareToken", "id": "t1"}),
                json!({"now": {"__extn": {"fn": "datetime", "arg": "2026-06-01T00:00:00Z"}}}),
                &[token],
            ),
            expected: Verdict::Allow,
        },
        Typical {
            name: "editor edits an item in the live phase",
            question: question(
                "vera",
                "edit",
                json!({"type": "Item", "id": "i1"}),
                json!({}),
                &[item],
            ),
            expected: Verdict::Allow,
        },
    ]
}

fn load() -> Snapshot {
    policy::load(&Sources {
        policies: "policies".into(),
        schema: "schemas/project_sharing.cedarschema".into(),
        entities: None,
    })
    .expect("the bundled set loads")
}

fn bench(c: &mut Criterion) {
    let snapshot = load();
    let cases = typical();

    let mut cedar = c.benchmark_group("cedar");
    for case in &cases {
        let q = &case.question;
        let request = q
            .checked(&snapshot)
            .and_then(|checked| checked.request(&snapshot, q.context.as_ref()))
            .expect("request");
        let entities = parse_entities(
            &snapshot.schema,
            &[(
                "entities",
                &q.entities.as_ref().expect("entities").to_value(),
            )],
        )
        .expect("entities");
        // A benchmark of a wrong answer measures nothing.
        assert_eq!(
            decide(&snapshot, &request, &entities).decision,
            case.expected,
            "{}",
            case.name
        );
        cedar.bench_function(format!("{} (indexed policies)", case.name), |b| {
            b.iter(|| decide(&snapshot, &request, &entities))
        });
        cedar.bench_function(format!("{} (all 41 policies)", case.name), |b| {
            let authorizer = cedar_policy::Authorizer::new();
            b.iter(|| authorizer.is_authorized(&request, &snapshot.policies, &entities))
        });
    }
    cedar.finish();

    let editor = &cases[1].question;
    let body = serde_json::to_vec(&question_json(
        "vera",
        "edit",
        json!({"type": "Project", "id": "p1"}),
        json!({}),
        &[],
    ))
    .expect("json");
    let mut parse = c.benchmark_group("parse");
    parse.bench_function("json body (10 entities)", |b| {
        b.iter(|| serde_json::from_slice::<Question>(black_box(&body)).expect("question"))
    });
    let entities = editor.entities.as_ref().expect("entities").to_value();
    parse.bench_function("10 entities with the schema", |b| {
        b.iter(|| parse_entities(&snapshot.schema, &[("entities", &entities)]).expect("entities"))
    });
    parse.finish();

    let mut path = c.benchmark_group("decide");
    path.bench_function("cold miss (nothing cached)", |b| {
        b.iter(|| evaluate(&snapshot, editor).expect("answer"))
    });
    // The miss a stream of distinct questions makes: a new user each time, the nine other
    // entities parsed before.
    let warm = Decider::new(1_000_000, 1_000, Duration::from_secs(300));
    let n = AtomicU64::new(0);
    let fresh = || {
        let user = format!("u{}", n.fetch_add(1, Ordering::Relaxed));
        question(
            &user,
            "edit",
            json!({"type": "Project", "id": "p1"}),
            json!({}),
            &[],
        )
    };
    warm.answer(&snapshot, &fresh(), None).expect("warm");
    path.bench_function("miss (new user, 9 of 10 entities parsed before)", |b| {
        b.iter_batched(
            fresh,
            |q| warm.answer(&snapshot, &q, None).expect("answer"),
            BatchSize::SmallInput,
        )
    });
    let decider = Decider::new(10_000, 1_000, Duration::from_secs(300));
    decider.answer(&snapshot, editor, None).expect("warm");
    path.bench_function("hit (body parse, key, lookup)", |b| {
        b.iter(|| {
            let q: Question = serde_json::from_slice(black_box(&body)).expect("question");
            decider.answer(&snapshot, &q, None).expect("answer")
        })
    });
    path.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
