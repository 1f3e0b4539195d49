//! gatehouse's entity source: a host's own database, read as Cedar entities through a
//! mapping file (`gatehouse_sql::Mapping`), SQLite or PostgreSQL.
//!
//! - [`bind`]: a mapping checked against the Cedar schema, every problem naming the attribute
//!   and the `table.column`.
//! - [`db`]: the database (one code path for both backends), the bundled domain's tables and
//!   mapping (`entities/`), and the check of a mapping against the live tables.
//! - [`read`]: entities by uid, a type's rows at once (`WHERE id IN (…)`).
//! - [`list`]: the ids where a plan's condition holds, a page at a time, as SQL.
//! - [`changes`]: what changed, in commit order (SQLite: a change log its triggers write in
//!   the writing transaction), for caches kept exact.
//! - [`stream`]: PostgreSQL's changes, emitted by its triggers into the write-ahead log and
//!   read back by logical decoding from a temporary slot.
//! - [`write`](mod@write): entities imported (each checked by Cedar against the schema first) and
//!   deleted, in one transaction.
//!
//! The engine knows nothing of databases: this crate stands beside it.

// Cedar's habits for code that serves: no unwrap, expect, panic or unchecked index outside
// tests; each exception says why it cannot fail (`#[expect(..., reason)]`).
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod bind;
pub mod changes;
pub mod db;
pub mod list;
pub mod read;
pub mod stream;
pub mod time;
pub mod write;

use std::collections::BTreeSet;

use cedar_policy::EntityUid;
use gatehouse_engine::policy::Snapshot;
use gatehouse_sql::Mapping;
use serde_json::Value;
use sqlx::{AnyPool, Row};

pub use bind::{Binding, MappingProblem};
pub use db::{BUNDLED_MAPPING, Backend};

/// Why the source could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The URL names no database this source reads.
    #[error("{0}")]
    Url(String),
    /// The mapping file cannot be read.
    #[error("the mapping: {0}")]
    Mapping(String),
    /// The mapping does not fit the schema or the database.
    #[error("the mapping does not fit: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Problems(Vec<MappingProblem>),
    /// Entities that cannot be written.
    #[error("{0}")]
    Entities(String),
    /// The database refused or failed.
    #[error("the database: {0}")]
    Database(String),
}

impl From<sqlx::Error> for SourceError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error.to_string())
    }
}

/// A database read and written as entities, through a mapping checked against a schema and
/// against the database's own tables.
#[derive(Debug, Clone)]
pub struct Source {
    url: String,
    pool: AnyPool,
    backend: Backend,
    binding: Binding,
    /// The mapping the binding was checked from: what lists are written as SQL through.
    mapping: std::sync::Arc<Mapping>,
    /// PostgreSQL: the prefix of its change messages (the schema's).
    prefix: String,
}

/// Where a source's mapping comes from.
#[derive(Debug, Clone)]
pub enum MappingFile {
    /// The bundled domain's (`entities/mapping.toml`), whose tables the source creates.
    Bundled,
    /// A host's own, for tables the host keeps.
    Text(String),
}

impl Source {
    /// Opens the database at `url` with `mapping`, checked against `snapshot`'s schema and
    /// against the database (tables and columns exist, with types that hold the attributes).
    /// With the bundled mapping, the bundled tables are created or brought up to date first.
    pub async fn open(
        url: &str,
        mapping: &MappingFile,
        snapshot: &Snapshot,
    ) -> Result<Self, SourceError> {
        let text = match mapping {
            MappingFile::Bundled => BUNDLED_MAPPING,
            MappingFile::Text(text) => text.as_str(),
        };
        let read = Mapping::from_toml(text).map_err(|e| SourceError::Mapping(e.0))?;
        let binding = Binding::new(&read, &snapshot.catalog).map_err(SourceError::Problems)?;
        let (pool, backend) = db::connect(url).await?;
        if matches!(mapping, MappingFile::Bundled) {
            db::migrate_bundled(&pool).await?;
        }
        let problems = db::check(&pool, backend, &binding).await?;
        if !problems.is_empty() {
            return Err(SourceError::Problems(problems));
        }
        let prefix = match backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => {
                let schema: String = sqlx::query("SELECT current_schema()::text")
                    .fetch_one(&pool)
                    .await?
                    .try_get(0)?;
                stream::prefix(&schema)
            }
        };
        changes::install(&pool, backend, &binding, &prefix).await?;
        Ok(Self {
            url: url.to_string(),
            pool,
            backend,
            binding,
            mapping: std::sync::Arc::new(read),
            prefix,
        })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for what the source does not say itself.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The checked mapping.
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// The mapping file as read.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// At most `limit` ids of `entity_type` after `after` where `condition` holds, in the
    /// database's order of ids, each with whether its row has a reference a path of `reads`
    /// follows that names no row ([`list::page`]).
    pub async fn list(
        &self,
        condition: &gatehouse_api::condition::Condition,
        entity_type: &str,
        after: Option<&str>,
        limit: u64,
        reads: &[Vec<String>],
    ) -> Result<Vec<(String, bool)>, list::ListError> {
        list::page(
            &self.pool,
            self.backend,
            &self.mapping,
            condition,
            entity_type,
            after,
            limit,
            reads,
        )
        .await
    }

