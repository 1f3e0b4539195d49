//! Who has access: users and organizations, invitations, members and roles, leaving,
//! ownership transfer, share tokens and access requests.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use gatehouse::client::{Organization, Question, Role, ShareToken, Uid, User, datetime};
use serde::Deserialize;
use serde_json::{Value, json};

use super::db::{AccessRequest, Invitation, Invitee, OrgRec, OrgRole, Status, TokenRec, UserRec};
use super::{
    App, AppError, Body, Caller, find_project, guard, project_question, project_slice,
    with_org_groups,
};

type Answer = Result<Json<Value>, AppError>;

fn target(user: &str) -> Value {
    json!({"__entity": {"type": "User", "id": user}})
}

#[derive(Deserialize)]
pub struct NewUser {
    id: String,
    email: Option<String>,
}

/// `POST /users {id, email?}`: sign up (no authorization: anyone may).
pub async fn create_user(State(app): State<App>, Body(new): Body<NewUser>) -> Answer {
    let mut db = app.db();
    if db.users.contains_key(&new.id) {
        return Err(AppError::Conflict(format!("user `{}` exists", new.id)));
    }
    db.users.insert(
        new.id.clone(),
        UserRec {
            email: new.email.clone(),
        },
    );
    Ok(Json(json!({"id": new.id, "email": new.email})))
}

#[derive(Deserialize)]
pub struct NewOrg {
    id: String,
}

/// `POST /orgs {id}`: the creator becomes the organization's first admin.
pub async fn create_org(
    State(app): State<App>,
    Caller(me): Caller,
    Body(new): Body<NewOrg>,
) -> Answer {
    let mut db = app.db();
    if db.orgs.contains_key(&new.id) {
        return Err(AppError::Conflict(format!(
            "organization `{}` exists",
            new.id
        )));
    }
    let mut org = OrgRec::default();
    org.roles.insert(me, OrgRole::Admin);
    db.orgs.insert(new.id.clone(), org.clone());
    Ok(Json(json!({"id": new.id, "roles": org.roles})))
}

async fn guard_org(app: &App, me: &str, org: &str) -> Result<(), AppError> {
    let question = {
        let db = app.db();
        if !db.orgs.contains_key(org) {
            return Err(AppError::NotFound(format!("no organization `{org}`")));
        }
        let user = with_org_groups(&db, User::new(me), me, org).build();
        Question::new(Uid::user(me), "manage_roles", Uid::organization(org))
            .entities([user, Organization::new(org).build()])
    };
    app.authorize(question).await.map(drop)
}

#[derive(Deserialize)]
pub struct OrgRoleBody {
    role: OrgRole,
}

/// `PUT /orgs/{org}/members/{user} {role}`: organization admins set organization-wide roles.
pub async fn set_org_role(
    State(app): State<App>,
    Caller(me): Caller,
    Path((org, user)): Path<(String, String)>,
    Body(body): Body<OrgRoleBody>,
) -> Answer {
    guard_org(&app, &me, &org).await?;
    let mut db = app.db();
    if !db.users.contains_key(&user) {
        return Err(AppError::NotFound(format!("no user `{user}`")));
    }
    let org = db
        .orgs
        .get_mut(&org)
        .ok_or_else(|| AppError::NotFound(org.clone()))?;
    org.roles.insert(user, body.role);
    Ok(Json(json!({"roles": org.roles})))
}

/// `DELETE /orgs/{org}/members/{user}`
pub async fn remove_org_member(
    State(app): State<App>,
    Caller(me): Caller,
    Path((org, user)): Path<(String, String)>,
) -> Answer {
    guard_org(&app, &me, &org).await?;
    let mut db = app.db();
    let org = db
        .orgs
        .get_mut(&org)
        .ok_or_else(|| AppError::NotFound(org.clone()))?;
    org.roles.remove(&user);
    Ok(Json(json!({"roles": org.roles})))
}

/// `GET /projects/{id}/members`
pub async fn members(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    let project = guard(&app, &me, "view_members", &id).await?;
    Ok(Json(
        json!({"owner": project.owner, "members": project.members}),
    ))
}

#[derive(Deserialize)]
pub struct Invite {
    user: Option<String>,
    email: Option<String>,
    role: Role,
}

