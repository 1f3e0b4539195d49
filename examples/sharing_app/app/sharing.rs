//! Who has access: users and organizations, invitations, members and roles, leaving,
//! ownership transfer, share tokens and access requests.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use gatehouse_client::{Question, Role, Uid, datetime};
use serde::Deserialize;
use serde_json::{Value, json};

use super::db::{AccessRequest, Invitation, Invitee, OrgRole, Status, TokenRec};
use super::{App, AppError, Body, Caller, find_project, find_user, guard, project_question};

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
    if !app.store.create_user(&new.id, new.email.as_deref()).await? {
        return Err(AppError::Conflict(format!("user `{}` exists", new.id)));
    }
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
    if !app.store.create_org(&new.id, &me).await? {
        return Err(AppError::Conflict(format!(
            "organization `{}` exists",
            new.id
        )));
    }
    let roles = app.store.org_roles(&new.id).await?;
    Ok(Json(json!({"id": new.id, "roles": roles})))
}

async fn guard_org(app: &App, me: &str, org: &str) -> Result<(), AppError> {
    if !app.store.org_exists(org).await? {
        return Err(AppError::NotFound(format!("no organization `{org}`")));
    }
    let question = Question::new(Uid::user(me), "manage_roles", Uid::organization(org));
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
    find_user(&app, &user).await?;
    app.store.set_org_role(&org, &user, Some(body.role)).await?;
    Ok(Json(json!({"roles": app.store.org_roles(&org).await?})))
}

/// `DELETE /orgs/{org}/members/{user}`
pub async fn remove_org_member(
    State(app): State<App>,
    Caller(me): Caller,
    Path((org, user)): Path<(String, String)>,
) -> Answer {
    guard_org(&app, &me, &org).await?;
    app.store.set_org_role(&org, &user, None).await?;
    Ok(Json(json!({"roles": app.store.org_roles(&org).await?})))
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
    find_project(app, project_id).await?;
    let context = match invitee {
        Invitee::User(user) => json!({"role": role.as_str(), "target": target(user)}),
        Invitee::Email(_) => json!({"role": role.as_str()}),
    };
    let question = project_question(me, "share", project_id, Some(context));
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
            find_user(&app, &user).await?;
            Invitee::User(user)
        }
        // An address of a known user is an invitation of that user.
        (None, Some(email)) => match app.store.user_by_email(&email).await? {
            Some(user) => Invitee::User(user),
            None => Invitee::Email(email),
        },
        _ => {
            return Err(AppError::BadRequest(
                "give exactly one of `user` and `email`".into(),
            ));
        }
    };
    guard_share(&app, &me, &id, &invitee, body.role).await?;
    let invitation = Invitation {
        id: app.store.id("inv").await?,
        project: id,
        invitee,
        role: body.role,
        status: Status::Pending,
        sent: 1,
    };
    app.store.insert_invitation(&invitation).await?;
    Ok(Json(json!(invitation)))
}

/// `GET /invitations`: the caller's pending invitations.
pub async fn my_invitations(State(app): State<App>, Caller(me): Caller) -> Answer {
    let email = find_user(&app, &me).await?.email;
    let mine = app
        .store
        .pending_invitations_of(&me, email.as_deref())
        .await?;
    Ok(Json(json!({"invitations": mine})))
}

fn is_invitee(invitee: &Invitee, user: &str, email: Option<&str>) -> bool {
    match invitee {
        Invitee::User(u) => u == user,
        Invitee::Email(e) => Some(e.as_str()) == email,
    }
}

async fn pending_invitation(app: &App, id: &str) -> Result<Invitation, AppError> {
    let invitation = app
        .store
        .invitation(id)
        .await?
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
    let invitation = pending_invitation(&app, &id).await?;
    let email = find_user(&app, &me).await?.email;
    if !is_invitee(&invitation.invitee, &me, email.as_deref()) {
        return Err(AppError::Forbidden {
            action: "accept_invitation".into(),
            reasons: vec!["not the invitee".into()],
            errors: vec![],
        });
    }
    close_invitation(&app, &invitation, Status::Accepted, &me).await?;
    Ok(Json(json!(find_project(&app, &invitation.project).await?)))
}

/// Closes a pending invitation, or a 409 when someone else closed it first.
async fn close_invitation(
    app: &App,
    invitation: &Invitation,
    status: Status,
    user: &str,
) -> Result<Invitation, AppError> {
    if !app.store.close_invitation(invitation, status, user).await? {
        return Err(AppError::Conflict(format!(
            "invitation `{}` is no longer pending",
            invitation.id
        )));
    }
    Ok(Invitation {
        status,
        ..invitation.clone()
    })
}

/// `POST /invitations/{id}/cancel`: whoever may send this invitation may cancel it.
pub async fn cancel_invitation(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let invitation = pending_invitation(&app, &id).await?;
    guard_share(
        &app,
        &me,
        &invitation.project,
        &invitation.invitee,
        invitation.role,
    )
    .await?;
    let invitation = close_invitation(&app, &invitation, Status::Cancelled, &me).await?;
    Ok(Json(json!(invitation)))
}

