//! Schema stand-ins for shapes the sidecar reads by hand, for better error messages than
//! serde's: uids in either form and Cedar entities. They only describe (OpenAPI); nothing is
//! read into them. Behind the `openapi` feature.

use serde_json::Value;
use utoipa::ToSchema;

/// An entity uid: Cedar's `{"type": "User", "id": "vera"}`, or the string `User::"vera"`
/// (`User::vera` when the id is a plain word). An action may be its id alone: `"view"`.
#[derive(ToSchema)]
#[schema(as = Uid)]
#[serde(untagged)]
pub enum UidDoc {
    /// `User::"vera"`, or an action's id alone.
    Text(String),
    /// `{"type", "id"}`.
    Object(UidObjectDoc),
}

/// Cedar's uid object.
#[derive(ToSchema)]
#[schema(as = UidObject)]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct UidObjectDoc {
    /// The entity type, e.g. `User`.
    #[schema(rename = "type")]
    kind: String,
    /// The entity id.
    id: String,
}

/// A Cedar entity: `uid`, `attrs` (checked against the schema: `GET /v1/schema` gives a
/// JSON Schema per type) and `parents` (uids).
#[derive(ToSchema)]
#[schema(as = Entity)]
#[expect(dead_code, reason = "describes a shape read by hand")]
pub struct EntityDoc {
    /// The entity's uid.
    uid: UidDoc,
    /// Its attributes.
    #[schema(value_type = Option<BTreeMap<String, serde_json::Value>>)]
    attrs: Option<Value>,
    /// Its parents' uids.
    parents: Option<Vec<UidDoc>>,
}
