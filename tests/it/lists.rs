//! Lists answered in the database: `/v1/list` ("which projects may she view?") and
//! `/v1/list/subjects` ("who may view this project?"), on SQLite and PostgreSQL, held to
//! one-by-one decisions of plain Cedar over the database as it is when each page is read,
//! with random writes between pages; paging that never repeats or skips an id; the streamed
//! form; the fallback that decides one by one, said in the answer; and the errors.

use std::collections::BTreeSet;

use gatehouse::policy::Snapshot;
use gatehouse_source::{MappingFile, Source};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common;
use crate::common::server::TestServer;
use crate::common::world::{World, listings, world};
use crate::source::{cedar_decides, databases, runtime, serving, write};

/// Every entity the database holds now, as Cedar's store, and the ids of each type.
async fn database_now(source: &Source, snapshot: &Snapshot) -> (cedar_policy::Entities, Value) {
    let now = Value::Array(source.export_all().await.expect("exports"));
    let all = cedar_policy::Entities::from_json_value(now.clone(), Some(&snapshot.schema))
        .expect("the database");
    (all, now)
}

/// The ids of `ty` among `entities` (Cedar's JSON).
fn ids_of(entities: &Value, ty: &str) -> Vec<String> {
    entities
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e["uid"]["type"] == ty)
        .map(|e| e["uid"]["id"].as_str().expect("an id").to_string())
        .collect()
}

/// The resources of `ty` that plain Cedar allows `principal` to take `action` on.
fn cedar_resources(
    snapshot: &Snapshot,
    (all, entities): &(cedar_policy::Entities, Value),
    principal: &str,
    ty: &str,
    action: &str,
    context: &Value,
) -> BTreeSet<String> {
    ids_of(entities, ty)
        .into_iter()
        .filter(|id| {
            let resource = format!("{ty}::\"{id}\"");
            cedar_decides(snapshot, all, principal, action, &resource, context).0 == "Allow"
        })
        .collect()
}

/// Whether Cedar's store holds `ty::"id"` `in` `ancestor`: it, or among its ancestors.
fn cedar_within(all: &cedar_policy::Entities, ty: &str, id: &str, ancestor: &str) -> bool {
    let uid: cedar_policy::EntityUid = format!("{ty}::\"{id}\"").parse().expect("a uid");
    let ancestor: cedar_policy::EntityUid = ancestor.parse().expect("a uid");
    uid == ancestor
        || all
            .ancestors(&uid)
            .is_some_and(|mut up| up.any(|a| *a == ancestor))
}

/// The users that plain Cedar allows to take `action` on `resource`.
fn cedar_subjects(
    snapshot: &Snapshot,
    (all, entities): &(cedar_policy::Entities, Value),
    resource: &str,
    action: &str,
    context: &Value,
) -> BTreeSet<String> {
    ids_of(entities, "User")
        .into_iter()
        .filter(|id| {
            let principal = format!("User::\"{id}\"");
            cedar_decides(snapshot, all, &principal, action, resource, context).0 == "Allow"
        })
        .collect()
}