/// `POST /invitations/{id}/resend`
pub async fn resend_invitation(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let mut invitation = pending_invitation(&app, &id).await?;
    guard_share(
        &app,
        &me,
        &invitation.project,
        &invitation.invitee,
        invitation.role,
    )
    .await?;
    app.store.resend_invitation(&id).await?;
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
    let project = find_project(&app, &id).await?;
    let context = json!({"role": body.role.as_str(), "target": target(&user)});
    let question = project_question(&me, "change_member_role", &project.id, Some(context));
    app.authorize(question).await?;
    app.store.set_member(&id, &user, Some(body.role)).await?;
    Ok(Json(json!({"members": app.store.members(&id).await?})))
}

/// `DELETE /projects/{id}/members/{user}`
pub async fn remove_member(
    State(app): State<App>,
    Caller(me): Caller,
    Path((id, user)): Path<(String, String)>,
) -> Answer {
    let project = find_project(&app, &id).await?;
    let context = json!({"target": target(&user)});
    let question = project_question(&me, "remove_member", &project.id, Some(context));
    app.authorize(question).await?;
    app.store.set_member(&id, &user, None).await?;
    Ok(Json(json!({"members": app.store.members(&id).await?})))
}

/// `POST /projects/{id}/leave`: leave a project shared with you.
pub async fn leave(State(app): State<App>, Caller(me): Caller, Path(id): Path<String>) -> Answer {
    guard(&app, &me, "leave", &id).await?;
    app.store.set_member(&id, &me, None).await?;
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
    find_user(&app, &body.to).await?;
    let project = find_project(&app, &id).await?;
    let context = json!({"target": target(&body.to)});
    let question = project_question(&me, "transfer_ownership", &project.id, Some(context));
    app.authorize(question).await?;
    app.store.transfer(&project, &body.to).await?;
    Ok(Json(json!(find_project(&app, &id).await?)))
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
    let token = TokenRec {
        id: format!("tok-{}", uuid::Uuid::new_v4().simple()),
        project: id,
        expires_at,
        revoked: false,
    };
    app.store.insert_token(&token).await?;
    Ok(Json(json!(token)))
}

async fn find_token(app: &App, token: &str) -> Result<TokenRec, AppError> {
    app.store
        .token(token)
        .await?
        .ok_or_else(|| AppError::NotFound("no such token".into()))
}

/// `DELETE /tokens/{token}`: stop sharing (the token is revoked).
pub async fn stop_sharing(
    State(app): State<App>,
    Caller(me): Caller,
    Path(token): Path<String>,
) -> Answer {
    let mut record = find_token(&app, &token).await?;
    guard(&app, &me, "stop_sharing", &record.project).await?;
    app.store.revoke_token(&token).await?;
    record.revoked = true;
    Ok(Json(json!(record)))
}

/// `POST /tokens/{token}/requests`: anyone with the token asks for access.
pub async fn request_access(
    State(app): State<App>,
    Caller(me): Caller,
    Path(token): Path<String>,
) -> Answer {
    let record = find_token(&app, &token).await?;
    let question = Question::new(
        Uid::user(&me),
        "request_access",
        Uid::share_token(&record.id),
    )
    .context(json!({"now": datetime(SystemTime::now())}));
    app.authorize(question).await?;
    let request = AccessRequest {
        id: app.store.id("req").await?,
        token,
        project: record.project,
        requester: me,
        status: Status::Pending,
        role: None,
    };
    app.store.insert_request(&request).await?;
    Ok(Json(json!(request)))
}

async fn pending_request(app: &App, id: &str) -> Result<AccessRequest, AppError> {
    let request = app
        .store
        .request(id)
        .await?
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
    let request = pending_request(&app, &id).await?;
    let project = find_project(&app, &request.project).await?;
    let context = json!({"role": body.role.as_str(), "target": target(&request.requester)});
    let question = project_question(&me, "accept_access_request", &project.id, Some(context));
    app.authorize(question).await?;
    let request = close_request(&app, &request, Status::Accepted, Some(body.role)).await?;
    Ok(Json(json!(request)))
}

/// Closes a pending request, or a 409 when someone else answered it first.
async fn close_request(
    app: &App,
    request: &AccessRequest,
    status: Status,
    role: Option<Role>,
) -> Result<AccessRequest, AppError> {
    if !app.store.close_request(request, status, role).await? {
        return Err(AppError::Conflict(format!(
            "request `{}` is no longer pending",
            request.id
        )));
    }
    Ok(AccessRequest {
        status,
        role,
        ..request.clone()
    })
}

/// `POST /requests/{id}/reject`
pub async fn reject_request(
    State(app): State<App>,
    Caller(me): Caller,
    Path(id): Path<String>,
) -> Answer {
    let request = pending_request(&app, &id).await?;
    guard(&app, &me, "reject_access_request", &request.project).await?;
    let request = close_request(&app, &request, Status::Rejected, None).await?;
    Ok(Json(json!(request)))
}
