//! "My projects" at scale: one plan plus one SQL query against asking gatehouse about every
//! project in batches of 100 (what a host without plans does), on SQLite with the app's
//! tables and indexes, for a user who edits 1 % of the projects directly and every project of
//! one organization. Both must list the same projects; the figures are wall-clock times from
//! the host's side (the sidecar on the same machine).
//!
//! ```sh
//! cargo run --release -- serve &
//! cargo run --release --example sharing_app -- bench-lists http://127.0.0.1:8180 1000 10000 100000
//! ```

use std::time::{Duration, Instant};

use gatehouse_client::{
    BatchResult, Client, Entity, Organization, Project, Question, Role, Uid, User,
};
use sea_query::SqliteQueryBuilder;
use sea_query_binder::SqlxBinder;
use serde_json::json;
use sqlx::{Executor, Row};

const MIGRATION: &str = include_str!("migrations/0001_records.sql");
const PHASES: [&str; 3] = ["planning", "processing", "report_ready"];
/// Plan + SQL rounds per size (each with a new user id, so no plan comes from the cache).
const ROUNDS: usize = 20;

/// Runs the benchmark for each size and prints a table.
pub async fn run(gatehouse: &str, sizes: &[usize]) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::new(gatehouse)?;
    println!(
        "| projects | listed | plan + SQL (median of {ROUNDS}) | the plan | the SQL | batches of 100 | speed-up |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let dir = tempfile::tempdir()?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        );
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        pool.execute(MIGRATION).await?;
        fill(&pool, n).await?;

        let mut totals = Vec::new();
        let mut plans = Vec::new();
        let mut queries = Vec::new();
        let mut listed = Vec::new();
        for round in 0..ROUNDS {
            let user = format!("erin-{round}");
            let started = Instant::now();
            let plan = client
                .plan(
                    &Uid::user(&user),
                    "view",
                    "Project",
                    None,
                    &[erin(&user, n)],
                )
                .await?
                .body
                .plan;
            let planned = started.elapsed();
            plans.push(planned);
            let condition = plan
                .condition
                .ok_or("the bundled view plan is filterable")?;
            let (sql, values) = crate::app::mapping::mapping()
                .select_ids(&condition, "Project")?
                .build_sqlx(SqliteQueryBuilder);
            if round == 0 && std::env::var_os("EXPLAIN").is_some() {
                let explain = format!("EXPLAIN QUERY PLAN {sql}");
                for row in sqlx::query_with(&explain, values.clone())
                    .fetch_all(&pool)
                    .await?
                {
                    eprintln!("{}", row.get::<String, _>(3));
                }
                eprintln!("{}", &sql[..sql.len().min(3000)]);
            }
            let rows = sqlx::query_with(&sql, values).fetch_all(&pool).await?;
            totals.push(started.elapsed());
            queries.push(started.elapsed() - planned);
            listed = rows
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect::<Vec<_>>();
        }

        let started = Instant::now();
        let by_batches = batches(&client, &pool, n).await?;
        let batched = started.elapsed();
        listed.sort();
        if listed != by_batches {
            return Err(format!(
                "{n} projects: plan + SQL listed {}, batches {}: they must agree",
                listed.len(),
                by_batches.len()
            )
            .into());
        }
        let total = median(&mut totals);
        println!(
            "| {n} | {} | {} | {} | {} | {} | {:.0}× |",
            listed.len(),
            ms(total),
            ms(median(&mut plans)),
            ms(median(&mut queries)),
            ms(batched),
            batched.as_secs_f64() / total.as_secs_f64()
        );
    }
    Ok(())
}

/// The user: an editor of every 100th of the `n` projects (`p7`, `p107`, …) and of
/// organization `o1`.
fn erin(id: &str, n: usize) -> Entity {
    let mut user = User::new(id)
        .member_of(Organization::group("o1", Role::Editor))
        .member_of(Organization::members("o1"));
    for i in (7..n).step_by(100) {
        user = user.member_of(Project::group(&format!("p{i}"), Role::Editor));
    }
    user.build()
}

/// `n` projects of 1 000 owners; a third in one of ten organizations; some archived or public.
async fn fill(pool: &sqlx::SqlitePool, n: usize) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for u in 0..1000 {
        sqlx::query("INSERT INTO users (id) VALUES (?1)")
            .bind(format!("u{u}"))
            .execute(&mut *tx)
            .await?;
    }
    for o in 0..10 {
        let g = |role: &str| format!("o{o}.{role}");
        sqlx::query("INSERT INTO organizations (id, admins_group, data_owners_group, editors_group, viewers_group, members_group) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(format!("o{o}")).bind(g("admins")).bind(g("data_owners")).bind(g("editors")).bind(g("viewers")).bind(g("members"))
            .execute(&mut *tx).await?;
    }
    for i in 0..n {
        let g = |role: &str| format!("p{i}.{role}");
        sqlx::query("INSERT INTO projects (id, owner_id, organization_id, admins_group, managers_group, editors_group, viewers_group, phase, archived, public, downloads_enabled, editors_can_share) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")
            .bind(format!("p{i}"))
            .bind(format!("u{}", i % 1000))
            .bind((i % 3 == 0).then(|| format!("o{}", i % 10)))
            .bind(g("admins")).bind(g("managers")).bind(g("editors")).bind(g("viewers"))
            .bind(PHASES[i % 3])
            .bind(i % 17 == 0)
            .bind(i % 50 == 0)
            .bind(i % 2 == 0)
            .bind(i % 5 == 0)
            .execute(&mut *tx).await?;
    }
    // No ANALYZE: with its statistics SQLite judges one organization's projects (3 %)
    // cheaper to find by scanning the table than through `projects_organization`, and the
    // organization branches of the plan scan 100 000 rows each.
    tx.commit().await?;
    Ok(())
}

/// Every project read and asked about, 100 per batch: the ids allowed, sorted.
async fn batches(
    client: &Client,
    pool: &sqlx::SqlitePool,
    n: usize,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let rows = sqlx::query("SELECT id, owner_id, organization_id, phase, archived, public, downloads_enabled, editors_can_share FROM projects ORDER BY id")
        .fetch_all(pool)
        .await?;
    let user = "erin-batch";
    let mut allowed = Vec::new();
    for chunk in rows.chunks(100) {
        let mut shared = vec![erin(user, n)];
        shared.extend((0..10).map(|o| Organization::new(format!("o{o}")).build()));
        let mut questions = Vec::new();
        for row in chunk {
            let id: String = row.get(0);
            let mut project = Project::new(&id, row.get::<String, _>(1))
                .archived(row.get(4))
                .public(row.get(5))
                .downloads_enabled(row.get(6))
                .editors_can_share(row.get(7));
            if let Some(org) = row.get::<Option<String>, _>(2) {
                project = project.organization(org);
            }
            let mut project = project.build();
            project
                .attrs
                .insert("phase".into(), json!(row.get::<String, _>(3)));
            shared.push(project);
            questions.push(Question::new(Uid::user(user), "view", Uid::project(&id)));
        }
        let answer = client.batch(&shared, &questions).await?;
        for (row, result) in chunk.iter().zip(answer.body) {
            match result {
                BatchResult::Decided(d) if d.decision == gatehouse::decide::Verdict::Allow => {
                    allowed.push(row.get::<String, _>(0));
                }
                BatchResult::Decided(_) => {}
                BatchResult::Failed { code, message } => {
                    return Err(format!("{code}: {message}").into());
                }
            }
        }
    }
    allowed.sort();
    Ok(allowed)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
