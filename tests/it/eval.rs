//! The compiled evaluator (`decide::eval`) against Cedar's authorizer: on generated policy
//! sets, requests and entities of any shape (no schema, so attributes of the wrong type,
//! missing attributes and entities, overflows, extension values), an answer from the
//! evaluator is always Cedar's decision with Cedar's reasons and no error, and wherever
//! Cedar reports an error the evaluator has given up.

use cedar_policy::{
    Authorizer, Context, Entities, EntityUid, Policy, PolicyId, PolicySet, Request,
};
use gatehouse::decide::eval::{self, GiveUp};
use gatehouse::policy::program::Program;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Policies using every construct the evaluator compiles, and some it leaves to Cedar.
const POOL: &[&str] = &[
    r#"permit (principal, action == Action::"read", resource) when { principal == resource.owner };"#,
    r#"permit (principal in Group::"g1", action in [Action::"read", Action::"write"], resource is Doc);"#,
    r#"forbid (principal, action in Action::"all", resource) when { resource.flag };"#,
    r#"permit (principal, action, resource) when { resource has level && resource.level < 3 && resource.level + 1 <= context.n * 2 };"#,
    r#"forbid (principal, action, resource) unless { ["a", "b"].contains(context.role) };"#,
    r#"permit (principal, action, resource) when { resource.tags.contains("x") || resource.tags.containsAll(["a", "b"]) };"#,
    r#"permit (principal, action, resource) when { resource.tags.containsAny(context.flags) };"#,
    r#"permit (principal, action, resource) when { resource.title like "a*" };"#,
    r#"permit (principal, action, resource) when { if context has target then context.target in resource.reviewers else false };"#,
    r#"permit (principal, action, resource) when { principal in [resource.owner, Group::"g2"] };"#,
    r#"forbid (principal, action, resource) when { -resource.level == 1 || resource.tags.isEmpty() };"#,
    r#"permit (principal, action, resource) when { resource.meta.kind == "k" };"#,
    r#"permit (principal, action, resource) when { resource.meta == context };"#,
    r#"permit (principal, action, resource) when { resource.tags == ["a"] };"#,
    r#"permit (principal is User, action, resource is Doc in Group::"g1");"#,
    r#"permit (principal, action, resource) when { principal.level * 4611686018427387904 > 5 };"#,
    r#"permit (principal, action, resource) when { decimal("1.0").lessThan(decimal("2.0")) };"#,
    r#"permit (principal == User::"a", action, resource == Doc::"d1");"#,
    r#"permit (principal, action, resource) when { resource.owner has level && resource.owner.level == 1 };"#,
    r#"forbid (principal, action, resource) when { context.target == principal };"#,
    r#"permit (principal, action, resource) when { resource.level != "3" };"#,
    r#"permit (principal, action == Action::"write", resource) when { !(principal in resource) };"#,
    r#"permit (principal, action, resource) when { resource.title < 3 };"#,
    r#"permit (principal, action, resource) when { [resource.level, 1].contains(2) };"#,
    r#"forbid (principal, action, resource) when { resource has owner && resource.owner is User && context.n - 1 >= 0 };"#,
    r#"permit (principal, action, resource in Group::"g2") when { context.role like "*" };"#,
    r#"permit (principal, action, resource) unless { principal has title || resource has tags };"#,
    r#"forbid (principal, action, resource) when { context has target && context.target has level };"#,
    r#"permit (principal, action in Action::"all", resource) when { principal in resource.owner };"#,
    r#"permit (principal, action, resource) when { principal in [principal, resource.title] };"#,
];

const UIDS: &[(&str, &str)] = &[
    ("User", "a"),
    ("User", "b"),
    ("Group", "g1"),
    ("Group", "g2"),
    ("Doc", "d1"),
    ("Doc", "d2"),
];
const ACTIONS: &[&str] = &["read", "write", "all"];

fn uid_json(i: usize) -> Value {
    let (t, id) = UIDS[i % UIDS.len()];
    json!({"__entity": {"type": t, "id": id}})
}

