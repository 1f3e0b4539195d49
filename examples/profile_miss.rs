//! A fixed amount of decision work, for instruction counts that do not depend on what else
//! the machine is doing (`valgrind --tool=callgrind` counts instructions, not seconds):
//!
//! ```sh
//! cargo build --release --example profile_miss
//! valgrind --tool=callgrind --toggle-collect='profile_miss::work' target/release/examples/profile_miss miss 200
//! ```
//!
//! Modes, each on the 10-entity slice `benches/decide.rs` and `benches/http` send:
//! - `miss N`: N questions, each with a new user, the other nine entities parsed before;
//! - `cold N`: N questions with no entity cache (every entity parsed);
//! - `batch N`: N batches of 100 questions sharing the slice (no entities of their own);
//! - `peers N FILE`: N bodies of a template file of the peers bench
//!   (`../shared/bench-peers`, `gatehouse.tmpl`: one body a line, the user's id written
//!   `@U@`), cycled with a new user id each time as its load does, after two uncounted
//!   cycles that fill the caches as the load's first seconds do;
//! - `peers-batch N FILE`: N batches of the peers bench's `gatehouse-batch.tmpl` (one body,
//!   100 questions on 218 shared entities), a new user each time as its load does.
//!
//! Only the work from each body's bytes to its decision is counted: the instructions of one
//! question (or batch) are the total divided by N. BENCHMARKS.md has the figures.

use std::time::Duration;

use gatehouse::decide::{Decider, EntityList, Question, Verdict};
use gatehouse::policy::{self, Sources};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../benches/common/slice.rs"]
mod slice_of;
use slice_of::slice;

fn question(user: &str, with_entities: bool) -> Value {
    let mut q = json!({
        "principal": {"type": "User", "id": user},
        "action": {"type": "Action", "id": "edit"},
        "resource": {"type": "Project", "id": "p1"},
        "context": {},
    });
    if with_entities {
        q["entities"] = Value::Array(slice(user));
    }
    q
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "miss".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let snapshot = policy::load(&Sources {
        policies: root.join("policies"),
        schema: root.join("schemas/project_sharing.cedarschema"),
        entities: None,
    })
    .expect("the bundled set loads");
    let ttl = Duration::from_secs(300);
    // The questions are made before the work, as bytes, as a server receives them.
    let templates: Vec<String> = match mode.as_str() {
        "peers" | "peers-batch" => std::fs::read_to_string(args.next().expect("peers N FILE"))
            .expect("the template file")
            .lines()
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    let bodies: Vec<Vec<u8>> = match mode.as_str() {
        "peers" | "peers-batch" => (0..n)
            .map(|i| {
                let body = &templates[i % templates.len()];
                body.replace("@U@", &format!("u{i}")).into_bytes()
            })
            .collect(),
        "batch" => (0..n)
            .map(|b| {
                // Vera asks to share p1 with 100 different people: distinct questions on one
                // shared slice.
                let requests: Vec<Value> = (0..100)
                    .map(|i| {
                        let mut q = question("vera", false);
                        q["action"] = json!({"type": "Action", "id": "share"});
                        q["context"] = json!({"role": "viewer", "target": {"type": "User", "id": format!("b{b}t{i}")}});
                        q
                    })
                    .collect();
                serde_json::to_vec(&json!({"entities": slice("vera"), "requests": requests}))
                    .expect("json")
            })
            .collect(),
        _ => (0..n)
            .map(|i| serde_json::to_vec(&question(&format!("u{i}"), true)).expect("json"))
            .collect(),
    };
    let decider = match mode.as_str() {
        "cold" => Decider::new(1_000_000, 0, ttl),
        _ => Decider::new(1_000_000, 1_000, ttl),
    };
    // Warm the entity cache with the nine entities every question shares.
    let warm: Question = serde_json::from_value(question("warm", true)).expect("question");
    decider.answer(&snapshot, &warm, None).expect("warm");
    // Two cycles: the second sees every entity but the user's as the load will.
    for user in ["warm-a", "warm-b"] {
        for body in &templates {
            let body = body.replace("@U@", user);
            if mode == "peers-batch" {
                batch(&snapshot, &decider, body.as_bytes());
            } else {
                let warm: Question = serde_json::from_str(&body).expect("question");
                decider.answer(&snapshot, &warm, None).expect("warm");
            }
        }
    }
    let allowed = work(&mode, &snapshot, &decider, &bodies);
    // Every single question asks an editor to edit a live project (allowed); the batch's
    // shares are denied (p1 does not let editors share).
    println!("{mode} {n}: {allowed} allowed");
}

/// The measured work, alone in a function so that callgrind can count it alone
/// (`--toggle-collect=profile_miss::work`): from the body's bytes to the decision.
#[inline(never)]
fn work(
    mode: &str,
    snapshot: &gatehouse::policy::Snapshot,
    decider: &Decider,
    bodies: &[Vec<u8>],
) -> usize {
    let mut allowed = 0usize;
    for body in bodies {
        if mode.ends_with("batch") {
            allowed += batch(snapshot, decider, body);
        } else {
            // As the route reads it: an object, no key written twice.
            let q: Question =
                gatehouse::http::strict::read_object(body, "the body").expect("question");
            let answer = decider.answer(snapshot, &q, None).expect("answer");
            allowed += usize::from(answer.decision.decision == Verdict::Allow);
        }
    }
    allowed
}

/// A batch body answered as `/v1/is_authorized/batch` answers it; how many were allowed.
fn batch(snapshot: &gatehouse::policy::Snapshot, decider: &Decider, body: &[u8]) -> usize {
    #[derive(serde::Deserialize)]
    struct Batch {
        entities: EntityList,
        requests: Vec<Box<serde_json::value::RawValue>>,
    }
    let batch: Batch = serde_json::from_slice(body).expect("batch");
    let questions: Vec<Question> = batch
        .requests
        .iter()
        .map(|raw| serde_json::from_str(raw.get()).expect("question"))
        .collect();
    let shared = decider
        .batch(snapshot, &batch.entities, &questions)
        .expect("shared entities");
    let mut allowed = 0;
    for q in &questions {
        let answer = decider.answer(snapshot, q, Some(&shared)).expect("answer");
        allowed += usize::from(answer.decision.decision == Verdict::Allow);
    }
    allowed
}
