//! What changed in the database, in commit order, for caches kept exact.
//!
//! **SQLite.** Triggers that gatehouse installs on every table the mapping reads (an
//! entity's table, and every table it owns rows of: sets, parents, tags) append the changed
//! entity's (type, id) to `gatehouse_changes` inside the writing transaction, so a change
//! row commits with the data it describes or not at all: no committed change can be missed.
//! Its `seq` (`INTEGER PRIMARY KEY AUTOINCREMENT`) grows with every row and is never reused,
//! and SQLite commits one writer at a time, so `seq` order is commit order; a follower reads
//! the rows past the last it applied (woken by `PRAGMA data_version`, which moves when
//! another connection commits). Rows older than every follower may be pruned: a follower
//! that finds the rows after its position gone starts again from an empty cache.
//!
//! **PostgreSQL.** Triggers that gatehouse installs on the same tables emit each changed
//! entity into the write-ahead log, read back in commit order by logical decoding
//! ([`crate::stream`]).

use std::collections::BTreeSet;

use sqlx::AnyConnection;
use sqlx::{AnyPool, Connection, Row};

use crate::SourceError;
use crate::bind::Binding;
use crate::db::Backend;
use gatehouse_sql::{Column, Parents};

/// One changed entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The position of the change.
    pub seq: i64,
    /// The changed entity's type.
    pub entity_type: String,
    /// Its id.
    pub id: String,
}

/// Changes since a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// The changes after the position asked, in order (possibly none).
    Changes(Vec<Change>),
    /// Rows after the position asked were pruned: what a cache holds may be stale, and it
    /// must start again; the position to start from.
    Gap(i64),
}

