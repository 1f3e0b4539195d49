//! The smallest reproduction of what adding one entity to a Cedar store costs through the
//! public API (issue 13, BENCHMARKS.md): the store holds `N` users in ten groups, and one new
//! user in one group is upserted into a copy of it, as the sidecar does for a question whose
//! other entities were seen before. Count the instructions of that alone:
//!
//! ```sh
//! cargo build --release --example cedar_upsert
//! for n in 10 100 1000 10000; do
//!   valgrind --tool=callgrind --toggle-collect='cedar_upsert::work' target/release/examples/cedar_upsert $n
//! done
//! ```
//!
//! The cost grows with the store, not with what is added: `Entities::upsert_entities` (and
//! `add_entities`) walks every entity of the store to collect its ancestors into a new set,
//! to find those the added entities touch, and `Entities` has no constructor that takes
//! entities whose ancestors are computed ahead.

use std::collections::{HashMap, HashSet};

use cedar_policy::{Entities, Entity, EntityUid};

fn uid(ty: &str, id: &str) -> EntityUid {
    format!("{ty}::\"{id}\"").parse().expect("a uid")
}

fn user(id: &str, group: usize) -> Entity {
    Entity::new(
        uid("User", id),
        HashMap::new(),
        HashSet::from([uid("Group", &format!("g{group}"))]),
    )
    .expect("an entity")
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let groups = (0..10).map(|g| Entity::with_uid(uid("Group", &format!("g{g}"))));
    let users = (0..n).map(|i| user(&format!("u{i}"), i % 10));
    let store = Entities::from_entities(groups.chain(users), None).expect("a store");
    let new = user("new", 0);
    let grown = work(&store, new);
    assert_eq!(grown.len(), n + 11);
    assert!(grown.is_ancestor_of(&uid("Group", "g0"), &uid("User", "new")));
    println!("{n} entities, one added: {} in the copy", grown.len());
}

/// The measured work: copy the store and upsert one entity into the copy.
#[inline(never)]
fn work(store: &Entities, new: Entity) -> Entities {
    store
        .clone()
        .upsert_entities([new], None)
        .expect("the entity is added")
}
