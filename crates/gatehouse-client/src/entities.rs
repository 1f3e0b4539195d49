//! Builders for the domain's entities, so a host never writes Cedar JSON by hand.
//!
//! Group ids follow one convention: project `p1`'s editors are `Group::"p1.editors"`,
//! organization `acme`'s members are `Group::"acme.members"`. [`Project::group`] and
//! [`Organization::group`] name them; [`User::member_of`] puts a user in one.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value, json};

/// An entity uid: `{"type": "User", "id": "vera"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Uid {
    /// The entity type, e.g. `User`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The id.
    pub id: String,
}

impl Uid {
    /// A uid of any type.
    pub fn new(type_name: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            type_name: type_name.into(),
            id: id.into(),
        }
    }

    /// `User::"id"`.
    pub fn user(id: impl Into<String>) -> Self {
        Self::new("User", id)
    }

    /// `Group::"id"`.
    pub fn group(id: impl Into<String>) -> Self {
        Self::new("Group", id)
    }

    /// `Project::"id"`.
    pub fn project(id: impl Into<String>) -> Self {
        Self::new("Project", id)
    }

    /// `Item::"id"`.
    pub fn item(id: impl Into<String>) -> Self {
        Self::new("Item", id)
    }

    /// `Organization::"id"`.
    pub fn organization(id: impl Into<String>) -> Self {
        Self::new("Organization", id)
    }

    /// `ShareToken::"id"`.
    pub fn share_token(id: impl Into<String>) -> Self {
        Self::new("ShareToken", id)
    }

    /// `Action::"id"`.
    pub fn action(id: impl Into<String>) -> Self {
        Self::new("Action", id)
    }

    /// Cedar's JSON for the uid.
    pub fn to_json(&self) -> Value {
        json!({"type": self.type_name, "id": self.id})
    }

    fn entity_ref(&self) -> Value {
        json!({"__entity": self.to_json()})
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{:?}", self.type_name, self.id)
    }
}

/// An entity in Cedar's JSON form, ready to send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entity {
    /// Its uid.
    pub uid: Uid,
    /// Its attributes, in Cedar's JSON.
    pub attrs: Map<String, Value>,
    /// The entities it is in.
    pub parents: Vec<Uid>,
}

impl Entity {
    fn new(uid: Uid) -> Self {
        Self {
            uid,
            attrs: Map::new(),
            parents: Vec::new(),
        }
    }
}

/// A project role (Read Only, Read and Write, Just Administrator, Full Administrator).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read Only.
    Viewer,
    /// Read and Write.
    Editor,
    /// Just Administrator (Data Owner): manages sharing, edits nothing.
    Manager,
    /// Full Administrator.
    Admin,
}

impl Role {
    /// The name the policies use: `viewer`, `editor`, `manager`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// The project group attribute of this role: `viewers`, `editors`, `managers`, `admins`.
    pub fn project_group(self) -> &'static str {
        match self {
            Role::Viewer => "viewers",
            Role::Editor => "editors",
            Role::Manager => "managers",
            Role::Admin => "admins",
        }
    }

    /// The organization group attribute of this role: `viewers`, `editors`, `data_owners`,
    /// `admins`.
    pub fn organization_group(self) -> &'static str {
        match self {
            Role::Manager => "data_owners",
            other => other.project_group(),
        }
    }
}

/// A project phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// `planning`
    Planning,
    /// `processing`
    Processing,
    /// `report_ready`
    ReportReady,
}

impl Phase {
    /// The name the policies use.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Planning => "planning",
            Phase::Processing => "processing",
            Phase::ReportReady => "report_ready",
        }
    }

    /// The next phase, if any.
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::Planning => Some(Phase::Processing),
            Phase::Processing => Some(Phase::ReportReady),
            Phase::ReportReady => None,
        }
    }
}

/// A `User`.
#[derive(Debug, Clone)]
pub struct User(Entity);

impl User {
    /// User `id`, in no group.
    pub fn new(id: impl Into<String>) -> Self {
        Self(Entity::new(Uid::user(id)))
    }

    /// Sets the e-mail address.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.0
            .attrs
            .insert("email".into(), Value::String(email.into()));
        self
    }

    /// Puts the user in a group (see [`Project::group`], [`Organization::group`]).
    pub fn member_of(mut self, group: Uid) -> Self {
        if !self.0.parents.contains(&group) {
            self.0.parents.push(group);
        }
        self
    }

    /// The entity.
    pub fn build(self) -> Entity {
        self.0
    }
}

/// A `Group`: a role group of a project or an organization (see [`Project::group`],
/// [`Organization::group`]). Groups have no attributes or parents. Deciding membership needs
/// only the user's `member_of` groups; send the group entities too when a policy reads them.
#[derive(Debug, Clone)]
pub struct Group(Entity);

impl Group {
    /// The group with this uid, e.g. `Group::new(Project::group("p1", Role::Editor))`.
    pub fn new(uid: Uid) -> Self {
        Self(Entity::new(uid))
    }

    /// The entity.
    pub fn build(self) -> Entity {
        self.0
    }
}

