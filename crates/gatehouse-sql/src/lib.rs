//! A plan's condition as a parameterised SQL `WHERE` condition, on `gatehouse-api` alone, built with
//! `sea-query`, so one translation speaks SQLite, PostgreSQL and MySQL.
//!
//! A [`Mapping`] declares where each entity type's attributes live: its table and id column,
//! a column per scalar attribute, a column holding the referenced id per entity-typed
//! attribute (followed into the referenced type's table when a path goes further), and a
//! membership table per set attribute. The translation of each operator:
//!
//! | condition | SQL |
//! |---|---|
//! | `eq`, `ne`, `lt`, `le`, `gt`, `ge` with a value | `col = ?` … (an entity uid compares its id; one of another type never matches) |
//! | the same with `other` | both sides as columns or scalar subqueries |
//! | `in_set` | `col IN (?, …)`; in [`Mapping::select_ids`], `col IN (SELECT v FROM set_N)`, each distinct list bound once in a `WITH` clause |
//! | a `datetime` value | milliseconds since the Unix epoch (a `BIGINT` column) |
//! | `has` | `col IS NOT NULL` |
//! | `contains` | `id IN (SELECT owner FROM membership WHERE value = ?)` |
//! | a path `["organization", "admins"]` | `organization_id IN (SELECT id FROM organizations WHERE admins = …)` |
//! | `in` (an ancestor) | `id = ?` for one of the ancestor's type; through a membership table `id IN (SELECT owner FROM memberships WHERE parent = ?)`, through a parent column `column = ?`, each hop nested as the mapping's parent types lead to the ancestor's |
//! | the path `[]` | the id column (an entity uid of another type equals no row) |
//! | `and`, `or`, `not`, `true`, `false` | `AND`, `OR`, `NOT`, `1 = 1`, `1 = 0` |
//!
//! SQL's three-valued logic must not change an answer. Negations are pushed down to the
//! leaves (De Morgan), and a negated leaf is written `NOT COALESCE(leaf, FALSE)`: a NULL
//! column (an absent optional attribute) makes the leaf false and its negation true, exactly
//! as the condition language says. A leaf under no negation is left bare, so that the
//! database can use its indexes: over `AND` and `OR` alone, a NULL leaf and a false one make
//! a row's condition true in exactly the same cases (a true `AND` needs every part true, a
//! true `OR` one true part, and NULL is not true). Rows a column references must exist
//! (foreign keys), as entities a decision reads must.

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

use std::cell::RefCell;

use sea_query::{
    Alias, CommonTableExpression, Expr, Func, Order, Query, SelectStatement, SimpleExpr,
    SubQueryStatement, UnionType, Value, WithClause,
};

use gatehouse_api::condition::{Comparison, Condition, Literal, Operand};

mod mapping;

pub use mapping::{Column, Mapping, MappingError, Parents, Table, Tags};

/// Why a condition has no SQL under a mapping; the host then decides resource by resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// No table is declared for an entity type the condition reads.
    #[error("no table is mapped for entity type `{0}`")]
    NoTable(String),
    /// No column is declared for an attribute the condition reads.
    #[error("no column is mapped for attribute `{attribute}` of `{entity_type}`")]
    NoColumn {
        /// The entity type.
        entity_type: String,
        /// The attribute.
        attribute: String,
    },
    /// The condition uses what this translation does not write as SQL.
    #[error("not translatable to SQL: {0}")]
    Unsupported(String),
}

impl Mapping {
    fn get(&self, entity_type: &str) -> Result<&Table, SqlError> {
        self.table_of(entity_type)
            .ok_or_else(|| SqlError::NoTable(entity_type.to_string()))
    }

    /// The ids of the resources of `resource_type` where `condition` holds, as one query.
    ///
    /// A condition `(a OR b OR …) AND rest` (the usual shape of a plan: some role grants,
    /// no forbid applies) is written as the union of `a AND rest`, `b AND rest`, …: each
    /// branch is answered from its own index, where one `WHERE` with the `OR` makes a
    /// database scan the whole table once an `OR` term follows a reference. Otherwise
    /// `SELECT id FROM <table> WHERE <condition>`. Order and paginate the result by its `id`
    /// column.
    pub fn select_ids(
        &self,
        condition: &Condition,
        resource_type: &str,
    ) -> Result<SelectStatement, SqlError> {
        let (mut select, sets) = self.keyed_ids(condition, resource_type, None, None)?;
        sets.attach(&mut select);
        Ok(select)
    }

