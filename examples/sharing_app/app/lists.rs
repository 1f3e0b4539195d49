//! The list pages: my projects, the items of a project I may see, and the access requests I
//! may answer. Each is one plan (`POST /v1/plan`: which resources may she take the action on)
//! and one SQL query (the host's own conditions AND the plan's condition, `gatehouse-sql`),
//! paginated by keyset: `?limit=` (1 to 500, 50 by default) rows after `?after=` (the
//! previous page's `next`), in id order.
//!
//! When a plan is not filterable (a policy uses a construct the condition language cannot
//! express: not so for the bundled policies), the page falls back to what a host without
//! plans does: the candidates in id order, asked about one batch at a time, until the page
//! is full. Slower, never different.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use gatehouse::plan::{Plan, PlanKind};
use gatehouse_client::{BatchResult, Question, Uid};
use sea_query::{Alias, Cond, Expr, Order, Query, SelectStatement, SimpleExpr};
use sea_query_binder::SqlxBinder;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::db::{self, PROJECT_COLUMNS, REQUEST_COLUMNS};
use super::mapping::mapping;
use super::{App, AppError, Caller, find_project};

type Answer = Result<Json<Value>, AppError>;

/// Rows per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u64 = 50;
/// The largest `limit`.
const MAX_LIMIT: u64 = 500;
/// Candidates asked about per batch when a plan is not filterable (the sidecar's limit).
const BATCH: u64 = 100;

/// `?after=&limit=`: which page.
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    /// The last id of the previous page.
    after: Option<String>,
    /// How many rows at most.
    limit: Option<u64>,
}

impl axum::extract::FromRequestParts<App> for Page {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> Result<Self, AppError> {
        let axum::extract::Query(page) = axum::extract::Query::<Page>::try_from_uri(&parts.uri)
            .map_err(|e| {
                AppError::BadRequest(format!("the query string (`after`, `limit`): {e}"))
            })?;
        match page.limit {
            Some(limit) if !(1..=MAX_LIMIT).contains(&limit) => Err(AppError::BadRequest(format!(
                "`limit` must be between 1 and {MAX_LIMIT}, not {limit}"
            ))),
            _ => Ok(page),
        }
    }
}

impl Page {
    fn limit(&self) -> u64 {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }
}

/// What a list page lists: rows of one table, each about one resource that the caller
/// must be allowed `action` on.
struct Listing {
    /// The action.
    action: &'static str,
    /// The resources' type.
    resource_type: &'static str,
    /// The rows, with the host's own conditions (whose list it is); no order, no limit.
    rows: SelectStatement,
    /// The rows' table and id column: the order and the keyset.
    key: (&'static str, &'static str),
    /// Where each row names its resource.
    resource: Resource,
}

/// Where a row of a [`Listing`] names its resource.
enum Resource {
    /// The row is the resource (its table is the resource type's).
    Itself,
    /// This column of the row holds the resource's id.
    Column(&'static str),
}

impl Listing {
    /// One page of rows the caller (`user`) may take the action on, and the `next` cursor
    /// when more may follow.
    async fn page(
        self,
        app: &App,
        user: &str,
        page: &Page,
    ) -> Result<(Vec<AnyRow>, Option<String>), AppError> {
        let user = Uid::user(user);
        let answer = app
            .gatehouse()
            .plan(&user, self.action, self.resource_type, None, &[])
            .await?;
        let plan = answer.body.plan;
        let rows = match (&plan.kind, &plan.condition) {
            (PlanKind::AlwaysDenied, _) => Vec::new(),
            (_, Some(condition)) => {
                let filter = self.filter(condition)?;
                let mut query = self.ordered(page.after.as_deref(), page.limit() + 1);
                query.and_where(filter);
                self.fetch(app, &query).await?
            }
            (_, None) => self.decided_one_by_one(app, &user, &plan, page).await?,
        };
        Ok(cut(rows, page.limit(), self.key.1))
    }

