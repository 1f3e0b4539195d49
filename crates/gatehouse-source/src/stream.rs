//! PostgreSQL's changes, from its write-ahead log.
//!
//! The triggers [`changes::install`](crate::changes::install) puts on every table the
//! mapping reads emit, for each row written, a *transactional* logical decoding message
//! (`pg_logical_emit_message(true, …)`) naming the changed entity's type and id. Logical
//! decoding hands a transaction's messages over only once it commits, whole, in commit
//! order, followed by its commit's position: a change is seen exactly when its data is
//! visible to a new reader, never before, and a rolled-back write is never seen. The stream
//! is read through `pgoutput` (the built-in output plugin) on a replication connection
//! (`pgwire-replication`), from a **temporary** slot created on that connection: the slot
//! goes with the connection, so a sidecar that dies or loses its connection leaves no WAL
//! held behind it, and each replica has a slot of its own. The price: what committed while
//! no slot existed is not replayed, so a follower that reconnects starts again from an
//! empty cache at its new slot's consistent point (see ARCHITECTURE.md).
//!
//! A *non-transactional* message (`pg_logical_emit_message(false, …)`, [`sync`]) is handed
//! over as soon as it is decoded, after every transaction that committed before it: when
//! it arrives, everything up to its position has been applied. It is how a token taken
//! after a commit (`pg_current_wal_insert_lsn()`) is reached on an idle database, and how
//! the follower proves the stream alive.

use std::str::FromStr;

use pgwire_replication::{
    Lsn, PgWireError, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig,
};
use sqlx::AnyPool;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::SourceError;
use crate::changes::Change;

/// The publication the stream reads: it holds no table (every change comes as a message),
/// but `pgoutput` needs one.
pub const PUBLICATION: &str = "gatehouse_changes";

/// What the stream says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A transaction committed, its commit record ending at `at`, changing these entities
    /// (each with `seq` = `at`).
    Committed {
        /// The end of its commit record.
        at: i64,
        /// The entities it wrote.
        changes: Vec<Change>,
    },
    /// A transaction emptied a table of the mapping (`TRUNCATE`): any entity may have
    /// changed.
    Truncated {
        /// The end of its commit record.
        at: i64,
    },
    /// A sync mark: every transaction that committed before `at` has been delivered.
    Reached {
        /// The mark's position.
        at: i64,
        /// What it says ([`sync`]'s `mark`).
        mark: String,
    },
}

impl From<PgWireError> for SourceError {
    fn from(error: PgWireError) -> Self {
        Self::Database(format!("the change stream: {error}"))
    }
}

/// A position (an LSN) as a number.
fn position(lsn: Lsn) -> i64 {
    i64::try_from(lsn.as_u64()).unwrap_or(i64::MAX)
}

/// An LSN written as PostgreSQL writes it (`16/B374D848`), as a number.
pub fn parse_lsn(text: &str) -> Option<i64> {
    Lsn::parse(text).ok().map(position)
}

/// A position written as PostgreSQL writes an LSN.
pub fn show_lsn(position: i64) -> String {
    Lsn::from_u64(u64::try_from(position).unwrap_or(0)).to_pg_string()
}

/// The message prefix of the database's changes in `schema`: followers of another schema
/// of the same database skip them.
pub fn prefix(schema: &str) -> String {
    format!("gatehouse:{schema}")
}

/// A replication connection's settings for the database at `url` (host or socket, port,
/// user, password, database as sqlx reads them).
fn config(url: &str, slot: &str) -> Result<ReplicationConfig, SourceError> {
    let options =
        PgConnectOptions::from_str(url).map_err(|e| SourceError::Url(format!("`{url}`: {e}")))?;
    if matches!(
        options.get_ssl_mode(),
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
    ) {
        return Err(SourceError::Url(format!(
            "`{url}` asks for TLS, which this build's PostgreSQL connections do not speak"
        )));
    }
    let password = password(url).unwrap_or_default();
    let database = options
        .get_database()
        .unwrap_or(options.get_username())
        .to_string();
    let config = match options.get_socket() {
        Some(socket) => ReplicationConfig::unix(
            socket.display().to_string(),
            options.get_port(),
            options.get_username(),
            password,
            database,
            slot,
            PUBLICATION,
        ),
        None => ReplicationConfig::new(
            options.get_host(),
            options.get_username(),
            password,
            database,
            slot,
            PUBLICATION,
        )
        .with_port(options.get_port())
        .with_tls(TlsConfig::disabled()),
    };
    Ok(config
        .with_application_name("gatehouse")
        .with_status_interval(std::time::Duration::from_secs(1)))
}

/// The password of `url` (in its authority or its `password` parameter), else `PGPASSWORD`.
fn password(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if let Some(password) = parsed.password() {
        return percent_encoding::percent_decode_str(password)
            .decode_utf8()
            .ok()
            .map(|p| p.into_owned());
    }
    parsed
        .query_pairs()
        .find(|(key, _)| key == "password")
        .map(|(_, value)| value.into_owned())
        .or_else(|| std::env::var("PGPASSWORD").ok())
}

/// A temporary slot's name: unique to this process and connection.
fn slot_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::hash::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("gatehouse_{}_{:016x}", std::process::id(), hasher.finish())
}