    /// [`Mapping::select_ids`], each branch kept to its first `limit` ids after `after` in id
    /// order when `keyset` says so (the union's first `limit` are among them): a page reads
    /// what it shows, not the whole list.
    fn keyed_ids(
        &self,
        condition: &Condition,
        resource_type: &str,
        keyset: Option<(Option<&str>, u64)>,
        marked: Option<&SimpleExpr>,
    ) -> Result<(SelectStatement, Sets), SqlError> {
        let table = self.get(resource_type)?;
        let sets = Sets::default();
        // With `marked`, every row also carries it as `dangles`, computed on the row itself.
        let columns = |select: &mut SelectStatement| {
            select.column(Alias::new("id"));
            if marked.is_some() {
                select.column(Alias::new("dangles"));
            }
        };
        let branch = |conjuncts: &[&Condition]| -> Result<SelectStatement, SqlError> {
            let filter = Translation {
                mapping: self,
                depth: 0,
                sets: Some(&sets),
            }
            .conjunction(conjuncts, resource_type, &table.name)?;
            let id = || Expr::col((Alias::new(&table.name), Alias::new(&table.id)));
            let mut select = Query::select()
                .expr_as(id(), Alias::new("id"))
                .from(Alias::new(&table.name))
                .and_where(filter)
                .to_owned();
            if let Some(marked) = marked {
                select.expr_as(marked.clone(), Alias::new("dangles"));
            }
            let Some((after, limit)) = keyset else {
                return Ok(select);
            };
            if let Some(after) = after {
                select.and_where(id().gt(after));
            }
            select.order_by_expr(id().into(), Order::Asc).limit(limit);
            // A member of a compound select takes no ORDER BY or LIMIT of its own (SQLite):
            // the branch is a subquery.
            let mut wrapped = Query::select();
            columns(&mut wrapped);
            Ok(wrapped
                .from_subquery(select, Alias::new("branch"))
                .to_owned())
        };
        // The branches, and the other conjuncts, each branch's `rest` (by reference: a plan's
        // conditions can hold thousands of literals).
        let (branches, rest): (&[Condition], Vec<&Condition>) = match condition {
            Condition::Or { args } => (args, Vec::new()),
            Condition::And { args } => {
                let or = args.iter().enumerate().find_map(|(i, a)| match a {
                    Condition::Or { args: branches } => Some((i, branches)),
                    _ => None,
                });
                match or {
                    Some((i, branches)) => (
                        branches.as_slice(),
                        args.iter()
                            .enumerate()
                            .filter(|(j, _)| *j != i)
                            .map(|(_, a)| a)
                            .collect(),
                    ),
                    None => (&[], Vec::new()),
                }
            }
            _ => (&[], Vec::new()),
        };
        let (first, others) = match branches {
            [first, others @ ..] if !others.is_empty() => (first, others),
            _ => {
                let select = branch(&[condition])?;
                return Ok((select, sets));
            }
        };
        let select_of = |b: &Condition| {
            let mut conjuncts: Vec<&Condition> = match b {
                Condition::And { args } => args.iter().collect(),
                other => vec![other],
            };
            conjuncts.extend(rest.iter().copied());
            branch(&conjuncts)
        };
        let mut union = select_of(first)?;
        let selects = others.iter().map(select_of);
        for select in selects {
            union.union(UnionType::All, select?);
        }
        let mut select = Query::select();
        select.distinct();
        columns(&mut select);
        select.from_subquery(union, Alias::new("allowed"));
        Ok((select, sets))
    }