    /// The SQL condition a plan's condition is on this listing's rows.
    fn filter(&self, condition: &gatehouse::plan::Condition) -> Result<SimpleExpr, AppError> {
        let mapping = mapping();
        let sql = |e: gatehouse_sql::SqlError| AppError::BadRequest(format!("the plan: {e}"));
        Ok(match self.resource {
            Resource::Itself => mapping.filter(condition, self.resource_type).map_err(sql)?,
            Resource::Column(column) => Expr::col((Alias::new(self.key.0), Alias::new(column)))
                .in_subquery(
                    mapping
                        .select_ids(condition, self.resource_type)
                        .map_err(sql)?,
                ),
        })
    }

    /// The rows after `after` in id order, at most `limit`.
    fn ordered(&self, after: Option<&str>, limit: u64) -> SelectStatement {
        let key = || Expr::col((Alias::new(self.key.0), Alias::new(self.key.1)));
        let mut query = self.rows.clone();
        query.order_by_expr(key().into(), Order::Asc).limit(limit);
        if let Some(after) = after {
            query.and_where(key().gt(after));
        }
        query
    }

    async fn fetch(&self, app: &App, query: &SelectStatement) -> Result<Vec<AnyRow>, AppError> {
        let (sql, values) = query.build_any_sqlx(app.store.dialect());
        Ok(sqlx::query_with(&sql, values)
            .fetch_all(app.store.pool())
            .await?)
    }

    /// The fallback for a plan that is not filterable: candidates in order, one batch of
    /// decisions at a time, until a page and one more row are allowed (or none are left).
    async fn decided_one_by_one(
        &self,
        app: &App,
        user: &Uid,
        plan: &Plan,
        page: &Page,
    ) -> Result<Vec<AnyRow>, AppError> {
        eprintln!(
            "{} on {}: the plan is not filterable ({}); deciding one by one",
            self.action,
            self.resource_type,
            plan.unsupported.as_deref().unwrap_or("no reason given")
        );
        let mut allowed = Vec::new();
        let mut after = page.after.clone();
        while (allowed.len() as u64) <= page.limit() {
            let candidates = self
                .fetch(app, &self.ordered(after.as_deref(), BATCH))
                .await?;
            let Some(last) = candidates.last() else { break };
            after = Some(last.try_get(self.key.1)?);
            let mut questions = Vec::new();
            for row in &candidates {
                let id: String = match self.resource {
                    Resource::Itself => row.try_get(self.key.1)?,
                    Resource::Column(column) => row.try_get(column)?,
                };
                questions.push(Question::new(
                    user.clone(),
                    self.action,
                    Uid::new(self.resource_type, id),
                ));
            }
            let answer = app.gatehouse().batch(&[], &questions).await?;
            for (row, result) in candidates.into_iter().zip(answer.body) {
                if matches!(result, BatchResult::Decided(d) if d.allowed()) {
                    allowed.push(row);
                }
            }
        }
        Ok(allowed)
    }
}

/// The first `limit` rows, and the cursor of the next page when there are more.
fn cut(mut rows: Vec<AnyRow>, limit: u64, key: &str) -> (Vec<AnyRow>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().and_then(|r| r.try_get(key).ok());
    (rows, next)
}

fn col(table: &str, column: &str) -> Expr {
    Expr::col((Alias::new(table), Alias::new(column)))
}

/// `SELECT <columns> FROM <table>` (see [`db::select_list`]).
fn select(table: &str, columns: &[&str]) -> SelectStatement {
    let mut query = Query::select();
    for column in db::select_list(table, columns) {
        query.expr(Expr::cust(column));
    }
    query.from(Alias::new(table));
    query
}

/// `GET /my/projects?after=&limit=`: the projects the caller owns, is a member of, or that
/// belong to her organizations — those she may `view` (so archived projects vanish from
/// shared users' lists and stay in their owner's) — in one page sorted by id, split into
/// `owned`, `shared` and `organization`, with `next`.
pub async fn my_projects(State(app): State<App>, Caller(me): Caller, page: Page) -> Answer {
    // Which list a project goes in is the app's own business: its memberships say.
    let groups = app.store.groups_of(&me).await?;
    let memberships = Alias::new("memberships");
    let member = Cond::any()
        .add(col("memberships", "group_id").equals(("projects", "admins_group")))
        .add(col("memberships", "group_id").equals(("projects", "managers_group")))
        .add(col("memberships", "group_id").equals(("projects", "editors_group")))
        .add(col("memberships", "group_id").equals(("projects", "viewers_group")));
    let my_orgs = Query::select()
        .column((Alias::new("organizations"), Alias::new("id")))
        .from(Alias::new("organizations"))
        .inner_join(
            memberships.clone(),
            col("memberships", "group_id").equals(("organizations", "members_group")),
        )
        .and_where(col("memberships", "user_id").eq(me.as_str()))
        .to_owned();
    let mut rows = select("projects", &PROJECT_COLUMNS);
    rows.cond_where(
        Cond::any()
            .add(col("projects", "owner_id").eq(me.as_str()))
            .add(Expr::exists(
                Query::select()
                    .expr(Expr::val(1))
                    .from(memberships)
                    .and_where(col("memberships", "user_id").eq(me.as_str()))
                    .cond_where(member)
                    .to_owned(),
            ))
            .add(col("projects", "organization_id").in_subquery(my_orgs)),
    );
    let listing = Listing {
        action: "view",
        resource_type: "Project",
        rows,
        key: ("projects", "id"),
        resource: Resource::Column("id"),
    };
    let (rows, next) = listing.page(&app, &me, &page).await?;
    let mut lists = json!({"owned": [], "shared": [], "organization": [], "next": next});
    for row in &rows {
        let project = db::project_from(row)?;
        let shared = db::ROLES
            .iter()
            .any(|r| groups.contains(&gatehouse_client::Project::group(&project.id, *r).id));
        let kind = if project.owner == me {
            "owned"
        } else if shared {
            "shared"
        } else {
            "organization"
        };
        if let Some(list) = lists[kind].as_array_mut() {
            list.push(
                json!({"id": project.id, "name": project.name, "archived": project.archived}),
            );
        }
    }
    Ok(Json(lists))
}

/// `GET /projects/{id}/items?after=&limit=`: the items of the project the caller may
/// `view` (none when she may not see the project), with `next`.
pub async fn items(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    page: Page,
) -> Answer {
    find_project(&app, &id).await?;
    let mut rows = select("items", &["id", "name", "project_id", "phase"]);
    rows.and_where(col("items", "project_id").eq(id.as_str()));
    let listing = Listing {
        action: "view",
        resource_type: "Item",
        rows,
        key: ("items", "id"),
        resource: Resource::Itself,
    };
    let (rows, next) = listing.page(&app, &me, &page).await?;
    let items = rows
        .iter()
        .map(db::item_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({"items": items, "next": next})))
}