/// One page of a list: its ids, and the token of the next (`None` on the last).
async fn page(server: &TestServer, path: &str, body: &Value) -> (Vec<String>, Option<String>) {
    let (status, answer) = server.post(path, body).await;
    assert_eq!(status, 200, "{body}: {answer}");
    // SQL, unless a residual reads what a plan cannot say (an attribute of an entity the
    // database lacks): then decisions, as exact.
    assert!(
        answer["listed_by"] == "sql" || answer["unsupported"].is_string(),
        "{body}: {answer}"
    );
    let ids = answer["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().expect("an id").to_string())
        .collect();
    (ids, answer["next_token"].as_str().map(str::to_string))
}

/// Every page of a list, each of a size taken in turn from `sizes`, asked at least at
/// `token`; no id twice.
async fn all_pages(
    server: &TestServer,
    path: &str,
    body: &Value,
    sizes: &[u64],
    token: &str,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut next: Option<String> = None;
    for turn in 0.. {
        let mut asked = body.clone();
        asked["page"] = json!({"size": sizes[turn % sizes.len()]});
        if let Some(token) = &next {
            asked["page"]["token"] = json!(token);
        }
        asked["consistency"] = json!({"at_least": token});
        let (ids, token) = page(server, path, &asked).await;
        assert!(
            ids.len() as u64 <= sizes[turn % sizes.len()],
            "{asked}: {ids:?}"
        );
        for id in ids {
            assert!(seen.insert(id.clone()), "{asked}: `{id}` listed twice");
        }
        match token {
            Some(token) => next = Some(token),
            None => break,
        }
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() })]
    /// On SQLite and PostgreSQL, random worlds and random writes (entities of another world
    /// written or deleted, memberships granted and revoked in SQL): at each token, every
    /// user's list of every listed action (pages of random sizes) is exactly the resources
    /// plain Cedar allows over the database, and every sampled resource's subjects exactly
    /// the users it allows (one action, and several at once with the actions of each). A
    /// list with a write between its pages repeats no id, lists on each page only what was
    /// allowed when it was read, and skips none allowed both before and after.
    #[test]
    fn lists_equal_one_by_one_decisions_as_the_database_changes(
        w in world(),
        w2 in world(),
        writes in prop::collection::vec((0..4_u8, prop::collection::vec(any::<bool>(), 48)), 1..3),
        sizes in prop::collection::vec(1..5_u64, 1..4),
        sample in prop::collection::vec(any::<bool>(), 16),
    ) {
        let snapshot = common::bundled();
        runtime().block_on(async {
            let (_dir, urls) = databases("lists").await;
            for (name, url) in urls {
                let server = serving(&url, &w.all_json(), gatehouse::config::RequestEntities::Add).await;
                let writer = Source::open(&url, &MappingFile::Bundled, &snapshot).await.expect("opens");
                let others = w2.all_json();
                let users = w.users.max(w2.users);
                for (round, (kind, pick)) in writes.iter().enumerate() {
                    let token = writer.show_position(writer.position().await.expect("a position"));
                    let now = database_now(&writer, &snapshot).await;
                    for (k, (ty, action, context)) in listings(users).into_iter().enumerate() {
                        if !sample[k % sample.len()] {
                            continue;
                        }
                        for u in 0..users {
                            let principal = format!("User::\"{}\"", World::user(u));
                            let body = json!({"principal": principal, "action": action, "resource_type": ty, "context": context});
                            let listed = all_pages(&server, "/v1/list", &body, &sizes, &token).await;
                            let expected = cedar_resources(&snapshot, &now, &principal, ty, action, &context);
                            prop_assert_eq!(listed, expected, "{}: {}", name, body);
                        }
                        for id in ids_of(&now.1, ty).iter().filter(|id| sample[id.len() % sample.len()]) {
                            let resource = format!("{ty}::\"{id}\"");
                            let body = json!({"action": action, "resource": resource, "principal_type": "User", "context": context});
                            let listed = all_pages(&server, "/v1/list/subjects", &body, &sizes, &token).await;
                            let expected = cedar_subjects(&snapshot, &now, &resource, action, &context);
                            prop_assert_eq!(listed, expected, "{}: {}", name, body);
                        }
                    }
                    // `in`: the items of one project (followed through their parent column),
                    // and a project in itself, exactly Cedar's allowed ∩ `resource in`.
                    for u in 0..users {
                        let principal = format!("User::\"{}\"", World::user(u));
                        for (k, project) in ids_of(&now.1, "Project").iter().enumerate() {
                            if !sample[(k + u) % sample.len()] {
                                continue;
                            }
                            let ancestor = format!("Project::\"{project}\"");
                            for ty in ["Item", "Project"] {
                                let body = json!({"principal": principal, "action": "view", "resource_type": ty, "in": ancestor});
                                let listed = all_pages(&server, "/v1/list", &body, &sizes, &token).await;
                                let expected: BTreeSet<String> = cedar_resources(&snapshot, &now, &principal, ty, "view", &json!({}))
                                    .into_iter()
                                    .filter(|id| cedar_within(&now.0, ty, id, &ancestor))
                                    .collect();
                                prop_assert_eq!(listed, expected, "{}: {}", name, body);
                            }
                        }
                    }
                    // The members panel: several actions at once, each subject with its own.
                    for (ty, actions) in [("Project", ["view", "edit", "view_members"]), ("Item", ["view", "edit", "delete"])] {
                        for id in ids_of(&now.1, ty) {
                            let resource = format!("{ty}::\"{id}\"");
                            let body = json!({"actions": actions, "resource": resource, "principal_type": "User",
                                "page": {"size": 1000}, "consistency": {"at_least": token}});
                            let (status, answer) = server.post("/v1/list/subjects", &body).await;
                            prop_assert_eq!(status, 200, "{}", answer);
                            let mut expected = Vec::new();
                            for user in ids_of(&now.1, "User") {
                                let principal = format!("User::\"{user}\"");
                                let may: Vec<&str> = actions.iter().copied()
                                    .filter(|a| cedar_decides(&snapshot, &now.0, &principal, a, &resource, &json!({})).0 == "Allow")
                                    .collect();
                                if !may.is_empty() {
                                    expected.push(json!({"id": user, "actions": may}));
                                }
                            }
                            let mut got = answer["subjects"].as_array().expect("subjects").clone();
                            got.sort_by_key(|s| s["id"].as_str().map(str::to_string));
                            expected.sort_by_key(|s| s["id"].as_str().map(str::to_string));
                            prop_assert_eq!(Value::Array(got), Value::Array(expected), "{}: {}", name, body);
                        }
                    }
                    // A list with a write between its pages.
                    let u = round % users.max(1);
                    let principal = format!("User::\"{}\"", World::user(u));
                    let body = json!({"principal": principal, "action": "view", "resource_type": "Project",
                        "page": {"size": 1}, "consistency": {"at_least": token}});
                    let before = cedar_resources(&snapshot, &now, &principal, "Project", "view", &json!({}));
                    let (first, next) = page(&server, "/v1/list", &body).await;
                    prop_assert!(first.iter().all(|id| before.contains(id)), "{}: {:?} not all in {:?}", name, first, before);
                    write(&writer, &snapshot, *kind, pick, &w, &others, users).await;
                    let token = writer.show_position(writer.position().await.expect("a position"));
                    let later = database_now(&writer, &snapshot).await;
                    let after = cedar_resources(&snapshot, &later, &principal, "Project", "view", &json!({}));
                    let mut listed: BTreeSet<String> = first.into_iter().collect();
                    if let Some(next) = next {
                        let mut rest = json!({"principal": principal, "action": "view", "resource_type": "Project",
                            "page": {"token": next}});
                        let ids = all_pages_from(&server, &mut rest, &token).await;
                        for id in ids {
                            prop_assert!(after.contains(&id), "{}: `{}` listed after write {} by {}, not allowed then ({:?}, before {:?})", name, id, kind, principal, after, before);
                            prop_assert!(listed.insert(id.clone()), "{}: `{}` listed twice", name, id);
                        }
                    }
                    for id in before.intersection(&after) {
                        prop_assert!(listed.contains(id), "{}: `{}` allowed before and after the write, skipped", name, id);
                    }
                }
                server.stop().await;
            }
            Ok(())
        })?;
    }
}

