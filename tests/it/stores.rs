//! The assembled-store cache (`decide::entities::StoreCache`): a question's store, built
//! from the cached store of the part seen before with only the new entities added, is the
//! store assembled from scratch, and every entity in it is the one plain Cedar builds from
//! all the entities at once (attributes, parents and transitive ancestors).
//!
//! The domain's schema has one level of groups; this test's schema nests groups in groups,
//! so that adding one entity can change the ancestors of entities cached before it.

use std::collections::{BTreeMap, BTreeSet};

use cedar_policy::{Entities, EntityUid};
use gatehouse::decide::entities::Layer;
use gatehouse::decide::view::{Closed, Closure, View};
use gatehouse::decide::{Decider, EntityList};
use gatehouse::policy::{self, Snapshot, Sources};
use proptest::prelude::*;
use serde_json::{Value, json};

const SCHEMA: &str = r#"
entity Group in [Group] { tag?: Long };
entity User in [Group] { tag?: Long };
action act appliesTo { principal: [User], resource: [Group] };
"#;
const POLICY: &str = r#"@id("members") permit (principal in Group::"g0", action, resource);"#;

const GROUPS: usize = 6;
const USERS: usize = 3;
/// Groups at this index and up may be stored rather than sent.
const STORED_FROM: usize = 4;

/// One version of an entity: its tag and its parents (a group's parents come after it, so
/// the hierarchy has no cycle).
#[derive(Debug, Clone)]
struct Version {
    tag: Option<i64>,
    parents: Vec<usize>,
}

fn version(first_parent: usize) -> impl Strategy<Value = Version> {
    // Parents among the later groups, and `g6`, which is nowhere (a dangling parent).
    (prop::option::of(0..2i64), any::<[bool; GROUPS + 1]>()).prop_map(move |(tag, mask)| Version {
        tag,
        parents: (first_parent..=GROUPS).filter(|&p| mask[p]).collect(),
    })
}

fn group(i: usize) -> Value {
    json!({"type": "Group", "id": format!("g{i}")})
}

fn entity(uid: Value, v: &Version) -> Value {
    let mut attrs = serde_json::Map::new();
    if let Some(tag) = v.tag {
        attrs.insert("tag".into(), json!(tag));
    }
    json!({"uid": uid, "attrs": attrs, "parents": v.parents.iter().map(|&p| group(p)).collect::<Vec<_>>()})
}

/// A version with no tag and these parents.
fn parents(parents: &[usize]) -> Version {
    Version {
        tag: None,
        parents: parents.to_vec(),
    }
}

/// Groups whose parents make a cycle: through each other, or a group its own parent.
fn cycles() -> Vec<Vec<Value>> {
    vec![
        vec![
            entity(group(0), &parents(&[1])),
            entity(group(1), &parents(&[0])),
        ],
        vec![
            entity(group(0), &parents(&[3, 1])),
            entity(group(1), &parents(&[2])),
            entity(group(2), &parents(&[0])),
        ],
        vec![entity(group(5), &parents(&[5]))],
    ]
}

/// Two versions of every group and user: questions pick one of them, so the same entity
/// comes back (cached) and a changed one comes too.
#[derive(Debug, Clone)]
struct Pool {
    groups: Vec<[Version; 2]>,
    users: Vec<[Version; 2]>,
}

fn pool() -> impl Strategy<Value = Pool> {
    let groups: Vec<_> = (0..GROUPS)
        .map(|i| [version(i + 1), version(i + 1)])
        .collect();
    let users: Vec<_> = (0..USERS).map(|_| [version(0), version(0)]).collect();
    (groups, users).prop_map(|(groups, users)| Pool { groups, users })
}

/// A question: its principal, its resource, and the entities it sends (each uid at most
/// once, with the version picked).
#[derive(Debug, Clone)]
struct Ask {
    principal: usize,
    resource: usize,
    /// (is a user, index, version), in the order sent.
    sent: Vec<(bool, usize, usize)>,
    /// Asked in a batch with these entities shared by its questions (`None`: alone).
    shared: Option<Vec<(bool, usize, usize)>>,
}

