//! Random worlds of the domain with many resources: users in project and organization
//! groups, organizations, projects (owners, phases, flags, some in an organization), items
//! and share tokens. What plans are checked against, resource by resource.

use std::time::{Duration, SystemTime};

use gatehouse_client::{Entity, Item, Organization, Phase, Project, Role, ShareToken, Uid, User};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Phases, with one outside the three (which grants shared users nothing phase-bound).
pub const PHASES: [&str; 4] = ["planning", "processing", "report_ready", "review"];
const PROJECT_ROLES: [Role; 4] = [Role::Admin, Role::Manager, Role::Editor, Role::Viewer];
const ORG_GROUPS: [&str; 5] = ["admins", "data_owners", "editors", "viewers", "members"];

/// The time every token's expiry is measured against.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A project.
#[derive(Debug, Clone)]
pub struct ProjectSpec {
    /// Index of its owner among the users.
    pub owner: usize,
    /// Index of its organization, if any.
    pub organization: Option<usize>,
    /// Index into [`PHASES`].
    pub phase: usize,
    /// archived, public, downloads_enabled, editors_can_share.
    pub flags: [bool; 4],
}

/// A world: `users` users `u0…`, `orgs` organizations `o0…`, projects `p0…`, items `i0…`
/// and tokens `t0…`.
#[derive(Debug, Clone)]
pub struct World {
    /// How many users.
    pub users: usize,
    /// How many organizations.
    pub orgs: usize,
    /// The projects.
    pub projects: Vec<ProjectSpec>,
    /// Each item's project and phase (index into [`PHASES`]).
    pub items: Vec<(usize, usize)>,
    /// Each token's project, whether it is still valid, and whether it is revoked.
    pub tokens: Vec<(usize, bool, bool)>,
    /// Per user, membership of every group: the projects' four, then the organizations'
    /// five, in order.
    pub membership: Vec<Vec<bool>>,
}

const MAX_USERS: usize = 4;
const MAX_ORGS: usize = 2;
const MAX_PROJECTS: usize = 6;

/// A random world.
pub fn world() -> impl Strategy<Value = World> {
    (2..=MAX_USERS, 0..=MAX_ORGS, 1..=MAX_PROJECTS)
        .prop_flat_map(|(users, orgs, projects)| {
            let project = (
                0..users,
                prop::option::weighted(0.6, 0..orgs.max(1)),
                0..PHASES.len(),
                any::<[bool; 4]>(),
            )
                .prop_map(move |(owner, org, phase, flags)| ProjectSpec {
                    owner,
                    organization: org.filter(|_| orgs > 0),
                    phase,
                    flags,
                });
            let groups = projects * 4 + orgs * 5;
            (
                Just((users, orgs)),
                prop::collection::vec(project, projects),
                prop::collection::vec((0..projects, 0..PHASES.len()), 0..6),
                prop::collection::vec((0..projects, any::<bool>(), any::<bool>()), 0..3),
                prop::collection::vec(
                    prop::collection::vec(prop::bool::weighted(0.2), groups),
                    users,
                ),
            )
        })
        .prop_map(
            |((users, orgs), projects, items, tokens, membership)| World {
                users,
                orgs,
                projects,
                items,
                tokens,
                membership,
            },
        )
}

impl World {
    /// User `i`'s id.
    pub fn user(i: usize) -> String {
        format!("u{i}")
    }

    /// Every group of the world's projects and organizations, by id.
    pub fn project_and_org_groups(&self) -> Vec<String> {
        let mut groups = Vec::new();
        for p in 0..self.projects.len() {
            for role in PROJECT_ROLES {
                groups.push(Project::group(&format!("p{p}"), role).id);
            }
        }
        for o in 0..self.orgs {
            for role in ORG_GROUPS {
                groups.push(format!("o{o}.{role}"));
            }
        }
        groups
    }

    /// The groups user `u` is in, as uids.
    pub fn groups_of(&self, u: usize) -> Vec<Uid> {
        let mut groups = Vec::new();
        for (g, member) in self.membership[u].iter().enumerate() {
            if !member {
                continue;
            }
            let p = self.projects.len() * 4;
            groups.push(if g < p {
                Project::group(&format!("p{}", g / 4), PROJECT_ROLES[g % 4])
            } else {
                let (o, role) = ((g - p) / 5, ORG_GROUPS[(g - p) % 5]);
                Uid::new("Group", format!("o{o}.{role}"))
            });
        }
        groups
    }

