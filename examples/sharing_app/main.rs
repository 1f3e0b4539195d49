//! The project-sharing host application: an axum service with its own records in SQL
//! (SQLite by default, PostgreSQL for a `postgres://` URL) that asks gatehouse by id before
//! every action, gatehouse reading the entities from the app's own database and answering
//! its lists there (`/v1/list`, `/v1/list/subjects`).
//!
//! Run with (the app first: it creates its tables, which gatehouse checks its mapping
//! against):
//!
//! ```sh
//! cargo run --example sharing_app -- 127.0.0.1:8080 http://127.0.0.1:8180 [DATABASE_URL] &
//! cargo run --release -- serve --entities-db sqlite://sharing_app.db \
//!     --entities-map examples/sharing_app/mapping.toml &    # gatehouse on 127.0.0.1:8180
//! ```
//!
//! The database is `DATABASE_URL` (the argument, or the environment variable):
//! `sqlite://sharing_app.db?mode=rwc` (the default: a file in the working directory,
//! created when missing) or `postgres://user@host/db`; gatehouse is given the same one. Its
//! tables are created or brought up to date on start (`migrations/`); `sharing_app migrate
//! [DATABASE_URL]` does only that, and exits (a deployment's init step).
//!
//! Then try a flow with curl (the caller is named by the `x-user` header):
//!
//! ```sh
//! curl -s localhost:8080/users -d '{"id": "ana", "email": "ana@example.com"}'
//! curl -s localhost:8080/users -d '{"id": "ben"}'
//! curl -s localhost:8080/projects -H 'x-user: ana' -d '{"name": "Survey"}'       # -> {"id": "p1", ...}
//! curl -s localhost:8080/projects/p1/tokens -H 'x-user: ana' -d '{"expires_in_secs": 3600}'
//! curl -s -X POST localhost:8080/tokens/TOKEN/requests -H 'x-user: ben'           # -> {"id": "req2", ...}
//! curl -s localhost:8080/requests/req2/accept -H 'x-user: ana' -d '{"role": "viewer"}'
//! curl -s localhost:8080/projects/p1 -H 'x-user: ben'                             # 200
//! curl -s -X POST localhost:8080/projects/p1/processing -H 'x-user: ben'          # 403 {"error": {"code": "forbidden", ...}}
//! ```
//!
//! `bench-lists URL SIZES…` measures "my projects" by plan + SQL against batches instead
//! (see `bench_lists.rs`); `bench-list-route BINARY SIZES…` measures `/v1/list` and
//! `/v1/list/subjects` with the sidecar serving the database.

mod app;
mod bench_lists;

use gatehouse_client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let database = |given: Option<String>| {
        given
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .unwrap_or_else(|| "sqlite://sharing_app.db?mode=rwc".into())
    };
    if args.peek().map(String::as_str) == Some("migrate") {
        let database = database(args.nth(1));
        app::Store::connect(&database).await?;
        eprintln!("sharing_app: the tables of {database} are up to date");
        return Ok(());
    }
    if args.peek().map(String::as_str) == Some("bench-lists") {
        let gatehouse = args
            .nth(1)
            .unwrap_or_else(|| "http://127.0.0.1:8180".into());
        let sizes: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
        let sizes = if sizes.is_empty() {
            vec![1_000, 10_000]
        } else {
            sizes
        };
        return bench_lists::run(&gatehouse, &sizes).await;
    }
    if args.peek().map(String::as_str) == Some("bench-list-route") {
        let binary = args
            .nth(1)
            .unwrap_or_else(|| "target/release/gatehouse".into());
        let sizes: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
        let sizes = if sizes.is_empty() {
            vec![1_000, 10_000]
        } else {
            sizes
        };
        return bench_lists::run_route(&binary, &sizes).await;
    }
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let gatehouse = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8180".into());
    let database = database(args.next());
    let app = app::App::connect(Client::new(&gatehouse)?, &database).await?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "sharing_app on http://{} asking gatehouse at {gatehouse}, records in {database}",
        listener.local_addr()?
    );
    axum::serve(listener, app::router(app)).await?;
    Ok(())
}
