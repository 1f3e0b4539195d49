//! The entity slice a host sends with a question, shared by `benches/decide.rs` and
//! `examples/profile_miss.rs`: the user, project p1, its organization and seven groups.

use serde_json::{Value, json};

fn group(id: &str) -> Value {
    json!({"uid": {"type": "Group", "id": id}, "attrs": {}, "parents": []})
}

/// The slice: `user` (a shared editor of p1, a member and viewer of acme), the organization
/// project p1 in its processing phase, acme, and seven groups.
pub fn slice(user: &str) -> Vec<Value> {
    let mut entities = vec![
        json!({"uid": {"type": "User", "id": user}, "attrs": {"email": format!("{user}@example.com")},
               "parents": [{"type": "Group", "id": "p1.editors"}, {"type": "Group", "id": "acme.members"},
                           {"type": "Group", "id": "acme.viewers"}]}),
        json!({"uid": {"type": "Project", "id": "p1"}, "parents": [], "attrs": {
            "owner": {"type": "User", "id": "olga"}, "organization": {"type": "Organization", "id": "acme"},
            "admins": {"type": "Group", "id": "p1.admins"}, "managers": {"type": "Group", "id": "p1.managers"},
            "editors": {"type": "Group", "id": "p1.editors"}, "viewers": {"type": "Group", "id": "p1.viewers"},
            "phase": "processing", "archived": false, "public": false,
            "downloads_enabled": true, "editors_can_share": false}}),
        json!({"uid": {"type": "Organization", "id": "acme"}, "parents": [], "attrs": {
            "admins": {"type": "Group", "id": "acme.admins"}, "data_owners": {"type": "Group", "id": "acme.data_owners"},
            "editors": {"type": "Group", "id": "acme.editors"}, "viewers": {"type": "Group", "id": "acme.viewers"},
            "members": {"type": "Group", "id": "acme.members"}}}),
    ];
    for id in [
        "p1.admins",
        "p1.managers",
        "p1.editors",
        "p1.viewers",
        "acme.admins",
        "acme.members",
        "acme.viewers",
    ] {
        entities.push(group(id));
    }
    entities
}
