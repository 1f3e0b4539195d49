//! Entities written to the database through a binding: each one checked by Cedar against the
//! schema first, then its row upserted and its sets, parents and tags replaced, all in one
//! transaction.

use std::collections::BTreeMap;

use cedar_policy::{Entities, Schema};
use sea_query::{Alias, Expr, InsertStatement, OnConflict, Query, SimpleExpr};
use sea_query_binder::SqlxBinder;
use serde_json::{Map, Value};
use sqlx::{Any, AnyPool, Transaction};

use crate::SourceError;
use crate::bind::{Binding, Scalar, TypeBinding};
use crate::db::Backend;
use gatehouse_sql::{Column, Parents};

/// One entity as its rows: its id, its row's values by column, each set's members, its
/// parents by type, its tags.
struct Rows<'b> {
    ty: &'b TypeBinding,
    id: String,
    columns: BTreeMap<String, SimpleExpr>,
    sets: Vec<(&'b Column, Vec<SimpleExpr>)>,
    parents: Vec<(&'b Parents, Vec<String>)>,
    tags: Vec<(String, SimpleExpr)>,
}

/// Writes `entities` (Cedar's JSON, checked against `schema` by Cedar: a wrong one is
/// refused naming it, and nothing is written), replacing what the database held of each.
/// An entity of a type the mapping gives no table, with no attributes, parents or tags, is
/// known by its id alone: there is nothing to write. Returns how many were written.
pub async fn upsert(
    pool: &AnyPool,
    backend: Backend,
    binding: &Binding,
    schema: &Schema,
    entities: &Value,
) -> Result<usize, SourceError> {
    let parsed = Entities::from_json_value(entities.clone(), Some(schema))
        .map_err(|e| SourceError::Entities(gatehouse_engine::cedar_json::innermost(&e)))?;
    // The schema's actions, which Cedar adds to what it reads, are not the database's.
    let actions: std::collections::HashSet<_> = schema.actions().collect();
    let mut all = Vec::new();
    for entity in parsed.iter().filter(|e| !actions.contains(&e.uid())) {
        // Cedar's own JSON of the entity: references and extension values in one form.
        let json = entity
            .to_json_value()
            .map_err(|e| SourceError::Entities(e.to_string()))?;
        all.extend(rows_of(binding, &json)?);
    }
    let mut tx = pool.begin().await?;
    for rows in &all {
        write(&mut tx, backend, rows).await?;
    }
    tx.commit().await?;
    Ok(all.len())
}

/// Deletes the entities `uids` (entity type, id): their rows, and their sets', parents' and
/// tags' rows. Returns how many rows of entities were deleted.
pub async fn delete(
    pool: &AnyPool,
    backend: Backend,
    binding: &Binding,
    uids: &[(String, String)],
) -> Result<u64, SourceError> {
    let mut tx = pool.begin().await?;
    let mut deleted = 0;
    for (ty, id) in uids {
        let Some(bound) = binding.of(ty) else {
            return Err(SourceError::Entities(format!(
                "`{ty}::{id:?}`: the mapping gives `{ty}` no table"
            )));
        };
        clear_owned(&mut tx, backend, bound, id).await?;
        let statement = Query::delete()
            .from_table(Alias::new(&bound.table))
            .and_where(Expr::col(Alias::new(&bound.id)).eq(id.as_str()))
            .to_owned();
        let (sql, values) = statement.build_any_sqlx(backend.dialect());
        deleted += sqlx::query_with(&sql, values)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(deleted)
}

/// The rows of one entity in Cedar's canonical JSON; `None` for one known by its id alone.
fn rows_of<'b>(binding: &'b Binding, json: &Value) -> Result<Option<Rows<'b>>, SourceError> {
    let ty_name = json
        .pointer("/uid/type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let id = json
        .pointer("/uid/id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let uid = format!("{ty_name}::{id:?}");
    let Some(ty) = binding.of(ty_name) else {
        let empty = |key: &str| {
            json.get(key).is_none_or(|v| {
                v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty)
            })
        };
        if empty("attrs") && empty("parents") && empty("tags") {
            return Ok(None);
        }
        return Err(SourceError::Entities(format!(
            "`{uid}`: the mapping gives `{ty_name}` no table, so its attributes, parents and tags cannot be stored"
        )));
    };
    let mut rows = Rows {
        ty,
        id,
        columns: BTreeMap::new(),
        sets: Vec::new(),
        parents: Vec::new(),
        tags: Vec::new(),
    };
    let attrs = json.get("attrs").and_then(Value::as_object);
    for attr in &ty.attributes {
        let value = attrs.and_then(|a| a.get(&attr.name));
        match &attr.column {
            Column::Value(column) | Column::Entity { column, .. } => {
                let expr = match value {
                    Some(value) => sql_value(&uid, &attr.name, &attr.scalar, value)?,
                    None => SimpleExpr::Keyword(sea_query::Keyword::Null),
                };
                rows.columns.insert(column.clone(), expr);
            }
            Column::Set { .. } => {
                let members = match value {
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|item| sql_value(&uid, &attr.name, &attr.scalar, item))
                        .collect::<Result<_, _>>()?,
                    _ => Vec::new(),
                };
                rows.sets.push((&attr.column, members));
            }
        }
    }
    if let Some(extra) = attrs.and_then(|a| {
        a.keys()
            .find(|name| !ty.attributes.iter().any(|b| &b.name == *name))
    }) {
        return Err(SourceError::Entities(format!(
            "`{uid}`: attribute `{extra}` has no column in the mapping"
        )));
    }
    let mut parents: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for parent in json
        .get("parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let parent_type = parent
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(spec) = ty.parents.iter().find(|p| p.entity_type() == parent_type) else {
            return Err(SourceError::Entities(format!(
                "`{uid}`: parents of type `{parent_type}` have no place in the mapping"
            )));
        };
        parents.entry(spec.entity_type()).or_default().push(
            parent
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        );
    }
    for spec in &ty.parents {
        let ids = parents.remove(spec.entity_type()).unwrap_or_default();
        if let Parents::Column { column, .. } = spec {
            if ids.len() > 1 {
                return Err(SourceError::Entities(format!(
                    "`{uid}`: {} parents of type `{}`, but column `{}.{column}` holds one",
                    ids.len(),
                    spec.entity_type(),
                    ty.table
                )));
            }
            let expr = ids
                .first()
                .map_or(SimpleExpr::Keyword(sea_query::Keyword::Null), |id| {
                    SimpleExpr::from(id.as_str())
                });
            // A column may hold both an attribute and the parent it names (an item's
            // project): they must agree.
            match rows.columns.get(column) {
                Some(held) if *held != expr => {
                    return Err(SourceError::Entities(format!(
                        "`{uid}`: column `{}.{column}` holds an attribute and a parent of type `{}`, which differ",
                        ty.table,
                        spec.entity_type()
                    )));
                }
                _ => {
                    rows.columns.insert(column.clone(), expr);
                }
            }
        }
        rows.parents.push((spec, ids));
    }
    if let Some(tags) = json.get("tags").and_then(Value::as_object) {
        let Some((_, scalar)) = &ty.tags else {
            if tags.is_empty() {
                return Ok(Some(rows));
            }
            return Err(SourceError::Entities(format!(
                "`{uid}`: tags have no place in the mapping"
            )));
        };
        for (key, value) in tags {
            rows.tags.push((
                key.clone(),
                sql_value(&uid, &format!("tag `{key}`"), scalar, value)?,
            ));
        }
    }
    Ok(Some(rows))
}

