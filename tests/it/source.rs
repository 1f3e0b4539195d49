//! The entity source: a database read and written as Cedar entities through a mapping file,
//! on SQLite and PostgreSQL. A mapping is checked against the schema and the live tables,
//! each problem naming the attribute and the `table.column`; what is imported is exported
//! again exactly, as Cedar reads it.

use std::collections::BTreeMap;

use gatehouse::policy::{self, Snapshot, Sources};
use gatehouse_source::{MappingFile, Source, SourceError};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common;
use crate::common::world::{World, world};

/// A fresh database of each backend: a SQLite file and a schema of its own in the test
/// PostgreSQL (and the directory the file is in, removed when dropped).
pub(crate) async fn databases(prefix: &str) -> (tempfile::TempDir, [(&'static str, String); 2]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = format!("sqlite://{}", dir.path().join("entities.db").display());
    let postgres = common::postgres::fresh_schema(prefix).await;
    (dir, [("sqlite", file), ("postgres", postgres)])
}

/// Entities as Cedar reads them (`to_json_value`, parents and sets in one order, a datetime
/// as its instant in UTC), by uid; not the schema's actions, which Cedar adds.
fn as_cedar(snapshot: &Snapshot, entities: &Value) -> BTreeMap<String, Value> {
    let parsed = cedar_policy::Entities::from_json_value(entities.clone(), Some(&snapshot.schema))
        .expect("entities Cedar reads");
    let actions: Vec<_> = snapshot.schema.actions().collect();
    parsed
        .iter()
        .filter(|entity| !actions.contains(&&entity.uid()))
        .map(|entity| {
            let mut json = entity.to_json_value().expect("json");
            if let Some(Value::Array(parents)) = json.get_mut("parents") {
                parents.sort_by_key(ToString::to_string);
            }
            if let Some(Value::Object(attrs)) = json.get_mut("attrs") {
                for value in attrs.values_mut() {
                    if let Value::Array(items) = value {
                        items.sort_by_key(ToString::to_string);
                    }
                    if value["__extn"]["fn"] == "datetime" {
                        let arg = value["__extn"]["arg"].as_str().expect("a datetime's text");
                        let ms =
                            gatehouse_source::time::datetime_millis(arg).expect("Cedar reads it");
                        value["__extn"]["arg"] = json!(gatehouse_source::time::rfc3339_millis(ms));
                    }
                }
            }
            (entity.uid().to_string(), json)
        })
        .collect()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]
    /// A world imported into the bundled tables is exported again exactly, as Cedar reads it,
    /// on both databases; imported again, nothing changes; a second world imported over it
    /// replaces each entity it names whole (attributes, groups, parents) and leaves the
    /// others; a chosen part is loaded by uid alone; deleted entities are gone and the rest
    /// unchanged.
    #[test]
    fn a_world_imported_is_exported_exactly(w in world(), w2 in world(), pick in prop::collection::vec(any::<bool>(), 64), gone in prop::collection::vec(any::<bool>(), 64)) {
        let snapshot = common::bundled();
        let imported = as_cedar(&snapshot, &w.all_json());
        runtime().block_on(async {
            let (_dir, databases) = databases("source_world").await;
            for (name, url) in databases {
                let source = Source::open(&url, &MappingFile::Bundled, &snapshot).await.expect("opens");
                let written = source.import(&snapshot, &w.all_json()).await.expect("imports");
                assert_eq!(written, imported.len(), "{name}");
                let exported = as_cedar(&snapshot, &Value::Array(source.export_all().await.expect("exports")));
                assert_eq!(exported, imported, "{name}: {w:?}");
                // Again: an upsert, nothing doubled.
                source.import(&snapshot, &w.all_json()).await.expect("imports again");
                let again = as_cedar(&snapshot, &Value::Array(source.export_all().await.expect("exports")));
                assert_eq!(again, imported, "{name}: imported twice");
                // A second world over the first: its entities replace theirs whole.
                source.import(&snapshot, &w2.all_json()).await.expect("imports the second");
                let mut imported = imported.clone();
                imported.extend(as_cedar(&snapshot, &w2.all_json()));
                let replaced = as_cedar(&snapshot, &Value::Array(source.export_all().await.expect("exports")));
                assert_eq!(replaced, imported, "{name}: {w2:?} over {w:?}");
                // By uid: exactly those asked that exist (and an id no table holds).
                let uids: Vec<&String> = imported.keys().enumerate().filter(|(i, _)| pick[i % 64]).map(|(_, u)| u).collect();
                let mut asked: Vec<cedar_policy::EntityUid> = uids.iter().map(|u| u.parse().expect("uid")).collect();
                asked.push(r#"User::"nobody""#.parse().expect("uid"));
                asked.push(r#"Group::"g""#.parse().expect("uid"));
                let loaded = as_cedar(&snapshot, &Value::Array(source.load(&asked).await.expect("loads")));
                let expected: BTreeMap<String, Value> = uids.iter().map(|u| ((*u).clone(), imported[*u].clone())).collect();
                assert_eq!(loaded, expected, "{name}: by uid");
                // Deleted: gone, with their groups and parents; the rest as it was.
                let deleted: Vec<&String> = imported.keys().enumerate().filter(|(i, _)| gone[i % 64]).map(|(_, u)| u).collect();
                let uids: Vec<cedar_policy::EntityUid> = deleted.iter().map(|u| u.parse().expect("uid")).collect();
                assert_eq!(source.delete(&uids).await.expect("deletes"), deleted.len() as u64, "{name}");
                let left = as_cedar(&snapshot, &Value::Array(source.export_all().await.expect("exports")));
                let mut expected = imported.clone();
                expected.retain(|uid, _| !deleted.contains(&uid));
                assert_eq!(left, expected, "{name}: after deleting {deleted:?}");
            }
        });
    }
}

/// A schema with what the domain does not use: sets of values and of entities, a `Long`, an
/// optional `datetime`, tags, parents in a column.
const RICH_SCHEMA: &str = r#"
entity Team;
entity Folder;
entity User in [Team] { name: String };
entity Doc in [Folder] { size: Long, labels: Set<String>, readers: Set<User>, due?: datetime } tags String;
action read appliesTo { principal: [User], resource: [Doc] };
"#;

const RICH_MAPPING: &str = r#"
[User]
table = "people"
id = "id"
attributes.name = "name"
parents = [{ table = "team_members", owner = "person", parent = "team", type = "Team" }]

[Doc]
table = "docs"
id = "id"
attributes = { size = "size", due = "due", labels = { table = "doc_labels", owner = "doc", value = "label" }, readers = { table = "doc_readers", owner = "doc", value = "reader" } }
parents = [{ column = "folder", type = "Folder" }]
tags = { table = "doc_tags", owner = "doc", key = "k", value = "v" }
"#;

const RICH_TABLES: &str = "
CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE team_members (person TEXT NOT NULL, team TEXT NOT NULL, PRIMARY KEY (person, team));
CREATE TABLE docs (id TEXT PRIMARY KEY, size BIGINT NOT NULL, due BIGINT, folder TEXT);
CREATE TABLE doc_labels (doc TEXT NOT NULL, label TEXT NOT NULL, PRIMARY KEY (doc, label));
CREATE TABLE doc_readers (doc TEXT NOT NULL, reader TEXT NOT NULL, PRIMARY KEY (doc, reader));
CREATE TABLE doc_tags (doc TEXT NOT NULL, k TEXT NOT NULL, v TEXT NOT NULL, PRIMARY KEY (doc, k));
";

/// A snapshot of `schema` with one policy.
fn snapshot_of(schema: &str) -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("policies")).expect("mkdir");
    std::fs::write(
        dir.path().join("policies/p.cedar"),
        "@id(\"p\")\npermit (principal, action, resource);\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("s.cedarschema"), schema).expect("write");
    let snapshot = policy::load(&Sources {
        policies: dir.path().join("policies"),
        schema: dir.path().join("s.cedarschema"),
        entities: None,
    })
    .expect("the test set loads");
    (dir, snapshot)
}

async fn create_tables(url: &str, tables: &str) {
    let (pool, _) = gatehouse_source::db::connect(url).await.expect("connects");
    for statement in tables.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect("creates");
    }
}

/// Sets, a `Long`, a `datetime` (with an offset, as Cedar reads it), tags, parents in a
/// membership table and in a column, each written and read back as Cedar reads them.
#[test]
fn sets_longs_datetimes_tags_and_parents_round_trip() {
    let (_dir, snapshot) = snapshot_of(RICH_SCHEMA);
    let entities = json!([
        {"uid": {"type": "User", "id": "ann"}, "attrs": {"name": "Ann"}, "parents": [{"type": "Team", "id": "t1"}, {"type": "Team", "id": "t2"}]},
        {"uid": {"type": "User", "id": "bo"}, "attrs": {"name": "Bo \"the\" 2nd"}, "parents": []},
        {"uid": {"type": "Doc", "id": "d1"}, "parents": [{"type": "Folder", "id": "f"}],
         "attrs": {"size": -42, "labels": ["b", "a"], "readers": [{"__entity": {"type": "User", "id": "ann"}}],
                   "due": {"__extn": {"fn": "datetime", "arg": "2026-12-07T10:00:00.123+0130"}}},
         "tags": {"colour": "red", "shape": "round"}},
        {"uid": {"type": "Doc", "id": "d2"}, "parents": [], "attrs": {"size": 9007199254740993_i64, "labels": [], "readers": []}, "tags": {}},
        {"uid": {"type": "Team", "id": "t1"}, "attrs": {}, "parents": []}
    ]);
    // Team::"t1" is known by its id alone: not written, not read.
    let mut expected = as_cedar(&snapshot, &entities);
    expected.remove(r#"Team::"t1""#);
    runtime().block_on(async {
        let (_dir, databases) = databases("source_rich").await;
        for (name, url) in databases {
            create_tables(&url, RICH_TABLES).await;
            let source = Source::open(&url, &MappingFile::Text(RICH_MAPPING.into()), &snapshot)
                .await
                .expect("opens");
            assert_eq!(
                source.import(&snapshot, &entities).await.expect("imports"),
                4,
                "{name}"
            );
            let exported = as_cedar(
                &snapshot,
                &Value::Array(source.export_all().await.expect("exports")),
            );
            assert_eq!(exported, expected, "{name}");
            // The datetime as Cedar reads it: the same instant, in UTC milliseconds.
            let due = &exported[r#"Doc::"d1""#]["attrs"]["due"]["__extn"]["arg"];
            assert_eq!(due, "2026-12-07T08:30:00.123Z", "{name}");
        }
    });
}

/// A mapping that does not fit the schema is refused with every problem, each naming the
/// attribute and the `table.column`; one that does not fit the database, each missing table
/// or column and each column of the wrong type.
#[test]
fn a_mapping_that_does_not_fit_says_where() {
    let (_dir, snapshot) = snapshot_of(RICH_SCHEMA);
    let schema_problems = RICH_MAPPING
        .replace("attributes.name = \"name\"", "attributes.nom = \"name\"")
        .replace("type = \"Team\"", "type = \"Folder\"")
        .replace(
            "size = \"size\"",
            "size = { column = \"size\", entity = \"User\" }",
        )
        .replace(
            "labels = { table = \"doc_labels\", owner = \"doc\", value = \"label\" }",
            "labels = \"labels\"",
        )
        + "\n[Nothing]\ntable = \"nothing\"\nid = \"id\"\n";
    let database_problems = RICH_MAPPING
        .replace("table = \"people\"", "table = \"persons\"")
        .replace("due = \"due\"", "due = \"deadline\"")
        .replace("size = \"size\"", "size = \"folder\"");
    let cases: [(&str, &str, Vec<&str>); 2] = [
        (
            "schema",
            &schema_problems,
            vec![
                "`User.nom` (`people.name`): the schema declares no such attribute",
                "`User.name` (`people`): the schema requires it",
                "`User` (`team_members.team`): parents of type `Folder`, which the schema does not let it be in (it allows `Team`)",
                "`Doc.size` (`docs.size`): mapped as an entity of type `User`, but the schema declares `Long`",
                "`Doc.labels` (`docs.labels`): a set: map it as `{ table, owner, value }`",
                "`Nothing` (`nothing`): the schema declares no such entity type",
            ],
        ),
        (
            "database",
            &database_problems,
            vec![
                "`User.id` (`persons`): the database has no such table",
                "`Doc.due` (`docs.deadline`): the table has no such column",
                "`Doc.size` (`docs.folder`): declared `TEXT`, which does not hold integers",
            ],
        ),
    ];
    runtime().block_on(async {
        for (kind, mapping, fragments) in cases {
            // A file: an in-memory database would be the source's own pool's alone.
            let file = tempfile::NamedTempFile::new().expect("file");
            let url = format!("sqlite://{}", file.path().display());
            create_tables(&url, RICH_TABLES).await;
            let error = Source::open(&url, &MappingFile::Text(mapping.to_string()), &snapshot)
                .await
                .expect_err(kind);
            let SourceError::Problems(problems) = &error else {
                panic!("{kind}: {error}");
            };
            let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
            for fragment in fragments {
                assert!(
                    said.iter().any(|p| p.contains(fragment)),
                    "{kind}: no problem says `{fragment}`: {said:#?}"
                );
            }
        }
    });
}

/// What the import refuses, it refuses whole, naming the entity: nothing is written.
#[test]
fn a_wrong_entity_is_refused_and_nothing_is_written() {
    let snapshot = common::bundled();
    runtime().block_on(async {
        let source = Source::open("sqlite::memory:", &MappingFile::Bundled, &snapshot)
            .await
            .expect("opens");
        let user = json!({"uid": {"type": "User", "id": "ann"}, "attrs": {}, "parents": []});
        let cases = [
            (json!([user, {"uid": {"type": "Project", "id": "p"}, "attrs": {"phase": 3}, "parents": []}]), "Project"),
            (json!([user, {"uid": {"type": "Group", "id": "g"}, "attrs": {}, "parents": [{"type": "Group", "id": "h"}]}]), "Group"),
        ];
        for (entities, fragment) in cases {
            let error = source.import(&snapshot, &entities).await.expect_err("refused").to_string();
            assert!(error.contains(fragment), "`{error}` lacks `{fragment}`");
            assert_eq!(source.export_all().await.expect("exports"), Vec::<Value>::new());
        }
    });
}

/// `gatehouse entities import` and `export`, as the README says: a SQLite file created and
/// migrated, the README's world (`examples/world.json`) written, asked about by id with the
/// client (the README's first example, decided at the position the import printed), read
/// back, uids deleted, wrong input refused with a nonzero exit and nothing written.
#[test]
fn the_entities_command_imports_and_exports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
    let root = common::root();
    let file = dir.path().join("world.json");
    let world: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/world.json")).expect("examples/world.json"),
    )
    .expect("JSON");
    std::fs::write(&file, world.to_string()).expect("write");
    let run = |args: &[&str]| {
        let mut all = vec!["entities"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--entities-db", &db]);
        common::gatehouse(&all, &root)
    };
    let out = run(&["import", file.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The position it committed at, a token for the next question.
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let position = |said: &str, what: &str| -> i64 {
        said.strip_prefix(what)
            .and_then(|rest| rest.strip_prefix("; position "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("`{what}; position N`: {said}"))
    };
    let imported = position(&said, "imported 3 entities");
    assert!(imported > 0, "{said}");
    // The README's first question, by id alone, at the import's position.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let gatehouse = common::server::start(common::server::Options {
            config: gatehouse::config::Config {
                entities_db: Some(db.clone()),
                ..gatehouse::config::Config::default()
            },
            ..common::server::Options::default()
        })
        .await;
        let client = gatehouse_client::Client::new(&gatehouse.base).expect("client");
        let at = client.position().await.expect("position").body;
        assert_eq!(at.position, imported.to_string());
        let question = gatehouse_client::Question::new(
            gatehouse_client::Uid::user("vera"),
            "edit",
            gatehouse_client::Uid::project("p1"),
        );
        let answer = client
            .at_least(&at.position)
            .is_authorized(&question)
            .await
            .expect("decided")
            .body;
        assert!(answer.allowed(), "{answer:?}");
        assert_eq!(answer.reasons, ["roles.editor"]);
        assert_eq!(answer.entities_at, Some(imported.to_string()));
        gatehouse.stop().await;
    });
    let out = run(&["export"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let snapshot = common::bundled();
    assert_eq!(as_cedar(&snapshot, &exported), as_cedar(&snapshot, &world));
    let out = run(&["export", r#"User::"vera""#, "User::nobody"]);
    let exported: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(exported.as_array().map(Vec::len), Some(1), "{exported}");
    let out = run(&["import", "--delete", r#"User::"vera""#]);
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        position(&said, "deleted 1 of 1 entities named") > imported,
        "{said}"
    );
    // A wrong attribute: refused, naming the entity; nothing written.
    std::fs::write(
        &file,
        r#"[{"uid": {"type": "User", "id": "zed"}, "attrs": {"age": 3}, "parents": []}]"#,
    )
    .expect("write");
    let out = run(&["import", file.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("age") && stderr.contains("zed"), "{stderr}");
    let out = run(&["export"]);
    let exported: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(exported.as_array().map(Vec::len), Some(2), "{exported}");
}

/// A sidecar serving the bundled set with its entities in the database at `url` (the bundled
/// tables), holding `world`.
pub(crate) async fn serving(
    url: &str,
    world: &Value,
    requests: gatehouse::config::RequestEntities,
) -> common::server::TestServer {
    let snapshot = common::bundled();
    let source = Source::open(url, &MappingFile::Bundled, &snapshot)
        .await
        .expect("opens");
    source.import(&snapshot, world).await.expect("imports");
    common::server::start(common::server::Options {
        config: gatehouse::config::Config {
            entities_db: Some(url.to_string()),
            request_entities: requests,
            ..gatehouse::config::Config::default()
        },
        ..common::server::Options::default()
    })
    .await
}

/// What plain Cedar decides over every entity of the world at once, under gatehouse's one
/// rule over it (an Allow with an evaluation error is a Deny, with no reasons): the decision
/// and its reasons.
pub(crate) fn cedar_decides(
    snapshot: &Snapshot,
    all: &cedar_policy::Entities,
    principal: &str,
    action: &str,
    resource: &str,
    context: &Value,
) -> (String, Vec<String>) {
    let request = cedar_policy::Request::new(
        principal.parse().expect("uid"),
        format!("Action::\"{action}\"").parse().expect("uid"),
        resource.parse().expect("uid"),
        cedar_policy::Context::from_json_value(
            context.clone(),
            Some((
                &snapshot.schema,
                &format!("Action::\"{action}\"").parse().expect("uid"),
            )),
        )
        .expect("context"),
        Some(&snapshot.schema),
    )
    .expect("request");
    let response = cedar_policy::Authorizer::new().is_authorized(&request, &snapshot.policies, all);
    let allowed = response.decision() == cedar_policy::Decision::Allow;
    if allowed && response.diagnostics().errors().next().is_some() {
        return ("Deny".into(), Vec::new());
    }
    (
        format!("{:?}", response.decision()),
        common::reasons(&response),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]
    /// Questions by id alone, their entities read from the database (SQLite and PostgreSQL),
    /// decide as plain Cedar decides over every entity of the world at once: every user,
    /// every listed action and context, a sample of resources of each type, single questions,
    /// batches and allowed actions alike.
    #[test]
    fn questions_by_id_decide_as_cedar_over_the_whole_database(w in world(), sample in prop::collection::vec(any::<bool>(), 32)) {
        let snapshot = common::bundled();
        let all = cedar_policy::Entities::from_json_value(w.all_json(), Some(&snapshot.schema)).expect("the world");
        runtime().block_on(async {
            let (_dir, databases) = databases("source_by_id").await;
            for (name, url) in databases {
                let server = serving(&url, &w.all_json(), gatehouse::config::RequestEntities::Add).await;
                let mut asked = 0;
                for u in 0..w.users {
                    let principal = format!("User::\"{}\"", World::user(u));
                    for (k, (rtype, action, context)) in crate::common::world::listings(w.users).into_iter().enumerate() {
                        let ids = w.ids_of(rtype);
                        for (j, id) in ids.iter().enumerate() {
                            if !sample[(k + j + u) % 32] {
                                continue;
                            }
                            let resource = format!("{rtype}::\"{id}\"");
                            let expected = cedar_decides(&snapshot, &all, &principal, action, &resource, &context);
                            let body = json!({"principal": principal, "action": action, "resource": resource, "context": context});
                            let (status, answer) = server.post("/v1/is_authorized", &body).await;
                            assert_eq!(status, 200, "{name}: {body}: {answer}");
                            assert_eq!(answer["decision"], expected.0.as_str(), "{name}: {body}: {answer}");
                            assert_eq!(answer["diagnostics"]["reason"], json!(expected.1), "{name}: {body}: {answer}");
                            // The same question in a batch, beside another.
                            let batch = json!({"requests": [body, {"principal": principal, "action": "view", "resource": resource}]});
                            let (status, answers) = server.post("/v1/is_authorized/batch", &batch).await;
                            assert_eq!(status, 200, "{name}: {answers}");
                            assert_eq!(answers["results"][0]["decision"], expected.0.as_str(), "{name}: batch {body}: {answers}");
                            asked += 1;
                        }
                    }
                }
                prop_assert!(asked > 0 || w.users == 0);
                server.stop().await;
            }
            Ok(())
        })?;
    }
}

/// A request cannot decide on a forged copy of an entity the database holds: by default the
/// database's is decided on (an archived project stays archived); `--request-entities
/// override` lets the request's replace it. A request still adds what the database lacks, and
/// an id the database does not hold is named in `missing`.
#[test]
fn a_forged_entity_does_not_override_the_database_unless_told() {
    let world = json!([
        {"uid": {"type": "User", "id": "vera"}, "attrs": {}, "parents": [{"type": "Group", "id": "p1.editors"}]},
        {"uid": {"type": "Project", "id": "p1"}, "parents": [], "attrs": {
            "owner": {"type": "User", "id": "olga"},
            "admins": {"type": "Group", "id": "p1.admins"}, "managers": {"type": "Group", "id": "p1.managers"},
            "editors": {"type": "Group", "id": "p1.editors"}, "viewers": {"type": "Group", "id": "p1.viewers"},
            "phase": "processing", "archived": true, "public": false,
            "downloads_enabled": false, "editors_can_share": false}}
    ]);
    let mut forged = world[1].clone();
    forged["attrs"]["archived"] = json!(false);
    let question = json!({"principal": "User::\"vera\"", "action": "edit", "resource": "Project::\"p1\"", "entities": [forged]});
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        for (mode, decision) in [
            (gatehouse::config::RequestEntities::Add, "Deny"),
            (gatehouse::config::RequestEntities::Override, "Allow"),
        ] {
            let url = format!("sqlite://{}", dir.path().join(format!("{mode:?}.db")).display());
            let server = serving(&url, &world, mode).await;
            let (status, answer) = server.post("/v1/is_authorized", &question).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["decision"], decision, "{mode:?}: {answer}");
            // By id alone: the database's.
            let (_, answer) = server
                .post("/v1/is_authorized", &json!({"principal": "User::\"vera\"", "action": "view", "resource": "Project::\"p1\""}))
                .await;
            assert_eq!(answer["decision"], "Deny", "archived: {answer}");
            // What the database lacks, a request adds; an id it does not hold is missing.
            let (_, answer) = server
                .post("/v1/is_authorized", &json!({"principal": "User::\"ghost\"", "action": "view", "resource": "Project::\"p1\""}))
                .await;
            assert_eq!(answer["diagnostics"]["missing"], json!(["User::\"ghost\""]), "{answer}");
            server.stop().await;
        }
    });
}

/// The database failing while serving: 503 `entities_unavailable` with `Retry-After`,
/// never a decision.
#[test]
fn a_failing_database_is_a_503_never_a_decision() {
    runtime().block_on(async {
        let url = common::postgres::fresh_schema("source_gone").await;
        let world = json!([{"uid": {"type": "User", "id": "vera"}, "attrs": {}, "parents": []}]);
        let server = serving(&url, &world, gatehouse::config::RequestEntities::Add).await;
        let question =
            json!({"principal": "User::\"vera\"", "action": "view", "resource": "Project::\"p1\""});
        let (status, _) = server.post("/v1/is_authorized", &question).await;
        assert_eq!(status, 200);
        // Positions are PostgreSQL's LSNs.
        let (status, answer) = server.get_json("/v1/entities/position").await;
        assert_eq!(status, 200, "{answer}");
        let lsn = answer["position"].as_str().expect("a position");
        assert!(lsn.contains('/'), "{answer}");
        // The tables gone from under the sidecar.
        let (pool, _) = gatehouse_source::db::connect(&url).await.expect("connects");
        sqlx::query("DROP TABLE users")
            .execute(&pool)
            .await
            .expect("drops");
        // Someone not cached: read, and the read fails.
        let question =
            json!({"principal": "User::\"wes\"", "action": "view", "resource": "Project::\"p1\""});
        let (status, answer) = server.post("/v1/is_authorized", &question).await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"]["code"], "entities_unavailable", "{answer}");
        server.stop().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]
    /// The entity cache stays exact as the database changes, on SQLite (its change log)
    /// and PostgreSQL (its change stream): after each write (entities of another world
    /// written over the first's, or deleted: groups granted and revoked, projects archived
    /// and transferred, users removed; or memberships granted and revoked in raw SQL), every
    /// sampled question by id carrying the write's token (the database's position after
    /// it) decides as plain Cedar over the database as it then is, with every cache on, and
    /// so does the same question asked again without the token (the hot cache's answer,
    /// after the first round). The writes come from another connection, as a host's would.
    #[test]
    fn the_entity_cache_stays_exact_as_the_database_changes(
        w in world(),
        w2 in world(),
        steps in prop::collection::vec((0..3_u8, prop::collection::vec(any::<bool>(), 48)), 1..5),
        sample in prop::collection::vec(any::<bool>(), 32),
    ) {
        let snapshot = common::bundled();
        runtime().block_on(async {
            let (_dir, urls) = databases("changing").await;
            for (_, url) in urls {
                let server = serving(&url, &w.all_json(), gatehouse::config::RequestEntities::Add).await;
                let writer = Source::open(&url, &MappingFile::Bundled, &snapshot).await.expect("opens");
                let others = w2.all_json();
                let users = w.users.max(w2.users);
                for (kind, pick) in &steps {
                    // Ask first, so that what the write changes is cached.
                    let token = writer.show_position(writer.position().await.expect("a position"));
                    ask_all(&server, &writer, &snapshot, users, &w, &sample, &token).await;
                    write(&writer, &snapshot, *kind, pick, &w, &others, users).await;
                    let token = writer.show_position(writer.position().await.expect("a position"));
                    ask_all(&server, &writer, &snapshot, users, &w, &sample, &token).await;
                }
                server.stop().await;
            }
        });
    }
}

/// One random write, from another connection as a host's would be: entities of another
/// world (`others`) chosen by `pick` written over the database's (`kind` 0) or deleted
/// (1), or (2) memberships of `w`'s groups granted and revoked in SQL alone, the users'
/// rows untouched (as a host's app does it); 3 writes nothing.
pub(crate) async fn write(
    writer: &Source,
    snapshot: &Snapshot,
    kind: u8,
    pick: &[bool],
    w: &World,
    others: &Value,
    users: usize,
) {
    let chosen: Vec<Value> = others
        .as_array()
        .expect("a list")
        .iter()
        .enumerate()
        .filter(|(i, _)| pick[i % pick.len()])
        .map(|(_, e)| e.clone())
        .collect();
    match kind {
        0 => {
            writer
                .import(snapshot, &Value::Array(chosen))
                .await
                .expect("writes");
        }
        1 => {
            let uids: Vec<cedar_policy::EntityUid> = chosen
                .iter()
                .map(|e| {
                    let (ty, id) = (e["uid"]["type"].as_str(), e["uid"]["id"].as_str());
                    format!("{}::{:?}", ty.expect("type"), id.expect("id"))
                        .parse()
                        .expect("uid")
                })
                .collect();
            writer.delete(&uids).await.expect("deletes");
        }
        2 => {
            let mut tx = writer.pool().begin().await.expect("a transaction");
            for u in 0..users {
                for (g, group) in w.project_and_org_groups().iter().enumerate() {
                    if !pick[(u * 11 + g) % pick.len()] {
                        continue;
                    }
                    let user = World::user(u);
                    let deleted =
                        sqlx::query("DELETE FROM user_groups WHERE user_id = $1 AND group_id = $2")
                            .bind(&user)
                            .bind(group)
                            .execute(&mut *tx)
                            .await
                            .expect("revokes")
                            .rows_affected();
                    if deleted == 0 {
                        sqlx::query("INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2)")
                            .bind(&user)
                            .bind(group)
                            .execute(&mut *tx)
                            .await
                            .expect("grants");
                    }
                }
            }
            tx.commit().await.expect("commits");
        }
        _ => {}
    }
}

/// Asks sampled questions by id of every user about the resources of `w`'s ids, and holds
/// each answer to plain Cedar over what the database holds now.
async fn ask_all(
    server: &common::server::TestServer,
    source: &Source,
    snapshot: &Snapshot,
    users: usize,
    w: &World,
    sample: &[bool],
    token: &str,
) {
    let now = source.export_all().await.expect("exports");
    let all = cedar_policy::Entities::from_json_value(Value::Array(now), Some(&snapshot.schema))
        .expect("the database");
    for u in 0..users {
        let principal = format!("User::\"{}\"", World::user(u));
        for (k, (rtype, action, context)) in crate::common::world::listings(users)
            .into_iter()
            .enumerate()
        {
            for (j, id) in w.ids_of(rtype).iter().enumerate() {
                if !sample[(k * 7 + j + u) % sample.len()] {
                    continue;
                }
                let resource = format!("{rtype}::\"{id}\"");
                let expected =
                    cedar_decides(snapshot, &all, &principal, action, &resource, &context);
                let asked = json!({"principal": principal, "action": action, "resource": resource,
                    "context": context});
                let mut with_token = asked.clone();
                with_token["consistency"] = json!({"at_least": token});
                // With the token, then again without: the same body in every round, which
                // the hot cache answers while nothing it read has changed (the position
                // applied never goes back, so the token's question made it at least this).
                for body in [with_token, asked] {
                    let (status, answer) = server.post("/v1/is_authorized", &body).await;
                    assert_eq!(status, 200, "{body}: {answer}");
                    assert_eq!(answer["decision"], expected.0.as_str(), "{body}: {answer}");
                    assert_eq!(
                        answer["diagnostics"]["reason"],
                        json!(expected.1),
                        "{body}: {answer}"
                    );
                }
            }
        }
    }
}

/// What is read is cached, and a change drops exactly what it changed: after a grant to
/// one user, the project and the other users stay cached.
#[test]
fn a_change_drops_exactly_the_entities_it_changed() {
    let snapshot = common::bundled();
    let world = json!([
        {"uid": {"type": "User", "id": "vera"}, "attrs": {}, "parents": []},
        {"uid": {"type": "User", "id": "olga"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Project", "id": "p1"}, "parents": [], "attrs": {
            "owner": {"type": "User", "id": "olga"},
            "admins": {"type": "Group", "id": "p1.admins"}, "managers": {"type": "Group", "id": "p1.managers"},
            "editors": {"type": "Group", "id": "p1.editors"}, "viewers": {"type": "Group", "id": "p1.viewers"},
            "phase": "processing", "archived": false, "public": false,
            "downloads_enabled": false, "editors_can_share": false}}
    ]);
    runtime().block_on(async {
        let (_dir, urls) = databases("exact").await;
        for (_, url) in urls {
            let server = serving(&url, &world, gatehouse::config::RequestEntities::Add).await;
            let sourced = server.state.sourced().expect("reached").expect("a database");
            let edit = json!({"principal": "User::\"vera\"", "action": "edit", "resource": "Project::\"p1\""});
            let (_, answer) = server.post("/v1/is_authorized", &edit).await;
            assert_eq!(answer["decision"], "Deny", "{answer}");
            assert!(sourced.is_cached("User", "vera") && sourced.is_cached("Project", "p1") && sourced.is_cached("User", "olga"));
            // An id the database does not hold is cached as absent.
            let (_, answer) = server.post("/v1/is_authorized", &json!({"principal": "User::\"ghost\"", "action": "view", "resource": "Project::\"p1\""})).await;
            assert_eq!(answer["diagnostics"]["missing"], json!(["User::\"ghost\""]));
            assert!(sourced.is_cached("User", "ghost"));
            // vera made an editor, by another connection.
            let writer = Source::open(&url, &MappingFile::Bundled, &snapshot).await.expect("opens");
            let vera = json!([{"uid": {"type": "User", "id": "vera"}, "attrs": {}, "parents": [{"type": "Group", "id": "p1.editors"}]}]);
            writer.import(&snapshot, &vera).await.expect("writes");
            let position = writer.position().await.expect("a position");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while sourced.applied() < position {
                assert!(std::time::Instant::now() < deadline);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert!(!sourced.is_cached("User", "vera"), "the changed entity is dropped");
            assert!(sourced.is_cached("Project", "p1") && sourced.is_cached("User", "olga"), "the others stay");
            let (_, answer) = server.post("/v1/is_authorized", &edit).await;
            assert_eq!(answer["decision"], "Allow", "{answer}");
            server.stop().await;
        }
    });
}

/// A sidecar on the database `url` holding `world`, looking for commits every `poll`
/// (SQLite), waiting at most `wait` for a token's position, refusing after `staleness`.
pub(crate) async fn serving_with(
    url: &str,
    world: &Value,
    poll: u64,
    wait: u64,
    staleness: u64,
) -> common::server::TestServer {
    let snapshot = common::bundled();
    let source = Source::open(url, &MappingFile::Bundled, &snapshot)
        .await
        .expect("opens");
    source.import(&snapshot, world).await.expect("imports");
    let ms = std::time::Duration::from_millis;
    common::server::start(common::server::Options {
        config: gatehouse::config::Config {
            entities_db: Some(url.to_string()),
            entities_poll: ms(poll),
            consistency_wait: ms(wait),
            max_staleness: ms(staleness),
            ..gatehouse::config::Config::default()
        },
        ..common::server::Options::default()
    })
    .await
}

pub(crate) fn vera_and_p1(groups: &[&str]) -> Value {
    let parents: Vec<Value> = groups
        .iter()
        .map(|g| json!({"type": "Group", "id": g}))
        .collect();
    json!([
        {"uid": {"type": "User", "id": "vera"}, "attrs": {}, "parents": parents},
        {"uid": {"type": "Project", "id": "p1"}, "parents": [], "attrs": {
            "owner": {"type": "User", "id": "olga"},
            "admins": {"type": "Group", "id": "p1.admins"}, "managers": {"type": "Group", "id": "p1.managers"},
            "editors": {"type": "Group", "id": "p1.editors"}, "viewers": {"type": "Group", "id": "p1.viewers"},
            "phase": "processing", "archived": false, "public": false,
            "downloads_enabled": false, "editors_can_share": false}}
    ])
}

/// Consistency tokens, against the "new enemy": right after a write, a question carrying
/// the position the write committed at (`GET /v1/entities/position`) is decided on it,
/// waiting for the sidecar to apply it, even with what it changed cached and the sidecar
/// slow to look; its answer's `entities_at` is at least that position. `"full"` reads the
/// database. A position never reached is 503 `stale_entities` after `--consistency-wait`;
/// a token that is not a position is a 400 naming the field.
#[test]
fn a_token_after_a_write_is_decided_on_the_write() {
    let snapshot = common::bundled();
    runtime().block_on(async {
        let (_dir, urls) = databases("tokens").await;
        for (_, url) in urls {
            // Looking for commits every 300 ms (SQLite): a question right after a write finds
            // its cache stale unless it waits.
            let server = serving_with(&url, &vera_and_p1(&["p1.editors"]), 300, 2000, 5000).await;
            let edit =
                json!({"principal": "User::\"vera\"", "action": "edit", "resource": "Project::\"p1\""});
            let (_, answer) = server.post("/v1/is_authorized", &edit).await;
            assert_eq!(answer["decision"], "Allow", "{answer}");
            // vera's editor role revoked, by another connection.
            let writer = Source::open(&url, &MappingFile::Bundled, &snapshot)
                .await
                .expect("opens");
            let position = |text: &Value| {
                writer
                    .parse_position(text.as_str().expect("a position"))
                    .expect("a position")
            };
            let first = position(&answer["entities_at"]);
            writer
                .import(&snapshot, &vera_and_p1(&[]))
                .await
                .expect("writes");
            let (status, now) = server.get_json("/v1/entities/position").await;
            assert_eq!(status, 200, "{now}");
            let token = now["position"]
                .as_str()
                .expect("a position")
                .to_string();
            assert!(position(&json!(token)) > first, "{now}");
            let mut asked = edit.clone();
            asked["consistency"] = json!({"at_least": token});
            let (status, answer) = server.post("/v1/is_authorized", &asked).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(
                answer["decision"], "Deny",
                "decided on the revoke: {answer}"
            );
            assert!(
                position(&answer["entities_at"]) >= position(&json!(token)),
                "{answer}"
            );
            // vera an editor again: `"full"` reads the database.
            writer
                .import(&snapshot, &vera_and_p1(&["p1.editors"]))
                .await
                .expect("writes");
            let mut full = edit.clone();
            full["consistency"] = json!("full");
            let (_, answer) = server.post("/v1/is_authorized", &full).await;
            assert_eq!(
                answer["decision"], "Allow",
                "read from the database: {answer}"
            );
            // A position never reached: refused after the wait, never decided.
            let mut ahead = edit.clone();
            let never = writer.show_position(position(&json!(token)) + 1_000_000_000);
            ahead["consistency"] = json!({"at_least": never});
            let (status, answer) = server.post("/v1/is_authorized", &ahead).await;
            assert_eq!(status, 503, "{answer}");
            assert_eq!(answer["error"]["code"], "stale_entities", "{answer}");
            // Not a position.
            let mut wrong = edit.clone();
            wrong["consistency"] = json!({"at_least": "yesterday"});
            let (status, answer) = server.post("/v1/is_authorized", &wrong).await;
            assert_eq!(status, 400, "{answer}");
            assert_eq!(answer["error"]["field"], "consistency.at_least", "{answer}");
            server.stop().await;
        }
    });
}

/// A change log that cannot be read (here, gone from under the sidecar) stops the position:
/// once it has gone unread for `--max-staleness`, questions are 503 `entities_unavailable`,
/// never decided on what may be stale.
#[test]
fn a_change_log_gone_unread_refuses_questions_after_the_bound() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("stale.db").display());
        let server = serving_with(&url, &vera_and_p1(&["p1.editors"]), 5, 1000, 300).await;
        let edit =
            json!({"principal": "User::\"vera\"", "action": "edit", "resource": "Project::\"p1\""});
        let (status, _) = server.post("/v1/is_authorized", &edit).await;
        assert_eq!(status, 200);
        let (pool, _) = gatehouse_source::db::connect(&url).await.expect("connects");
        sqlx::query("ALTER TABLE gatehouse_changes RENAME TO gone")
            .execute(&pool)
            .await
            .expect("renames");
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let (status, answer) = server.post("/v1/is_authorized", &edit).await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"]["code"], "entities_unavailable", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("--max-staleness"),
            "{answer}"
        );
        // Back: the follower catches up without a restart.
        sqlx::query("ALTER TABLE gone RENAME TO gatehouse_changes")
            .execute(&pool)
            .await
            .expect("renames");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let (status, _) = server.post("/v1/is_authorized", &edit).await;
            if status == 200 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not back");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        server.stop().await;
    });
}

/// A change log pruned past what a follower applied (a replica down a long time, the log
/// kept to its last changes): the follower finds the gap and starts its cache again, so the
/// change it never read is not missed.
#[test]
fn a_change_log_pruned_past_a_follower_starts_its_cache_again() {
    let snapshot = common::bundled();
    runtime().block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("pruned.db").display());
        // Looking every 1.5 s: the writes and the pruning land between two looks.
        let server = serving_with(&url, &vera_and_p1(&["p1.editors"]), 1500, 5000, 10_000).await;
        let sourced = server
            .state
            .sourced()
            .expect("reached")
            .expect("a database");
        let edit =
            json!({"principal": "User::\"vera\"", "action": "edit", "resource": "Project::\"p1\""});
        let (_, answer) = server.post("/v1/is_authorized", &edit).await;
        assert_eq!(answer["decision"], "Allow", "{answer}");
        let writer = Source::open(&url, &MappingFile::Bundled, &snapshot)
            .await
            .expect("opens");
        writer
            .import(&snapshot, &vera_and_p1(&[]))
            .await
            .expect("revokes");
        let zed = json!([{"uid": {"type": "User", "id": "zed"}, "attrs": {}, "parents": []}]);
        writer.import(&snapshot, &zed).await.expect("writes");
        let position = writer.position().await.expect("a position");
        // Every change but the last gone: the revoke's among them.
        writer.prune_changes(position - 1).await.expect("prunes");
        let mut asked = edit.clone();
        asked["consistency"] = json!({"at_least": position.to_string()});
        let (status, answer) = server.post("/v1/is_authorized", &asked).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["decision"], "Deny", "the revoke: {answer}");
        assert_eq!(sourced.restarts(), 1);
        server.stop().await;
    });
}
