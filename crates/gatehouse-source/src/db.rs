//! The database: a `sqlite:` or `postgres://` URL, one code path for both (sqlx's `Any`
//! driver, statements built with sea-query for the backend), the bundled migrations, and
//! the check of a binding against the live tables.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use sea_query::{PostgresQueryBuilder, QueryBuilder, SqliteQueryBuilder};
use sqlx::any::AnyPoolOptions;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};

use crate::SourceError;
use crate::bind::{Binding, MappingProblem, Scalar};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (created when missing), or `sqlite::memory:`.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend of `url`, or why there is none.
    pub fn of(url: &str) -> Result<Self, SourceError> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(SourceError::Url(format!(
                "`{url}` is neither a `sqlite:` nor a `postgres://` URL"
            )))
        }
    }

    /// sea-query's writer of this backend's SQL.
    pub fn dialect(self) -> &'static dyn QueryBuilder {
        match self {
            Self::Sqlite => &SqliteQueryBuilder,
            Self::Postgres => &PostgresQueryBuilder,
        }
    }
}

/// A pool on `url`. A SQLite file that does not exist is created; an in-memory SQLite keeps
/// one connection (each would be a database of its own).
pub async fn connect(url: &str) -> Result<(AnyPool, Backend), SourceError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of(url)?;
    let memory = is_memory(url);
    let url = match backend {
        Backend::Sqlite => sqlite_url(url),
        Backend::Postgres => url.to_string(),
    };
    let options = AnyPoolOptions::new();
    let pool = if memory {
        options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect(&url)
            .await?
    } else {
        // No ping before each use: it would double a question's round trips. A connection
        // the server dropped (a restart) fails its statement, which is tried once more
        // (`read::fetch`), and sqlx closes it.
        options
            .max_connections(8)
            .test_before_acquire(false)
            .connect(&url)
            .await?
    };
    if backend == Backend::Sqlite {
        // Readers do not wait for a writer (a file database; memory ignores it).
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
    }
    Ok((pool, backend))
}

/// Whether `url` is an in-memory SQLite (a database of each connection's own).
pub fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// A SQLite URL that creates its file when missing (unless it says otherwise).
pub fn sqlite_url(url: &str) -> String {
    if is_memory(url) || url.contains("mode=") {
        return url.to_string();
    }
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}mode=rwc")
}

/// The bundled domain's migrations (`entities/migrations/`), compiled in.
const MIGRATIONS: [(i64, &str, &str); 1] = [(
    1,
    "entities",
    include_str!("../../../entities/migrations/0001_entities.sql"),
)];

/// The bundled domain's mapping (`entities/mapping.toml`), compiled in.
pub const BUNDLED_MAPPING: &str = include_str!("../../../entities/mapping.toml");

/// Creates or brings up to date the bundled domain's tables.
pub async fn migrate_bundled(pool: &AnyPool) -> Result<(), SourceError> {
    Migrator::new(Bundled)
        .await
        .map_err(|e| SourceError::Database(e.to_string()))?
        .run(pool)
        .await
        .map_err(|e| SourceError::Database(format!("migrating the bundled tables: {e}")))
}

#[derive(Debug)]
struct Bundled;

impl<'s> MigrationSource<'s> for Bundled {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The kind of values a column holds, as far as the check needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Bool,
    Other,
}

/// What a declared column type holds.
fn kind(declared: &str) -> Kind {
    let declared = declared.to_ascii_lowercase();
    if declared.contains("bool") {
        Kind::Bool
    } else if declared.contains("int") {
        Kind::Integer
    } else if declared.contains("char") || declared.contains("text") || declared == "uuid" {
        Kind::Text
    } else {
        Kind::Other
    }
}

/// What a column must hold for `scalar`.
fn needed(scalar: &Scalar) -> Kind {
    match scalar {
        Scalar::Long | Scalar::Datetime => Kind::Integer,
        Scalar::Bool => Kind::Bool,
        Scalar::String | Scalar::Entity(_) | Scalar::Extension(_) => Kind::Text,
    }
}

