//! Request entities kept as their JSON text (`gatehouse::decide::EntityList`): the text
//! each entity came in is what is digested, logged and parsed, and a tree gives the same text.

use gatehouse::decide::EntityList;
use serde_json::json;

#[test]
fn a_list_keeps_each_entity_as_it_came_and_serializes_compact() {
    let body = r#"[ {"uid": {"type": "User", "id": "a b\n"}} ,
        {"uid":"User::\"c\"" } ]"#;
    let list: EntityList = serde_json::from_str(body).expect("a list");
    let items = list.items().expect("an array");
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0].get(),
        r#"{"uid": {"type": "User", "id": "a b\n"}}"#
    );
    assert_eq!(items[1].get(), r#"{"uid":"User::\"c\"" }"#);
    assert_eq!(
        serde_json::to_string(&list).expect("serializes"),
        r#"[{"uid":{"type":"User","id":"a b\n"}},{"uid":"User::\"c\""}]"#
    );
    assert_eq!(
        list.to_value(),
        json!([{"uid": {"type": "User", "id": "a b\n"}}, {"uid": "User::\"c\""}])
    );
}

#[test]
fn anything_but_a_list_is_kept_for_its_error() {
    for sent in [
        json!({"uid": 1}),
        json!("x"),
        json!(1.5),
        json!(true),
        json!(7),
    ] {
        let list: EntityList = serde_json::from_str(&sent.to_string()).expect("kept");
        assert_eq!(list.items().err(), Some(&sent));
        assert_eq!(list.len(), 0);
        let list: EntityList = serde_json::from_value(sent.clone()).expect("kept");
        assert_eq!(list.items().err(), Some(&sent));
    }
}

#[test]
fn a_tree_and_its_text_make_the_same_list() {
    let tree = json!([{"uid": {"type": "User", "id": "a"}, "attrs": {"n": 1}, "parents": []}]);
    let from_text: EntityList = serde_json::from_str(&tree.to_string()).expect("text");
    let from_tree = EntityList::from(tree.clone());
    let from_value: EntityList = serde_json::from_value(tree.clone()).expect("value");
    for list in [from_text, from_tree, from_value] {
        assert_eq!(list.to_value(), tree);
        assert_eq!(
            list.items().expect("array")[0].get(),
            tree[0].to_string(),
            "the same bytes, so the same digest"
        );
    }
}