/// A value of any shape an attribute or the context can hold.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(2),
            Just(3),
            Just(-1),
            Just(i64::MAX),
            Just(i64::MIN)
        ]
        .prop_map(Value::from),
        prop::sample::select(vec!["a", "b", "x", "ab", "k", "3", ""]).prop_map(Value::from),
        (0..UIDS.len()).prop_map(uid_json),
        Just(json!({"__extn": {"fn": "decimal", "arg": "1.5"}})),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["kind", "n", "role"]).prop_map(str::to_string),
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value of the type an attribute or context key usually has, or of any shape.
fn typed(name: &'static str) -> BoxedStrategy<Value> {
    let usual: BoxedStrategy<Value> = match name {
        "owner" | "target" => (0..2usize).prop_map(uid_json).boxed(),
        "level" | "n" => prop_oneof![
            Just(0i64),
            Just(1),
            Just(2),
            Just(3),
            Just(-1),
            Just(i64::MAX)
        ]
        .prop_map(Value::from)
        .boxed(),
        "title" | "role" | "kind" => prop::sample::select(vec!["a", "b", "ab", "x", "k", ""])
            .prop_map(Value::from)
            .boxed(),
        "tags" | "flags" => prop::collection::vec(prop::sample::select(vec!["a", "b", "x"]), 0..3)
            .prop_map(|v| json!(v))
            .boxed(),
        "flag" => any::<bool>().prop_map(Value::from).boxed(),
        "meta" => prop::sample::select(vec!["k", "j"])
            .prop_map(|k| json!({"kind": k}))
            .boxed(),
        "reviewers" => prop::collection::vec(0..2usize, 0..3)
            .prop_map(|v| Value::Array(v.into_iter().map(uid_json).collect()))
            .boxed(),
        _ => value().boxed(),
    };
    prop_oneof![4 => usual, 1 => value()].boxed()
}

/// A record of some of `names`, each with a [`typed`] value.
fn record(names: &'static [&'static str]) -> impl Strategy<Value = Value> {
    names
        .iter()
        .map(|name| prop::option::weighted(0.6, typed(name)))
        .collect::<Vec<_>>()
        .prop_map(move |values| {
            Value::Object(
                names
                    .iter()
                    .zip(values)
                    .filter_map(|(name, value)| Some((name.to_string(), value?)))
                    .collect(),
            )
        })
}

const ATTRS: &[&str] = &[
    "owner",
    "level",
    "title",
    "tags",
    "flag",
    "meta",
    "reviewers",
];
const CONTEXT: &[&str] = &["n", "role", "flags", "target", "kind"];

/// Entities: each of the uids present or not, with parents among the groups and docs after
/// it (no cycle: Cedar refuses one), and the actions with `Action::"all"` as the parent of
/// some.
fn entities() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec((prop::bool::weighted(0.85), record(ATTRS), any::<[bool; 4]>()), UIDS.len()),
        any::<[bool; 2]>(),
    )
        .prop_map(|(entities, in_all)| {
            let mut list: Vec<Value> = entities
                .into_iter()
                .enumerate()
                .filter(|(_, (present, _, _))| *present)
                .map(|(i, (_, attrs, parents))| {
                    let (t, id) = UIDS[i];
                    let parents: Vec<Value> = [2, 3, 4, 5]
                        .iter()
                        .zip(parents)
                        .filter(|(p, on)| *on && **p > i)
                        .map(|(p, _)| json!({"type": UIDS[*p].0, "id": UIDS[*p].1}))
                        .collect();
                    json!({"uid": {"type": t, "id": id}, "attrs": attrs, "parents": parents})
                })
                .collect();
            for (action, in_all) in ["read", "write"].iter().zip(in_all) {
                let parents = if in_all {
                    vec![json!({"type": "Action", "id": "all"})]
                } else {
                    vec![]
                };
                list.push(json!({"uid": {"type": "Action", "id": action}, "attrs": {}, "parents": parents}));
            }
            list.push(json!({"uid": {"type": "Action", "id": "all"}, "attrs": {}, "parents": []}));
            Value::Array(list)
        })
}

fn context() -> impl Strategy<Value = Value> {
    record(CONTEXT)
}

/// One case: a subset of the pool, a request and entities.
#[derive(Debug, Clone)]
struct Case {
    policies: Vec<usize>,
    principal: usize,
    action: usize,
    resource: usize,
    context: Value,
    entities: Value,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::subsequence((0..POOL.len()).collect::<Vec<_>>(), 1..4),
        0..UIDS.len(),
        0..ACTIONS.len(),
        0..UIDS.len(),
        context(),
        entities(),
    )
        .prop_map(
            |(policies, principal, action, resource, context, entities)| Case {
                policies,
                principal,
                action,
                resource,
                context,
                entities,
            },
        )
}

