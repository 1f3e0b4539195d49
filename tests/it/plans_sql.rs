//! Plans to SQL: for random worlds loaded into a database, every user and every listable
//! action, the ids that plan + SQL select equal the ids the sidecar allows one by one, on
//! SQLite and on PostgreSQL (which `scripts/test` starts; `GATEHOUSE_TEST_POSTGRES` names it).

use crate::common;
use crate::plans::{allowed_one_by_one, plan_for};
use crate::sharing_app_host::mapping::mapping;

use std::sync::OnceLock;

use common::server::runtime;
use common::world::{PHASES, World, listings, now, world};
use proptest::prelude::*;
use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use sea_query_binder::SqlxBinder;
use serde_json::{Value, json};
use sqlx::{Executor, Row};

const MIGRATION: &str = include_str!("../../examples/sharing_app/migrations/0001_records.sql");

/// Rows for the world, as statements with their values (in SQL both databases read).
fn inserts(w: &World) -> Vec<(String, Vec<String>)> {
    let mut rows = Vec::new();
    let mut row = |sql: &str, values: Vec<String>| rows.push((sql.to_string(), values));
    for u in 0..w.users {
        row("INSERT INTO users (id) VALUES ($1)", vec![World::user(u)]);
        for group in w.groups_of(u) {
            row(
                "INSERT INTO memberships (user_id, group_id) VALUES ($1, $2)",
                vec![World::user(u), group.id],
            );
        }
    }
    for o in 0..w.orgs {
        let g = |role: &str| format!("o{o}.{role}");
        row(
            "INSERT INTO organizations (id, admins_group, data_owners_group, editors_group, viewers_group, members_group) VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                format!("o{o}"),
                g("admins"),
                g("data_owners"),
                g("editors"),
                g("viewers"),
                g("members"),
            ],
        );
    }
    let flag = |b: bool| if b { "1".to_string() } else { "0".to_string() };
    for (i, p) in w.projects.iter().enumerate() {
        let g = |role: &str| format!("p{i}.{role}");
        let mut values = vec![
            format!("p{i}"),
            World::user(p.owner),
            g("admins"),
            g("managers"),
            g("editors"),
            g("viewers"),
            PHASES[p.phase].to_string(),
        ];
        values.extend(p.flags.iter().map(|&b| flag(b)));
        let sql = "INSERT INTO projects (id, owner_id, admins_group, managers_group, editors_group, viewers_group, phase, archived, public, downloads_enabled, editors_can_share) VALUES ($1, $2, $3, $4, $5, $6, $7, $8 = '1', $9 = '1', $10 = '1', $11 = '1')";
        row(sql, values);
        if let Some(o) = p.organization {
            row(
                "UPDATE projects SET organization_id = $1 WHERE id = $2",
                vec![format!("o{o}"), format!("p{i}")],
            );
        }
    }
    for (i, &(p, phase)) in w.items.iter().enumerate() {
        row(
            "INSERT INTO items (id, project_id, phase) VALUES ($1, $2, $3)",
            vec![format!("i{i}"), format!("p{p}"), PHASES[phase].to_string()],
        );
    }
    let now_ms = now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    for (i, &(p, valid, revoked)) in w.tokens.iter().enumerate() {
        let expires = if valid {
            now_ms + 60_000
        } else {
            now_ms - 60_000
        };
        row(
            "INSERT INTO share_tokens (id, project_id, expires_at, revoked) VALUES ($1, $2, CAST($3 AS BIGINT), $4 = '1')",
            vec![
                format!("t{i}"),
                format!("p{p}"),
                expires.to_string(),
                flag(revoked),
            ],
        );
    }
    rows
}

/// SQLite numbers its parameters `?1`; PostgreSQL `$1`.
fn for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

async fn sqlite() -> sqlx::SqlitePool {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("sqlite");
    pool.execute("PRAGMA foreign_keys = ON")
        .await
        .expect("pragma");
    pool.execute(MIGRATION).await.expect("migration");
    pool
}