/// Asks `share` for an invitation: the role ceiling, and the organization rule on the target.
async fn guard_share(
    app: &App,
    me: &str,
    project_id: &str,
    invitee: &Invitee,
    role: Role,
) -> Result<(), AppError> {
    let question = {
        let db = app.db();
        let project = find_project(&db, project_id)?;
        let (context, others) = match invitee {
            Invitee::User(user) => (
                json!({"role": role.as_str(), "target": target(user)}),
                vec![user.as_str()],
            ),
            Invitee::Email(_) => (json!({"role": role.as_str()}), vec![]),
        };
        project_question(&db, me, "share", &project, Some(context), &others)
    };
    app.authorize(question).await.map(drop)
}

/// `POST /projects/{id}/invitations {user | email, role}`: a pending invitation.
pub async fn invite(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(body): Body<Invite>,
) -> Answer {
    let invitee = match (body.user, body.email) {
        (Some(user), None) => {
            if !app.db().users.contains_key(&user) {
                return Err(AppError::NotFound(format!("no user `{user}`")));
            }
            Invitee::User(user)
        }
        (None, Some(email)) => match app
            .db()
            .users
            .iter()
            .find(|(_, u)| u.email.as_deref() == Some(&email))
        {
            // An address of a known user is an invitation of that user.
            Some((user, _)) => Invitee::User(user.clone()),
            None => Invitee::Email(email),
        },
        _ => {
            return Err(AppError::BadRequest(
                "give exactly one of `user` and `email`".into(),
            ));
        }
    };
    guard_share(&app, &me, &id, &invitee, body.role).await?;
    let mut db = app.db();
    let invitation = Invitation {
        id: db.id("inv"),
        project: id,
        invitee,
        role: body.role,
        status: Status::Pending,
        sent: 1,
    };
    db.invitations
        .insert(invitation.id.clone(), invitation.clone());
    Ok(Json(json!(invitation)))
}

/// `GET /invitations`: the caller's pending invitations.
pub async fn my_invitations(State(app): State<App>, Caller(me): Caller) -> Answer {
    let db = app.db();
    let email = db.users.get(&me).and_then(|u| u.email.clone());
    let mine: Vec<&Invitation> = db
        .invitations
        .values()
        .filter(|i| i.status == Status::Pending && is_invitee(&i.invitee, &me, email.as_deref()))
        .collect();
    Ok(Json(json!({"invitations": mine})))
}

fn is_invitee(invitee: &Invitee, user: &str, email: Option<&str>) -> bool {
    match invitee {
        Invitee::User(u) => u == user,
        Invitee::Email(e) => Some(e.as_str()) == email,
    }
}

fn pending_invitation(app: &App, id: &str) -> Result<Invitation, AppError> {
    let invitation = app
        .db()
        .invitations
        .get(id)
        .cloned()
        .ok_or_else(|| AppError::NotFound(format!("no invitation `{id}`")))?;
    if invitation.status != Status::Pending {
        return Err(AppError::Conflict(format!(
            "invitation `{id}` is no longer pending"
        )));
    }
    Ok(invitation)
}

/// `POST /invitations/{id}/accept`: the invitee joins with the offered role.
pub async fn accept_invitation(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let invitation = pending_invitation(&app, &id)?;
    let mut db = app.db();
    let email = db.users.get(&me).and_then(|u| u.email.clone());
    if !is_invitee(&invitation.invitee, &me, email.as_deref()) {
        return Err(AppError::Forbidden {
            action: "accept_invitation".into(),
            reasons: vec!["not the invitee".into()],
            errors: vec![],
        });
    }
    let project = db
        .projects
        .get_mut(&invitation.project)
        .ok_or_else(|| AppError::NotFound(invitation.project.clone()))?;
    project.members.insert(me, invitation.role);
    let project = project.clone();
    if let Some(i) = db.invitations.get_mut(&id) {
        i.status = Status::Accepted;
    }
    Ok(Json(json!(project)))
}

/// `POST /invitations/{id}/cancel`: whoever may send this invitation may cancel it.
pub async fn cancel_invitation(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let invitation = pending_invitation(&app, &id)?;
    guard_share(
        &app,
        &me,
        &invitation.project,
        &invitation.invitee,
        invitation.role,
    )
    .await?;
    let mut db = app.db();
    let invitation = db
        .invitations
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
    invitation.status = Status::Cancelled;
    Ok(Json(json!(invitation)))
}

