//! Where each entity type lives in a host's database: one description, read from a file by
//! the sidecar (to read entities) and by a host (to run a plan as SQL) alike.
//!
//! The file is TOML, a table per entity type:
//!
//! ```toml
//! [User]
//! table = "users"                 # the type's table
//! id = "id"                       # its column of entity ids
//! attributes.email = "email"      # a scalar attribute: its column
//! # The entity's parents: rows of a membership table, or a column of its own table.
//! parents = [{ table = "memberships", owner = "user_id", parent = "group_id", type = "Group" }]
//!
//! [Project]
//! table = "projects"
//! id = "id"
//! [Project.attributes]
//! owner = { column = "owner_id", entity = "User" }   # an entity: the column holds its id
//! phase = "phase"
//! # A set: rows of `table` pair the owner's id with one member.
//! # labels = { table = "project_labels", owner = "project_id", value = "label" }
//!
//! [Item]
//! table = "items"
//! id = "id"
//! attributes = { project = { column = "project_id", entity = "Project" }, phase = "phase" }
//! parents = [{ column = "project_id", type = "Project" }]
//! # Tags, when the type has them: rows of `table` pair the owner's id with a key and a value.
//! # tags = { table = "item_tags", owner = "item_id", key = "key", value = "value" }
//! ```
//!
//! A type's attributes take their Cedar types from the schema; what the file says is where
//! they live. An entity type without a table (a `Group` with no attributes and no parents of
//! its own) is known by its id alone.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Where one attribute lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Column {
    /// A scalar (String, Long, Bool; a `datetime` as milliseconds since the Unix epoch) in
    /// this column.
    Value(String),
    /// An entity reference: this column holds the referenced entity's id, of this type.
    Entity {
        /// The column.
        column: String,
        /// The referenced entity type.
        #[serde(rename = "entity")]
        entity_type: String,
    },
    /// A set: rows of `table` pair the owner's id (`owner`) with one member (`value`); a
    /// set of entities holds their ids (all of the set's one element type).
    Set {
        /// The membership table.
        table: String,
        /// Its column holding the owner's id.
        owner: String,
        /// Its column holding one member (an id for a set of entities).
        value: String,
    },
}

impl Column {
    /// A scalar column.
    pub fn value(column: impl Into<String>) -> Self {
        Self::Value(column.into())
    }

    /// A column holding the id of an entity of `entity_type`.
    pub fn entity(column: impl Into<String>, entity_type: impl Into<String>) -> Self {
        Self::Entity {
            column: column.into(),
            entity_type: entity_type.into(),
        }
    }

    /// A set in a membership table.
    pub fn set(
        table: impl Into<String>,
        owner: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Self::Set {
            table: table.into(),
            owner: owner.into(),
            value: value.into(),
        }
    }
}

/// Where an entity's parents of one type are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Parents {
    /// A column of the entity's own table holds the parent's id (none when `NULL`).
    Column {
        /// The column.
        column: String,
        /// The parents' type.
        #[serde(rename = "type")]
        entity_type: String,
    },
    /// Rows of `table` pair the entity's id (`owner`) with a parent's id (`parent`).
    Table {
        /// The membership table.
        table: String,
        /// Its column holding the entity's id.
        owner: String,
        /// Its column holding the parent's id.
        parent: String,
        /// The parents' type.
        #[serde(rename = "type")]
        entity_type: String,
    },
}

impl Parents {
    /// The parents' entity type.
    pub fn entity_type(&self) -> &str {
        match self {
            Self::Column { entity_type, .. } | Self::Table { entity_type, .. } => entity_type,
        }
    }
}

/// Where an entity's tags are: rows of `table` pair the entity's id (`owner`) with a tag's
/// `key` and `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tags {
    /// The table.
    pub table: String,
    /// Its column holding the entity's id.
    pub owner: String,
    /// Its column holding the tag's key.
    pub key: String,
    /// Its column holding the tag's value.
    pub value: String,
}

