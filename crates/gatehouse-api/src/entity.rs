//! A Cedar entity as it travels in a question's `entities`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Uid;

/// A Cedar entity: `uid`, `attrs` (checked against the schema: `GET /v1/schema` gives a
/// JSON Schema per type) and `parents` (uids).
//
// The sidecar reads entity lists as text (each entity parsed once, against the schema, and
// cached by its bytes), not through this type; a host may build and send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entity {
    /// The entity's uid.
    pub uid: Uid,
    /// Its attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, serde_json::Value>>))]
    pub attrs: Option<Map<String, Value>>,
    /// Its parents' uids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parents: Option<Vec<Uid>>,
}