/// The changes of one database schema, read from a temporary slot of a replication
/// connection.
pub struct Stream {
    client: ReplicationClient,
    slot: String,
    prefix: String,
    /// The changes of the transaction being delivered.
    pending: Vec<(String, String)>,
    truncated: bool,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("slot", &self.slot)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// Opens a replication connection to `url`, creates its temporary slot and starts
    /// reading the changes `prefix` names; the slot's consistent point: every commit after
    /// it is delivered, and what committed before is visible to any read that starts now.
    /// Creating the slot waits for the transactions open at that moment to end.
    pub async fn open(url: &str, prefix: &str) -> Result<(Self, i64), SourceError> {
        let slot = slot_name();
        let mut client = ReplicationClient::connect_gated(config(url, &slot)?).await?;
        let rows = client
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput"
            ))
            .await?;
        let consistent = rows
            .first()
            .and_then(|row| row.get(1))
            .and_then(Option::as_ref)
            .and_then(|text| std::str::from_utf8(text).ok())
            .and_then(parse_lsn)
            .ok_or_else(|| {
                SourceError::Database(format!(
                    "the change stream: `CREATE_REPLICATION_SLOT {slot}` gave no consistent point"
                ))
            })?;
        client.start().await?;
        client.wait_started().await?;
        Ok((
            Self {
                client,
                slot,
                prefix: prefix.to_string(),
                pending: Vec::new(),
                truncated: false,
            },
            consistent,
        ))
    }

    /// The name of its temporary slot (`pg_replication_slots.slot_name`).
    pub fn slot(&self) -> &str {
        &self.slot
    }

    /// The next event; an error when the connection is lost (the slot with it).
    pub async fn next(&mut self) -> Result<Event, SourceError> {
        loop {
            let Some(event) = self.client.recv().await? else {
                return Err(SourceError::Database("the change stream ended".to_string()));
            };
            match event {
                ReplicationEvent::Begin { .. } => {
                    self.pending.clear();
                    self.truncated = false;
                }
                ReplicationEvent::Message {
                    transactional,
                    lsn,
                    prefix,
                    content,
                } if prefix == self.prefix => {
                    if !transactional {
                        return Ok(Event::Reached {
                            at: position(lsn),
                            mark: String::from_utf8_lossy(&content).into_owned(),
                        });
                    }
                    match serde_json::from_slice::<(String, Option<String>)>(&content) {
                        Ok((entity_type, Some(id))) => self.pending.push((entity_type, id)),
                        Ok((_, None)) => self.truncated = true,
                        Err(error) => {
                            return Err(SourceError::Database(format!(
                                "the change stream: a change message that does not read ({error}): {}",
                                String::from_utf8_lossy(&content)
                            )));
                        }
                    }
                }
                ReplicationEvent::Commit { end_lsn, .. } => {
                    let at = position(end_lsn);
                    // The slot may drop what is before the commit: nothing of it is needed
                    // again (a reconnect starts a new slot).
                    self.client.update_applied_lsn(end_lsn);
                    let changes = std::mem::take(&mut self.pending);
                    if std::mem::take(&mut self.truncated) {
                        return Ok(Event::Truncated { at });
                    }
                    if changes.is_empty() {
                        continue;
                    }
                    return Ok(Event::Committed {
                        at,
                        changes: changes
                            .into_iter()
                            .map(|(entity_type, id)| Change {
                                seq: at,
                                entity_type,
                                id,
                            })
                            .collect(),
                    });
                }
                // Nothing is ever replayed from this slot: all of it may go.
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    self.client.update_applied_lsn(wal_end);
                }
                _ => {}
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.client.abort();
    }
}

/// Emits the sync mark `mark` on `pool` into the stream of `prefix`. Every commit before
/// it (a token taken after a commit included) is delivered before it, and it arrives as
/// [`Event::Reached`] at a position at or after every such token.
/// Returns the end of the WAL as the mark was written.
pub async fn sync(pool: &AnyPool, prefix: &str, mark: &str) -> Result<i64, SourceError> {
    let query = sqlx::query("SELECT pg_logical_emit_message(false, $1, $2)::text")
        .bind(prefix)
        .bind(mark);
    lsn_of(pool, query, "pg_logical_emit_message").await
}

/// The position of the database's last commit: `pg_current_wal_insert_lsn()`, which a
/// commit has passed once it returns, whatever `synchronous_commit` says
/// (`pg_current_wal_lsn()`, the position written, may lag behind it when commits are
/// asynchronous).
pub async fn current(pool: &AnyPool) -> Result<i64, SourceError> {
    let query = sqlx::query("SELECT pg_current_wal_insert_lsn()::text");
    lsn_of(pool, query, "pg_current_wal_insert_lsn()").await
}

/// The LSN `query` (one row, one text column) gives; `what` names it in an error.
async fn lsn_of<'q>(
    pool: &AnyPool,
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    what: &str,
) -> Result<i64, SourceError> {
    let text: String = query.fetch_one(pool).await?.try_get(0)?;
    parse_lsn(&text)
        .ok_or_else(|| SourceError::Database(format!("`{what}` gave `{text}`, not an LSN")))
}