    /// Which of `among` `condition` holds for ([`list::which`]).
    pub async fn which(
        &self,
        condition: &gatehouse_api::condition::Condition,
        entity_type: &str,
        among: &[String],
    ) -> Result<Vec<String>, list::ListError> {
        list::which(
            &self.pool,
            self.backend,
            &self.mapping,
            condition,
            entity_type,
            among,
        )
        .await
    }

    /// At most `limit` ids of `entity_type`'s table after `after`, in order
    /// ([`list::candidates`]).
    pub async fn candidates(
        &self,
        entity_type: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<String>, list::ListError> {
        list::candidates(
            &self.pool,
            self.backend,
            &self.mapping,
            entity_type,
            after,
            limit,
        )
        .await
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The position of the database's last committed change: a SQLite change's number, a
    /// PostgreSQL LSN (`pg_current_wal_insert_lsn()`).
    pub async fn position(&self) -> Result<i64, SourceError> {
        changes::position(&self.pool, self.backend).await
    }

    /// `position` as hosts see it: a number on SQLite, an LSN on PostgreSQL (`16/B374D848`,
    /// as `pg_current_wal_lsn()` gives it).
    pub fn show_position(&self, position: i64) -> String {
        match self.backend {
            Backend::Sqlite => position.to_string(),
            Backend::Postgres => stream::show_lsn(position),
        }
    }

    /// A position as hosts write it ([`Source::show_position`]); `None` if it is not one.
    pub fn parse_position(&self, text: &str) -> Option<i64> {
        match self.backend {
            Backend::Sqlite => text.parse().ok(),
            Backend::Postgres => stream::parse_lsn(text),
        }
    }

    /// SQLite: the changes after position `after`, at most `limit`, in commit order.
    pub async fn changes_since(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<changes::Since, SourceError> {
        changes::since(&self.pool, after, limit).await
    }

    /// SQLite: deletes the change log's rows at or before `upto`; how many.
    pub async fn prune_changes(&self, upto: i64) -> Result<u64, SourceError> {
        changes::prune(&self.pool, upto).await
    }

    /// PostgreSQL: a stream of the changes, from a temporary slot of its own, and the
    /// position it starts after.
    pub async fn stream(&self) -> Result<(stream::Stream, i64), SourceError> {
        stream::Stream::open(&self.url, &self.prefix).await
    }

    /// PostgreSQL: the sync mark `mark` in the change stream, after every commit so far;
    /// the end of the WAL as it was written.
    pub async fn sync(&self, mark: &str) -> Result<i64, SourceError> {
        stream::sync(&self.pool, &self.prefix, mark).await
    }

    /// The entities with these uids that the database holds, in Cedar's JSON.
    pub async fn load(&self, uids: &[EntityUid]) -> Result<Vec<Value>, SourceError> {
        let wanted: BTreeSet<(String, String)> = uids.iter().map(named).collect();
        read::load(&self.pool, self.backend, &self.binding, &wanted).await
    }

    /// The entities with these (type, id) that the database holds, in Cedar's JSON: a
    /// type's rows in one statement, then its sets, parents and tags one statement each.
    pub async fn load_named(
        &self,
        wanted: &BTreeSet<(String, String)>,
    ) -> Result<Vec<Value>, SourceError> {
        read::load(&self.pool, self.backend, &self.binding, wanted).await
    }

    /// Every entity the database holds, in Cedar's JSON, by type and id.
    pub async fn export_all(&self) -> Result<Vec<Value>, SourceError> {
        let mut wanted = BTreeSet::new();
        for ty in self.binding.types() {
            for id in read::ids(&self.pool, self.backend, ty).await? {
                wanted.insert((ty.entity_type.clone(), id));
            }
        }
        read::load(&self.pool, self.backend, &self.binding, &wanted).await
    }

    /// Writes `entities` (a JSON array of Cedar entities, checked against `snapshot`'s
    /// schema), replacing what the database held of each; how many were written.
    pub async fn import(
        &self,
        snapshot: &Snapshot,
        entities: &Value,
    ) -> Result<usize, SourceError> {
        write::upsert(
            &self.pool,
            self.backend,
            &self.binding,
            &snapshot.schema,
            entities,
        )
        .await
    }

    /// Deletes the entities with these uids; how many the database held.
    pub async fn delete(&self, uids: &[EntityUid]) -> Result<u64, SourceError> {
        let uids: Vec<(String, String)> = uids.iter().map(named).collect();
        write::delete(&self.pool, self.backend, &self.binding, &uids).await
    }
}

/// A uid as the database keys entities: (type, id).
fn named(uid: &EntityUid) -> (String, String) {
    (
        uid.type_name().to_string(),
        uid.id().unescaped().to_string(),
    )
}
