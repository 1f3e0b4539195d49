//! The list pages: my projects, the items of a project I may see, the access requests I may
//! answer, and who has access to a project. gatehouse answers which records may be listed
//! from this app's own database (`POST /v1/list`, `POST /v1/list/subjects`: it runs its plan
//! as SQL there); the app adds only what is its own business (which projects are "mine", which
//! requests are pending) and reads the rows.
//!
//! Pages: `?limit=` (1 to 500, 50 by default) rows after `?after=` (the previous page's
//! `next`, an opaque cursor), in id order. A page with a `next` is full; the page after it
//! may be empty. When gatehouse cannot turn a policy into SQL it decides the candidates one
//! by one itself and says so (`listed_by: "decisions"`): slower, never different, and
//! nothing for the app to do.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use gatehouse_client::{ClientError, ListPage, Paging, Uid};
use sea_query::{Alias, Cond, Expr, Order, Query, SelectStatement};
use sea_query_binder::SqlxBinder;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::any::AnyRow;

use super::db::{self, PROJECT_COLUMNS, REQUEST_COLUMNS};
use super::{App, AppError, Caller, find_project};

type Answer = Result<Json<Value>, AppError>;

/// Rows per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u64 = 50;
/// The largest `limit` (gatehouse's pages hold up to 1 000 ids).
const MAX_LIMIT: u64 = 500;
/// Project ids per `IN (…)` when reading the requests of many projects.
const CHUNK: usize = 1000;
/// The actions the members panel shows for each user who has access; `share` is asked as
/// sharing with a viewer (its `role` context), so: may she invite anyone at all.
const PANEL: [&str; 4] = ["view", "edit", "share", "delete"];

/// `?after=&limit=`: which page.
#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    /// The previous page's `next`.
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

/// What a list page asks gatehouse: the resources of `resource_type` (in `within`, when
/// given) the caller may take `action` on.
struct Listed<'a> {
    action: &'static str,
    resource_type: &'static str,
    within: Option<Uid>,
    page: &'a Page,
}

impl Listed<'_> {
    /// Pages of gatehouse's list, each read whole, until `limit` rows of the app's own
    /// `rows` (the listed ids, with the app's conditions, in id order) are found or none are
    /// left: the rows, and the cursor after the last page read when more may follow. Each
    /// page asks for as many ids as rows are still missing, so no id read goes unused and
    /// gatehouse's token is the cursor.
    async fn rows(
        &self,
        app: &App,
        user: &str,
        rows: impl Fn(&[String]) -> SelectStatement,
    ) -> Result<(Vec<AnyRow>, Option<String>), AppError> {
        let user = Uid::user(user);
        let limit = self.page.limit();
        let mut found = Vec::new();
        let mut token = self.page.after.clone();
        loop {
            let paging = Paging {
                size: Some(limit - found.len() as u64),
                token,
            };
            let page = app
                .gatehouse()
                .list_within(
                    &user,
                    self.action,
                    self.resource_type,
                    self.within.as_ref(),
                    None,
                    &paging,
                )
                .await
                .map_err(cursor)?
                .body;
            noted(&page, self.action, self.resource_type);
            if !page.ids.is_empty() {
                found.extend(fetch(app, &rows(&page.ids)).await?);
            }
            token = page.next_token;
            if token.is_none() || found.len() as u64 >= limit {
                return Ok((found, token));
            }
        }
    }
}

/// A refused `page.token` is the caller's bad `after`, not a bug of the app's question.
fn cursor(error: ClientError) -> AppError {
    match &error {
        ClientError::Rejected { field, .. } if field.as_deref() == Some("page.token") => {
            AppError::BadRequest("`after` is not a cursor this app gave".into())
        }
        _ => error.into(),
    }
}

/// Logs a list gatehouse answered by deciding candidates one by one.
fn noted(page: &ListPage, action: &str, resource_type: &str) {
    if page.listed_by == "decisions" {
        eprintln!(
            "{action} on {resource_type}: listed by one-by-one decisions ({})",
            page.unsupported.as_deref().unwrap_or("no entity database")
        );
    }
}

