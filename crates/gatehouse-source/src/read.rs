//! Entities read from the database through a binding, as Cedar's JSON: a type's rows by id
//! (`WHERE id IN (…)`), and its sets, parents and tags by owner, one statement each. The
//! statements of one call go out together, each on a connection of the pool: a level of a
//! question costs one round trip of wall time, however many types and tables it reads.

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
    // The statements by owner ask for every id wanted: rows of an id the type's table
    // lacks belong to no entity and are dropped below.
    let sets: Vec<(&AttributeBinding, &str, &str, &str)> = ty
        .attributes
        .iter()
        .filter(|a| a.set)
        .filter_map(|attr| match &attr.column {
            Column::Set {
                table,
                owner,
                value,
            } => Some((attr, table.as_str(), owner.as_str(), value.as_str())),
            _ => None,
        })
        .collect();
    let parent_tables: Vec<(&str, &str, &str, &str)> = ty
        .parents
        .iter()
        .filter_map(|p| match p {
            Parents::Table {
                table,
                owner,
                parent,
                entity_type,
            } => Some((
                table.as_str(),
                owner.as_str(),
                parent.as_str(),
                entity_type.as_str(),
            )),
            Parents::Column { .. } => None,
        })
        .collect();
    let id_scalar = Scalar::String;
    let mut owned: Vec<SelectStatement> = Vec::new();
    for (attr, table, owner, value) in &sets {
        owned.push(by_owner(
            backend,
            table,
            owner,
            &[(value, &attr.scalar)],
            ids,
        ));
    }
    for (table, owner, parent, _) in &parent_tables {
        owned.push(by_owner(
            backend,
            table,
            owner,
            &[(parent, &id_scalar)],
            ids,
        ));
    }
    if let Some((spec, scalar)) = &ty.tags {
        let columns = [
            (spec.key.as_str(), &id_scalar),
            (spec.value.as_str(), scalar),
        ];
        owned.push(by_owner(backend, &spec.table, &spec.owner, &columns, ids));
    }
    let (rows, mut owned_rows) = futures_util::future::try_join(
        fetch(pool, backend, &select),
        futures_util::future::try_join_all(owned.iter().map(|query| fetch(pool, backend, query))),
    )
    .await?;
    let mut entities: BTreeMap<String, (Map<String, Value>, Vec<Value>)> = BTreeMap::new();
    for row in rows {
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
        entities.insert(id, (attrs, parents));
    }
    // The owned rows, in the order their statements were made.
    let mut owned_rows = owned_rows.drain(..);
    for (attr, ..) in &sets {
        // A set present but empty has no rows: an entity of the type has it empty.
        for (attrs, _) in entities.values_mut() {
            attrs.insert(attr.name.clone(), Value::Array(Vec::new()));
        }
        for row in owned_rows.next().unwrap_or_default() {
            let owner: String = row.try_get(0)?;
            let Some(member) = read(&row, 1, &attr.scalar)? else {
                continue;
            };
            if let Some((attrs, _)) = entities.get_mut(&owner)
                && let Some(Value::Array(members)) = attrs.get_mut(&attr.name)
            {
                members.push(member);
            }
        }
    }
    for (.., entity_type) in &parent_tables {
        for row in owned_rows.next().unwrap_or_default() {
            let owner: String = row.try_get(0)?;
            let parent: String = row.try_get(1)?;
            if let Some((_, parents)) = entities.get_mut(&owner) {
                parents.push(json!({"type": entity_type, "id": parent}));
            }
        }
    }
    let mut tags: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    if let Some((_, scalar)) = &ty.tags {
        for row in owned_rows.next().unwrap_or_default() {
            let owner: String = row.try_get(0)?;
            let key: String = row.try_get(1)?;
            if entities.contains_key(&owner)
                && let Some(value) = read(&row, 2, scalar)?
            {
                tags.entry(owner).or_default().insert(key, value);
            }
        }
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

/// `SELECT owner, columns… FROM table WHERE owner IN (ids)`, each column holding a scalar.
fn by_owner(
    backend: Backend,
    table: &str,
    owner: &str,
    columns: &[(&str, &Scalar)],
    ids: &[&str],
) -> SelectStatement {
    let mut query = Query::select();
    query.column(Alias::new(owner));
    for (column, scalar) in columns {
        query.expr(selected(backend, Expr::col(Alias::new(*column)), scalar));
    }
    query
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new(owner)).is_in(ids.iter().copied()))
        .to_owned()
}

/// A column as it is selected: SQLite's booleans as the integers they are (sqlx's `Any`
/// driver reads no SQLite `BOOLEAN`).
fn selected(backend: Backend, column: Expr, scalar: &Scalar) -> SimpleExpr {
    match (backend, scalar) {
        (Backend::Sqlite, Scalar::Bool) => column.cast_as(Alias::new("INTEGER")),
        _ => column.into(),
    }
}

async fn fetch(
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
    Ok(match scalar {
        Scalar::String => row.try_get::<Option<String>, _>(i)?.map(Value::String),
        Scalar::Long => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
        Scalar::Bool => match row.try_get::<Option<bool>, _>(i) {
            Ok(value) => value.map(Value::Bool),
            // A SQLite column not declared boolean holds 0 and 1.
            Err(_) => row
                .try_get::<Option<i64>, _>(i)?
                .map(|n| Value::Bool(n != 0)),
        },
        Scalar::Entity(ty) => row
            .try_get::<Option<String>, _>(i)?
            .map(|id| json!({"__entity": {"type": ty, "id": id}})),
        Scalar::Datetime => row.try_get::<Option<i64>, _>(i)?.map(
            |ms| json!({"__extn": {"fn": "datetime", "arg": crate::time::rfc3339_millis(ms)}}),
        ),
        Scalar::Extension(name) => row
            .try_get::<Option<String>, _>(i)?
            .map(|arg| json!({"__extn": {"fn": name, "arg": arg}})),
    })
}