    /// One page of [`Mapping::select_ids`], by keyset: at most `limit` ids greater than
    /// `after` (the last id of the previous page; `None` for the first), in the database's
    /// order of ids. Pages stay consistent while rows are added, unlike `OFFSET`.
    pub fn page(
        &self,
        condition: &Condition,
        resource_type: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<SelectStatement, SqlError> {
        let (mut page, sets) = self.keyed_page(condition, resource_type, after, limit, None)?;
        sets.attach(&mut page);
        Ok(page)
    }

    /// [`Mapping::page`] without its `WITH` clause, and with a second column, `dangles`: 1
    /// for an id whose row has a reference a path of `reads` follows that names no row
    /// ([`Mapping::dangling`]), 0 otherwise, so that no second query is needed to find them.
    ///
    /// Each value list is a table `set_N (v)` ([`SetTable::name`]) the caller fills before
    /// running the statement (a temporary table of its connection), or binds with
    /// [`with_set_tables`]. Without the lists, the statement's text depends on the plan's
    /// shape alone, not on how many values they hold: a database that caches prepared
    /// statements prepares it once for every user of that shape, and SQLite reads each list
    /// through its table's index instead of building one per `IN`.
    pub fn page_with_set_tables(
        &self,
        condition: &Condition,
        resource_type: &str,
        after: Option<&str>,
        limit: u64,
        reads: &[Vec<String>],
    ) -> Result<(SelectStatement, Vec<SetTable>), SqlError> {
        // Computed in each branch on the row it selects, where its columns are at hand.
        let dangles: SimpleExpr = match self.dangling(reads, resource_type)? {
            Some(dangles) => Expr::case(dangles, 1).finally(0).into(),
            None => Expr::val(0).into(),
        };
        // BIGINT on both databases, so the column reads as one type.
        let dangles: SimpleExpr = Func::cast_as(dangles, Alias::new("BIGINT")).into();
        let (page, sets) =
            self.keyed_page(condition, resource_type, after, limit, Some(&dangles))?;
        Ok((page, sets.tables()))
    }

    fn keyed_page(
        &self,
        condition: &Condition,
        resource_type: &str,
        after: Option<&str>,
        limit: u64,
        marked: Option<&SimpleExpr>,
    ) -> Result<(SelectStatement, Sets), SqlError> {
        let id = Alias::new("id");
        let (ids, sets) = self.keyed_ids(condition, resource_type, Some((after, limit)), marked)?;
        let mut page = Query::select();
        page.column(id.clone());
        if marked.is_some() {
            page.column(Alias::new("dangles"));
        }
        page.from_subquery(ids, Alias::new("page"))
            .order_by(id, Order::Asc)
            .limit(limit);
        Ok((page, sets))
    }

    /// The `WHERE` condition selecting the rows of `resource_type`'s table with a reference
    /// that a path of `reads` (a plan's [`reads`](gatehouse_api::Plan::reads)) follows and
    /// that names no row (`organization_id` set, no such organization); `None` when they
    /// follow none. Columns are qualified by the table's name.
    ///
    /// Where every reference resolves, the SQL decides as Cedar does. Where one dangles,
    /// Cedar errs on reading through it, and gatehouse denies on any error, while SQL reads
    /// the missing row's columns as `NULL`: so the SQL may allow what a decision denies
    /// (never the reverse: a leaf Cedar skipped by short-circuit changes nothing in SQL, and
    /// one it reached errs). A host without foreign keys decides these rows one by one.
    pub fn dangling(
        &self,
        reads: &[Vec<String>],
        resource_type: &str,
    ) -> Result<Option<SimpleExpr>, SqlError> {
        let table = self.get(resource_type)?;
        let followed = Followed::of(reads);
        Translation {
            mapping: self,
            depth: 0,
            sets: None,
        }
        .dangles(resource_type, &table.name, &followed)
    }

    /// The `WHERE` condition selecting the rows of `resource_type`'s table where
    /// `condition` holds; columns are qualified by the table's name.
    pub fn filter(
        &self,
        condition: &Condition,
        resource_type: &str,
    ) -> Result<SimpleExpr, SqlError> {
        let table = self.get(resource_type)?;
        Translation {
            mapping: self,
            depth: 0,
            sets: None,
        }
        .condition(condition, resource_type, &table.name, false)
    }
}

/// The value lists of the `in_set` leaves of one statement, each written once in its `WITH`
/// clause (`set_0 (v) AS (VALUES (?), (?), …)`) and read by every leaf listing the same
/// values as `col IN (SELECT v FROM set_0)`. A plan repeats the principal's groups in each
/// permit and forbid that reads a group attribute: for a user in a thousand groups, bound
/// once instead of ten or twenty times.
#[derive(Default)]
struct Sets {
    lists: RefCell<Vec<SharedSet>>,
}

/// `select` with `sets` bound in its `WITH` clause (`set_0 (v) AS (VALUES (?), …)`), for
/// a database whose lists are not filled into tables.
pub fn with_set_tables(mut select: SelectStatement, sets: Vec<SetTable>) -> SelectStatement {
    if sets.is_empty() {
        return select;
    }
    let mut with = WithClause::new();
    for set in sets {
        let rows = Query::select()
            .column(sea_query::Asterisk)
            .from_values(set.values, Alias::new("t"))
            .to_owned();
        with.cte(
            CommonTableExpression::new()
                .table_name(Alias::new(set.name))
                .column(Alias::new("v"))
                .query(rows)
                .to_owned(),
        );
    }
    select.with_cte(with);
    select
}

/// A value list of [`Mapping::page_with_set_tables`]: the statement reads it as
/// `SELECT v FROM <name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct SetTable {
    /// The table's name, `set_N`.
    pub name: String,
    /// Its rows' one column, `v` (values may repeat).
    pub values: Vec<Value>,
}

/// One list of [`Sets`].
struct SharedSet {
    /// The type the column it was made for references (values of other types are dropped).
    entity_type: Option<String>,
    /// The literals of the `in_set`.
    literals: Vec<Literal>,
    /// Their SQL values.
    values: Vec<Value>,
}