/// `GET /requests?after=&limit=`: the pending access requests, of every project, that the
/// caller may answer (`reject_access_request` on the project), with `next`.
pub async fn requests_to_answer(State(app): State<App>, Caller(me): Caller, page: Page) -> Answer {
    let listing = pending_requests(None);
    let (rows, next) = listing.page(&app, &me, &page).await?;
    requests_json(&rows, next)
}

/// `GET /projects/{id}/requests?after=&limit=`: the project's pending requests, for those
/// who may answer them (a 403 for others).
pub async fn project_requests(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    page: Page,
) -> Answer {
    super::guard(&app, &me, "reject_access_request", &id).await?;
    let listing = pending_requests(Some(&id));
    // Allowed on this one project: every row is, with no plan to ask.
    let query = listing.ordered(page.after.as_deref(), page.limit() + 1);
    let (rows, next) = cut(listing.fetch(&app, &query).await?, page.limit(), "id");
    requests_json(&rows, next)
}

/// The pending access requests (of one project, or all), each about its project: those its
/// reader may answer (`reject_access_request`).
fn pending_requests(project: Option<&str>) -> Listing {
    let mut rows = select("access_requests", &REQUEST_COLUMNS);
    rows.and_where(col("access_requests", "status").eq("pending"));
    if let Some(project) = project {
        rows.and_where(col("access_requests", "project_id").eq(project));
    }
    Listing {
        action: "reject_access_request",
        resource_type: "Project",
        rows,
        key: ("access_requests", "id"),
        resource: Resource::Column("project_id"),
    }
}

fn requests_json(rows: &[AnyRow], next: Option<String>) -> Answer {
    let requests = rows
        .iter()
        .map(db::request_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({"requests": requests, "next": next})))
}