fn sent() -> impl Strategy<Value = Vec<(bool, usize, usize)>> {
    (
        prop::collection::btree_map((any::<bool>(), 0..GROUPS), 0..2usize, 0..6),
        any::<bool>(),
    )
        .prop_map(|(sent, reversed)| {
            let mut sent: Vec<(bool, usize, usize)> = sent
                .into_iter()
                .filter(|((user, i), _)| !*user || *i < USERS)
                .map(|((user, i), v)| (user, i, v))
                .collect();
            if reversed {
                sent.reverse();
            }
            sent
        })
}

fn ask() -> impl Strategy<Value = Ask> {
    (0..USERS, 0..GROUPS, sent(), prop::option::of(sent())).prop_map(
        |(principal, resource, sent, shared)| Ask {
            principal,
            resource,
            sent,
            shared,
        },
    )
}

fn load(stored: &[Value]) -> (tempfile::TempDir, Snapshot) {
    load_with(stored, POLICY)
}

fn load_with(stored: &[Value], policies: &str) -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
    std::fs::write(dir.path().join("policies/p.cedar"), policies).expect("write");
    std::fs::write(dir.path().join("s.cedarschema"), SCHEMA).expect("write");
    let entities = dir.path().join("entities.json");
    std::fs::write(&entities, serde_json::to_vec(stored).expect("json")).expect("write");
    let snapshot = policy::load(&Sources {
        policies: dir.path().join("policies"),
        schema: dir.path().join("s.cedarschema"),
        entities: Some(entities),
    })
    .expect("the test set loads");
    (dir, snapshot)
}

/// Every entity of a store as plain data: its JSON and its ancestors (transitive).
fn contents(store: &Entities) -> BTreeMap<String, (Value, BTreeSet<String>)> {
    store
        .iter()
        .map(|e| {
            let uid = e.uid();
            let ancestors = store
                .ancestors(&uid)
                .expect("in the store")
                .map(ToString::to_string)
                .collect();
            let mut json = e.to_json_value().expect("json");
            // Parents come in hash order.
            if let Some(Value::Array(parents)) = json.get_mut("parents") {
                parents.sort_by_key(ToString::to_string);
            }
            (uid.to_string(), (json, ancestors))
        })
        .collect()
}

