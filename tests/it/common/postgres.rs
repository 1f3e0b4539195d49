//! The PostgreSQL that `scripts/test` starts and names in `GATEHOUSE_TEST_POSTGRES`: each
//! user of it works in a schema of its own.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor};

/// The server's URL.
pub fn url() -> String {
    std::env::var("GATEHOUSE_TEST_POSTGRES").expect(
        "GATEHOUSE_TEST_POSTGRES names the PostgreSQL these tests use: run them with scripts/test, which starts one",
    )
}

/// A new, empty schema `{prefix}_{process}_{n}`, and a URL whose connections work in it.
pub async fn fresh_schema(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = url();
    let schema = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut connection = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url}: {e}"));
    let setup = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}");
    connection.execute(setup.as_str()).await.expect("schema");
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}