/// The ids that plan + SQL select in a database, inside a transaction rolled back after:
/// one body for both databases, whose sqlx types differ.
macro_rules! selected_in {
    ($pool:expr, $builder:expr, $placeholders:expr, $w:expr, $rtype:expr, $condition:expr) => {{
        let mut tx = $pool.begin().await.expect("begin");
        for (sql, values) in inserts($w) {
            let sql = $placeholders(&sql);
            let mut query = sqlx::query(&sql);
            for v in values {
                query = query.bind(v);
            }
            query
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let select = mapping()
            .select_ids($condition, $rtype)
            .expect("SQL for every bundled plan");
        let (sql, values) = select.build_sqlx($builder);
        let rows = sqlx::query_with(&sql, values)
            .fetch_all(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let all = sorted(rows.iter().map(|r| r.get::<String, _>(0)).collect());
        // The same ids, two by two, page after page.
        let mut paged: Vec<String> = Vec::new();
        for round in 0.. {
            assert!(
                round <= all.len(),
                "pages of {} do not end: {paged:?}",
                $rtype
            );
            let page = mapping()
                .page($condition, $rtype, paged.last().map(String::as_str), 2)
                .expect("SQL");
            let (sql, values) = page.build_sqlx($builder);
            let rows = sqlx::query_with(&sql, values)
                .fetch_all(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert!(rows.len() <= 2, "{sql}");
            if rows.is_empty() {
                break;
            }
            paged.extend(rows.iter().map(|r| r.get::<String, _>(0)));
        }
        assert_eq!(sorted(paged), all, "pages of {}", $rtype);
        tx.rollback().await.expect("rollback");
        all
    }};
}

async fn selected_in_sqlite(
    pool: &sqlx::SqlitePool,
    w: &World,
    rtype: &str,
    condition: &gatehouse::plan::Condition,
) -> Vec<String> {
    selected_in!(pool, SqliteQueryBuilder, for_sqlite, w, rtype, condition)
}

async fn selected_in_postgres(
    pool: &sqlx::PgPool,
    w: &World,
    rtype: &str,
    condition: &gatehouse::plan::Condition,
) -> Vec<String> {
    selected_in!(
        pool,
        PostgresQueryBuilder,
        str::to_string,
        w,
        rtype,
        condition
    )
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// The PostgreSQL that `scripts/test` started, with the tables made once in a schema of
/// this run's.
fn postgres() -> &'static sqlx::PgPool {
    static POOL: OnceLock<sqlx::PgPool> = OnceLock::new();
    POOL.get_or_init(|| {
        runtime().block_on(async {
            let url = common::postgres::fresh_schema("plans").await;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&url)
                .await
                .expect("postgres");
            pool.execute(MIGRATION).await.expect("migration");
            pool
        })
    })
}

fn case() -> impl Strategy<Value = (World, usize, usize)> {
    world().prop_flat_map(|w| {
        let (users, count) = (w.users, listings(w.users).len());
        (Just(w), 0..users, 0..count)
    })
}

fn expected(
    w: &World,
    u: usize,
    l: usize,
) -> (&'static str, gatehouse::plan::Condition, Vec<String>) {
    let (rtype, action, context): (&'static str, &'static str, Value) =
        listings(w.users)[l].clone();
    let plan = plan_for(w, u, rtype, action, &context);
    let condition = plan.condition.expect("every bundled listing is filterable");
    (
        rtype,
        condition,
        sorted(allowed_one_by_one(w, u, rtype, action, &context)),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn plan_and_sql_select_what_one_by_one_decisions_allow_in_sqlite((w, u, l) in case()) {
        let (rtype, condition, expected) = expected(&w, u, l);
        let selected = runtime().block_on(async {
            let pool = sqlite().await;
            selected_in_sqlite(&pool, &w, rtype, &condition).await
        });
        prop_assert_eq!(selected, expected, "{}", serde_json::to_string(&condition).unwrap());
    }

    #[test]
    fn plan_and_sql_select_what_one_by_one_decisions_allow_in_postgres((w, u, l) in case()) {
        let (rtype, condition, expected) = expected(&w, u, l);
        let selected = runtime().block_on(selected_in_postgres(postgres(), &w, rtype, &condition));
        prop_assert_eq!(selected, expected, "{}", serde_json::to_string(&condition).unwrap());
    }
}

/// A random condition over projects or items, with leaves the bundled policies never write
/// alone: an optional attribute read without its `has` guard, under `not`.
fn random_condition(item: bool) -> impl Strategy<Value = gatehouse::plan::Condition> {
    use gatehouse::plan::condition::{Comparison, Condition, Literal, Operand, Uid};
    let prefix = move |path: &[&str]| -> Vec<String> {
        let mut full: Vec<String> = if item {
            vec!["project".to_string()]
        } else {
            Vec::new()
        };
        full.extend(path.iter().map(|s| s.to_string()));
        full
    };
    let group = |id: String| {
        Literal::Entity(Uid {
            ty: "Group".into(),
            id,
        })
    };
    let leaf = prop_oneof![
        Just(Condition::Has {
            path: prefix(&["organization"])
        }),
        (0..4usize).prop_map(move |u| Condition::Eq(Comparison {
            path: prefix(&["owner"]),
            operand: Operand::Value(Literal::Entity(Uid {
                ty: "User".into(),
                id: World::user(u)
            })),
        })),
        (0..2usize, 0..5usize).prop_map(move |(o, r)| Condition::InSet {
            path: prefix(&[
                "organization",
                ["admins", "data_owners", "editors", "viewers", "members"][r]
            ]),
            values: vec![group(format!(
                "o{o}.{}",
                ["admins", "data_owners", "editors", "viewers", "members"][r]
            ))],
        }),
        (0..6usize, 0..4usize).prop_map(move |(p, r)| Condition::InSet {
            path: prefix(&[["admins", "managers", "editors", "viewers"][r]]),
            values: vec![
                group(format!(
                    "p{p}.{}",
                    ["admins", "managers", "editors", "viewers"][r]
                )),
                group("o0.members".into())
            ],
        }),
        (0..4usize, any::<bool>()).prop_map(move |(f, b)| Condition::Eq(Comparison {
            path: prefix(&[[
                "archived",
                "public",
                "downloads_enabled",
                "editors_can_share"
            ][f]]),
            operand: Operand::Value(Literal::Bool(b)),
        })),
        (0..4usize).prop_map(move |ph| Condition::Ne(Comparison {
            path: prefix(&["phase"]),
            operand: Operand::Value(Literal::String(PHASES[ph].into())),
        })),
        Just(if item {
            Condition::Eq(Comparison {
                path: vec!["phase".into()],
                operand: Operand::Other(prefix(&["phase"])),
            })
        } else {
            Condition::InSet {
                path: prefix(&["phase"]),
                values: vec![
                    Literal::String("planning".into()),
                    Literal::String("review".into()),
                ],
            }
        }),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|args| Condition::And { args }),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|args| Condition::Or { args }),
            inner.prop_map(|arg| Condition::Not { arg: Box::new(arg) }),
        ]
    })
}

