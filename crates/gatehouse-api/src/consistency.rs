//! How fresh the entities a question is decided on must be, with an entity database.

use serde::{Deserialize, Serialize};

/// With an entity database (`--entities-db`): `{"at_least": TOKEN}` to be decided only once
/// the sidecar has applied the change `TOKEN` names (an answer's `entities_at`, or
/// `GET /v1/entities/position` after a write), or `"full"` to be decided on entities read
/// from the database, no cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Consistency {
    /// `"full"`.
    Mode(ConsistencyMode),
    /// At least this position.
    AtLeast {
        /// A token: an answer's `entities_at`, or a position of `GET /v1/entities/position`.
        at_least: String,
    },
}

/// A consistency given by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyMode {
    /// Read from the database, no cache.
    Full,
}