fn store_of(decider: &Decider, snapshot: &Snapshot, q: &Value, shared: Option<&Value>) -> Entities {
    let batch = shared.map(|shared| {
        // The batch's question, asked of the schema's one action.
        let mut asked = q.clone();
        asked["action"] = json!({"type": "Action", "id": "act"});
        asked.as_object_mut().expect("an object").remove("entities");
        let question: gatehouse::decide::Question =
            serde_json::from_value(asked).expect("question");
        decider
            .batch(snapshot, &EntityList::from(shared.clone()), [&question])
            .expect("a valid batch")
    });
    let own = EntityList::from(q["entities"].clone());
    let layer = Layer::digest(&snapshot.version, "entities", &own).expect("digest");
    let store = decider
        .entities(snapshot, batch.as_ref(), Some(&layer), |slice| {
            slice.json(&q["principal"]);
            slice.json(&q["resource"]);
        })
        .expect("a valid store");
    Entities::clone(&store)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// A run of questions through one caching decider: each store equals the store a
    /// decider without caches assembles from scratch, and each entity in it equals the one
    /// Cedar builds from the stored, shared and sent entities together (a batch's shared one
    /// replacing the stored one of the same uid, and the question's own replacing both).
    #[test]
    fn a_store_built_on_a_cached_one_is_the_store_from_scratch(
        pool in pool(),
        stored_versions in prop::collection::vec(prop::option::of(0..2usize), GROUPS - STORED_FROM),
        asks in prop::collection::vec(ask(), 1..12),
    ) {
        let stored: Vec<Value> = stored_versions
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| entity(group(STORED_FROM + k), &pool.groups[STORED_FROM + k][v])))
            .collect();
        let (_dir, snapshot) = load(&stored);
        let cached = Decider::new(0, 64, std::time::Duration::ZERO);
        let scratch = Decider::uncached();
        let to_json = |sent: &[(bool, usize, usize)]| -> Vec<Value> {
            sent.iter()
                .map(|&(user, i, v)| {
                    if user {
                        entity(json!({"type": "User", "id": format!("u{i}")}), &pool.users[i][v])
                    } else {
                        entity(group(i), &pool.groups[i][v])
                    }
                })
                .collect()
        };
        for ask in &asks {
            let sent = to_json(&ask.sent);
            let shared = ask.shared.as_deref().map(|shared| Value::Array(to_json(shared)));
            let q = json!({
                "principal": {"type": "User", "id": format!("u{}", ask.principal)},
                "resource": group(ask.resource),
                "entities": sent,
            });
            let got = contents(&store_of(&cached, &snapshot, &q, shared.as_ref()));
            let expected = contents(&store_of(&scratch, &snapshot, &q, shared.as_ref()));
            prop_assert_eq!(&got, &expected, "{:?}", ask);
            // Plain Cedar, every stored, shared and sent entity at once.
            let shared = shared.as_ref().and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            let mut all: BTreeMap<String, Value> = BTreeMap::new();
            for e in stored.iter().chain(shared).chain(&sent) {
                let uid = EntityUid::from_json(e["uid"].clone()).expect("uid");
                all.insert(uid.to_string(), e.clone());
            }
            let whole = Entities::from_json_value(
                Value::Array(all.into_values().collect()),
                Some(&snapshot.schema),
            )
            .expect("plain Cedar takes them");
            let whole = contents(&whole);
            for (uid, entity) in &got {
                if let Some(expected) = whole.get(uid) {
                    prop_assert_eq!(entity, expected, "{}", uid);
                } else {
                    // Only the schema's actions are not among the entities sent or stored.
                    prop_assert!(uid.starts_with("Action::"), "{}", uid);
                }
            }
        }
    }
}

/// Assembles the store of a question of user `u0` sending `sent`.
fn store_for_user_u0(
    decider: &Decider,
    snapshot: &Snapshot,
    sent: Vec<Value>,
) -> Result<(), gatehouse::decide::InputError> {
    let own = EntityList::from(Value::Array(sent));
    let layer = Layer::digest(&snapshot.version, "entities", &own).expect("digest");
    decider
        .entities(snapshot, None, Some(&layer), |slice| {
            slice.json(&json!({"type": "User", "id": "u0"}));
        })
        .map(|_| ())
}

/// A sent entity with the uid of one sent before in the same question is the same uid listed
/// twice, even when the first was parsed and cached by an earlier question.
#[test]
fn a_uid_listed_twice_is_refused_when_one_was_seen_before() {
    let (_dir, snapshot) = load(&[]);
    let decider = Decider::new(0, 64, std::time::Duration::ZERO);
    let first = Version {
        tag: Some(0),
        parents: vec![1],
    };
    let second = Version {
        tag: Some(1),
        parents: vec![2],
    };
    let ask = |sent: Vec<Value>| store_for_user_u0(&decider, &snapshot, sent);
    ask(vec![entity(group(0), &first)]).expect("one version");
    ask(vec![entity(group(0), &first)]).expect("the same again");
    let error = ask(vec![entity(group(0), &first), entity(group(0), &second)])
        .expect_err("two versions of one uid");
    assert_eq!(error.field, "entities[1]");
    assert!(
        error.message.contains("lists entity `Group::\"g0\"` twice"),
        "{}",
        error.message
    );
}

