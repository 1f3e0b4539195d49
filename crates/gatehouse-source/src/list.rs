//! Lists answered in the database: the ids of one entity type where a plan's condition
//! holds, a page at a time by keyset (`id > after ORDER BY id LIMIT n`), through the same
//! mapping the entities are read with (`gatehouse-sql` writes the SQL). Also the plain
//! candidates of a type, in the same order, for a plan the SQL cannot express.

use gatehouse_api::condition::Condition;
use gatehouse_sql::{Mapping, SetTable, SqlError};
use sea_query::{Alias, Expr, Query, SelectStatement};
use sea_query_binder::SqlxBinder;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::SourceError;
use crate::db::Backend;

/// Why a list could not be read from the database.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The condition has no SQL under the mapping: decide candidate by candidate instead.
    #[error(transparent)]
    Untranslatable(#[from] SqlError),
    /// The database refused or failed.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// At most `limit` ids of `entity_type` after `after` (in the database's order of ids)
/// where `condition` holds, each with whether its row has a reference a path of `reads`
/// follows that names no row ([`Mapping::dangling`]: where the SQL may allow what a
/// decision denies).
#[expect(clippy::too_many_arguments, reason = "a page's parts, each its own")]
pub async fn page(
    pool: &AnyPool,
    backend: Backend,
    mapping: &Mapping,
    condition: &Condition,
    entity_type: &str,
    after: Option<&str>,
    limit: u64,
    reads: &[Vec<String>],
) -> Result<Vec<(String, bool)>, ListError> {
    let (query, sets) =
        mapping.page_with_set_tables(condition, entity_type, after, limit, reads)?;
    if backend == Backend::Postgres {
        let query = gatehouse_sql::with_set_tables(query, sets);
        return Ok(marked(
            &crate::read::fetch(pool, backend, logged(backend, &query)).await?,
        )?);
    }
    // SQLite: the value lists in temporary tables of one connection, then the statement on
    // it. The statement's text is the plan's shape alone, prepared once per connection for
    // every user of that shape (a thousand groups inlined cost 40 ms to prepare); each list
    // is read through its table's index.
    let mut connection = pool.acquire().await.map_err(SourceError::from)?;
    for set in &sets {
        fill(&mut connection, set).await?;
    }
    let (sql, values) = logged(backend, &query).build_any_sqlx(backend.dialect());
    let rows = sqlx::query_with(&sql, values)
        .fetch_all(&mut *connection)
        .await
        .map_err(SourceError::from)?;
    Ok(marked(&rows)?)
}

/// `(id, dangles)` rows.
fn marked(rows: &[sqlx::any::AnyRow]) -> Result<Vec<(String, bool)>, SourceError> {
    rows.iter()
        .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)? != 0)))
        .collect()
}

/// Rows inserted per statement when filling a set's table (SQLite takes 32 766 parameters).
const FILL: usize = 1000;

/// Makes the temporary table `set.name (v)` of this connection hold `set.values`: created
/// when missing (with no declared type, so each comparison takes the column's affinity),
/// emptied, filled.
async fn fill(connection: &mut AnyConnection, set: &SetTable) -> Result<(), SourceError> {
    let name = Alias::new(&set.name);
    let create = format!(
        "CREATE TEMP TABLE IF NOT EXISTS \"{}\" (v PRIMARY KEY)",
        set.name.replace('"', "\"\"")
    );
    sqlx::query(&create).execute(&mut *connection).await?;
    let empty = Query::delete()
        .from_table(name.clone())
        .to_string(sea_query::SqliteQueryBuilder);
    sqlx::query(&empty).execute(&mut *connection).await?;
    for chunk in set.values.chunks(FILL) {
        let mut insert = Query::insert();
        insert
            .into_table(name.clone())
            .columns([Alias::new("v")])
            .on_conflict(sea_query::OnConflict::new().do_nothing().to_owned());
        for value in chunk {
            insert
                .values([sea_query::SimpleExpr::Value(value.clone())])
                .map_err(|e| SourceError::Database(e.to_string()))?;
        }
        let (sql, values) = insert.build_any_sqlx(Backend::Sqlite.dialect());
        sqlx::query_with(&sql, values)
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Which of `among` (ids of `entity_type`) `condition` holds for.
pub async fn which(
    pool: &AnyPool,
    backend: Backend,
    mapping: &Mapping,
    condition: &Condition,
    entity_type: &str,
    among: &[String],
) -> Result<Vec<String>, ListError> {
    let mut found = Vec::new();
    for among in among.chunks(AMONG) {
        let id = Alias::new("id");
        let query = Query::select()
            .column(id.clone())
            .from_subquery(
                mapping.select_ids(condition, entity_type)?,
                Alias::new("allowed"),
            )
            .and_where(Expr::col(id).is_in(among.iter().map(String::as_str)))
            .to_owned();
        found.extend(ids(pool, backend, &query).await?);
    }
    Ok(found)
}

/// Ids bound in one `IN (…)` list, well within SQLite's 32 766 parameters.
const AMONG: usize = 1000;

/// At most `limit` ids of `entity_type`'s table after `after`, in order: the candidates a
/// list decides one by one when its condition has no SQL.
pub async fn candidates(
    pool: &AnyPool,
    backend: Backend,
    mapping: &Mapping,
    entity_type: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<String>, ListError> {
    let table = mapping
        .table_of(entity_type)
        .ok_or_else(|| SqlError::NoTable(entity_type.to_string()))?;
    let id = Alias::new(&table.id);
    let mut query = Query::select();
    query
        .expr_as(Expr::col(id.clone()), Alias::new("id"))
        .from(Alias::new(&table.name))
        .order_by(id.clone(), sea_query::Order::Asc)
        .limit(limit);
    if let Some(after) = after {
        query.and_where(Expr::col(id).gt(after));
    }
    Ok(ids(pool, backend, &query).await?)
}

/// `query`, logged at debug level with its values inlined.
fn logged(backend: Backend, query: &SelectStatement) -> &SelectStatement {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let sql = match backend {
            Backend::Sqlite => query.to_string(sea_query::SqliteQueryBuilder),
            Backend::Postgres => query.to_string(sea_query::PostgresQueryBuilder),
        };
        tracing::debug!(%sql, "a list's statement");
    }
    query
}

/// The first column of every row of `query`, as text.
async fn ids(
    pool: &AnyPool,
    backend: Backend,
    query: &SelectStatement,
) -> Result<Vec<String>, SourceError> {
    let rows = crate::read::fetch(pool, backend, logged(backend, query)).await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(SourceError::from))
        .collect()
}
