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
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
    std::fs::write(dir.path().join("policies/p.cedar"), POLICY).expect("write");
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
        decider
            .batch(
                snapshot,
                &EntityList::from(shared.clone()),
                std::slice::from_ref(q),
            )
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
    let known = entity(
        group(3),
        &Version {
            tag: None,
            parents: vec![4],
        },
    );
    let parents = |v: &[usize]| Version {
        tag: None,
        parents: v.to_vec(),
    };
    for cycle in [
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
    ] {
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
