//! Entities read from the database through a binding, as Cedar's JSON: one statement per
//! type, its rows by id (`WHERE id IN (…)`), each row with its sets, parents and tags from
//! their tables aggregated as JSON by correlated subqueries (SQLite's `json_group_array`,
//! PostgreSQL's `json_agg`). The statements of one call (one per type) go out together,
//! each on a connection of the pool: a level of a question costs one round trip of wall
//! time, however many types and tables it reads.

use std::collections::{BTreeMap, BTreeSet};

use sea_query::{Alias, Expr, Query, SelectStatement, SimpleExpr};
use sea_query_binder::SqlxBinder;
use serde_json::{Map, Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::SourceError;
use crate::bind::{AttributeBinding, Binding, Scalar, TypeBinding};
use crate::db::Backend;
use gatehouse_sql::{Column, Parents};

/// The entities of `wanted` (entity type, id) that the database holds, in Cedar's JSON, in
/// type and id order. An id of a type the mapping gives no table is not an entity here.
pub async fn load(
    pool: &AnyPool,
    backend: Backend,
    binding: &Binding,
    wanted: &BTreeSet<(String, String)>,
) -> Result<Vec<Value>, SourceError> {
    let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (ty, id) in wanted {
        by_type.entry(ty.as_str()).or_default().push(id.as_str());
    }
    let types = by_type
        .into_iter()
        .filter_map(|(ty, ids)| Some((binding.of(ty)?, ids)))
        .map(|(bound, ids)| async move { load_type(pool, backend, bound, &ids).await });
    let loaded = futures_util::future::try_join_all(types).await?;
    Ok(loaded.into_iter().flat_map(BTreeMap::into_values).collect())
}

/// Every id of `ty`'s table, in order.
pub async fn ids(
    pool: &AnyPool,
    backend: Backend,
    ty: &TypeBinding,
) -> Result<Vec<String>, SourceError> {
    let query = Query::select()
        .column(Alias::new(&ty.id))
        .from(Alias::new(&ty.table))
        .order_by(Alias::new(&ty.id), sea_query::Order::Asc)
        .to_owned();
    let rows = fetch(pool, backend, &query).await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(SourceError::from))
        .collect()
}