/// A Cedar JSON value of `scalar` as a SQL value.
fn sql_value(
    uid: &str,
    attr: &str,
    scalar: &Scalar,
    value: &Value,
) -> Result<SimpleExpr, SourceError> {
    let wrong = || {
        SourceError::Entities(format!(
            "`{uid}`: `{attr}` is `{value}`, which its column cannot hold"
        ))
    };
    Ok(match scalar {
        Scalar::String => SimpleExpr::from(value.as_str().ok_or_else(wrong)?),
        Scalar::Long => SimpleExpr::from(value.as_i64().ok_or_else(wrong)?),
        Scalar::Bool => SimpleExpr::from(value.as_bool().ok_or_else(wrong)?),
        Scalar::Entity(_) => {
            let id = value
                .get("__entity")
                .and_then(|e| e.get("id"))
                .and_then(Value::as_str)
                .ok_or_else(wrong)?;
            SimpleExpr::from(id)
        }
        Scalar::Datetime => {
            let arg = value
                .get("__extn")
                .and_then(|e| e.get("arg"))
                .and_then(Value::as_str)
                .ok_or_else(wrong)?;
            SimpleExpr::from(crate::time::datetime_millis(arg).ok_or_else(wrong)?)
        }
        Scalar::Extension(_) => {
            let arg = value
                .get("__extn")
                .and_then(|e| e.get("arg"))
                .and_then(Value::as_str)
                .ok_or_else(wrong)?;
            SimpleExpr::from(arg)
        }
    })
}

