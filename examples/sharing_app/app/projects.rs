//! Projects: create, view, edit, delete, copy, export, import, archive, restore, visibility,
//! phases, processing, reports, downloads, items and the buttons of a page. (The list pages
//! are in `lists.rs`.)

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use gatehouse_client::{Phase, Question, Uid};
use serde::Deserialize;
use serde_json::{Value, json};

use super::db::{ItemRec, ProjectRec};
use super::{App, AppError, Body, Caller, find_project, guard};

/// A new project of `owner`, with no members, in planning, stored.
async fn new_project(
    app: &App,
    name: &str,
    owner: &str,
    organization: Option<String>,
    phase: Phase,
) -> Result<ProjectRec, AppError> {
    let project = ProjectRec {
        id: app.store.id("p").await?,
        name: name.to_string(),
        owner: owner.to_string(),
        organization,
        members: BTreeMap::new(),
        phase,
        archived: false,
        public: false,
        downloads_enabled: false,
        editors_can_share: false,
    };
    app.store.insert_project(&project).await?;
    Ok(project)
}

/// A new item, stored.
async fn new_item(
    app: &App,
    project: &str,
    name: String,
    phase: Phase,
) -> Result<ItemRec, AppError> {
    let item = ItemRec {
        id: app.store.id("item").await?,
        project: project.to_string(),
        name,
        phase,
    };
    app.store.insert_item(&item).await?;
    Ok(item)
}

type Answer = Result<Json<Value>, AppError>;

#[derive(Deserialize)]
pub struct NewProject {
    name: String,
    organization: Option<String>,
}

/// `POST /projects {name, organization?}`: a project inside an organization needs
/// `create_project` on it, and then belongs to it.
pub async fn create(
    State(app): State<App>,
    Caller(me): Caller,
    Body(new): Body<NewProject>,
) -> Answer {
    if let Some(org) = &new.organization {
        if !app.store.org_exists(org).await? {
            return Err(AppError::NotFound(format!("no organization `{org}`")));
        }
        let question = Question::new(Uid::user(&me), "create_project", Uid::organization(org));
        app.authorize(question).await?;
    }
    let project = new_project(&app, &new.name, &me, new.organization, Phase::Planning).await?;
    Ok(Json(json!(project)))
}

/// `GET /projects/{id}`
pub async fn show(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    Ok(Json(json!(guard(&app, &me, "view", &id).await?)))
}

#[derive(Deserialize)]
pub struct Rename {
    name: String,
}

/// `PATCH /projects/{id} {name}`
pub async fn rename(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(body): Body<Rename>,
) -> Answer {
    update(&app, &me, &id, "edit", |p| p.name = body.name).await
}

/// `DELETE /projects/{id}`
pub async fn delete(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    guard(&app, &me, "delete", &id).await?;
    app.store.delete_project(&id).await?;
    Ok(Json(json!({"deleted": id})))
}

/// `POST /projects/{id}/copy`: the copy is private to its creator; no member carries over.
pub async fn copy(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    let original = guard(&app, &me, "copy", &id).await?;
    let name = format!("Copy of {}", original.name);
    let copy = new_project(&app, &name, &me, None, original.phase).await?;
    for item in app.store.items_of(&original.id).await? {
        new_item(&app, &copy.id, item.name, item.phase).await?;
    }
    Ok(Json(json!(copy)))
}

/// `GET /projects/{id}/export`: the project and its items, without its shares.
pub async fn export(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    let project = guard(&app, &me, "export", &id).await?;
    let items = app.store.items_of(&id).await?;
    Ok(Json(
        json!({"name": project.name, "phase": project.phase, "items": items}),
    ))
}

#[derive(Deserialize)]
pub struct Import {
    name: String,
    phase: Phase,
    #[serde(default)]
    items: Vec<ImportedItem>,
}

#[derive(Deserialize)]
pub struct ImportedItem {
    name: String,
    phase: Phase,
}

/// `POST /projects/import`: an imported project is the caller's and starts with no shares.
pub async fn import(
    State(app): State<App>,
    Caller(me): Caller,
    Body(dump): Body<Import>,
) -> Answer {
    let project = new_project(&app, &dump.name, &me, None, dump.phase).await?;
    for item in dump.items {
        new_item(&app, &project.id, item.name, item.phase).await?;
    }
    Ok(Json(json!(project)))
}

async fn update(
    app: &App,
    me: &str,
    id: &str,
    action: &str,
    change: impl FnOnce(&mut ProjectRec),
) -> Answer {
    let mut project = guard(app, me, action, id).await?;
    change(&mut project);
    app.store.save_project(&project).await?;
    Ok(Json(json!(project)))
}