/// New entities whose parents make a cycle (through each other, or an entity its own
/// parent) are refused when added to a cached store exactly as when the store is assembled
/// from scratch: the closure is not computed around the cycle.
#[test]
fn a_cycle_among_new_entities_is_refused_as_from_scratch() {
    let (_dir, snapshot) = load(&[]);
    let known = entity(group(3), &parents(&[4]));
    for cycle in cycles() {
        let ask = |decider: &Decider, sent| store_for_user_u0(decider, &snapshot, sent);
        let cached = Decider::new(0, 64, std::time::Duration::ZERO);
        ask(&cached, vec![known.clone()]).expect("the known part");
        let mut sent = vec![known.clone()];
        sent.extend(cycle.iter().cloned());
        let from_scratch = ask(&Decider::uncached(), sent.clone()).expect_err("a cycle");
        let on_cached = ask(&cached, sent).expect_err("a cycle, on the cached store");
        // Which vertex of the cycle Cedar names follows its maps' order.
        assert_eq!(on_cached.field, from_scratch.field);
        for error in [&on_cached, &from_scratch] {
            assert!(error.message.contains("has a cycle"), "{}", error.message);
        }
    }
}

/// Policies reading ancestors through nested groups (the principal's and the resource's),
/// a dangling ancestor, and attributes that may be missing.
const VIEW_POLICIES: &str = r#"
@id("members") permit (principal in Group::"g0", action, resource);
@id("deep") permit (principal, action, resource in Group::"g5") when { principal in Group::"g3" };
@id("tagged") forbid (principal, action, resource) when { principal has tag && principal.tag == 1 && resource in Group::"g2" };
@id("resource-tag") permit (principal, action, resource) when { resource has tag && resource.tag == 0 };
@id("dangling") forbid (principal in Group::"g6", action, resource);
"#;

/// A single question decided over its entities laid on the stored ones (`decide::view`,
/// no store assembled), and the same question asked in a batch that shares those entities
/// (decided over the batch's closure, `decide::view::Closed`), get the decision and reasons
/// Cedar gives over every stored and sent entity at once, through a caching decider as
/// through an uncached one; and the view and the closure answer most of them (it is not a
/// test of the fallback alone).
#[test]
fn a_question_decided_over_its_view_is_decided_as_by_cedar() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let counts = std::cell::Cell::new(Counts::default());
    let case = (
        pool(),
        prop::collection::vec(prop::option::of(0..2usize), GROUPS - STORED_FROM),
        prop::collection::vec(ask(), 1..12),
    );
    runner
        .run(&case, |(pool, stored_versions, asks)| {
            let case = view_case(&pool, &stored_versions, &asks)?;
            let all = counts.get();
            counts.set(Counts {
                viewed: all.viewed + case.viewed,
                closed: all.closed + case.closed,
                asked: all.asked + case.asked,
            });
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let Counts {
        viewed,
        closed,
        asked,
    } = counts.get();
    eprintln!("{viewed} of {asked} questions viewed, {closed} closed");
    assert!(viewed * 3 > asked, "{viewed} of {asked} questions viewed");
    assert!(closed * 3 > asked, "{closed} of {asked} questions closed");
}

/// Of the questions of [`a_question_decided_over_its_view_is_decided_as_by_cedar`]: how
/// many the view answered, how many the closure answered, and how many were asked.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    viewed: usize,
    closed: usize,
    asked: usize,
}