/// `POST /invitations/{id}/resend`
pub async fn resend_invitation(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let invitation = pending_invitation(&app, &id)?;
    guard_share(
        &app,
        &me,
        &invitation.project,
        &invitation.invitee,
        invitation.role,
    )
    .await?;
    let mut db = app.db();
    let invitation = db
        .invitations
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
    invitation.sent += 1;
    Ok(Json(json!(invitation)))
}

#[derive(Deserialize)]
pub struct RoleBody {
    role: Role,
}

/// `PUT /projects/{id}/members/{user} {role}`
pub async fn change_role(
    State(app): State<App>,
    Caller(me): Caller,
    Path((id, user)): Path<(String, String)>,
    Body(body): Body<RoleBody>,
) -> Answer {
    let question = {
        let db = app.db();
        let project = find_project(&db, &id)?;
        let context = json!({"role": body.role.as_str(), "target": target(&user)});
        project_question(
            &db,
            &me,
            "change_member_role",
            &project,
            Some(context),
            &[&user],
        )
    };
    app.authorize(question).await?;
    let mut db = app.db();
    let project = db
        .projects
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
    project.members.insert(user, body.role);
    Ok(Json(json!({"members": project.members})))
}

/// `DELETE /projects/{id}/members/{user}`
pub async fn remove_member(
    State(app): State<App>,
    Caller(me): Caller,
    Path((id, user)): Path<(String, String)>,
) -> Answer {
    let question = {
        let db = app.db();
        let project = find_project(&db, &id)?;
        project_question(
            &db,
            &me,
            "remove_member",
            &project,
            Some(json!({"target": target(&user)})),
            &[&user],
        )
    };
    app.authorize(question).await?;
    let mut db = app.db();
    let project = db
        .projects
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
    project.members.remove(&user);
    Ok(Json(json!({"members": project.members})))
}

/// `POST /projects/{id}/leave`: leave a project shared with you.
pub async fn leave(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    guard(&app, &me, "leave", &id).await?;
    let mut db = app.db();
    let project = db
        .projects
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
    project.members.remove(&me);
    Ok(Json(json!({"left": id})))
}

#[derive(Deserialize)]
pub struct Transfer {
    to: String,
}

/// `POST /projects/{id}/transfer {to}`: the previous owner keeps a Full Administrator share.
pub async fn transfer(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(body): Body<Transfer>,
) -> Answer {
    let question = {
        let db = app.db();
        if !db.users.contains_key(&body.to) {
            return Err(AppError::NotFound(format!("no user `{}`", body.to)));
        }
        let project = find_project(&db, &id)?;
        project_question(
            &db,
            &me,
            "transfer_ownership",
            &project,
            Some(json!({"target": target(&body.to)})),
            &[&body.to],
        )
    };
    app.authorize(question).await?;
    let mut db = app.db();
    let project = db
        .projects
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
    let previous = std::mem::replace(&mut project.owner, body.to.clone());
    project.members.remove(&body.to);
    project.members.insert(previous, Role::Admin);
    Ok(Json(json!(project)))
}

#[derive(Deserialize)]
pub struct NewToken {
    /// Seconds from now.
    expires_in_secs: Option<u64>,
    /// Or an RFC 3339 instant.
    expires_at: Option<String>,
}

/// `POST /projects/{id}/tokens {expires_in_secs | expires_at}`
pub async fn generate_token(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(body): Body<NewToken>,
) -> Answer {
    let expires_at = match (body.expires_in_secs, body.expires_at) {
        (Some(secs), None) => SystemTime::now() + Duration::from_secs(secs),
        (None, Some(at)) => humantime::parse_rfc3339_weak(&at)
            .map_err(|e| AppError::BadRequest(format!("`expires_at`: {e}")))?,
        _ => {
            return Err(AppError::BadRequest(
                "give exactly one of `expires_in_secs` and `expires_at`".into(),
            ));
        }
    };
    guard(&app, &me, "generate_share_token", &id).await?;
    let mut db = app.db();
    let token = TokenRec {
        id: format!("tok-{}", uuid::Uuid::new_v4().simple()),
        project: id,
        expires_at,
        revoked: false,
    };
    db.tokens.insert(token.id.clone(), token.clone());
    Ok(Json(json!(token)))
}