/// The entities of `ty` with these ids, by id.
async fn load_type(
    pool: &AnyPool,
    backend: Backend,
    ty: &TypeBinding,
    ids: &[&str],
) -> Result<BTreeMap<String, Value>, SourceError> {
    let table = Alias::new(&ty.table);
    let mut select = Query::select();
    select
        .column((table.clone(), Alias::new(&ty.id)))
        .from(table.clone())
        .and_where(Expr::col((table.clone(), Alias::new(&ty.id))).is_in(ids.iter().copied()));
    // The row's columns: each scalar attribute, then each parent column.
    let scalars: Vec<&AttributeBinding> = ty.attributes.iter().filter(|a| !a.set).collect();
    for attr in &scalars {
        if let Column::Value(c) | Column::Entity { column: c, .. } = &attr.column {
            select.expr(selected(
                backend,
                Expr::col((table.clone(), Alias::new(c))),
                &attr.scalar,
            ));
        }
    }
    let parent_columns: Vec<(&str, &str)> = ty
        .parents
        .iter()
        .filter_map(|p| match p {
            Parents::Column {
                column,
                entity_type,
            } => Some((column.as_str(), entity_type.as_str())),
            Parents::Table { .. } => None,
        })
        .collect();
    for (column, _) in &parent_columns {
        select.column((table.clone(), Alias::new(*column)));
    }
    // Each set, parent table and the tags: a column of the same statement, the owned rows
    // aggregated as JSON by a correlated subquery (one statement, one round trip, per type).
    let owner_of = |table: &str, owner: &str| {
        format!(
            "FROM {} WHERE {} = {}.{}",
            ident(table),
            ident(owner),
            ident(&ty.table),
            ident(&ty.id)
        )
    };
    let first_owned = scalars.len() + parent_columns.len() + 1;
    let mut sets: Vec<&AttributeBinding> = Vec::new();
    for attr in &ty.attributes {
        if let Column::Set {
            table,
            owner,
            value,
        } = &attr.column
        {
            let members = json_array(backend, value, &owner_of(table, owner));
            select.expr(Expr::cust(members));
            sets.push(attr);
        }
    }
    let mut parent_tables: Vec<&str> = Vec::new();
    for parents in &ty.parents {
        if let Parents::Table {
            table,
            owner,
            parent,
            entity_type,
        } = parents
        {
            select.expr(Expr::cust(json_array(
                backend,
                parent,
                &owner_of(table, owner),
            )));
            parent_tables.push(entity_type);
        }
    }
    if let Some((spec, _)) = &ty.tags {
        let from = owner_of(&spec.table, &spec.owner);
        select.expr(Expr::cust(json_object(
            backend,
            &spec.key,
            &spec.value,
            &from,
        )));
    }
    let mut entities: BTreeMap<String, (Map<String, Value>, Vec<Value>)> = BTreeMap::new();
    let mut tags: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for row in fetch(pool, backend, &select).await? {
        let id: String = row.try_get(0)?;
        let mut attrs = Map::new();
        for (i, attr) in scalars.iter().enumerate() {
            if let Some(value) = read(&row, i + 1, &attr.scalar)? {
                attrs.insert(attr.name.clone(), value);
            }
        }
        let mut parents = Vec::new();
        for (i, (_, parent_type)) in parent_columns.iter().enumerate() {
            if let Some(parent) = row.try_get::<Option<String>, _>(scalars.len() + 1 + i)? {
                parents.push(json!({"type": parent_type, "id": parent}));
            }
        }
        let mut column = first_owned;
        for attr in &sets {
            // A set present but empty has no rows: an entity of the type has it empty.
            let members = aggregated(&row, column)?
                .into_iter()
                .filter_map(|member| from_json(member, &attr.scalar))
                .collect();
            attrs.insert(attr.name.clone(), Value::Array(members));
            column += 1;
        }
        for entity_type in &parent_tables {
            for parent in aggregated(&row, column)? {
                if let Value::String(parent) = parent {
                    parents.push(json!({"type": entity_type, "id": parent}));
                }
            }
            column += 1;
        }
        if let Some((_, scalar)) = &ty.tags {
            let text: Option<String> = row.try_get(column)?;
            let object: Map<String, Value> = match text {
                Some(text) => serde_json::from_str(&text).map_err(aggregate_error)?,
                None => Map::new(),
            };
            let held = object
                .into_iter()
                .filter_map(|(key, value)| Some((key, from_json(value, scalar)?)))
                .collect();
            tags.insert(id.clone(), held);
        }
        entities.insert(id, (attrs, parents));
    }
    Ok(entities
        .into_iter()
        .map(|(id, (attrs, mut parents))| {
            // Sets and parents in one order, whatever the database's.
            let attrs = attrs
                .into_iter()
                .map(|(name, value)| (name, sorted(value)))
                .collect::<Map<String, Value>>();
            parents.sort_by_key(|p| p.to_string());
            let mut entity = Map::new();
            entity.insert("uid".into(), json!({"type": ty.entity_type, "id": id}));
            entity.insert("attrs".into(), Value::Object(attrs));
            entity.insert("parents".into(), Value::Array(parents));
            if ty.tags.is_some() {
                entity.insert(
                    "tags".into(),
                    Value::Object(tags.remove(&id).unwrap_or_default()),
                );
            }
            (id, Value::Object(entity))
        })
        .collect())
}

/// A set's members in one order.
fn sorted(value: Value) -> Value {
    match value {
        Value::Array(mut items) => {
            items.sort_by_key(|v| v.to_string());
            items.dedup();
            Value::Array(items)
        }
        other => other,
    }
}

/// An identifier, quoted as SQLite and PostgreSQL both read it.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `(SELECT <column's values as a JSON array> <from>)`: the owned rows of one entity, as text.
fn json_array(backend: Backend, column: &str, from: &str) -> String {
    match backend {
        Backend::Sqlite => format!("(SELECT json_group_array({}) {from})", ident(column)),
        Backend::Postgres => format!(
            "(SELECT COALESCE(json_agg({}), '[]'::json)::text {from})",
            ident(column)
        ),
    }
}