impl Sets {
    /// The name of the set of `literals` as values of `column`; `None` when none is a value
    /// of it (the leaf is then false).
    fn name(&self, column: &Column, literals: &[Literal]) -> Result<Option<String>, SqlError> {
        let ty = match column {
            Column::Entity { entity_type, .. } => Some(entity_type),
            _ => None,
        };
        let mut lists = self.lists.borrow_mut();
        let index = match lists
            .iter()
            .position(|set| set.entity_type.as_ref() == ty && set.literals == literals)
        {
            Some(index) => index,
            None => {
                lists.push(SharedSet {
                    entity_type: ty.cloned(),
                    literals: literals.to_vec(),
                    values: sql_values(literals, column)?,
                });
                lists.len() - 1
            }
        };
        let named = lists.get(index).is_some_and(|set| !set.values.is_empty());
        Ok(named.then(|| format!("set_{index}")))
    }

    /// The sets used, each as the table [`Mapping::page_with_set_tables`] reads.
    fn tables(self) -> Vec<SetTable> {
        self.lists
            .into_inner()
            .into_iter()
            .enumerate()
            .filter(|(_, set)| !set.values.is_empty())
            .map(|(index, set)| SetTable {
                name: format!("set_{index}"),
                values: set.values,
            })
            .collect()
    }

    /// Puts the sets used in `select`'s `WITH` clause.
    fn attach(self, select: &mut SelectStatement) {
        let taken = std::mem::replace(select, Query::select());
        *select = with_set_tables(taken, self.tables());
    }
}

/// One level of the translation: `depth` numbers the aliases of nested subqueries; `sets`
/// collects the statement's value lists (none: each leaf lists its values).
struct Translation<'a> {
    mapping: &'a Mapping,
    depth: usize,
    sets: Option<&'a Sets>,
}

/// The references paths follow, as a tree of attribute names: every proper prefix of a path
/// (`["organization", "admins"]` follows `organization`).
#[derive(Default)]
struct Followed(std::collections::BTreeMap<String, Followed>);

impl Followed {
    fn of(reads: &[Vec<String>]) -> Self {
        let mut followed = Self::default();
        for path in reads {
            if let Some((_, init)) = path.split_last() {
                let mut node = &mut followed;
                for step in init {
                    node = node.0.entry(step.clone()).or_default();
                }
            }
        }
        followed
    }
}

/// An entity whose ancestry is asked ([`Translation::within`]): a row of its table, by the
/// row's alias, or only its id.
enum Entity<'a> {
    Row(&'a str),
    Id(SimpleExpr),
}

/// A leaf on the last step of a path, given the column expression it reads.
type Leaf<'l> = dyn Fn(SimpleExpr, &Column) -> Result<SimpleExpr, SqlError> + 'l;