fn find_token(app: &App, token: &str) -> Result<TokenRec, AppError> {
    app.db()
        .tokens
        .get(token)
        .cloned()
        .ok_or_else(|| AppError::NotFound("no such token".into()))
}

/// `DELETE /tokens/{token}`: stop sharing (the token is revoked).
pub async fn stop_sharing(
    State(app): State<App>,
    Caller(me): Caller,
    Path(token): Path<String>,
) -> Answer {
    let record = find_token(&app, &token)?;
    guard(&app, &me, "stop_sharing", &record.project).await?;
    let mut db = app.db();
    let record = db
        .tokens
        .get_mut(&token)
        .ok_or_else(|| AppError::NotFound(token.clone()))?;
    record.revoked = true;
    Ok(Json(json!(record)))
}

/// `POST /tokens/{token}/requests`: anyone with the token asks for access.
pub async fn request_access(
    State(app): State<App>,
    Caller(me): Caller,
    Path(token): Path<String>,
) -> Answer {
    let record = find_token(&app, &token)?;
    let question = {
        let db = app.db();
        let project = find_project(&db, &record.project)?;
        let mut entities = project_slice(&db, &me, &project, &[]);
        entities.push(
            ShareToken::new(&record.id, &record.project, record.expires_at)
                .revoked(record.revoked)
                .build(),
        );
        Question::new(
            Uid::user(&me),
            "request_access",
            Uid::share_token(&record.id),
        )
        .context(json!({"now": datetime(SystemTime::now())}))
        .entities(entities)
    };
    app.authorize(question).await?;
    let mut db = app.db();
    let request = AccessRequest {
        id: db.id("req"),
        token,
        project: record.project,
        requester: me,
        status: Status::Pending,
        role: None,
    };
    db.requests.insert(request.id.clone(), request.clone());
    Ok(Json(json!(request)))
}

/// `GET /projects/{id}/requests`: the pending requests, for those who may answer them.
pub async fn list_requests(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    guard(&app, &me, "reject_access_request", &id).await?;
    let db = app.db();
    let pending: Vec<&AccessRequest> = db
        .requests
        .values()
        .filter(|r| r.project == id && r.status == Status::Pending)
        .collect();
    Ok(Json(json!({"requests": pending})))
}

fn pending_request(app: &App, id: &str) -> Result<AccessRequest, AppError> {
    let request = app
        .db()
        .requests
        .get(id)
        .cloned()
        .ok_or_else(|| AppError::NotFound(format!("no request `{id}`")))?;
    if request.status != Status::Pending {
        return Err(AppError::Conflict(format!(
            "request `{id}` is no longer pending"
        )));
    }
    Ok(request)
}

/// `POST /requests/{id}/accept {role}`: the requester joins at the chosen role.
pub async fn accept_request(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(body): Body<RoleBody>,
) -> Answer {
    let request = pending_request(&app, &id)?;
    let question = {
        let db = app.db();
        let project = find_project(&db, &request.project)?;
        let context = json!({"role": body.role.as_str(), "target": target(&request.requester)});
        project_question(
            &db,
            &me,
            "accept_access_request",
            &project,
            Some(context),
            &[&request.requester],
        )
    };
    app.authorize(question).await?;
    let mut db = app.db();
    let project = db
        .projects
        .get_mut(&request.project)
        .ok_or_else(|| AppError::NotFound(request.project.clone()))?;
    project.members.insert(request.requester.clone(), body.role);
    let record = db
        .requests
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
    record.status = Status::Accepted;
    record.role = Some(body.role);
    Ok(Json(json!(record)))
}

/// `POST /requests/{id}/reject`
pub async fn reject_request(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let request = pending_request(&app, &id)?;
    guard(&app, &me, "reject_access_request", &request.project).await?;
    let mut db = app.db();
    let record = db
        .requests
        .get_mut(&id)
        .ok_or_else(|| AppError::NotFound(id.clone()))?;
    record.status = Status::Rejected;
    Ok(Json(json!(record)))
}