/// One entity type's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The table's name.
    #[serde(rename = "table")]
    pub name: String,
    /// The column holding the entity's id.
    pub id: String,
    /// Where each attribute lives.
    #[serde(
        rename = "attributes",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub columns: BTreeMap<String, Column>,
    /// Where its parents are, by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<Parents>,
    /// Where its tags are, when it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
}

impl Table {
    /// Table `name` whose ids are in column `id`.
    pub fn new(name: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            id: id.into(),
            columns: BTreeMap::new(),
            parents: Vec::new(),
            tags: None,
        }
    }

    /// Declares where attribute `attribute` lives.
    pub fn column(mut self, attribute: impl Into<String>, column: Column) -> Self {
        self.columns.insert(attribute.into(), column);
        self
    }

    /// Declares where parents of one type are.
    pub fn parents(mut self, parents: Parents) -> Self {
        self.parents.push(parents);
        self
    }

    /// Declares where the tags are.
    pub fn tags(mut self, tags: Tags) -> Self {
        self.tags = Some(tags);
        self
    }
}

/// Entity types to tables: the mapping file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Mapping {
    tables: BTreeMap<String, Table>,
}

/// A mapping file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MappingError(pub String);

impl Mapping {
    /// An empty mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a mapping file (TOML, see the module's documentation); the error names the
    /// line, the column and the key at fault.
    pub fn from_toml(text: &str) -> Result<Self, MappingError> {
        toml::from_str(text).map_err(|e| MappingError(e.to_string().trim_end().to_string()))
    }

    /// Declares the table of `entity_type`.
    pub fn table(mut self, entity_type: impl Into<String>, table: Table) -> Self {
        self.tables.insert(entity_type.into(), table);
        self
    }

    /// The table of `entity_type`, if it has one.
    pub fn table_of(&self, entity_type: &str) -> Option<&Table> {
        self.tables.get(entity_type)
    }

    /// Every entity type with its table, in name order.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &Table)> {
        self.tables.iter().map(|(ty, table)| (ty.as_str(), table))
    }
}

/// The keys an attribute's table may hold; which ones it holds decides its kind.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnKeys {
    column: Option<String>,
    entity: Option<String>,
    table: Option<String>,
    owner: Option<String>,
    value: Option<String>,
}

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ColumnVisitor)
    }
}

struct ColumnVisitor;

impl<'de> Visitor<'de> for ColumnVisitor {
    type Value = Column;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a column name, `{ column, entity }` (an entity's id) or `{ table, owner, value }` (a set)",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Column, E> {
        Ok(Column::Value(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Column, A::Error> {
        let keys = ColumnKeys::deserialize(de::value::MapAccessDeserializer::new(map))?;
        match keys {
            ColumnKeys {
                column: Some(column),
                entity,
                table: None,
                owner: None,
                value: None,
            } => Ok(match entity {
                Some(entity_type) => Column::Entity {
                    column,
                    entity_type,
                },
                None => Column::Value(column),
            }),
            ColumnKeys {
                column: None,
                entity: None,
                table: Some(table),
                owner: Some(owner),
                value: Some(value),
            } => Ok(Column::Set {
                table,
                owner,
                value,
            }),
            _ => Err(de::Error::invalid_value(
                de::Unexpected::Map,
                &"`{ column }`, `{ column, entity }` or `{ table, owner, value }`",
            )),
        }
    }
}

/// The keys a parents' table may hold.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParentKeys {
    #[serde(rename = "type")]
    entity_type: String,
    column: Option<String>,
    table: Option<String>,
    owner: Option<String>,
    parent: Option<String>,
}

impl<'de> Deserialize<'de> for Parents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match ParentKeys::deserialize(deserializer)? {
            ParentKeys {
                entity_type,
                column: Some(column),
                table: None,
                owner: None,
                parent: None,
            } => Ok(Self::Column {
                column,
                entity_type,
            }),
            ParentKeys {
                entity_type,
                column: None,
                table: Some(table),
                owner: Some(owner),
                parent: Some(parent),
            } => Ok(Self::Table {
                table,
                owner,
                parent,
                entity_type,
            }),
            _ => Err(de::Error::custom(
                "parents are `{ column, type }` or `{ table, owner, parent, type }`",
            )),
        }
    }
}