fn condition_case() -> impl Strategy<Value = (World, bool, gatehouse::plan::Condition)> {
    any::<bool>().prop_flat_map(|item| (world(), Just(item), random_condition(item)))
}

/// The rows where Cedar says the condition holds (each leaf evaluated by Cedar; a leaf
/// reading an absent attribute is false).
fn holds_by_cedar(w: &World, rtype: &str, condition: &gatehouse::plan::Condition) -> Vec<String> {
    use std::str::FromStr;
    let schema = &crate::plans::snapshot().schema;
    let entities =
        cedar_policy::Entities::from_json_value(w.all_json(), Some(schema)).expect("entities");
    let ids = w.ids_of(rtype).into_iter().filter(|id| {
        let request = cedar_policy::Request::new(
            cedar_policy::EntityUid::from_str("User::\"u0\"").expect("uid"),
            cedar_policy::EntityUid::from_str("Action::\"view\"").expect("uid"),
            cedar_policy::EntityUid::from_str(&format!("{rtype}::\"{id}\"")).expect("uid"),
            cedar_policy::Context::empty(),
            None,
        )
        .expect("request");
        gatehouse::plan::holds(condition, &request, &entities).expect("leaves are Cedar")
    });
    sorted(ids.collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// The SQL of any condition selects the rows where the condition holds, NULL columns
    /// and `not` included, on both databases.
    #[test]
    fn any_condition_selects_the_same_rows_in_sql_as_in_cedar((w, item, condition) in condition_case()) {
        let rtype = if item { "Item" } else { "Project" };
        let expected = holds_by_cedar(&w, rtype, &condition);
        let in_sqlite = runtime().block_on(async {
            let pool = sqlite().await;
            selected_in_sqlite(&pool, &w, rtype, &condition).await
        });
        prop_assert_eq!(&in_sqlite, &expected, "SQLite: {}", serde_json::to_string(&condition).unwrap());
        let in_postgres = runtime().block_on(selected_in_postgres(postgres(), &w, rtype, &condition));
        prop_assert_eq!(&in_postgres, &expected, "PostgreSQL: {}", serde_json::to_string(&condition).unwrap());
    }
}

/// End to end, as a host does it: the client asks for a plan, the mapping writes its SQL, the
/// database lists the projects.
#[tokio::test]
async fn a_host_lists_her_projects_with_one_plan_and_one_query() {
    use gatehouse_client::{Client, Organization, Project, Role, Uid, User};
    let server = common::server::start_default().await;
    let client = Client::new(&server.base).expect("client");
    // Two organizations, six projects; erin edits o0's projects and p3 directly.
    let w = World {
        users: 2,
        orgs: 2,
        projects: (0..6)
            .map(|i| common::world::ProjectSpec {
                owner: 1,
                organization: [Some(0), Some(0), Some(1), None, None, Some(0)][i],
                phase: 0,
                flags: [i == 5, false, false, false],
            })
            .collect(),
        items: Vec::new(),
        tokens: Vec::new(),
        membership: Vec::new(),
    };
    let erin = User::new("u0")
        .member_of(Organization::group("o0", Role::Editor))
        .member_of(Organization::members("o0"))
        .member_of(Project::group("p3", Role::Editor))
        .build();
    let answer = client
        .plan(
            &Uid::user("u0"),
            "edit",
            "Project",
            None,
            std::slice::from_ref(&erin),
        )
        .await
        .expect("plan")
        .body;
    assert!(answer.plan.filterable);
    let condition = answer.plan.condition.expect("a condition");
    let pool = sqlite().await;
    let mut tx = pool.begin().await.expect("begin");
    let world_rows = inserts(&World {
        membership: vec![vec![false; 6 * 4 + 2 * 5]; 2],
        ..w
    });
    for (sql, values) in world_rows {
        let sql = for_sqlite(&sql);
        let mut query = sqlx::query(&sql);
        for v in values {
            query = query.bind(v);
        }
        query.execute(&mut *tx).await.expect("insert");
    }
    let (sql, values) = mapping()
        .select_ids(&condition, "Project")
        .expect("SQL")
        .build_sqlx(SqliteQueryBuilder);
    let ids: Vec<String> = sqlx::query_with(&sql, values)
        .fetch_all(&mut *tx)
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // o0's projects but the archived p5, and p3.
    assert_eq!(sorted(ids), ["p0", "p1", "p3"], "{sql}");
    server.stop().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Conditions and literals are read by hand-written deserializers (one pass, no
    /// buffering): what is written reads back the same.
    #[test]
    fn conditions_read_back_as_written(condition in any::<bool>().prop_flat_map(random_condition)) {
        let text = serde_json::to_string(&condition).expect("json");
        let read: gatehouse::plan::Condition = serde_json::from_str(&text).expect("reads");
        prop_assert_eq!(read, condition);
    }
}

/// The hand-written readers accept what serde's derived ones did (a uid ignores other keys,
/// an extension value allows none) and refuse the rest with the field named.
#[test]
fn conditions_and_literals_read_as_the_derived_readers_did() {
    use gatehouse::plan::Condition;
    use gatehouse::plan::condition::{Extension, Literal, Uid};
    let literal = |v: Value| serde_json::from_value::<Literal>(v);
    assert_eq!(literal(json!(true)).ok(), Some(Literal::Bool(true)));
    assert_eq!(literal(json!(-3)).ok(), Some(Literal::Long(-3)));
    assert_eq!(literal(json!("x")).ok(), Some(Literal::String("x".into())));
    let uid = Literal::Entity(Uid {
        ty: "User".into(),
        id: "u".into(),
    });
    assert_eq!(
        literal(json!({"type": "User", "id": "u"})).ok(),
        Some(uid.clone())
    );
    assert_eq!(
        literal(json!({"type": "User", "id": "u", "extra": [1]})).ok(),
        Some(uid)
    );
    let datetime = Literal::Extension(Extension {
        function: "datetime".into(),
        arg: "2026-01-01".into(),
    });
    assert_eq!(
        literal(json!({"fn": "datetime", "arg": "2026-01-01"})).ok(),
        Some(datetime)
    );
    for bad in [
        json!(1.5),
        json!(u64::MAX),
        json!(null),
        json!([1]),
        json!({"fn": "datetime", "arg": "2026-01-01", "extra": 1}),
        json!({"type": "User"}),
        json!({"type": "User", "id": 7}),
        json!({"fn": "datetime", "arg": 7}),
    ] {
        assert!(literal(bad.clone()).is_err(), "{bad}");
    }

    let condition = |v: Value| serde_json::from_value::<Condition>(v).map_err(|e| e.to_string());
    assert_eq!(condition(json!({"op": "true"})), Ok(Condition::True));
    assert_eq!(
        condition(json!({"op": "in_set", "path": ["phase"], "values": ["planning"], "note": 1})),
        Ok(Condition::InSet {
            path: vec!["phase".into()],
            values: vec![Literal::String("planning".into())],
        })
    );
    for (bad, says) in [
        (json!({"op": "in_set", "path": ["phase"]}), "values"),
        (json!({"op": "eq", "path": ["phase"]}), "value"),
        (
            json!({"op": "eq", "path": ["a"], "value": 1, "other": ["b"]}),
            "other",
        ),
        (json!({"op": "not"}), "arg"),
        (json!({"op": "xor", "args": []}), "xor"),
        (json!({"path": ["a"]}), "op"),
    ] {
        let error = condition(bad.clone()).expect_err("refused");
        assert!(error.contains(says), "{bad}: {error}");
    }
}
