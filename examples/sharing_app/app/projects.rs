//! Projects: create, view, edit, delete, copy, export, import, archive, restore, visibility,
//! phases, processing, reports, downloads, items, "my projects" and the buttons of a page.

use axum::Json;
use axum::extract::{Path, State};
use gatehouse::client::{BatchResult, Item, Organization, Phase, Question, Uid, User};
use serde::Deserialize;
use serde_json::{Value, json};

use super::db::ItemRec;
use super::{
    App, AppError, Body, Caller, find_project, guard, project_entity, project_slice,
    with_org_groups,
};

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
        let question = {
            let db = app.db();
            if !db.orgs.contains_key(org) {
                return Err(AppError::NotFound(format!("no organization `{org}`")));
            }
            let user = with_org_groups(&db, User::new(&me), &me, org).build();
            Question::new(Uid::user(&me), "create_project", Uid::organization(org))
                .entities([user, Organization::new(org).build()])
        };
        app.authorize(question).await?;
    }
    let project = app.db().new_project(&new.name, &me, new.organization);
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
    guard(&app, &me, "edit", &id).await?;
    let mut db = app.db();
    let project = db
        .projects
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
    project.name = body.name;
    Ok(Json(json!(project)))
}

/// `DELETE /projects/{id}`
pub async fn delete(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    guard(&app, &me, "delete", &id).await?;
    let mut db = app.db();
    db.projects.remove(&id);
    db.items.retain(|_, item| item.project != id);
    Ok(Json(json!({"deleted": id})))
}

/// `POST /projects/{id}/copy`: the copy is private to its creator; no member carries over.
pub async fn copy(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    let original = guard(&app, &me, "copy", &id).await?;
    let mut db = app.db();
    let mut copy = db.new_project(&format!("Copy of {}", original.name), &me, None);
    copy.phase = original.phase;
    db.projects.insert(copy.id.clone(), copy.clone());
    copy_items(&mut db, &original.id, &copy.id);
    Ok(Json(json!(copy)))
}

fn copy_items(db: &mut super::Db, from: &str, to: &str) {
    let items: Vec<ItemRec> = db
        .items
        .values()
        .filter(|i| i.project == from)
        .cloned()
        .collect();
    for item in items {
        let id = db.id("item");
        db.items.insert(
            id.clone(),
            ItemRec {
                id,
                project: to.to_string(),
                ..item
            },
        );
    }
}

/// `GET /projects/{id}/export`: the project and its items, without its shares.
pub async fn export(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    let project = guard(&app, &me, "export", &id).await?;
    let db = app.db();
    let items: Vec<&ItemRec> = db.items.values().filter(|i| i.project == id).collect();
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
    let mut db = app.db();
    let mut project = db.new_project(&dump.name, &me, None);
    project.phase = dump.phase;
    db.projects.insert(project.id.clone(), project.clone());
    for item in dump.items {
        let id = db.id("item");
        db.items.insert(
            id.clone(),
            ItemRec {
                id,
                project: project.id.clone(),
                name: item.name,
                phase: item.phase,
            },
        );
    }
    Ok(Json(json!(project)))
}

async fn update(
    app: &App,
    me: &str,
    id: &str,
    action: &str,
    change: impl FnOnce(&mut super::ProjectRec),
) -> Answer {
    guard(app, me, action, id).await?;
    let mut db = app.db();
    let project = db
        .projects
        .get_mut(id)
        .ok_or_else(|| AppError::NotFound(id.to_string()))?;
    change(project);
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
    let project = guard(&app, &me, "advance_phase", &id).await?;
    let next = project
        .phase
        .next()
        .ok_or_else(|| AppError::Conflict("the report is ready: no phase follows".into()))?;
    let mut db = app.db();
    let project = db
        .projects
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
    project.phase = next;
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
    let mut db = app.db();
    let item_id = db.id("item");
    let item = ItemRec {
        id: item_id.clone(),
        project: project.id,
        name: new.name,
        phase: project.phase,
    };
    db.items.insert(item_id, item.clone());
    Ok(Json(json!(item)))
}

/// `GET /projects/{id}/items`: the items the caller may see, decided in one batch.
pub async fn list_items(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let (shared, questions, items) = {
        let db = app.db();
        let project = find_project(&db, &id)?;
        let items: Vec<ItemRec> = db
            .items
            .values()
            .filter(|i| i.project == id)
            .cloned()
            .collect();
        let mut shared = project_slice(&db, &me, &project, &[]);
        shared.extend(
            items
                .iter()
                .map(|i| Item::new(&i.id, &i.project, i.phase).build()),
        );
        let questions: Vec<Question> = items
            .iter()
            .map(|i| Question::new(Uid::user(&me), "view", Uid::item(&i.id)))
            .collect();
        (shared, questions, items)
    };
    let visible = decide_all(&app, &shared, &questions).await?;
    let items: Vec<&ItemRec> = items
        .iter()
        .zip(visible)
        .filter(|(_, v)| *v)
        .map(|(i, _)| i)
        .collect();
    Ok(Json(json!({"items": items})))
}