/// One case of [`a_question_decided_over_its_view_is_decided_as_by_cedar`].
fn view_case(
    pool: &Pool,
    stored_versions: &[Option<usize>],
    asks: &[Ask],
) -> Result<Counts, TestCaseError> {
    let stored: Vec<Value> = stored_versions
        .iter()
        .enumerate()
        .filter_map(|(k, v)| {
            v.map(|v| entity(group(STORED_FROM + k), &pool.groups[STORED_FROM + k][v]))
        })
        .collect();
    let (_dir, snapshot) = load_with(&stored, VIEW_POLICIES);
    let cached = Decider::new(64, 64, std::time::Duration::from_secs(60));
    let uncached = Decider::uncached();
    let (mut viewed, mut closed) = (0, 0);
    for ask in asks {
        let sent: Vec<Value> = ask
            .sent
            .iter()
            .map(|&(user, i, v)| {
                if user {
                    entity(
                        json!({"type": "User", "id": format!("u{i}")}),
                        &pool.users[i][v],
                    )
                } else {
                    entity(group(i), &pool.groups[i][v])
                }
            })
            .collect();
        let q = json!({
            "principal": {"type": "User", "id": format!("u{}", ask.principal)},
            "action": {"type": "Action", "id": "act"},
            "resource": group(ask.resource),
            "entities": sent,
        });
        // Plain Cedar over every stored and sent entity at once.
        let mut all: BTreeMap<String, Value> = BTreeMap::new();
        for e in stored.iter().chain(&sent) {
            let uid = EntityUid::from_json(e["uid"].clone()).expect("uid");
            all.insert(uid.to_string(), e.clone());
        }
        let whole = Entities::from_json_value(
            Value::Array(all.into_values().collect()),
            Some(&snapshot.schema),
        );
        let question: gatehouse::decide::Question =
            serde_json::from_value(q.clone()).expect("question");
        // The same question in a batch that shares its entities.
        let own = EntityList::from(q["entities"].clone());
        let mut in_batch = q.clone();
        in_batch
            .as_object_mut()
            .expect("an object")
            .remove("entities");
        let batch_question: gatehouse::decide::Question =
            serde_json::from_value(in_batch).expect("question");
        let in_batch = [&batch_question];
        let Ok(whole) = whole else {
            // A cycle: refused by the decider too, alone and in a batch.
            prop_assert!(cached.answer(&snapshot, &question, None).is_err());
            let shared = cached.batch(&snapshot, &own, in_batch).expect("shared");
            let answer = cached.answer(&snapshot, &batch_question, Some(&shared));
            prop_assert!(answer.is_err());
            continue;
        };
        let request = cedar_policy::Request::new(
            EntityUid::from_json(q["principal"].clone()).expect("uid"),
            "Action::\"act\"".parse().expect("uid"),
            EntityUid::from_json(q["resource"].clone()).expect("uid"),
            cedar_policy::Context::empty(),
            Some(&snapshot.schema),
        )
        .expect("request");
        let response =
            cedar_policy::Authorizer::new().is_authorized(&request, &snapshot.policies, &whole);
        let reasons = crate::common::reasons(&response);
        for decider in [&cached, &uncached] {
            let shared = decider.batch(&snapshot, &own, in_batch).expect("shared");
            let answers = [
                decider.answer(&snapshot, &question, None),
                decider.answer(&snapshot, &batch_question, Some(&shared)),
            ];
            for answer in answers {
                let decision = &answer.expect("an answer").decision;
                agrees(decision, (&response, &reasons), ask)?;
            }
        }
        // The view and the closure themselves, where they answer.
        let resolved = parsed(&snapshot, &own);
        let request = gatehouse::decide::input::build_request(
            &snapshot,
            request.principal().expect("known").clone(),
            request.action().expect("known").clone(),
            request.resource().expect("known").clone(),
            None,
        )
        .expect("request");
        let mut decided = Vec::new();
        if let Some(own) = View::entities(&snapshot, &resolved.parsed) {
            let view = View::new(&snapshot, &own);
            if let Some(decision) = gatehouse::decide::decide_viewed(&snapshot, &request, view) {
                viewed += 1;
                decided.push(decision);
            }
        }
        let shared = resolved.entities();
        if let Some(closure) = Closure::new(&snapshot, &shared, resolved.named().is_none()) {
            let store = Closed::new(&snapshot, &shared, &closure);
            if let Some(decision) = gatehouse::decide::decide_viewed(&snapshot, &request, store) {
                closed += 1;
                decided.push(decision);
            }
        }
        // Neither gives up to Cedar: they answer only without errors.
        for decision in &decided {
            agrees(decision, (&response, &reasons), ask)?;
        }
    }
    Ok(Counts {
        viewed,
        closed,
        asked: asks.len(),
    })
}