/// Each table whose rows are an entity's data, with the column holding the entity's id and
/// the entity's type.
fn watched(binding: &Binding) -> BTreeSet<(String, String, String)> {
    let mut tables = BTreeSet::new();
    for ty in binding.types() {
        let ty_name = ty.entity_type.clone();
        tables.insert((ty.table.clone(), ty.id.clone(), ty_name.clone()));
        for attr in &ty.attributes {
            if let Column::Set { table, owner, .. } = &attr.column {
                tables.insert((table.clone(), owner.clone(), ty_name.clone()));
            }
        }
        for parents in &ty.parents {
            if let Parents::Table { table, owner, .. } = parents {
                tables.insert((table.clone(), owner.clone(), ty_name.clone()));
            }
        }
        if let Some((tags, _)) = &ty.tags {
            tables.insert((tags.table.clone(), tags.owner.clone(), ty_name.clone()));
        }
    }
    tables
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A SQL identifier, quoted.
fn ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Installs what says what changed: on SQLite, the `gatehouse_changes` table and a trigger
/// per watched table and kind of write; on PostgreSQL, a trigger per watched table that
/// emits each change into the write-ahead log ([`crate::stream`]), with `prefix`.
/// Idempotent.
pub async fn install(
    pool: &AnyPool,
    backend: Backend,
    binding: &Binding,
    prefix: &str,
) -> Result<(), SourceError> {
    if backend == Backend::Postgres {
        return install_postgres(pool, binding, prefix).await;
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS gatehouse_changes (\
         seq INTEGER PRIMARY KEY AUTOINCREMENT, \
         entity_type TEXT NOT NULL, \
         entity_id TEXT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    for (n, (table, owner, entity_type)) in watched(binding).into_iter().enumerate() {
        let name = |kind: &str| ident(&format!("gatehouse_{table}_{n}_{kind}"));
        let log = |row: &str| {
            format!(
                "INSERT INTO gatehouse_changes (entity_type, entity_id) VALUES ({}, {row}.{});",
                literal(&entity_type),
                ident(&owner)
            )
        };
        let table = ident(&table);
        for statement in [
            format!(
                "CREATE TRIGGER IF NOT EXISTS {} AFTER INSERT ON {table} BEGIN {} END",
                name("insert"),
                log("NEW")
            ),
            format!(
                "CREATE TRIGGER IF NOT EXISTS {} AFTER UPDATE ON {table} BEGIN {} {} END",
                name("update"),
                log("OLD"),
                log("NEW")
            ),
            format!(
                "CREATE TRIGGER IF NOT EXISTS {} AFTER DELETE ON {table} BEGIN {} END",
                name("delete"),
                log("OLD")
            ),
        ] {
            sqlx::query(&statement).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The trigger function of PostgreSQL's changes: one transactional logical decoding
/// message per row written (its entity's type and id, `TG_ARGV[0]` and the id column
/// `TG_ARGV[1]`, before and after an update), or per `TRUNCATE` (the type, no id).
const CHANGED: &str = "CREATE OR REPLACE FUNCTION gatehouse_changed() RETURNS trigger \
    LANGUAGE plpgsql AS $$ \
    BEGIN \
      IF TG_OP = 'TRUNCATE' THEN \
        PERFORM pg_logical_emit_message(true, TG_ARGV[2], json_build_array(TG_ARGV[0], NULL)::text); \
        RETURN NULL; \
      END IF; \
      IF TG_OP IN ('UPDATE', 'DELETE') THEN \
        PERFORM pg_logical_emit_message(true, TG_ARGV[2], json_build_array(TG_ARGV[0], to_jsonb(OLD) ->> TG_ARGV[1])::text); \
      END IF; \
      IF TG_OP IN ('INSERT', 'UPDATE') THEN \
        PERFORM pg_logical_emit_message(true, TG_ARGV[2], json_build_array(TG_ARGV[0], to_jsonb(NEW) ->> TG_ARGV[1])::text); \
      END IF; \
      RETURN NULL; \
    END $$";

async fn install_postgres(
    pool: &AnyPool,
    binding: &Binding,
    prefix: &str,
) -> Result<(), SourceError> {
    let mut tx = pool.begin().await?;
    // Sidecars starting together install one at a time.
    sqlx::query("SELECT pg_advisory_xact_lock(7421990412)")
        .execute(&mut *tx)
        .await?;
    sqlx::query(CHANGED).execute(&mut *tx).await?;
    let published = sqlx::query("SELECT 1 FROM pg_publication WHERE pubname = $1")
        .bind(crate::stream::PUBLICATION)
        .fetch_optional(&mut *tx)
        .await?;
    if published.is_none() {
        sqlx::query(&format!(
            "CREATE PUBLICATION {}",
            ident(crate::stream::PUBLICATION)
        ))
        .execute(&mut *tx)
        .await?;
    }
    for (n, (table, owner, entity_type)) in watched(binding).into_iter().enumerate() {
        let arguments = format!(
            "{}, {}, {}",
            literal(&entity_type),
            literal(&owner),
            literal(prefix)
        );
        let quoted = ident(&table);
        for (kind, when) in [
            (
                "row",
                "AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW",
            ),
            ("truncate", "AFTER TRUNCATE ON {table} FOR EACH STATEMENT"),
        ] {
            let name = ident(&format!("gatehouse_{n}_{kind}"));
            let when = when.replace("{table}", &quoted);
            for statement in [
                format!("DROP TRIGGER IF EXISTS {name} ON {quoted}"),
                format!(
                    "CREATE TRIGGER {name} {when} EXECUTE FUNCTION gatehouse_changed({arguments})"
                ),
            ] {
                sqlx::query(&statement).execute(&mut *tx).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The position of the database's last committed change (0 before any).
pub async fn position(pool: &AnyPool, backend: Backend) -> Result<i64, SourceError> {
    match backend {
        Backend::Sqlite => {
            let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM gatehouse_changes")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<i64, _>(0)?)
        }
        Backend::Postgres => crate::stream::current(pool).await,
    }
}

/// The changes after `after`, at most `limit`, in commit order.
pub async fn since(pool: &AnyPool, after: i64, limit: i64) -> Result<Since, SourceError> {
    let rows = sqlx::query(
        "SELECT seq, entity_type, entity_id FROM gatehouse_changes \
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let changes = rows
        .iter()
        .map(|row| {
            Ok(Change {
                seq: row.try_get(0)?,
                entity_type: row.try_get(1)?,
                id: row.try_get(2)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // The next row must be the one right after `after`, unless rows were pruned (`seq`
    // never skips a value otherwise: AUTOINCREMENT numbers every row, a rolled-back one
    // included, but a rolled-back row's number is reused, never left as a hole).
    if let Some(first) = changes.first()
        && first.seq > after + 1
        && after > 0
    {
        let oldest = sqlx::query("SELECT COALESCE(MIN(seq), 0) FROM gatehouse_changes")
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>(0)?;
        if oldest > after + 1 {
            return Ok(Since::Gap(changes.last().map_or(after, |c| c.seq)));
        }
    }
    Ok(Since::Changes(changes))
}

/// Deletes the change rows at or before `upto`, which every follower has applied.
pub async fn prune(pool: &AnyPool, upto: i64) -> Result<u64, SourceError> {
    Ok(sqlx::query("DELETE FROM gatehouse_changes WHERE seq <= $1")
        .bind(upto)
        .execute(pool)
        .await?
        .rows_affected())
}

/// A connection of its own that tells when another connection has committed (SQLite's
/// `PRAGMA data_version`, which moves then and only then). An in-memory database, whose
/// every connection is a database of its own, is always said to have changed.
#[derive(Debug)]
pub struct Wakeup {
    connection: Option<AnyConnection>,
    last: i64,
}

impl Wakeup {
    /// A connection to `url` watching for commits.
    pub async fn open(url: &str) -> Result<Self, SourceError> {
        if crate::db::is_memory(url) {
            return Ok(Self {
                connection: None,
                last: 0,
            });
        }
        let mut connection = AnyConnection::connect(&crate::db::sqlite_url(url)).await?;
        let last = data_version(&mut connection).await?;
        Ok(Self {
            connection: Some(connection),
            last,
        })
    }

    /// Whether another connection committed since the last call.
    pub async fn committed(&mut self) -> Result<bool, SourceError> {
        let Some(connection) = self.connection.as_mut() else {
            return Ok(true);
        };
        let now = data_version(connection).await?;
        let moved = now != self.last;
        self.last = now;
        Ok(moved)
    }
}

async fn data_version(connection: &mut AnyConnection) -> Result<i64, SourceError> {
    Ok(sqlx::query("PRAGMA data_version")
        .fetch_one(&mut *connection)
        .await?
        .try_get::<i64, _>(0)?)
}