/// The pages from `body`'s `page.token` on, at least at `token`, in pages of 2.
async fn all_pages_from(server: &TestServer, body: &mut Value, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        body["page"]["size"] = json!(2);
        body["consistency"] = json!({"at_least": token});
        let (page_ids, next) = page(server, "/v1/list", body).await;
        ids.extend(page_ids);
        match next {
            Some(next) => body["page"]["token"] = json!(next),
            None => return ids,
        }
    }
}

/// A world of one owner, twelve projects and an organization, served from SQLite.
async fn small_world(dir: &tempfile::TempDir) -> (TestServer, String) {
    let url = format!("sqlite://{}", dir.path().join("lists.db").display());
    let mut entities = vec![
        common::server::user("olga", &[]),
        common::server::user("vera", &["p3.editors", "acme.members"]),
        common::server::user("otto", &["acme.admins"]),
        common::server::organization("acme"),
    ];
    for p in 0..12 {
        let project = if p % 4 == 0 {
            common::server::org_project(&format!("p{p}"), "olga", "acme", "planning")
        } else {
            common::server::project(&format!("p{p}"), "olga", "planning", &[])
        };
        entities.push(project);
    }
    let server = serving(
        &url,
        &Value::Array(entities),
        gatehouse::config::RequestEntities::Add,
    )
    .await;
    (server, url)
}