/// Whether `decision` is Cedar's `response` (with its sorted `reasons`): the same errors,
/// and with none the same decision and reasons, with some a Deny.
fn agrees(
    decision: &gatehouse::decide::Decision,
    (response, reasons): (&cedar_policy::Response, &[String]),
    ask: &Ask,
) -> Result<(), TestCaseError> {
    let errors = response.diagnostics().errors().count();
    prop_assert_eq!(decision.errors.len(), errors, "{:?}", ask);
    if errors == 0 {
        prop_assert_eq!(
            decision.decision == gatehouse::decide::Verdict::Allow,
            response.decision() == cedar_policy::Decision::Allow,
            "{:?}",
            ask
        );
        prop_assert_eq!(&decision.reasons[..], reasons, "{:?}", ask);
    } else {
        prop_assert_eq!(decision.decision, gatehouse::decide::Verdict::Deny);
    }
    Ok(())
}

/// A sent entity that a stored one has as an ancestor without it being stored changes the
/// stored one's ancestors: the view declines it, and the question is decided on an assembled
/// store, as Cedar decides it.
#[test]
fn a_sent_ancestor_of_a_stored_entity_is_not_laid_over_the_store() {
    let (_dir, snapshot) = load_with(&[entity(group(4), &parents(&[5]))], VIEW_POLICIES);
    let sent = vec![
        entity(json!({"type": "User", "id": "u0"}), &parents(&[4])),
        entity(group(5), &parents(&[6])),
    ];
    let own = EntityList::from(Value::Array(sent.clone()));
    let resolved = parsed(&snapshot, &own);
    assert!(View::entities(&snapshot, &resolved.parsed).is_none());
    let question: gatehouse::decide::Question = serde_json::from_value(json!({
        "principal": {"type": "User", "id": "u0"},
        "action": {"type": "Action", "id": "act"},
        "resource": group(1),
        "entities": sent,
    }))
    .expect("question");
    let answer = Decider::uncached()
        .answer(&snapshot, &question, None)
        .expect("an answer");
    // u0 is in g4, g4 in g5 (sent), g5 in g6: the forbid holds.
    assert_eq!(answer.decision.decision, gatehouse::decide::Verdict::Deny);
    assert_eq!(answer.decision.reasons, vec!["dangling".to_string()]);
}

/// `list` parsed against the snapshot's schema, with no cache.
fn parsed(snapshot: &Snapshot, list: &EntityList) -> gatehouse::decide::entities::Resolved {
    let layer = Layer::digest(&snapshot.version, "entities", list).expect("digest");
    gatehouse::decide::entities::EntityCache::new(gatehouse::decide::cache::Budget::NONE)
        .resolve(snapshot, &layer)
        .expect("parsed")
}

/// User u0 acting on group `resource`.
fn u0_acts_on(resource: usize) -> gatehouse::decide::Question {
    let q = json!({
        "principal": {"type": "User", "id": "u0"},
        "action": {"type": "Action", "id": "act"},
        "resource": group(resource),
    });
    serde_json::from_value(q).expect("a question")
}