impl Translation<'_> {
    /// The level inside a subquery on `entity_type`'s table: the table, the next level, and
    /// the table's alias there (`organizations_1`).
    fn inside_table(&self, entity_type: &str) -> Result<(&Table, Self, String), SqlError> {
        let target = self.mapping.get(entity_type)?;
        let nested = Translation {
            mapping: self.mapping,
            depth: self.depth + 1,
            sets: self.sets,
        };
        let alias = format!("{}_{}", target.name, nested.depth);
        Ok((target, nested, alias))
    }

    /// `c` (or its negation, when `negated`) with negations pushed down to the leaves.
    fn condition(
        &self,
        c: &Condition,
        ty: &str,
        alias: &str,
        negated: bool,
    ) -> Result<SimpleExpr, SqlError> {
        Ok(match (c, negated) {
            (Condition::True, false) | (Condition::False, true) => Expr::cust("1 = 1"),
            (Condition::False, false) | (Condition::True, true) => Expr::cust("1 = 0"),
            (Condition::And { args }, false) => {
                let args: Vec<&Condition> = args.iter().collect();
                self.conjunction(&args, ty, alias)?
            }
            (Condition::Or { args }, true) => {
                self.fold(args, ty, alias, negated, SimpleExpr::and, "1 = 1")?
            }
            (Condition::Or { args }, false) | (Condition::And { args }, true) => {
                self.fold(args, ty, alias, negated, SimpleExpr::or, "1 = 0")?
            }
            (Condition::Not { arg }, _) => self.condition(arg, ty, alias, !negated)?,
            (leaf, false) => self.leaf(leaf, ty, alias)?,
            (leaf, true) => Expr::expr(two_valued(self.leaf(leaf, ty, alias)?)).not(),
        })
    }

    /// All of `args` (without the `has` leaves their siblings imply).
    fn conjunction(
        &self,
        args: &[&Condition],
        ty: &str,
        alias: &str,
    ) -> Result<SimpleExpr, SqlError> {
        let args = without_implied_has(args);
        self.fold(args, ty, alias, false, SimpleExpr::and, "1 = 1")
    }

    fn fold<'c>(
        &self,
        args: impl IntoIterator<Item = &'c Condition>,
        ty: &str,
        alias: &str,
        negated: bool,
        join: fn(SimpleExpr, SimpleExpr) -> SimpleExpr,
        empty: &str,
    ) -> Result<SimpleExpr, SqlError> {
        let mut parts = args
            .into_iter()
            .map(|a| self.condition(a, ty, alias, negated));
        let Some(first) = parts.next() else {
            return Ok(Expr::cust(empty));
        };
        parts.try_fold(first?, |acc, part| Ok(join(acc, part?)))
    }

    fn leaf(&self, c: &Condition, ty: &str, alias: &str) -> Result<SimpleExpr, SqlError> {
        match c {
            Condition::Has { path } => self.on_path(path, ty, alias, &|col, column| match column {
                Column::Set { .. } => Err(SqlError::Unsupported(format!(
                    "`has` on the set attribute {path:?}"
                ))),
                _ => Ok(Expr::expr(col).is_not_null()),
            }),
            Condition::Eq(cmp) => self.comparison(cmp, ty, alias, Cmp::Eq),
            Condition::Ne(cmp) => self.comparison(cmp, ty, alias, Cmp::Ne),
            Condition::Lt(cmp) => self.comparison(cmp, ty, alias, Cmp::Lt),
            Condition::Le(cmp) => self.comparison(cmp, ty, alias, Cmp::Le),
            Condition::Gt(cmp) => self.comparison(cmp, ty, alias, Cmp::Gt),
            Condition::Ge(cmp) => self.comparison(cmp, ty, alias, Cmp::Ge),
            Condition::InSet { path, values } => self.on_path(path, ty, alias, &|col, column| {
                if let (Some(sets), 2..) = (self.sets, values.len()) {
                    return Ok(match sets.name(column, values)? {
                        Some(set) => Expr::expr(col).in_subquery(
                            Query::select()
                                .column(Alias::new("v"))
                                .from(Alias::new(set))
                                .to_owned(),
                        ),
                        None => Expr::cust("1 = 0"),
                    });
                }
                let values = sql_values(values, column)?;
                Ok(if values.is_empty() {
                    Expr::cust("1 = 0")
                } else {
                    Expr::expr(col).is_in(values)
                })
            }),
            Condition::Contains { path, value } => {
                let (init, last) = split(path)?;
                let value = value.clone();
                self.on_entity(
                    init,
                    ty,
                    alias,
                    &|t: &Translation<'_>, ty: &str, alias: &str| {
                        let table = t.mapping.get(ty)?;
                        let Some(Column::Set {
                            table: members,
                            owner,
                            value: member,
                        }) = table.columns.get(last)
                        else {
                            return Err(SqlError::Unsupported(format!(
                                "`contains` on `{last}` of `{ty}`, which is not mapped as a set"
                            )));
                        };
                        let Some(value) = member_value(&value)? else {
                            return Ok(Expr::cust("1 = 0"));
                        };
                        let sub = Query::select()
                            .column(Alias::new(owner))
                            .from(Alias::new(members))
                            .and_where(Expr::col(Alias::new(member)).eq(value))
                            .to_owned();
                        Ok(Expr::col((Alias::new(alias), Alias::new(&table.id))).in_subquery(sub))
                    },
                )
            }
            Condition::In { path, value } => {
                let Literal::Entity(ancestor) = value else {
                    return Err(SqlError::Unsupported(format!(
                        "`in` {}, which is not an entity",
                        value.to_cedar()
                    )));
                };
                self.on_entity(
                    path,
                    ty,
                    alias,
                    &|t: &Translation<'_>, ty: &str, alias: &str| {
                        let within = t.within(ty, Entity::Row(alias), ancestor, &mut Vec::new())?;
                        Ok(within.unwrap_or_else(|| Expr::cust("1 = 0")))
                    },
                )
            }
            other => Err(SqlError::Unsupported(format!("{other:?}"))),
        }
    }

    /// The rows of `ty` (as `alias`) with a reference of `followed` that names no row, at
    /// any depth; `None` when `followed` is empty.
    fn dangles(
        &self,
        ty: &str,
        alias: &str,
        followed: &Followed,
    ) -> Result<Option<SimpleExpr>, SqlError> {
        let table = self.mapping.get(ty)?;
        let mut parts = Vec::new();
        for (attribute, deeper) in &followed.0 {
            let Column::Entity {
                column: fk,
                entity_type,
            } = column(table, ty, attribute)?
            else {
                return Err(SqlError::Unsupported(format!(
                    "`{attribute}` of `{ty}` is followed but is not mapped as an entity reference"
                )));
            };
            let (target, nested, sub_alias) = self.inside_table(entity_type)?;
            let reference = || Expr::col((Alias::new(alias), Alias::new(fk)));
            let rows = |alias: &str| {
                Query::select()
                    .column((Alias::new(alias), Alias::new(&target.id)))
                    .from_as(Alias::new(&target.name), Alias::new(alias))
                    .to_owned()
            };
            parts.push(
                reference()
                    .is_not_null()
                    .and(reference().not_in_subquery(rows(&sub_alias))),
            );
            if let Some(inner) = nested.dangles(entity_type, &sub_alias, deeper)? {
                let mut within = rows(&sub_alias);
                within.and_where(inner);
                parts.push(reference().in_subquery(within));
            }
        }
        Ok(parts.into_iter().reduce(SimpleExpr::or))
    }

    /// Whether the entity of type `ty` (its row, or its id) is `ancestor` or descends from
    /// it through the parents the mapping gives each type, as Cedar's `in` reads the
    /// entities; `None` when it never can (no path of parent types leads to the ancestor's).
    /// A membership table is read with `id IN (SELECT owner FROM table WHERE parent …)`;
    /// a parent column of the row directly. `visiting` holds the types on the way: a
    /// hierarchy whose types form a cycle (`Group in [Group]`) would need recursion, and is
    /// refused.
    fn within(
        &self,
        ty: &str,
        entity: Entity<'_>,
        ancestor: &gatehouse_api::condition::Uid,
        visiting: &mut Vec<String>,
    ) -> Result<Option<SimpleExpr>, SqlError> {
        if visiting.iter().any(|v| v == ty) {
            return Err(SqlError::Unsupported(format!(
                "`in {}::\"{}\"` through the cyclic hierarchy of `{ty}`",
                ancestor.ty, ancestor.id
            )));
        }
        let table = self.mapping.table_of(ty);
        let id = |table: &Table| match entity {
            Entity::Row(alias) => Expr::col((Alias::new(alias), Alias::new(&table.id))).into(),
            Entity::Id(ref expr) => expr.clone(),
        };
        let mut parts: Vec<SimpleExpr> = Vec::new();
        if ty == ancestor.ty {
            let own = match (&entity, table) {
                (Entity::Id(expr), _) => expr.clone(),
                (Entity::Row(_), Some(table)) => id(table),
                (Entity::Row(_), None) => return Err(SqlError::NoTable(ty.to_string())),
            };
            parts.push(Expr::expr(own).eq(ancestor.id.as_str()));
        }
        visiting.push(ty.to_string());
        for parents in table.map(|t| t.parents.as_slice()).unwrap_or_default() {
            let Some(table) = table else { break };
            let parent_type = parents.entity_type();
            let nested = Translation {
                mapping: self.mapping,
                depth: self.depth + 1,
                sets: self.sets,
            };
            let part = match parents {
                Parents::Table {
                    table: members,
                    owner,
                    parent,
                    ..
                } => {
                    let sub_alias = format!("{members}_{}", nested.depth);
                    let column = Expr::col((Alias::new(&sub_alias), Alias::new(parent))).into();
                    nested
                        .within(parent_type, Entity::Id(column), ancestor, visiting)?
                        .map(|inner| {
                            Expr::expr(id(table)).in_subquery(
                                Query::select()
                                    .column((Alias::new(&sub_alias), Alias::new(owner)))
                                    .from_as(Alias::new(members), Alias::new(&sub_alias))
                                    .and_where(inner)
                                    .to_owned(),
                            )
                        })
                }
                Parents::Column { column, .. } => match entity {
                    Entity::Row(alias) => {
                        let column = Expr::col((Alias::new(alias), Alias::new(column))).into();
                        nested.within(parent_type, Entity::Id(column), ancestor, visiting)?
                    }
                    Entity::Id(ref expr) => {
                        let sub_alias = format!("{}_{}", table.name, nested.depth);
                        let column = Expr::col((Alias::new(&sub_alias), Alias::new(column))).into();
                        nested
                            .within(parent_type, Entity::Id(column), ancestor, visiting)?
                            .map(|inner| {
                                Expr::expr(expr.clone()).in_subquery(
                                    Query::select()
                                        .column((Alias::new(&sub_alias), Alias::new(&table.id)))
                                        .from_as(Alias::new(&table.name), Alias::new(&sub_alias))
                                        .and_where(inner)
                                        .to_owned(),
                                )
                            })
                    }
                },
            };
            parts.extend(part);
        }
        visiting.pop();
        Ok(parts.into_iter().reduce(SimpleExpr::or))
    }

    fn comparison(
        &self,
        cmp: &Comparison,
        ty: &str,
        alias: &str,
        op: Cmp,
    ) -> Result<SimpleExpr, SqlError> {
        match &cmp.operand {
            Operand::Value(value) => self.on_path(&cmp.path, ty, alias, &|col, column| {
                Ok(match sql_value(value, column)? {
                    Some(value) => op.apply(col, Expr::val(value).into()),
                    // An entity of another type than the attribute's: never equal.
                    None if op == Cmp::Eq => Expr::cust("1 = 0"),
                    None if op == Cmp::Ne => Expr::cust("1 = 1"),
                    None => return Err(SqlError::Unsupported(format!("{cmp:?}"))),
                })
            }),
            Operand::Other(other) => {
                let left = self.scalar(&cmp.path, ty, alias)?;
                let right = self.scalar(other, ty, alias)?;
                Ok(op.apply(left, right))
            }
        }
    }

    /// `leaf` applied to the column at the end of `path`, following entity references
    /// with `IN (SELECT id …)`; for `[]`, the entity's own id column (a uid compared).
    fn on_path(
        &self,
        path: &[String],
        ty: &str,
        alias: &str,
        leaf: &Leaf<'_>,
    ) -> Result<SimpleExpr, SqlError> {
        if path.is_empty() {
            let table = self.mapping.get(ty)?;
            return leaf(
                Expr::col((Alias::new(alias), Alias::new(&table.id))).into(),
                &Column::entity(&table.id, ty),
            );
        }
        let (init, last) = split(path)?;
        self.on_entity(
            init,
            ty,
            alias,
            &|t: &Translation<'_>, ty: &str, alias: &str| {
                let table = t.mapping.get(ty)?;
                let column = column(table, ty, last)?;
                let name = match column {
                    Column::Value(c) | Column::Entity { column: c, .. } => c,
                    Column::Set { .. } => {
                        return Err(SqlError::Unsupported(format!(
                            "the set attribute `{last}` of `{ty}` compared as a value"
                        )));
                    }
                };
                leaf(
                    Expr::col((Alias::new(alias), Alias::new(name))).into(),
                    column,
                )
            },
        )
    }

    /// `inner` on the entity reached by following `path` (entity references) from `ty`.
    fn on_entity(
        &self,
        path: &[String],
        ty: &str,
        alias: &str,
        inner: &dyn Fn(&Translation<'_>, &str, &str) -> Result<SimpleExpr, SqlError>,
    ) -> Result<SimpleExpr, SqlError> {
        let Some((first, rest)) = path.split_first() else {
            return inner(self, ty, alias);
        };
        let table = self.mapping.get(ty)?;
        let Column::Entity {
            column: fk,
            entity_type,
        } = column(table, ty, first)?
        else {
            return Err(SqlError::Unsupported(format!(
                "`{first}` of `{ty}` is followed but is not mapped as an entity reference"
            )));
        };
        let (target, nested, sub_alias) = self.inside_table(entity_type)?;
        let predicate = nested.on_entity(rest, entity_type, &sub_alias, inner)?;
        let sub = Query::select()
            .column((Alias::new(&sub_alias), Alias::new(&target.id)))
            .from_as(Alias::new(&target.name), Alias::new(&sub_alias))
            .and_where(predicate)
            .to_owned();
        Ok(Expr::col((Alias::new(alias), Alias::new(fk))).in_subquery(sub))
    }

    /// The value at `path` as an expression: a column, or a scalar subquery through each
    /// entity reference.
    fn scalar(&self, path: &[String], ty: &str, alias: &str) -> Result<SimpleExpr, SqlError> {
        let table = self.mapping.get(ty)?;
        let (first, rest) = path.split_first().ok_or_else(|| {
            SqlError::Unsupported("the resource itself compared with a path".into())
        })?;
        let col = column(table, ty, first)?;
        match (col, rest.is_empty()) {
            (Column::Value(c) | Column::Entity { column: c, .. }, true) => {
                Ok(Expr::col((Alias::new(alias), Alias::new(c))).into())
            }
            (
                Column::Entity {
                    column: fk,
                    entity_type,
                },
                false,
            ) => {
                let (target, nested, sub_alias) = self.inside_table(entity_type)?;
                let value = nested.scalar(rest, entity_type, &sub_alias)?;
                let sub = Query::select()
                    .expr(value)
                    .from_as(Alias::new(&target.name), Alias::new(&sub_alias))
                    .and_where(
                        Expr::col((Alias::new(&sub_alias), Alias::new(&target.id)))
                            .equals((Alias::new(alias), Alias::new(fk))),
                    )
                    .to_owned();
                Ok(SimpleExpr::SubQuery(
                    None,
                    Box::new(SubQueryStatement::SelectStatement(sub)),
                ))
            }
            _ => Err(SqlError::Unsupported(format!(
                "the path {path:?} as a value"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn apply(self, left: SimpleExpr, right: SimpleExpr) -> SimpleExpr {
        let left = Expr::expr(left);
        match self {
            Cmp::Eq => left.eq(right),
            Cmp::Ne => left.ne(right),
            Cmp::Lt => left.lt(right),
            Cmp::Le => left.lte(right),
            Cmp::Gt => left.gt(right),
            Cmp::Ge => left.gte(right),
        }
    }
}

/// The conjuncts without each `has p` that a bare sibling leaf reading through `p` implies:
/// that leaf reads NULL (so is not true) when `p` is absent. `organization_id IS NOT NULL AND
/// organization_id IN (…)` becomes the second part alone, which a database answers from an
/// index inside an `OR`.
fn without_implied_has<'c>(args: &[&'c Condition]) -> Vec<&'c Condition> {
    let reads = |c: &&'c Condition| -> Option<&'c [String]> {
        match c {
            Condition::Eq(cmp)
            | Condition::Ne(cmp)
            | Condition::Lt(cmp)
            | Condition::Le(cmp)
            | Condition::Gt(cmp)
            | Condition::Ge(cmp) => Some(&cmp.path),
            Condition::InSet { path, .. } => Some(path),
            _ => None,
        }
    };
    let implied = |has: &[String]| {
        args.iter()
            .filter_map(reads)
            .any(|path| path.len() > has.len() && path.starts_with(has))
    };
    args.iter()
        .filter(|c| !matches!(c, Condition::Has { path } if implied(path)))
        .copied()
        .collect()
}

/// `COALESCE(leaf, FALSE)`: a leaf reading NULL is false, not unknown (for negated leaves).
fn two_valued(leaf: SimpleExpr) -> SimpleExpr {
    Func::coalesce([leaf, Expr::cust("FALSE")]).into()
}

fn split(path: &[String]) -> Result<(&[String], &str), SqlError> {
    match path.split_last() {
        Some((last, init)) => Ok((init, last.as_str())),
        None => Err(SqlError::Unsupported(
            "a leaf on the resource itself".to_string(),
        )),
    }
}

fn column<'t>(table: &'t Table, ty: &str, attribute: &str) -> Result<&'t Column, SqlError> {
    table
        .columns
        .get(attribute)
        .ok_or_else(|| SqlError::NoColumn {
            entity_type: ty.to_string(),
            attribute: attribute.to_string(),
        })
}