/// Upserts one entity's row and replaces its owned rows.
async fn write(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    rows: &Rows<'_>,
) -> Result<(), SourceError> {
    let ty = rows.ty;
    let mut insert = Query::insert();
    insert.into_table(Alias::new(&ty.table));
    let mut columns = vec![Alias::new(&ty.id)];
    let mut values = vec![SimpleExpr::from(rows.id.as_str())];
    for (column, value) in &rows.columns {
        columns.push(Alias::new(column));
        values.push(value.clone());
    }
    insert.columns(columns.clone());
    insert
        .values(values)
        .map_err(|e| SourceError::Database(e.to_string()))?;
    let updated: Vec<Alias> = columns.into_iter().skip(1).collect();
    let conflict = if updated.is_empty() {
        OnConflict::column(Alias::new(&ty.id))
            .do_nothing()
            .to_owned()
    } else {
        OnConflict::column(Alias::new(&ty.id))
            .update_columns(updated)
            .to_owned()
    };
    insert.on_conflict(conflict);
    execute_insert(tx, backend, &insert).await?;
    clear_owned(tx, backend, ty, &rows.id).await?;
    for (column, members) in &rows.sets {
        let Column::Set {
            table,
            owner,
            value,
        } = column
        else {
            continue;
        };
        for member in members {
            let insert = pair(table, owner, value, &rows.id, member.clone());
            execute_insert(tx, backend, &insert).await?;
        }
    }
    for (spec, ids) in &rows.parents {
        let Parents::Table {
            table,
            owner,
            parent,
            ..
        } = spec
        else {
            continue;
        };
        for id in ids {
            let insert = pair(
                table,
                owner,
                parent,
                &rows.id,
                SimpleExpr::from(id.as_str()),
            );
            execute_insert(tx, backend, &insert).await?;
        }
    }
    if let Some((tags, _)) = &ty.tags {
        for (key, value) in &rows.tags {
            let mut insert = Query::insert();
            insert
                .into_table(Alias::new(&tags.table))
                .columns([
                    Alias::new(&tags.owner),
                    Alias::new(&tags.key),
                    Alias::new(&tags.value),
                ])
                .values([
                    SimpleExpr::from(rows.id.as_str()),
                    SimpleExpr::from(key.as_str()),
                    value.clone(),
                ])
                .map_err(|e| SourceError::Database(e.to_string()))?;
            execute_insert(tx, backend, &insert).await?;
        }
    }
    Ok(())
}

/// `INSERT INTO table (owner, column) VALUES (id, value)`, once.
fn pair(table: &str, owner: &str, column: &str, id: &str, value: SimpleExpr) -> InsertStatement {
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new(table))
        .columns([Alias::new(owner), Alias::new(column)])
        .on_conflict(OnConflict::new().do_nothing().to_owned());
    // Two columns, two values: cannot mismatch.
    let _ = insert.values([SimpleExpr::from(id), value]);
    insert
}

/// Deletes the rows an entity owns: its sets' members, its parents in membership tables,
/// its tags.
async fn clear_owned(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    ty: &TypeBinding,
    id: &str,
) -> Result<(), SourceError> {
    let mut owned: Vec<(&str, &str)> = Vec::new();
    for attr in &ty.attributes {
        if let Column::Set { table, owner, .. } = &attr.column {
            owned.push((table, owner));
        }
    }
    for spec in &ty.parents {
        if let Parents::Table { table, owner, .. } = spec {
            owned.push((table, owner));
        }
    }
    if let Some((tags, _)) = &ty.tags {
        owned.push((&tags.table, &tags.owner));
    }
    for (table, owner) in owned {
        let statement = Query::delete()
            .from_table(Alias::new(table))
            .and_where(Expr::col(Alias::new(owner)).eq(id))
            .to_owned();
        let (sql, values) = statement.build_any_sqlx(backend.dialect());
        sqlx::query_with(&sql, values).execute(&mut **tx).await?;
    }
    Ok(())
}

async fn execute_insert(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    insert: &InsertStatement,
) -> Result<(), SourceError> {
    let (sql, values) = insert.build_any_sqlx(backend.dialect());
    sqlx::query_with(&sql, values).execute(&mut **tx).await?;
    Ok(())
}
