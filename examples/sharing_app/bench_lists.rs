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
/// The indexes lists read in id order by (`migrations/0003_list_indexes.sql`).
const LIST_INDEXES: &str = include_str!("migrations/0003_list_indexes.sql");
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
        pool.execute(LIST_INDEXES).await?;
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

/// `/v1/list` and `/v1/list/subjects` on the same worlds, the sidecar serving the database
/// itself (`--entities-db`, the app's mapping): for each size, a sidecar is started on a fresh
/// SQLite file holding the world and twenty users like `erin` (1 002 groups each, in the
/// database's memberships), and a project (`p3`, of organization `o3`) with 1 000 members:
/// 400 direct viewers, 300 direct editors, 150 organization viewers and 150 organization
/// editors. Median of the twenty users (each a first question: her entities read from the
/// database, her plan made), wall-clock from the host's side.
///
/// ```sh
/// cargo build --release --bin gatehouse --example sharing_app
/// target/release/examples/sharing_app bench-list-route target/release/gatehouse 1000 10000 100000
/// ```
pub async fn run_route(binary: &str, sizes: &[usize]) -> Result<(), Box<dyn std::error::Error>> {
    let http = reqwest::Client::new();
    println!(
        "| projects | listed | first page of 100 | the same again | all (streamed) | all (pages of 1 000) | plan JSON | subjects of p3 (1 000 members) | batches of 100 | speed-up (all, streamed) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let dir = tempfile::tempdir()?;
        // `BENCH_KEEP=DIR` keeps the database there, to look at afterwards.
        let file = match std::env::var_os("BENCH_KEEP") {
            Some(keep) => std::path::PathBuf::from(keep).join(format!("bench-{n}.db")),
            None => dir.path().join("bench.db"),
        };
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        pool.execute(MIGRATION).await?;
        pool.execute(LIST_INDEXES).await?;
        fill(&pool, n).await?;
        let mut tx = pool.begin().await?;
        for round in 0..ROUNDS {
            let user = format!("erin-{round}");
            sqlx::query("INSERT INTO users (id) VALUES (?1)")
                .bind(&user)
                .execute(&mut *tx)
                .await?;
            for group in erin(&user, n).parents {
                sqlx::query("INSERT INTO memberships (user_id, group_id) VALUES (?1, ?2)")
                    .bind(&user)
                    .bind(&group.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for u in 0..1000 {
            let group = match u {
                0..400 => "p3.viewers",
                400..700 => "p3.editors",
                700..850 => "o3.viewers",
                _ => "o3.editors",
            };
            sqlx::query("INSERT INTO memberships (user_id, group_id) VALUES (?1, ?2)")
                .bind(format!("u{u}"))
                .bind(group)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        pool.close().await;

        let listen = "127.0.0.1:8197";
        let mut sidecar = std::process::Command::new(binary)
            .args(["serve", "--listen", listen, "--entities-map"])
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/sharing_app/mapping.toml"
            ))
            .arg("--entities-db")
            .arg(format!("sqlite://{}", file.display()))
            .stderr(match std::env::var_os("BENCH_KEEP") {
                Some(_) => std::process::Stdio::inherit(),
                None => std::process::Stdio::null(),
            })
            .spawn()?;
        let base = format!("http://{listen}");
        let measured = measure_route(&http, &base, n).await;
        sidecar.kill()?;
        sidecar.wait()?;
        let m = measured?;

        let batched = if n <= 10_000 {
            let client = Client::new(&base)?;
            // The batches need a sidecar without the database: the app's entities sent.
            let mut plain = std::process::Command::new(binary)
                .args(["serve", "--listen", listen])
                .stderr(std::process::Stdio::null())
                .spawn()?;
            ready(&http, &base).await?;
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await?;
            let started = Instant::now();
            let by_batches = batches(&client, &pool, n).await;
            let batched = started.elapsed();
            plain.kill()?;
            plain.wait()?;
            let by_batches = by_batches?;
            if by_batches.len() != m.listed {
                return Err(format!(
                    "{n} projects: /v1/list listed {}, batches {}: they must agree",
                    m.listed,
                    by_batches.len()
                )
                .into());
            }
            Some(batched)
        } else {
            None
        };
        println!(
            "| {n} | {} | {} | {} | {} | {} | {:.1} KB | {} | {} | {} |",
            m.listed,
            ms(m.first_page),
            ms(m.again),
            ms(m.streamed),
            ms(m.paged),
            m.plan_bytes as f64 / 1000.0,
            ms(m.subjects),
            batched.map_or("not run".into(), ms),
            batched.map_or("".into(), |b| format!(
                "{:.0}×",
                b.as_secs_f64() / m.streamed.as_secs_f64()
            )),
        );
    }
    Ok(())
}

/// What [`measure_route`] measured, each a median of [`ROUNDS`].
struct Route {
    listed: usize,
    first_page: Duration,
    /// The same page asked again: her plan and her entities cached.
    again: Duration,
    streamed: Duration,
    paged: Duration,
    plan_bytes: usize,
    subjects: Duration,
}

async fn ready(http: &reqwest::Client, base: &str) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the sidecar did not become ready".into())
}

async fn measure_route(
    http: &reqwest::Client,
    base: &str,
    n: usize,
) -> Result<Route, Box<dyn std::error::Error>> {
    ready(http, base).await?;
    let post =
        |path: &str, body: serde_json::Value| http.post(format!("{base}{path}")).json(&body).send();
    let (mut first, mut streamed, mut paged, mut subjects, mut again) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut listed = 0;
    let mut plan_bytes = 0;
    for round in 0..ROUNDS {
        let user = format!("User::\"erin-{round}\"");
        let question = json!({"principal": user, "action": "view", "resource_type": "Project"});
        // Each user's first question: her entities read, her plan made.
        let mut body = question.clone();
        body["page"] = json!({"size": 100});
        let started = Instant::now();
        let page: serde_json::Value = post("/v1/list", body.clone()).await?.json().await?;
        first.push(started.elapsed());
        let started = Instant::now();
        post("/v1/list", body).await?.error_for_status()?;
        again.push(started.elapsed());
        if page["listed_by"] != "sql" {
            return Err(format!("the list was not answered by SQL: {page}").into());
        }
        let started = Instant::now();
        let text = http
            .post(format!("{base}/v1/list"))
            .header("accept", "application/x-ndjson")
            .json(&question)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        streamed.push(started.elapsed());
        let lines: Vec<&str> = text.lines().collect();
        let done: serde_json::Value = serde_json::from_str(lines.last().unwrap_or(&"{}"))?;
        if done["done"] != true {
            return Err(format!("the stream did not end: {}", lines.last().unwrap_or(&"")).into());
        }
        listed = lines.len() - 1;
        let started = Instant::now();
        let mut count = 0;
        let mut token: Option<String> = None;
        loop {
            let mut body = question.clone();
            body["page"] = json!({"size": 1000});
            if let Some(token) = &token {
                body["page"]["token"] = json!(token);
            }
            let page: serde_json::Value = post("/v1/list", body).await?.json().await?;
            count += page["ids"].as_array().map_or(0, Vec::len);
            match page["next_token"].as_str() {
                Some(next) => token = Some(next.to_string()),
                None => break,
            }
        }
        paged.push(started.elapsed());
        if count != listed {
            return Err(format!("pages listed {count}, the stream {listed}").into());
        }
        let plan = post("/v1/plan", question.clone()).await?.bytes().await?;
        plan_bytes = plan.len();
        let started = Instant::now();
        let members: serde_json::Value = post(
            "/v1/list/subjects",
            json!({"action": "view", "resource": "Project::\"p3\"", "principal_type": "User",
                "page": {"size": 1000}}),
        )
        .await?
        .json()
        .await?;
        subjects.push(started.elapsed());
        let found = members["ids"].as_array().map_or(0, Vec::len);
        // 1 000 members and the owner (`u3`, among them): every one sees it unless archived.
        if n > 3 && found != 1000 {
            return Err(format!("p3 has {found} subjects, not 1 000: {members}").into());
        }
    }
    Ok(Route {
        listed,
        first_page: median(&mut first),
        again: median(&mut again),
        streamed: median(&mut streamed),
        paged: median(&mut paged),
        plan_bytes,
        subjects: median(&mut subjects),
    })
}