    /// The users, with their groups.
    pub fn user_entities(&self) -> Vec<Entity> {
        (0..self.users)
            .map(|u| {
                let mut user = User::new(Self::user(u));
                for group in self.groups_of(u) {
                    user = user.member_of(group);
                }
                user.build()
            })
            .collect()
    }

    /// The organizations.
    pub fn org_entities(&self) -> Vec<Entity> {
        (0..self.orgs)
            .map(|o| Organization::new(format!("o{o}")).build())
            .collect()
    }

    /// The projects, items and tokens.
    pub fn resource_entities(&self) -> Vec<Entity> {
        let mut all = Vec::new();
        for (i, p) in self.projects.iter().enumerate() {
            let mut project = Project::new(format!("p{i}"), Self::user(p.owner))
                .archived(p.flags[0])
                .public(p.flags[1])
                .downloads_enabled(p.flags[2])
                .editors_can_share(p.flags[3]);
            if let Some(o) = p.organization {
                project = project.organization(format!("o{o}"));
            }
            let mut project = project.build();
            project.attrs.insert("phase".into(), json!(PHASES[p.phase]));
            all.push(project);
        }
        for (i, &(p, phase)) in self.items.iter().enumerate() {
            let mut item = Item::new(format!("i{i}"), format!("p{p}"), Phase::Planning).build();
            item.attrs.insert("phase".into(), json!(PHASES[phase]));
            all.push(item);
        }
        for (i, &(p, valid, revoked)) in self.tokens.iter().enumerate() {
            let expiry = if valid {
                now() + Duration::from_secs(60)
            } else {
                now() - Duration::from_secs(60)
            };
            all.push(
                ShareToken::new(format!("t{i}"), format!("p{p}"), expiry)
                    .revoked(revoked)
                    .build(),
            );
        }
        all
    }

    /// Every entity of the world, as Cedar entity JSON.
    pub fn all_json(&self) -> Value {
        let all: Vec<Entity> = self
            .user_entities()
            .into_iter()
            .chain(self.org_entities())
            .chain(self.resource_entities())
            .collect();
        serde_json::to_value(all).expect("json")
    }

    /// What a host knows without the resources: the users and organizations.
    pub fn known_json(&self) -> Value {
        let known: Vec<Entity> = self
            .user_entities()
            .into_iter()
            .chain(self.org_entities())
            .collect();
        serde_json::to_value(known).expect("json")
    }

    /// The ids of the resources of `resource_type`.
    pub fn ids_of(&self, resource_type: &str) -> Vec<String> {
        match resource_type {
            "Project" => (0..self.projects.len()).map(|i| format!("p{i}")).collect(),
            "Item" => (0..self.items.len()).map(|i| format!("i{i}")).collect(),
            "ShareToken" => (0..self.tokens.len()).map(|i| format!("t{i}")).collect(),
            "Organization" => (0..self.orgs).map(|i| format!("o{i}")).collect(),
            other => panic!("no resources of type {other}"),
        }
    }
}

/// Every (resource type, action, context) a list could be asked for, for one user: each
/// action that applies to users, with contexts that cover each context key (roles in and
/// out of the ceiling, a target that is another user, the asker, or absent).
pub fn listings(users: usize) -> Vec<(&'static str, &'static str, Value)> {
    let target = |u: usize| json!({"__entity": {"type": "User", "id": World::user(u)}});
    let mut all = Vec::new();
    for &action in super::PROJECT_ACTIONS
        .iter()
        .filter(|a| !super::CONTEXT_ACTIONS.contains(a))
    {
        all.push(("Project", action, json!({})));
    }
    for role in ["viewer", "manager", "admin", "owner"] {
        for u in 0..users {
            for action in ["share", "change_member_role", "accept_access_request"] {
                all.push((
                    "Project",
                    action,
                    json!({"role": role, "target": target(u)}),
                ));
            }
        }
        all.push(("Project", "share", json!({ "role": role })));
    }
    for u in 0..users {
        for action in ["remove_member", "transfer_ownership"] {
            all.push(("Project", action, json!({ "target": target(u) })));
        }
    }
    for action in ["view", "download", "edit", "delete"] {
        all.push(("Item", action, json!({})));
    }
    all.push((
        "ShareToken",
        "request_access",
        json!({ "now": gatehouse_client::datetime(now()) }),
    ));
    for action in ["view", "manage_roles", "create_project"] {
        all.push(("Organization", action, json!({})));
    }
    all
}