/// A shared entity that replaces a stored one changes the ancestors of the stored entities
/// below it: the batch's entities are not closed over the store, and its questions are
/// decided on an assembled store, as Cedar decides them.
#[test]
fn a_shared_entity_replacing_a_stored_one_is_not_closed_over_the_store() {
    let stored = [
        entity(group(4), &parents(&[5])),
        entity(group(5), &parents(&[6])),
    ];
    let (_dir, snapshot) = load_with(&stored, VIEW_POLICIES);
    // u0 is in g4, stored in g5; g5 is sent again, in nothing.
    let sent = vec![
        entity(json!({"type": "User", "id": "u0"}), &parents(&[4])),
        entity(group(5), &parents(&[])),
    ];
    let shared = EntityList::from(Value::Array(sent.clone()));
    let resolved = parsed(&snapshot, &shared);
    let replaces = resolved.named().is_none();
    assert!(replaces);
    assert!(Closure::new(&snapshot, &resolved.entities(), replaces).is_none());
    let question = u0_acts_on(1);
    let decider = Decider::uncached();
    let shared = decider
        .batch(&snapshot, &shared, [&question])
        .expect("shared entities");
    let answer = decider
        .answer(&snapshot, &question, Some(&shared))
        .expect("an answer");
    // Over the sent g5, u0 is not in g6: no forbid holds, and no permit.
    assert_eq!(answer.decision.decision, gatehouse::decide::Verdict::Deny);
    assert!(answer.decision.reasons.is_empty(), "{:?}", answer.decision);
}

/// A shared entity that a stored one has as an ancestor without it being stored is not
/// closed over the store: the batch's questions are decided on their slice of an assembled
/// store, and that slice holds what each question names (here a stored principal).
#[test]
fn a_batch_sharing_a_dangling_ancestor_is_decided_on_the_slice_its_questions_name() {
    let stored = [
        entity(json!({"type": "User", "id": "u0"}), &parents(&[4])),
        entity(group(4), &parents(&[5])),
    ];
    let (_dir, snapshot) = load_with(&stored, VIEW_POLICIES);
    let shared = EntityList::from(json!([entity(group(5), &parents(&[6]))]));
    let question = u0_acts_on(1);
    let decider = Decider::uncached();
    let batch = decider
        .batch(&snapshot, &shared, [&question])
        .expect("shared entities");
    let answer = decider
        .answer(&snapshot, &question, Some(&batch))
        .expect("an answer");
    // u0 (stored) is in g4 (stored), g4 in g5 (shared), g5 in g6: the forbid holds.
    assert_eq!(answer.decision.decision, gatehouse::decide::Verdict::Deny);
    assert_eq!(answer.decision.reasons, vec!["dangling".to_string()]);
    assert!(answer.decision.missing.iter().all(|m| !m.contains("u0")));
}

/// A question whose own entities make a cycle is refused, as assembling its store refuses
/// it, and not decided over a view of them; so is a question of a batch whose shared
/// entities make one, and not decided over their closure.
#[test]
fn a_question_with_a_cycle_among_its_entities_is_refused() {
    let (_dir, snapshot) = load_with(&[], VIEW_POLICIES);
    for cycle in cycles() {
        let mut sent = vec![entity(json!({"type": "User", "id": "u0"}), &parents(&[0]))];
        sent.extend(cycle);
        let mut q = json!({
            "principal": {"type": "User", "id": "u0"},
            "action": {"type": "Action", "id": "act"},
            "resource": group(3),
        });
        let in_batch: gatehouse::decide::Question =
            serde_json::from_value(q.clone()).expect("question");
        q["entities"] = Value::Array(sent.clone());
        let question: gatehouse::decide::Question =
            serde_json::from_value(q.clone()).expect("question");
        let decider = Decider::new(64, 64, std::time::Duration::from_secs(60));
        let error = decider
            .answer(&snapshot, &question, None)
            .expect_err("a cycle");
        assert!(error.message.contains("has a cycle"), "{}", error.message);
        let shared = EntityList::from(Value::Array(sent));
        let shared = decider
            .batch(&snapshot, &shared, [&in_batch])
            .expect("shared entities");
        let error = decider
            .answer(&snapshot, &in_batch, Some(&shared))
            .expect_err("a cycle");
        assert!(error.message.contains("has a cycle"), "{}", error.message);
    }
}