/// One batch (split at the sidecar's batch limit); true where allowed.
async fn decide_all(
    app: &App,
    shared: &[gatehouse::client::Entity],
    questions: &[Question],
) -> Result<Vec<bool>, AppError> {
    let mut allowed = Vec::with_capacity(questions.len());
    for chunk in questions.chunks(100) {
        let answer = app.gatehouse.batch(shared, chunk).await?;
        allowed.extend(
            answer
                .body
                .iter()
                .map(|r| matches!(r, BatchResult::Decided(d) if d.allowed())),
        );
    }
    Ok(allowed)
}

async fn item_guard(app: &App, me: &str, action: &str, id: &str) -> Result<ItemRec, AppError> {
    let (item, question) = {
        let db = app.db();
        let item = db
            .items
            .get(id)
            .cloned()
            .ok_or_else(|| AppError::NotFound(format!("no item `{id}`")))?;
        let project = find_project(&db, &item.project)?;
        let mut entities = project_slice(&db, me, &project, &[]);
        entities.push(Item::new(&item.id, &item.project, item.phase).build());
        (
            item,
            Question::new(Uid::user(me), action, Uid::item(id)).entities(entities),
        )
    };
    app.authorize(question).await?;
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
    item_guard(&app, &me, "edit", &id).await?;
    let mut db = app.db();
    let item = db
        .items
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
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
    app.db().items.remove(&id);
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

/// `GET /my/projects`: owned, shared with me, and (for organization members) the
/// organization's projects, each listed when `view` is allowed, in one batch. Archived
/// projects thus vanish from shared users' lists and stay in their owner's.
pub async fn my_projects(State(app): State<App>, Caller(me): Caller) -> Answer {
    let (shared, questions, candidates) = {
        let db = app.db();
        let my_orgs: Vec<&String> = db
            .orgs
            .iter()
            .filter(|(_, o)| o.roles.contains_key(&me))
            .map(|(id, _)| id)
            .collect();
        let candidates: Vec<(super::ProjectRec, &'static str)> = db
            .projects
            .values()
            .filter_map(|p| {
                let kind = if p.owner == me {
                    "owned"
                } else if p.members.contains_key(&me) {
                    "shared"
                } else if p
                    .organization
                    .as_ref()
                    .is_some_and(|o| my_orgs.contains(&o))
                {
                    "organization"
                } else {
                    return None;
                };
                Some((p.clone(), kind))
            })
            .collect();
        // One user entity holding every group relevant to these projects.
        let mut user = User::new(&me);
        let mut shared = Vec::new();
        for (project, _) in &candidates {
            if let Some(role) = project.members.get(&me) {
                user = user.member_of(gatehouse::client::Project::group(&project.id, *role));
            }
            shared.push(project_entity(project));
        }
        for org in &my_orgs {
            user = with_org_groups(&db, user, &me, org);
            shared.push(Organization::new(org.as_str()).build());
        }
        shared.push(user.build());
        let questions: Vec<Question> = candidates
            .iter()
            .map(|(p, _)| Question::new(Uid::user(&me), "view", Uid::project(&p.id)))
            .collect();
        (shared, questions, candidates)
    };
    let visible = decide_all(&app, &shared, &questions).await?;
    let mut lists = json!({"owned": [], "shared": [], "organization": []});
    for ((project, kind), visible) in candidates.into_iter().zip(visible) {
        if visible && let Some(list) = lists[kind].as_array_mut() {
            list.push(
                json!({"id": project.id, "name": project.name, "archived": project.archived}),
            );
        }
    }
    Ok(Json(lists))
}

/// `GET /projects/{id}/buttons`: the actions the caller may take on the project page, from
/// `allowed_actions`.
pub async fn buttons(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    let entities = {
        let db = app.db();
        project_slice(&db, &me, &find_project(&db, &id)?, &[])
    };
    let answer = app
        .gatehouse
        .allowed_actions(&Uid::user(&me), &Uid::project(&id), None, &entities)
        .await?;
    Ok(Json(
        json!({"allowed": answer.body.allowed, "needs_context": answer.body.needs_context}),
    ))
}
