//! Lists answered in the database: the ids of one entity type where a plan's condition
//! holds, a page at a time by keyset (`id > after ORDER BY id LIMIT n`), through the same
//! mapping the entities are read with (`gatehouse-sql` writes the SQL). Also the plain
//! candidates of a type, in the same order, for a plan the SQL cannot express.

use gatehouse_api::condition::Condition;
use gatehouse_sql::{Mapping, SqlError};
use sea_query::{Alias, Expr, Query, SelectStatement};
use sqlx::{AnyPool, Row};

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
/// where `condition` holds.
pub async fn page(
    pool: &AnyPool,
    backend: Backend,
    mapping: &Mapping,
    condition: &Condition,
    entity_type: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<String>, ListError> {
    let query = mapping.page(condition, entity_type, after, limit)?;
    Ok(ids(pool, backend, &query).await?)
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

/// Which of `among` have a reference a path of `reads` follows that names no row
/// ([`Mapping::dangling`]): where the SQL may allow what a decision denies.
pub async fn dangling(
    pool: &AnyPool,
    backend: Backend,
    mapping: &Mapping,
    reads: &[Vec<String>],
    entity_type: &str,
    among: &[String],
) -> Result<Vec<String>, ListError> {
    let Some(dangles) = mapping.dangling(reads, entity_type)? else {
        return Ok(Vec::new());
    };
    let table = mapping
        .table_of(entity_type)
        .ok_or_else(|| SqlError::NoTable(entity_type.to_string()))?;
    let mut found = Vec::new();
    for among in among.chunks(AMONG) {
        let id = Expr::col((Alias::new(&table.name), Alias::new(&table.id)));
        let query = Query::select()
            .expr(id.clone())
            .from(Alias::new(&table.name))
            .and_where(id.is_in(among.iter().map(String::as_str)))
            .and_where(dangles.clone())
            .to_owned();
        found.extend(ids(pool, backend, &query).await?);
    }
    Ok(found)
}

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

/// The first column of every row of `query`, as text.
async fn ids(
    pool: &AnyPool,
    backend: Backend,
    query: &SelectStatement,
) -> Result<Vec<String>, SourceError> {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let sql = match backend {
            Backend::Sqlite => query.to_string(sea_query::SqliteQueryBuilder),
            Backend::Postgres => query.to_string(sea_query::PostgresQueryBuilder),
        };
        tracing::debug!(%sql, "a list's statement");
    }
    let rows = crate::read::fetch(pool, backend, query).await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(SourceError::from))
        .collect()
}