/// An `Organization`, with its five groups named `{id}.admins`, `{id}.data_owners`,
/// `{id}.editors`, `{id}.viewers`, `{id}.members`.
#[derive(Debug, Clone)]
pub struct Organization(Entity);

impl Organization {
    /// Organization `id`.
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        let mut entity = Entity::new(Uid::organization(&id));
        for attr in ["admins", "data_owners", "editors", "viewers", "members"] {
            entity
                .attrs
                .insert(attr.into(), Uid::group(format!("{id}.{attr}")).entity_ref());
        }
        Self(entity)
    }

    /// The group of organization `id` holding the organization-wide `role`.
    pub fn group(id: &str, role: Role) -> Uid {
        Uid::group(format!("{id}.{}", role.organization_group()))
    }

    /// The group of every member of organization `id`.
    pub fn members(id: &str) -> Uid {
        Uid::group(format!("{id}.members"))
    }

    /// The entity.
    pub fn build(self) -> Entity {
        self.0
    }
}

/// A `Project`, with its four groups named `{id}.admins`, `{id}.managers`, `{id}.editors`,
/// `{id}.viewers`. New projects are in planning, private, not archived, downloads disabled,
/// editors not allowed to share.
#[derive(Debug, Clone)]
pub struct Project(Entity);

impl Project {
    /// Project `id` owned by `owner`.
    pub fn new(id: impl Into<String>, owner: impl Into<String>) -> Self {
        let id = id.into();
        let mut entity = Entity::new(Uid::project(&id));
        entity
            .attrs
            .insert("owner".into(), Uid::user(owner).entity_ref());
        for role in [Role::Admin, Role::Manager, Role::Editor, Role::Viewer] {
            entity.attrs.insert(
                role.project_group().into(),
                Project::group(&id, role).entity_ref(),
            );
        }
        let mut project = Self(entity);
        project = project.phase(Phase::Planning);
        for flag in [
            "archived",
            "public",
            "downloads_enabled",
            "editors_can_share",
        ] {
            project.0.attrs.insert(flag.into(), Value::Bool(false));
        }
        project
    }

    /// The group of project `id` holding `role`.
    pub fn group(id: &str, role: Role) -> Uid {
        Uid::group(format!("{id}.{}", role.project_group()))
    }

    /// Puts the project in an organization.
    pub fn organization(mut self, id: impl Into<String>) -> Self {
        self.0
            .attrs
            .insert("organization".into(), Uid::organization(id).entity_ref());
        self
    }

    /// Sets the phase.
    pub fn phase(mut self, phase: Phase) -> Self {
        self.0
            .attrs
            .insert("phase".into(), Value::String(phase.as_str().into()));
        self
    }

    /// Sets `archived`.
    pub fn archived(self, yes: bool) -> Self {
        self.flag("archived", yes)
    }

    /// Sets `public`.
    pub fn public(self, yes: bool) -> Self {
        self.flag("public", yes)
    }

    /// Sets `downloads_enabled`.
    pub fn downloads_enabled(self, yes: bool) -> Self {
        self.flag("downloads_enabled", yes)
    }

    /// Sets `editors_can_share`.
    pub fn editors_can_share(self, yes: bool) -> Self {
        self.flag("editors_can_share", yes)
    }

    fn flag(mut self, name: &str, yes: bool) -> Self {
        self.0.attrs.insert(name.into(), Value::Bool(yes));
        self
    }

    /// The entity.
    pub fn build(self) -> Entity {
        self.0
    }
}

/// An `Item` of a project, in a phase.
#[derive(Debug, Clone)]
pub struct Item(Entity);

impl Item {
    /// Item `id` of project `project` in `phase`; its parent is the project.
    pub fn new(id: impl Into<String>, project: impl Into<String>, phase: Phase) -> Self {
        let project = Uid::project(project);
        let mut entity = Entity::new(Uid::item(id));
        entity.attrs.insert("project".into(), project.entity_ref());
        entity
            .attrs
            .insert("phase".into(), Value::String(phase.as_str().into()));
        entity.parents.push(project);
        Self(entity)
    }

    /// The entity.
    pub fn build(self) -> Entity {
        self.0
    }
}

/// A `ShareToken` of a project.
#[derive(Debug, Clone)]
pub struct ShareToken(Entity);

impl ShareToken {
    /// Token `id` of project `project`, expiring at `expires_at`, not revoked.
    pub fn new(id: impl Into<String>, project: impl Into<String>, expires_at: SystemTime) -> Self {
        let mut entity = Entity::new(Uid::share_token(id));
        entity
            .attrs
            .insert("project".into(), Uid::project(project).entity_ref());
        entity
            .attrs
            .insert("expires_at".into(), datetime(expires_at));
        entity.attrs.insert("revoked".into(), Value::Bool(false));
        Self(entity)
    }

    /// Sets `revoked`.
    pub fn revoked(mut self, yes: bool) -> Self {
        self.0.attrs.insert("revoked".into(), Value::Bool(yes));
        self
    }

    /// The entity.
    pub fn build(self) -> Entity {
        self.0
    }
}

/// A Cedar `datetime` value in JSON.
pub fn datetime(time: SystemTime) -> Value {
    json!({"__extn": {"fn": "datetime", "arg": humantime::format_rfc3339_millis(time).to_string()}})
}
