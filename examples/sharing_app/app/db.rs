//! The host's own records: users, organizations, projects and their members, items,
//! invitations, share tokens and access requests. In memory, behind one std mutex that is
//! never held across an `.await` (handlers copy what they need, ask gatehouse, then lock
//! again to write).

use std::collections::BTreeMap;
use std::time::SystemTime;

use gatehouse::client::{Phase, Role};
use serde::{Deserialize, Serialize};

/// An organization-wide role. Every role implies membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// A member with no organization-wide project role.
    Member,
    /// Read Only on every project of the organization.
    Viewer,
    /// Read and Write on every project.
    Editor,
    /// Data Owner (Just Administrator) on every project.
    DataOwner,
    /// Organization admin: Full Administrator everywhere, manages the organization's roles.
    Admin,
}

impl OrgRole {
    /// The project role it grants on the organization's projects, if any.
    pub fn project_role(self) -> Option<Role> {
        match self {
            OrgRole::Member => None,
            OrgRole::Viewer => Some(Role::Viewer),
            OrgRole::Editor => Some(Role::Editor),
            OrgRole::DataOwner => Some(Role::Manager),
            OrgRole::Admin => Some(Role::Admin),
        }
    }
}

/// A user account.
#[derive(Debug, Clone, Serialize)]
pub struct UserRec {
    /// The e-mail address, matched against e-mail invitations.
    pub email: Option<String>,
}

/// An organization: its members and their organization-wide roles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrgRec {
    /// Member id -> role.
    pub roles: BTreeMap<String, OrgRole>,
}

/// A project.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectRec {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// Its organization, if any.
    pub organization: Option<String>,
    /// Explicit members and their project roles.
    pub members: BTreeMap<String, Role>,
    /// The phase.
    pub phase: Phase,
    /// Archived projects vanish from shared users' lists.
    pub archived: bool,
    /// Public projects may be viewed and copied by anyone.
    pub public: bool,
    /// Whether shared users may download.
    pub downloads_enabled: bool,
    /// Whether editors may share.
    pub editors_can_share: bool,
}

/// An item of a project, in a phase.
#[derive(Debug, Clone, Serialize)]
pub struct ItemRec {
    /// Its id.
    pub id: String,
    /// Its project.
    pub project: String,
    /// Its name.
    pub name: String,
    /// Its phase.
    pub phase: Phase,
}

/// Who an invitation is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invitee {
    /// A user with an account.
    User(String),
    /// An e-mail address, perhaps without an account yet.
    Email(String),
}

/// Where an invitation or an access request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for an answer.
    Pending,
    /// Accepted.
    Accepted,
    /// Cancelled by the project's side.
    Cancelled,
    /// Rejected by the project's side.
    Rejected,
}

/// An invitation to a project.
#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    /// Its id.
    pub id: String,
    /// The project.
    pub project: String,
    /// Who is invited.
    pub invitee: Invitee,
    /// The role offered.
    pub role: Role,
    /// Where it stands.
    pub status: Status,
    /// How many times it was sent.
    pub sent: u32,
}

/// A share token.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRec {
    /// The token string.
    pub id: String,
    /// The project.
    pub project: String,
    /// When it stops admitting requests.
    #[serde(serialize_with = "gatehouse::policy::store::rfc3339")]
    pub expires_at: SystemTime,
    /// Stopped sharing.
    pub revoked: bool,
}

/// An access request made with a token.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRequest {
    /// Its id.
    pub id: String,
    /// The token used.
    pub token: String,
    /// The project.
    pub project: String,
    /// Who asks.
    pub requester: String,
    /// Where it stands.
    pub status: Status,
    /// The role granted, once accepted.
    pub role: Option<Role>,
}

/// Everything the host knows.
#[derive(Debug, Default)]
pub struct Db {
    /// Users by id.
    pub users: BTreeMap<String, UserRec>,
    /// Organizations by id.
    pub orgs: BTreeMap<String, OrgRec>,
    /// Projects by id.
    pub projects: BTreeMap<String, ProjectRec>,
    /// Items by id.
    pub items: BTreeMap<String, ItemRec>,
    /// Invitations by id.
    pub invitations: BTreeMap<String, Invitation>,
    /// Tokens by token string.
    pub tokens: BTreeMap<String, TokenRec>,
    /// Access requests by id.
    pub requests: BTreeMap<String, AccessRequest>,
    next: u64,
}

impl Db {
    /// A fresh id with a prefix: `p1`, `item7`…
    pub fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    /// A new project with no members.
    pub fn new_project(
        &mut self,
        name: &str,
        owner: &str,
        organization: Option<String>,
    ) -> ProjectRec {
        let id = self.id("p");
        let project = ProjectRec {
            id: id.clone(),
            name: name.to_string(),
            owner: owner.to_string(),
            organization,
            members: BTreeMap::new(),
            phase: Phase::Planning,
            archived: false,
            public: false,
            downloads_enabled: false,
            editors_can_share: false,
        };
        self.projects.insert(id, project.clone());
        project
    }
}