/// The literals that are values of `column`, as such.
fn sql_values(literals: &[Literal], column: &Column) -> Result<Vec<Value>, SqlError> {
    let mut values = Vec::with_capacity(literals.len());
    for literal in literals {
        values.extend(sql_value(literal, column)?);
    }
    Ok(values)
}

/// A literal as a value of `column`: an entity uid as its id, `None` when its type is not
/// the column's (it equals no row).
fn sql_value(literal: &Literal, column: &Column) -> Result<Option<Value>, SqlError> {
    match (literal, column) {
        (Literal::Entity(uid), Column::Entity { entity_type, .. }) => {
            Ok((uid.ty == *entity_type).then(|| uid.id.clone().into()))
        }
        (Literal::Entity(_), _) => Ok(None),
        (other, _) => member_value(other),
    }
}

/// An RFC 3339 datetime in milliseconds since the Unix epoch.
fn epoch_millis(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    let ms = match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).ok()?,
        Err(before) => -i64::try_from(before.duration().as_millis()).ok()?,
    };
    Some(ms)
}

/// A literal as a stored value: strings, longs, bools, entity ids, and datetimes in
/// milliseconds since the Unix epoch.
fn member_value(literal: &Literal) -> Result<Option<Value>, SqlError> {
    Ok(Some(match literal {
        Literal::Bool(b) => (*b).into(),
        Literal::Long(n) => (*n).into(),
        Literal::String(s) => s.clone().into(),
        Literal::Entity(uid) => uid.id.clone().into(),
        Literal::Extension(e) if e.function == "datetime" => epoch_millis(&e.arg)
            .ok_or_else(|| SqlError::Unsupported(format!("the datetime `{}`", e.arg)))?
            .into(),
        Literal::Extension(e) => {
            return Err(SqlError::Unsupported(format!(
                "the extension value {}(\"{}\")",
                e.function, e.arg
            )));
        }
    }))
}