async fn fetch(app: &App, query: &SelectStatement) -> Result<Vec<AnyRow>, AppError> {
    let (sql, values) = query.build_any_sqlx(app.store.dialect());
    Ok(sqlx::query_with(&sql, values)
        .fetch_all(app.store.pool())
        .await?)
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

/// The rows of `table` whose id is one of `ids`, in id order.
fn by_ids(table: &str, columns: &[&str], ids: &[String]) -> SelectStatement {
    let mut query = select(table, columns);
    query
        .and_where(col(table, "id").is_in(ids.iter().map(String::as_str)))
        .order_by_expr(col(table, "id").into(), Order::Asc);
    query
}

/// `GET /my/projects?after=&limit=`: the projects the caller may `view` (so archived
/// projects vanish from shared users' lists and stay in their owner's) that are hers: owned,
/// shared with her, or her organizations'; in one page sorted by id, split into `owned`,
/// `shared` and `organization`, with `next`.
pub async fn my_projects(State(app): State<App>, Caller(me): Caller, page: Page) -> Answer {
    // Which projects are hers is the app's own business: its memberships say. (A public
    // project she may view but has no part in is not hers.)
    let groups = app.store.groups_of(&me).await?;
    let mine = |ids: &[String]| {
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
        let mut rows = by_ids("projects", &PROJECT_COLUMNS, ids);
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
        rows
    };
    let listed = Listed {
        action: "view",
        resource_type: "Project",
        within: None,
        page: &page,
    };
    let (rows, next) = listed.rows(&app, &me, mine).await?;
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
/// `view` (none when she may not see the project), with `next`: gatehouse's list of the
/// items `in` the project.
pub async fn items(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    page: Page,
) -> Answer {
    find_project(&app, &id).await?;
    let listed = Listed {
        action: "view",
        resource_type: "Item",
        within: Some(Uid::project(&id)),
        page: &page,
    };
    let columns = ["id", "name", "project_id", "phase"];
    let (rows, next) = listed
        .rows(&app, &me, |ids| by_ids("items", &columns, ids))
        .await?;
    let items = rows
        .iter()
        .map(db::item_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({"items": items, "next": next})))
}

/// `GET /requests?after=&limit=`: the pending access requests, of every project, that the
/// caller may answer (`reject_access_request` on the project), by request id, with `next`
/// (the last request's id): gatehouse lists the projects she may answer for (every page),
/// and the app reads their pending requests.
pub async fn requests_to_answer(State(app): State<App>, Caller(me): Caller, page: Page) -> Answer {
    let projects = app
        .gatehouse()
        .list_all(&Uid::user(&me), "reject_access_request", "Project", None)
        .await?;
    let limit = page.limit();
    let mut rows = Vec::new();
    // The first `limit + 1` of each chunk's projects hold the first `limit + 1` of all.
    for chunk in projects.chunks(CHUNK) {
        let mut query = pending_requests(page.after.as_deref(), limit + 1);
        query.and_where(
            col("access_requests", "project_id").is_in(chunk.iter().map(String::as_str)),
        );
        rows.extend(fetch(&app, &query).await?);
    }
    let mut requests = rows
        .iter()
        .map(db::request_from)
        .collect::<Result<Vec<_>, _>>()?;
    requests.sort_by(|a, b| a.id.cmp(&b.id));
    requests_json(requests, limit)
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
    // Allowed on this one project: every row is, with nothing to list.
    let mut query = pending_requests(page.after.as_deref(), page.limit() + 1);
    query.and_where(col("access_requests", "project_id").eq(id.as_str()));
    let requests = fetch(&app, &query)
        .await?
        .iter()
        .map(db::request_from)
        .collect::<Result<Vec<_>, _>>()?;
    requests_json(requests, page.limit())
}

/// The pending access requests after the request `after`, in id order, at most `limit`.
fn pending_requests(after: Option<&str>, limit: u64) -> SelectStatement {
    let mut query = select("access_requests", &REQUEST_COLUMNS);
    query
        .and_where(col("access_requests", "status").eq("pending"))
        .order_by_expr(col("access_requests", "id").into(), Order::Asc)
        .limit(limit);
    if let Some(after) = after {
        query.and_where(col("access_requests", "id").gt(after));
    }
    query
}

/// The first `limit` requests, and `next` (the last one's id) when more follow.
fn requests_json(mut requests: Vec<db::AccessRequest>, limit: u64) -> Answer {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = requests.len() > limit;
    requests.truncate(limit);
    let next = more
        .then(|| requests.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(json!({"requests": requests, "next": next})))
}

/// `GET /projects/{id}/members`: for those who may `view_members`, the owner, the members
/// the project's roles name (the app's records), and `access`: every user who may do any of
/// the panel's actions (`view`, `edit`, `share` a viewer's role, `delete`), however she came to (a role, her
/// organization's, ownership, a public project), with those she may do: gatehouse's
/// `/v1/list/subjects`, every page.
pub async fn members(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    let project = super::guard(&app, &me, "view_members", &id).await?;
    let access: Vec<Value> = app
        .gatehouse()
        .list_subjects_all(
            &PANEL,
            &Uid::project(&id),
            "User",
            Some(json!({"role": "viewer"})),
        )
        .await?
        .into_iter()
        .map(|subject| json!({"user": subject.id, "actions": subject.actions}))
        .collect();
    Ok(Json(
        json!({"owner": project.owner, "members": project.members, "access": access}),
    ))
}