/// The columns of every table of the database, with their declared types.
async fn columns(
    pool: &AnyPool,
    backend: Backend,
    tables: &BTreeSet<&str>,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, SourceError> {
    let mut found = BTreeMap::new();
    for table in tables {
        let rows = match backend {
            Backend::Sqlite => {
                sqlx::query("SELECT name, type FROM pragma_table_info($1)")
                    .bind(*table)
                    .fetch_all(pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::query(
                    "SELECT column_name::text AS name, data_type::text AS type \
                     FROM information_schema.columns \
                     WHERE table_name = $1 AND table_schema = ANY (current_schemas(false))",
                )
                .bind(*table)
                .fetch_all(pool)
                .await?
            }
        };
        if rows.is_empty() {
            continue;
        }
        let mut columns = BTreeMap::new();
        for row in rows {
            columns.insert(row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?);
        }
        found.insert((*table).to_string(), columns);
    }
    Ok(found)
}

/// The binding checked against the live database: every table and column it names exists,
/// with a type that holds what the attribute needs (ids and entity references as text).
pub async fn check(
    pool: &AnyPool,
    backend: Backend,
    binding: &Binding,
) -> Result<Vec<MappingProblem>, SourceError> {
    // Every (table, column, kind, the attribute it serves) the binding reads.
    let mut wanted: Vec<(String, String, Kind, String)> = Vec::new();
    for ty in binding.types() {
        let at = |attr: &str| format!("{}.{attr}", ty.entity_type);
        wanted.push((ty.table.clone(), ty.id.clone(), Kind::Text, at("id")));
        for attr in &ty.attributes {
            let kind = needed(&attr.scalar);
            match &attr.column {
                gatehouse_sql::Column::Value(c)
                | gatehouse_sql::Column::Entity { column: c, .. } => {
                    wanted.push((ty.table.clone(), c.clone(), kind, at(&attr.name)));
                }
                gatehouse_sql::Column::Set {
                    table,
                    owner,
                    value,
                } => {
                    wanted.push((table.clone(), owner.clone(), Kind::Text, at(&attr.name)));
                    wanted.push((table.clone(), value.clone(), kind, at(&attr.name)));
                }
            }
        }
        for parents in &ty.parents {
            let at = format!("{} parents", ty.entity_type);
            match parents {
                gatehouse_sql::Parents::Column { column, .. } => {
                    wanted.push((ty.table.clone(), column.clone(), Kind::Text, at));
                }
                gatehouse_sql::Parents::Table {
                    table,
                    owner,
                    parent,
                    ..
                } => {
                    wanted.push((table.clone(), owner.clone(), Kind::Text, at.clone()));
                    wanted.push((table.clone(), parent.clone(), Kind::Text, at));
                }
            }
        }
        if let Some((tags, scalar)) = &ty.tags {
            let at = format!("{} tags", ty.entity_type);
            wanted.push((
                tags.table.clone(),
                tags.owner.clone(),
                Kind::Text,
                at.clone(),
            ));
            wanted.push((tags.table.clone(), tags.key.clone(), Kind::Text, at.clone()));
            wanted.push((tags.table.clone(), tags.value.clone(), needed(scalar), at));
        }
    }
    let tables: BTreeSet<&str> = wanted.iter().map(|(t, ..)| t.as_str()).collect();
    let found = columns(pool, backend, &tables).await?;
    let mut problems = Vec::new();
    for (table, column, kind_needed, at) in &wanted {
        let Some(columns) = found.get(table) else {
            problems.push(MappingProblem {
                at: at.clone(),
                column: Some(table.clone()),
                message: "the database has no such table".into(),
            });
            continue;
        };
        let Some(declared) = columns.get(column) else {
            problems.push(MappingProblem {
                at: at.clone(),
                column: Some(format!("{table}.{column}")),
                message: format!(
                    "the table has no such column (it has {})",
                    columns
                        .keys()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            continue;
        };
        let got = kind(declared);
        // SQLite keeps booleans as integers, whatever a column is declared.
        let fits = got == *kind_needed
            || (backend == Backend::Sqlite && *kind_needed == Kind::Bool && got == Kind::Integer);
        if !fits {
            problems.push(MappingProblem {
                at: at.clone(),
                column: Some(format!("{table}.{column}")),
                message: format!(
                    "declared `{declared}`, which does not hold {}",
                    match kind_needed {
                        Kind::Text => "text (ids and strings)",
                        Kind::Integer => "integers",
                        Kind::Bool => "booleans",
                        Kind::Other => "these values",
                    }
                ),
            });
        }
    }
    problems.dedup();
    Ok(problems)
}