/// The streamed form lists what the pages list, a line each, and ends with a line that says
/// the list is whole; a question that cannot be asked is a 4xx before any line.
#[test]
fn the_streamed_list_is_every_page_and_says_it_is_done() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, _url) = small_world(&dir).await;
        let body =
            json!({"principal": "User::\"olga\"", "action": "view", "resource_type": "Project"});
        let (status, kind, text) = server.post_ndjson("/v1/list", &body).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(kind, "application/x-ndjson");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        let (done, ids) = lines.split_last().expect("lines");
        assert_eq!(done["done"], true, "{text}");
        assert_eq!(done["count"], 12, "{text}");
        assert_eq!(done["listed_by"], "sql", "{text}");
        let streamed: BTreeSet<&str> = ids.iter().map(|l| l["id"].as_str().expect("id")).collect();
        let (_, answer) = server.post("/v1/list", &body).await;
        let paged: BTreeSet<&str> = answer["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|id| id.as_str().expect("id"))
            .collect();
        assert_eq!(streamed, paged);
        assert_eq!(streamed.len(), 12);

        let wrong =
            json!({"principal": "User::\"olga\"", "action": "view", "resource_type": "Nope"});
        let (status, _, text) = server.post_ndjson("/v1/list", &wrong).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("resource_type"), "{text}");
        server.stop().await;
    });
}

/// Bad lists are 400s naming the field: a page size out of range, a token this sidecar did
/// not give, `action` and `actions` together, a principal type the action does not take, a
/// type with no table to list.
#[test]
fn a_list_that_cannot_be_asked_names_the_field() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, _url) = small_world(&dir).await;
        let list = |extra: Value| {
            let mut body = json!({"principal": "User::\"vera\"", "action": "view", "resource_type": "Project"});
            for (k, v) in extra.as_object().expect("an object") {
                body[k] = v.clone();
            }
            body
        };
        let subjects = |extra: Value| {
            let mut body = json!({"resource": "Project::\"p1\"", "principal_type": "User"});
            for (k, v) in extra.as_object().expect("an object") {
                body[k] = v.clone();
            }
            body
        };
        for (path, body, field) in [
            ("/v1/list", list(json!({"page": {"size": 0}})), "page.size"),
            ("/v1/list", list(json!({"page": {"size": 1001}})), "page.size"),
            ("/v1/list", list(json!({"page": {"token": "not-a-token"}})), "page.token"),
            ("/v1/list", list(json!({"page": [null, null]})), "page"),
            ("/v1/list/subjects", subjects(json!({"action": "view", "page": [5]})), "page"),
            ("/v1/list", list(json!({"resource_type": "Nope"})), "resource_type"),
            ("/v1/list", list(json!({"principal": "Project::\"p1\""})), "principal"),
            ("/v1/list", list(json!({"in": "Projetc::\"p1\""})), "in"),
            ("/v1/list", list(json!({"in": 7})), "in"),
            ("/v1/list", list(json!({"in": "p1"})), "in"),
            ("/v1/list/subjects", subjects(json!({"action": "view", "actions": ["edit"]})), "actions"),
            ("/v1/list/subjects", subjects(json!({})), "action"),
            ("/v1/list/subjects", subjects(json!({"actions": []})), "actions"),
            ("/v1/list/subjects", subjects(json!({"actions": ["view", "nope"]})), "actions[1]"),
            ("/v1/list/subjects", subjects(json!({"action": "view", "principal_type": "Group"})), "principal_type"),
        ] {
            let (status, answer) = server.post(path, &body).await;
            assert_eq!(status, 400, "{body}: {answer}");
            // A value of the wrong JSON type is named in the message, as serde reports it.
            let named = answer["error"]["field"] == field
                || answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("`{field}` must be")));
            assert!(named, "{body}: {answer}");
        }
        server.stop().await;
    });
}