/// `POST /projects/{id}/archive`
pub async fn archive(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    update(&app, &me, &id, "archive", |p| p.archived = true).await
}

/// `POST /projects/{id}/restore`
pub async fn restore(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    update(&app, &me, &id, "restore", |p| p.archived = false).await
}

#[derive(Deserialize)]
pub struct Visibility {
    public: bool,
}

/// `PUT /projects/{id}/visibility {public}`
pub async fn set_visibility(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(v): Body<Visibility>,
) -> Answer {
    update(&app, &me, &id, "set_visibility", |p| p.public = v.public).await
}

#[derive(Deserialize)]
pub struct Settings {
    downloads_enabled: Option<bool>,
    editors_can_share: Option<bool>,
}

/// `PUT /projects/{id}/settings {downloads_enabled?, editors_can_share?}`: who may get what
/// out of a project is set like its visibility, by privileged users (`set_visibility`).
pub async fn settings(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(s): Body<Settings>,
) -> Answer {
    update(&app, &me, &id, "set_visibility", |p| {
        p.downloads_enabled = s.downloads_enabled.unwrap_or(p.downloads_enabled);
        p.editors_can_share = s.editors_can_share.unwrap_or(p.editors_can_share);
    })
    .await
}

/// `POST /projects/{id}/advance`: planning -> processing -> report ready.
pub async fn advance(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    let mut project = guard(&app, &me, "advance_phase", &id).await?;
    project.phase = project
        .phase
        .next()
        .ok_or_else(|| AppError::Conflict("the report is ready: no phase follows".into()))?;
    app.store.save_project(&project).await?;
    Ok(Json(json!(project)))
}

/// `POST /projects/{id}/processing`
pub async fn run_processing(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let project = guard(&app, &me, "run_processing", &id).await?;
    Ok(Json(
        json!({"processing": "started", "project": project.id, "phase": project.phase}),
    ))
}

/// `GET /projects/{id}/report`
pub async fn report(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    let project = guard(&app, &me, "export_report", &id).await?;
    Ok(Json(
        json!({"report": format!("Report of {}", project.name)}),
    ))
}

/// `GET /projects/{id}/download`
pub async fn download(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let project = guard(&app, &me, "download", &id).await?;
    Ok(Json(json!({"download": format!("{}.zip", project.id)})))
}

#[derive(Deserialize)]
pub struct NewItem {
    name: String,
}

/// `POST /projects/{id}/items {name}`: adding content is editing the project; the item
/// belongs to the project's current phase.
pub async fn add_item(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(new): Body<NewItem>,
) -> Answer {
    let project = guard(&app, &me, "edit", &id).await?;
    let item = new_item(&app, &project.id, new.name, project.phase).await?;
    Ok(Json(json!(item)))
}

async fn item_guard(app: &App, me: &str, action: &str, id: &str) -> Result<ItemRec, AppError> {
    let item = app
        .store
        .item(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no item `{id}`")))?;
    app.authorize(Question::new(Uid::user(me), action, Uid::item(id)))
        .await?;
    Ok(item)
}

/// `GET /items/{id}`
pub async fn show_item(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    Ok(Json(json!(item_guard(&app, &me, "view", &id).await?)))
}

/// `PATCH /items/{id} {name}`
pub async fn edit_item(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(body): Body<Rename>,
) -> Answer {
    let mut item = item_guard(&app, &me, "edit", &id).await?;
    app.store.rename_item(&id, &body.name).await?;
    item.name = body.name;
    Ok(Json(json!(item)))
}

/// `DELETE /items/{id}`
pub async fn delete_item(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    item_guard(&app, &me, "delete", &id).await?;
    app.store.delete_item(&id).await?;
    Ok(Json(json!({"deleted": id})))
}

/// `GET /items/{id}/download`
pub async fn download_item(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let item = item_guard(&app, &me, "download", &id).await?;
    Ok(Json(json!({"download": format!("{}.bin", item.id)})))
}

/// `GET /projects/{id}/buttons`: the actions the caller may take on the project page, from
/// `allowed_actions`.
pub async fn buttons(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    find_project(&app, &id).await?;
    let answer = app
        .gatehouse()
        .allowed_actions(&Uid::user(&me), &Uid::project(&id), None, &[])
        .await?;
    Ok(Json(
        json!({"allowed": answer.body.allowed, "needs_context": answer.body.needs_context}),
    ))
}