/// `(SELECT <key: value pairs as a JSON object> <from>)`: an entity's tags, as text.
fn json_object(backend: Backend, key: &str, value: &str, from: &str) -> String {
    let (key, value) = (ident(key), ident(value));
    match backend {
        Backend::Sqlite => format!("(SELECT json_group_object({key}, {value}) {from})"),
        Backend::Postgres => {
            format!("(SELECT COALESCE(json_object_agg({key}, {value}), '{{}}'::json)::text {from})")
        }
    }
}

/// Column `i` of `row`: a JSON array written by [`json_array`], its items.
fn aggregated(row: &AnyRow, i: usize) -> Result<Vec<Value>, SourceError> {
    match row.try_get::<Option<String>, _>(i)? {
        Some(text) => serde_json::from_str(&text).map_err(aggregate_error),
        None => Ok(Vec::new()),
    }
}

fn aggregate_error(error: serde_json::Error) -> SourceError {
    SourceError::Database(format!("an aggregate of owned rows is not JSON: {error}"))
}

/// A column's value as plain JSON (a string, a number, a boolean: as a row holds it, or as a
/// JSON aggregate wrote it), as Cedar's JSON of `scalar`; `None` for `NULL` (or what the
/// column cannot hold).
fn from_json(value: Value, scalar: &Scalar) -> Option<Value> {
    match (scalar, value) {
        (_, Value::Null) => None,
        (Scalar::String, Value::String(s)) => Some(Value::String(s)),
        (Scalar::Long, Value::Number(n)) => n.as_i64().map(Value::from),
        (Scalar::Bool, Value::Bool(b)) => Some(Value::Bool(b)),
        // SQLite's booleans are the integers they are.
        (Scalar::Bool, Value::Number(n)) => n.as_i64().map(|n| Value::Bool(n != 0)),
        (Scalar::Entity(ty), Value::String(id)) => {
            Some(json!({"__entity": {"type": ty, "id": id}}))
        }
        (Scalar::Datetime, Value::Number(n)) => n.as_i64().map(
            |ms| json!({"__extn": {"fn": "datetime", "arg": crate::time::rfc3339_millis(ms)}}),
        ),
        (Scalar::Extension(name), Value::String(arg)) => {
            Some(json!({"__extn": {"fn": name, "arg": arg}}))
        }
        _ => None,
    }
}

/// A column as it is selected: SQLite's booleans as the integers they are (sqlx's `Any`
/// driver reads no SQLite `BOOLEAN`).
fn selected(backend: Backend, column: Expr, scalar: &Scalar) -> SimpleExpr {
    match (backend, scalar) {
        (Backend::Sqlite, Scalar::Bool) => column.cast_as(Alias::new("INTEGER")),
        _ => column.into(),
    }
}

pub(crate) async fn fetch(
    pool: &AnyPool,
    backend: Backend,
    query: &SelectStatement,
) -> Result<Vec<AnyRow>, SourceError> {
    let (sql, values) = query.build_any_sqlx(backend.dialect());
    match sqlx::query_with(&sql, values.clone()).fetch_all(pool).await {
        // A pooled connection the server dropped (a restart): once more, on another.
        Err(sqlx::Error::Io(_)) => Ok(sqlx::query_with(&sql, values).fetch_all(pool).await?),
        done => Ok(done?),
    }
}

/// Column `i` of `row` as a Cedar JSON value of `scalar`; `None` for `NULL`.
fn read(row: &AnyRow, i: usize, scalar: &Scalar) -> Result<Option<Value>, SourceError> {
    // The column as the plain JSON value it holds, then as Cedar's JSON of `scalar`, as an
    // aggregate's items are read.
    let plain = match scalar {
        Scalar::String | Scalar::Entity(_) | Scalar::Extension(_) => {
            row.try_get::<Option<String>, _>(i)?.map(Value::String)
        }
        Scalar::Long | Scalar::Datetime => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
        Scalar::Bool => match row.try_get::<Option<bool>, _>(i) {
            Ok(value) => value.map(Value::Bool),
            // A SQLite column not declared boolean holds 0 and 1.
            Err(_) => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
        },
    };
    Ok(plain.and_then(|value| from_json(value, scalar)))
}