/// A plan the SQL cannot express (a policy with `like`) is answered by deciding the
/// candidates one by one, and the answer says so; the pages are still exact and whole.
#[test]
fn a_plan_without_sql_is_decided_one_by_one_and_says_so() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, url) = small_world(&dir).await;
        let old = server.version();
        std::fs::write(
            server.policy_file("zz_like.cedar"),
            "@id(\"test.named-views\")\npermit (principal, action == Action::\"view\", resource is Project)\nwhen { resource.phase like \"plan*\" && principal in resource.viewers };\n\n@id(\"test.vera-sees-p7\")\npermit (principal == User::\"vera\", action == Action::\"view\", resource == Project::\"p7\");\n",
        )
        .expect("writes");
        server
            .wait_for_new_version(&old, std::time::Duration::from_secs(10))
            .await
            .expect("the set reloads");
        let snapshot = server.store.current();
        let source = Source::open(&url, &MappingFile::Bundled, &snapshot).await.expect("opens");
        let now = database_now(&source, &snapshot).await;
        let mut listed = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut body = json!({"principal": "User::\"vera\"", "action": "view", "resource_type": "Project", "page": {"size": 2}});
            if let Some(token) = &next {
                body["page"]["token"] = json!(token);
            }
            let (status, answer) = server.post("/v1/list", &body).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["listed_by"], "decisions", "{answer}");
            assert!(answer["unsupported"].as_str().is_some_and(|u| u.contains("like")), "{answer}");
            listed.extend(answer["ids"].as_array().expect("ids").iter().map(|i| i.as_str().expect("id").to_string()));
            match answer["next_token"].as_str() {
                Some(token) => next = Some(token.to_string()),
                None => break,
            }
        }
        let expected = cedar_resources(&snapshot, &now, "User::\"vera\"", "Project", "view", &json!({}));
        let as_set: BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(as_set.len(), listed.len(), "{listed:?}");
        assert_eq!(as_set, expected);
        assert!(expected.contains("p7") && expected.contains("p3"), "{expected:?}");
        // With `in`, the candidates are those in the ancestor, still decided one by one.
        for p in ["p0", "p3", "p7", "p9"] {
            let ancestor = format!("Project::\"{p}\"");
            let body = json!({"principal": "User::\"vera\"", "action": "view", "resource_type": "Project", "in": ancestor});
            let (status, answer) = server.post("/v1/list", &body).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["listed_by"], "decisions", "{answer}");
            let within: Vec<&String> = expected.iter().filter(|id| cedar_within(&now.0, "Project", id, &ancestor)).collect();
            assert_eq!(answer["ids"], json!(within), "{body}");
        }
        server.stop().await;
    });
}

/// A public project whose organization the database lacks: SQL's public branch selects it,
/// but deciding reads through the missing organization and errs, so gatehouse denies it and
/// the list must not name it (each page says which of its rows dangle).
#[test]
fn a_row_whose_reference_dangles_is_listed_only_if_decided_allowed() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, url) = small_world(&dir).await;
        let snapshot = common::bundled();
        let source = Source::open(&url, &MappingFile::Bundled, &snapshot)
            .await
            .expect("opens");
        sqlx::query("UPDATE projects SET organization_id = 'ghost', public = TRUE WHERE id = 'p5'")
            .execute(source.pool())
            .await
            .expect("writes");
        let token = source.show_position(source.position().await.expect("a position"));
        let now = database_now(&source, &snapshot).await;
        for user in ["olga", "vera", "otto"] {
            let principal = format!("User::\"{user}\"");
            let body =
                json!({"principal": principal, "action": "view", "resource_type": "Project"});
            let listed = all_pages(&server, "/v1/list", &body, &[3], &token).await;
            let expected =
                cedar_resources(&snapshot, &now, &principal, "Project", "view", &json!({}));
            assert!(!expected.contains("p5"), "{user}: {expected:?}");
            assert_eq!(listed, expected, "{user}");
        }
        server.stop().await;
    });
}

