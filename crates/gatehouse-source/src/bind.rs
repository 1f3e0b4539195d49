//! A mapping checked against the Cedar schema: each mapped type's attributes with the types
//! the schema declares for them, or every problem found, each naming the attribute and the
//! `table.column` at fault.

use std::collections::BTreeMap;
use std::fmt;

use gatehouse_engine::policy::{ActionCatalog, AttrType};
use gatehouse_sql::{Column, Mapping, Parents, Table, Tags};

/// A mapping checked against a schema.
#[derive(Debug, Clone)]
pub struct Binding {
    types: BTreeMap<String, TypeBinding>,
}

/// One entity type's table, with the schema's types.
#[derive(Debug, Clone)]
pub struct TypeBinding {
    /// The entity type.
    pub entity_type: String,
    /// Its table.
    pub table: String,
    /// Its id column.
    pub id: String,
    /// Its mapped attributes, in name order.
    pub attributes: Vec<AttributeBinding>,
    /// Where its parents are.
    pub parents: Vec<Parents>,
    /// Where its tags are, with their type.
    pub tags: Option<(Tags, Scalar)>,
}

/// One mapped attribute.
#[derive(Debug, Clone)]
pub struct AttributeBinding {
    /// Its name.
    pub name: String,
    /// Where it lives.
    pub column: Column,
    /// Its value's type (a set's element type for a set).
    pub scalar: Scalar,
    /// Whether it is a set.
    pub set: bool,
    /// Whether the schema requires it.
    pub required: bool,
}

/// The type of a value a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    /// `String`: text.
    String,
    /// `Long`: an integer.
    Long,
    /// `Bool`: a boolean.
    Bool,
    /// An entity of this type: its id, as text.
    Entity(String),
    /// `datetime`: milliseconds since the Unix epoch, an integer.
    Datetime,
    /// Another extension type (`decimal`, `ipaddr`, `duration`): its literal, as text.
    Extension(String),
}

impl Scalar {
    /// The scalar of a declared type; `None` for sets and records.
    fn of(ty: &AttrType) -> Option<Self> {
        Some(match ty {
            AttrType::String => Self::String,
            AttrType::Long => Self::Long,
            AttrType::Bool => Self::Bool,
            AttrType::Entity(name) => Self::Entity(name.clone()),
            AttrType::Extension(name) if name == "datetime" => Self::Datetime,
            AttrType::Extension(name) => Self::Extension(name.clone()),
            AttrType::Set(_) | AttrType::Record(_) => return None,
        })
    }

    /// Whether its values are integers in the database (else text, or booleans).
    pub fn is_integer(&self) -> bool {
        matches!(self, Self::Long | Self::Datetime)
    }
}

/// A problem of a mapping: what is wrong, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingProblem {
    /// `Type` or `Type.attribute`.
    pub at: String,
    /// `table` or `table.column`, when a column is at fault.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MappingProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(f, "`{}` (`{column}`): {}", self.at, self.message),
            None => write!(f, "`{}`: {}", self.at, self.message),
        }
    }
}

impl Binding {
    /// `mapping` checked against the schema `catalog` was read from: every mapped type and
    /// attribute declared, every required attribute of a mapped type mapped, each column of
    /// the kind its attribute's type needs, every parent type one the schema allows, tags only
    /// where the schema declares them. A type the mapping leaves out is known by its id alone,
    /// which the schema allows only when it requires no attribute.
    pub fn new(mapping: &Mapping, catalog: &ActionCatalog) -> Result<Self, Vec<MappingProblem>> {
        let mut problems = Vec::new();
        let mut types = BTreeMap::new();
        let declared: BTreeMap<&str, _> = catalog.entity_types().collect();
        for (entity_type, table) in mapping.tables() {
            if !declared.contains_key(entity_type) {
                problems.push(problem(
                    entity_type,
                    Some(&table.name),
                    "the schema declares no such entity type".into(),
                ));
                continue;
            }
            if let Some(bound) = bind_type(catalog, entity_type, table, &mut problems) {
                types.insert(entity_type.to_string(), bound);
            }
        }
        for (entity_type, attrs) in &declared {
            if mapping.table_of(entity_type).is_some() {
                continue;
            }
            let required: Vec<&str> = attrs
                .iter()
                .filter(|(_, a)| a.required)
                .map(|(name, _)| name.as_str())
                .collect();
            if !required.is_empty() {
                problems.push(problem(
                    entity_type,
                    None,
                    format!(
                        "has no table, but the schema requires its attributes {}",
                        quoted(&required)
                    ),
                ));
            }
        }
        if problems.is_empty() {
            Ok(Self { types })
        } else {
            Err(problems)
        }
    }

    /// The table of `entity_type`, if it has one.
    pub fn of(&self, entity_type: &str) -> Option<&TypeBinding> {
        self.types.get(entity_type)
    }

    /// Every mapped type, in name order.
    pub fn types(&self) -> impl Iterator<Item = &TypeBinding> {
        self.types.values()
    }
}