fn uid(i: usize) -> EntityUid {
    let (t, id) = UIDS[i];
    format!("{t}::\"{id}\"").parse().expect("uid")
}

/// What happened to one case.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// A policy of the subset is not compiled.
    NotCompiled,
    /// Cedar could not take the entities or the context (a cycle, a bad extension value).
    Unreadable,
    GaveUp,
    LeftToCedar,
    Answered,
}

fn check(case: &Case) -> Result<Seen, TestCaseError> {
    let policies: Vec<Policy> = case
        .policies
        .iter()
        .map(|&i| Policy::parse(Some(PolicyId::new(format!("p{i}"))), POOL[i]).expect("policy"))
        .collect();
    let Some(program) = Program::compile(&policies) else {
        return Ok(Seen::NotCompiled);
    };
    let set = PolicySet::from_policies(policies).expect("set");
    let (Ok(entities), Ok(context)) = (
        Entities::from_json_value(case.entities.clone(), None),
        Context::from_json_value(case.context.clone(), None),
    ) else {
        return Ok(Seen::Unreadable);
    };
    let action: EntityUid = format!("Action::\"{}\"", ACTIONS[case.action])
        .parse()
        .expect("uid");
    let request = Request::new(
        uid(case.principal),
        action,
        uid(case.resource),
        context,
        None,
    )
    .expect("request");
    let response = Authorizer::new().is_authorized(&request, &set, &entities);
    let errors = response.diagnostics().errors().count();
    match eval::decide(&program, request.as_ref(), entities.as_ref()) {
        Err(GiveUp) if errors > 0 => Ok(Seen::GaveUp),
        // Where Cedar had no error: what this evaluator leaves to Cedar (two sets or two
        // records compared, an extension value read).
        Err(GiveUp) => Ok(Seen::LeftToCedar),
        Ok(outcome) => {
            prop_assert_eq!(errors, 0, "answered where Cedar errs: {:?}", response);
            prop_assert_eq!(
                outcome.allowed,
                response.decision() == cedar_policy::Decision::Allow,
                "{:?}",
                response
            );
            prop_assert_eq!(outcome.reasons, crate::common::reasons(&response));
            Ok(Seen::Answered)
        }
    }
}

#[test]
fn the_compiled_evaluator_answers_as_cedar_or_gives_up() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 4096,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let seen = std::sync::Mutex::new(std::collections::HashMap::<String, usize>::new());
    runner
        .run(&case(), |case| {
            let what = check(&case)?;
            *seen
                .lock()
                .expect("lock")
                .entry(format!("{what:?}"))
                .or_default() += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = seen.into_inner().expect("lock");
    eprintln!("{seen:?}");
    // Not vacuous: most compiled cases are answered, and some are given up.
    let answered = seen.get("Answered").copied().unwrap_or(0);
    let gave_up = seen.get("GaveUp").copied().unwrap_or(0);
    assert!(answered > 1000, "{seen:?}");
    assert!(seen.contains_key("LeftToCedar"), "{seen:?}");
    assert!(gave_up > 100, "{seen:?}");
}

#[test]
fn what_the_evaluator_does_not_implement_is_not_compiled() {
    for text in [
        r#"permit (principal, action, resource) when { decimal("1.0").lessThan(decimal("2.0")) };"#,
        r#"permit (principal, action, resource) when { context == {"a": 1} };"#,
        r#"permit (principal, action, resource) when { principal.hasTag("a") };"#,
        r#"permit (principal == ?principal, action, resource);"#,
    ] {
        let policy = match Policy::parse(None, text) {
            Ok(policy) => policy,
            // A template is not a policy: it cannot reach a program at all.
            Err(_) => continue,
        };
        assert!(Program::compile([&policy]).is_none(), "{text}");
    }
}

#[test]
fn every_entry_of_the_bundled_index_is_compiled() {
    let snapshot = crate::common::bundled();
    let (compiled, entries) = snapshot.index.compiled();
    assert!(entries > 20, "{entries}");
    assert_eq!(compiled, entries);
}