/// Without an entity database, lists are decided one by one over the stored entities file.
#[test]
fn without_a_database_lists_walk_the_stored_entities() {
    runtime().block_on(async {
        let server = common::server::start_with_acme_stored().await;
        let (status, answer) = server
            .post(
                "/v1/list/subjects",
                &json!({"action": "view", "resource": "Organization::\"acme\"", "principal_type": "User"}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["listed_by"], "decisions", "{answer}");
        assert_eq!(answer["ids"], json!(["erin"]), "{answer}");
        // `in`, over the stored entities' hierarchy.
        for (within, ids) in [("Organization::\"acme\"", json!(["acme"])), ("Organization::\"other\"", json!([]))] {
            let body = json!({"principal": "User::\"erin\"", "action": "view", "resource_type": "Organization", "in": within});
            let (status, answer) = server.post("/v1/list", &body).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!((&answer["listed_by"], &answer["ids"]), (&json!("decisions"), &ids), "{body}: {answer}");
        }
        server.stop().await;
    });
}

/// With an entity database, AuthZEN's resource and subject searches are answered from it,
/// as `/v1/list` answers, with the same page tokens; `properties` of the known party are
/// laid over its stored entity.
#[test]
fn authzen_searches_are_answered_from_the_database() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, _url) = small_world(&dir).await;
        let mut searched = Vec::new();
        let mut token = String::new();
        loop {
            let body = json!({"subject": {"type": "user", "id": "vera"}, "action": {"name": "view"},
                "resource": {"type": "project"}, "page": {"limit": 2, "token": token}});
            let (status, answer) = server.post("/access/v1/search/resource", &body).await;
            assert_eq!(status, 200, "{answer}");
            for found in answer["results"].as_array().expect("results") {
                assert_eq!(found["type"], "project", "{answer}");
                searched.push(found["id"].as_str().expect("id").to_string());
            }
            token = answer["page"]["next_token"].as_str().expect("a token").to_string();
            if token.is_empty() {
                break;
            }
        }
        let (_, listed) = server
            .post("/v1/list", &json!({"principal": "User::\"vera\"", "action": "view", "resource_type": "Project"}))
            .await;
        assert_eq!(json!(searched), listed["ids"]);
        // vera edits p3 and is a member of acme: p3, and no organization project (members
        // see an organization, not its projects).
        assert_eq!(searched, ["p3"]);

        let body = json!({"subject": {"type": "user"}, "action": {"name": "view"},
            "resource": {"type": "project", "id": "p4"}});
        let (status, answer) = server.post("/access/v1/search/subject", &body).await;
        assert_eq!(status, 200, "{answer}");
        let ids: Vec<&str> = answer["results"].as_array().expect("results").iter()
            .map(|r| r["id"].as_str().expect("id")).collect();
        // p4 is acme's: its owner and acme's admin.
        assert_eq!(ids, ["olga", "otto"], "{answer}");
        server.stop().await;
    });
}

/// The Rust client's list calls: a page, every page, and the members panel.
#[test]
fn the_rust_client_lists() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, _url) = small_world(&dir).await;
        let client = gatehouse_client::Client::new(&server.base).expect("a client");
        let olga = gatehouse_client::Uid::user("olga");
        let page = gatehouse_client::Paging {
            size: Some(5),
            token: None,
        };
        let first = client
            .list(&olga, "view", "Project", None, &page)
            .await
            .expect("a page")
            .body;
        assert_eq!(first.ids.len(), 5);
        assert_eq!(first.listed_by, "sql");
        assert!(first.next_token.is_some());
        let all = client
            .list_all(&olga, "view", "Project", None)
            .await
            .expect("every page");
        assert_eq!(all.len(), 12);
        assert_eq!(&all[..5], first.ids.as_slice());
        let members = client
            .list_subjects(
                &["view", "edit"],
                &gatehouse_client::Uid::project("p3"),
                "User",
                None,
                &gatehouse_client::Paging::default(),
            )
            .await
            .expect("members")
            .body;
        let subjects = members.subjects.expect("per subject");
        let panel: Vec<(&str, Vec<&str>)> = subjects
            .iter()
            .map(|s| {
                (
                    s.id.as_str(),
                    s.actions.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            panel,
            [
                ("olga", vec!["view", "edit"]),
                ("vera", vec!["view", "edit"])
            ]
        );
        // Every page of subjects; with one action, each subject with that one.
        let p3 = gatehouse_client::Uid::project("p3");
        let all = client
            .list_subjects_all(&["edit"], &p3, "User", None)
            .await
            .expect("every subject");
        let ids: Vec<(&str, &[String])> = all
            .iter()
            .map(|s| (s.id.as_str(), s.actions.as_slice()))
            .collect();
        let edit = ["edit".to_string()];
        assert_eq!(ids, [("olga", &edit[..]), ("vera", &edit[..])]);
        // `in`: a project in itself.
        let within = client
            .list_within(
                &olga,
                "view",
                "Project",
                Some(&p3),
                None,
                &gatehouse_client::Paging::default(),
            )
            .await
            .expect("a page")
            .body;
        assert_eq!(within.ids, ["p3"]);
        server.stop().await;
    });
}