/// One type's table checked against its declaration.
fn bind_type(
    catalog: &ActionCatalog,
    entity_type: &str,
    table: &Table,
    problems: &mut Vec<MappingProblem>,
) -> Option<TypeBinding> {
    let before = problems.len();
    let mut attributes = Vec::new();
    for (name, column) in &table.columns {
        let at = format!("{entity_type}.{name}");
        let where_ = column_at(table, column);
        let Some(declared) = catalog.entity_attr(entity_type, name) else {
            problems.push(problem(
                &at,
                Some(&where_),
                "the schema declares no such attribute".into(),
            ));
            continue;
        };
        match bind_attribute(column, &declared.ty) {
            Ok((scalar, set)) => attributes.push(AttributeBinding {
                name: name.clone(),
                column: column.clone(),
                scalar,
                set,
                required: declared.required,
            }),
            Err(message) => problems.push(problem(&at, Some(&where_), message)),
        }
    }
    let attrs = catalog
        .entity_types()
        .find(|(ty, _)| *ty == entity_type)
        .map(|(_, attrs)| attrs);
    for (name, attr) in attrs.into_iter().flatten() {
        if attr.required && !table.columns.contains_key(name) {
            problems.push(problem(
                &format!("{entity_type}.{name}"),
                Some(&table.name),
                "the schema requires it, but the mapping says nowhere where it lives".into(),
            ));
        }
    }
    let allowed = catalog.parent_types(entity_type);
    for parents in &table.parents {
        if !allowed.iter().any(|t| t == parents.entity_type()) {
            problems.push(problem(
                entity_type,
                Some(&parents_at(table, parents)),
                format!(
                    "parents of type `{}`, which the schema does not let it be in (it allows {})",
                    parents.entity_type(),
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        quoted(allowed)
                    }
                ),
            ));
        }
    }
    let tags = match (&table.tags, catalog.entity_tags(entity_type)) {
        (None, _) => None,
        (Some(tags), None) => {
            problems.push(problem(
                entity_type,
                Some(&tags.table),
                "tags, which the schema does not declare for it".into(),
            ));
            None
        }
        (Some(tags), Some(ty)) => match Scalar::of(ty) {
            Some(scalar) => Some((tags.clone(), scalar)),
            None => {
                problems.push(problem(
                    entity_type,
                    Some(&tags.table),
                    "tags of a set or record type, which a column cannot hold".into(),
                ));
                None
            }
        },
    };
    (problems.len() == before).then(|| TypeBinding {
        entity_type: entity_type.to_string(),
        table: table.name.clone(),
        id: table.id.clone(),
        attributes,
        parents: table.parents.clone(),
        tags,
    })
}

/// The scalar a column holds for an attribute of type `ty`, and whether it is a set; or why
/// the column cannot hold it.
fn bind_attribute(column: &Column, ty: &AttrType) -> Result<(Scalar, bool), String> {
    match (column, ty) {
        (_, AttrType::Record(_)) => {
            Err("a record, which a column cannot hold: map it as attributes of their own".into())
        }
        (Column::Set { .. }, AttrType::Set(element)) => match Scalar::of(element) {
            Some(scalar) => Ok((scalar, true)),
            None => Err("a set of sets or records, which a membership table cannot hold".into()),
        },
        (Column::Set { .. }, other) => Err(format!(
            "a membership table, but the schema declares {}",
            shown(other)
        )),
        (_, AttrType::Set(_)) => {
            Err("a set: map it as `{ table, owner, value }`, rows of a membership table".into())
        }
        (Column::Entity { entity_type, .. }, AttrType::Entity(declared)) => {
            if entity_type == declared {
                Ok((Scalar::Entity(declared.clone()), false))
            } else {
                Err(format!(
                    "mapped as an entity of type `{entity_type}`, but the schema declares `{declared}`"
                ))
            }
        }
        (Column::Entity { entity_type, .. }, other) => Err(format!(
            "mapped as an entity of type `{entity_type}`, but the schema declares {}",
            shown(other)
        )),
        (Column::Value(_), AttrType::Entity(declared)) => Err(format!(
            "an entity of type `{declared}`: map it as `{{ column, entity = \"{declared}\" }}`"
        )),
        (Column::Value(_), other) => Scalar::of(other)
            .map(|scalar| (scalar, false))
            .ok_or_else(|| format!("cannot be held by a column: {}", shown(other))),
    }
}

/// `table.column` of an attribute.
fn column_at(table: &Table, column: &Column) -> String {
    match column {
        Column::Value(c) | Column::Entity { column: c, .. } => format!("{}.{c}", table.name),
        Column::Set { table, value, .. } => format!("{table}.{value}"),
    }
}

/// `table.column` of a type's parents.
fn parents_at(table: &Table, parents: &Parents) -> String {
    match parents {
        Parents::Column { column, .. } => format!("{}.{column}", table.name),
        Parents::Table { table, parent, .. } => format!("{table}.{parent}"),
    }
}

fn problem(at: &str, column: Option<&str>, message: String) -> MappingProblem {
    MappingProblem {
        at: at.to_string(),
        column: column.map(str::to_string),
        message,
    }
}

fn quoted(names: &[impl AsRef<str>]) -> String {
    names
        .iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A declared type as the schema writes it.
fn shown(ty: &AttrType) -> String {
    match ty {
        AttrType::String => "`String`".into(),
        AttrType::Long => "`Long`".into(),
        AttrType::Bool => "`Bool`".into(),
        AttrType::Entity(name) => format!("the entity type `{name}`"),
        AttrType::Extension(name) => format!("`{name}`"),
        AttrType::Set(element) => format!("a set of {}", shown(element)),
        AttrType::Record(_) => "a record".into(),
    }
}
