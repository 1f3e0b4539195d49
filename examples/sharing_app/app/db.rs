//! The host's own records, in SQL through `sqlx`: SQLite by default (a file, or
//! `sqlite::memory:` for tests) and PostgreSQL for a `postgres://` URL, with the tables of
//! `migrations/`. One code path serves both: sqlx's `Any` driver, `$N` placeholders (which
//! SQLite reads too), and `sea-query` for the statements built from plans.
//!
//! A user's project and organization roles are rows of `memberships`: the user in the
//! role's group, which is what gatehouse reads (`User in resource.editors`) and what a plan's
//! SQL filter joins against.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use gatehouse_client::{Organization, Phase, Project, Role};
use sea_query::{PostgresQueryBuilder, QueryBuilder, SqliteQueryBuilder};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};

/// The migrations, embedded: the binary needs no files beside it.
const MIGRATIONS: [(i64, &str, &str); 2] = [
    (1, "records", include_str!("../migrations/0001_records.sql")),
    (
        2,
        "sharing flows",
        include_str!("../migrations/0002_sharing_flows.sql"),
    ),
];

/// The project roles, highest first.
pub const ROLES: [Role; 4] = [Role::Admin, Role::Manager, Role::Editor, Role::Viewer];

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

    /// The organization groups a member with this role is in.
    fn groups(self, org: &str) -> Vec<String> {
        let mut groups = vec![Organization::members(org).id];
        groups.extend(self.project_role().map(|r| Organization::group(org, r).id));
        groups
    }
}

/// The five groups of an organization: its members, then one per role.
pub fn org_groups(org: &str) -> [String; 5] {
    let role = |r: Role| Organization::group(org, r).id;
    [
        Organization::members(org).id,
        role(Role::Admin),
        role(Role::Manager),
        role(Role::Editor),
        role(Role::Viewer),
    ]
}

/// A user account.
#[derive(Debug, Clone, Serialize)]
pub struct UserRec {
    /// The e-mail address, matched against e-mail invitations.
    pub email: Option<String>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    pub sent: i64,
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

/// The database the records are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The records: a pool of connections to one database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

type Result<T> = std::result::Result<T, sqlx::Error>;

/// The columns of a project row, read by [`project_from`].
pub const PROJECT_COLUMNS: [&str; 9] = [
    "id",
    "name",
    "owner_id",
    "organization_id",
    "phase",
    "archived",
    "public",
    "downloads_enabled",
    "editors_can_share",
];

/// The boolean columns. sqlx's `Any` driver cannot read a column SQLite declares BOOLEAN:
/// they are selected as integers (which [`flag`] reads on both databases).
const BOOLEAN_COLUMNS: [&str; 5] = [
    "archived",
    "public",
    "downloads_enabled",
    "editors_can_share",
    "revoked",
];

/// The select list for `columns` of `table`, qualified by the table, booleans as integers.
pub fn select_list(table: &str, columns: &[&str]) -> Vec<String> {
    columns
        .iter()
        .map(|column| {
            if BOOLEAN_COLUMNS.contains(column) {
                format!("CAST({table}.{column} AS INTEGER) AS {column}")
            } else {
                format!("{table}.{column}")
            }
        })
        .collect()
}

impl Store {
    /// Connects to `url` (`sqlite://app.db?mode=rwc`, `sqlite::memory:`,
    /// `postgres://…`) and brings its tables up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(sqlx::Error::Configuration(
                format!("`{url}`: give a sqlite: or postgres:// URL").into(),
            ));
        };
        let options = AnyPoolOptions::new();
        let pool = if url.contains(":memory:") || url.contains("mode=memory") {
            // Each connection to an in-memory SQLite is a database of its own: keep one.
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect(url)
                .await?
        } else {
            options.max_connections(8).connect(url).await?
        };
        if backend == Backend::Sqlite {
            // Readers do not wait for a writer (a file database; memory ignores it).
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        Migrator::new(Embedded)
            .await?
            .run(&pool)
            .await
            .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        Ok(Self { pool, backend })
    }

    /// The pool, for queries of a handler's own.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The sea-query dialect of the database.
    pub fn dialect(&self) -> &'static dyn QueryBuilder {
        match self.backend {
            Backend::Sqlite => &SqliteQueryBuilder,
            Backend::Postgres => &PostgresQueryBuilder,
        }
    }

    /// A fresh id with a prefix: `p1`, `item7`…
    pub async fn id(&self, prefix: &str) -> Result<String> {
        let next: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'ids' RETURNING value",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(format!("{prefix}{next}"))
    }

    // Users.

    /// Creates a user; false when the id is taken.
    pub async fn create_user(&self, id: &str, email: Option<&str>) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(email)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user, if any.
    pub async fn user(&self, id: &str) -> Result<Option<UserRec>> {
        let row = sqlx::query("SELECT email FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(UserRec {
                email: row.try_get("email")?,
            })
        })
        .transpose()
    }

    /// The user with this e-mail address, if any.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1 ORDER BY id LIMIT 1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
    }

    /// The groups `user` is in.
    pub async fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT group_id FROM memberships WHERE user_id = $1 ORDER BY group_id")
            .bind(user)
            .fetch_all(&self.pool)
            .await
    }

    // Organizations.

    /// Creates organization `id` with `admin` as its first admin; false when the id is taken.
    pub async fn create_org(&self, id: &str, admin: &str) -> Result<bool> {
        let g = |role: &str| format!("{id}.{role}");
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO organizations (id, admins_group, data_owners_group, editors_group, viewers_group, members_group) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(g("admins"))
        .bind(g("data_owners"))
        .bind(g("editors"))
        .bind(g("viewers"))
        .bind(g("members"))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        for group in OrgRole::Admin.groups(id) {
            join(&mut tx, admin, &group).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Whether the organization exists.
    pub async fn org_exists(&self, id: &str) -> Result<bool> {
        exists(&self.pool, "SELECT 1 FROM organizations WHERE id = $1", id).await
    }

    /// The organization's members and their roles.
    pub async fn org_roles(&self, org: &str) -> Result<BTreeMap<String, OrgRole>> {
        let groups = org_groups(org);
        let sql = format!(
            "SELECT user_id, group_id FROM memberships WHERE group_id IN ({}) ORDER BY user_id",
            placeholders(1, groups.len())
        );
        let mut query = sqlx::query(&sql);
        for group in &groups {
            query = query.bind(group);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in rows {
            groups
                .entry(row.try_get("user_id")?)
                .or_default()
                .push(row.try_get("group_id")?);
        }
        Ok(groups
            .into_iter()
            .filter_map(|(user, groups)| Some((user, org_role_of(org, &groups)?)))
            .collect())
    }

    /// Sets (or with `None` removes) `user`'s role in `org`.
    pub async fn set_org_role(&self, org: &str, user: &str, role: Option<OrgRole>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for group in org_groups(org) {
            leave(&mut tx, user, &group).await?;
        }
        for group in role.map(|r| r.groups(org)).unwrap_or_default() {
            join(&mut tx, user, &group).await?;
        }
        tx.commit().await
    }

    // Projects and their members.

    /// The project and its members, if any.
    pub async fn project(&self, id: &str) -> Result<Option<ProjectRec>> {
        let sql = format!(
            "SELECT {} FROM projects WHERE id = $1",
            select_list("projects", &PROJECT_COLUMNS).join(", ")
        );
        let Some(row) = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut project = project_from(&row)?;
        project.members = self.members(id).await?;
        Ok(Some(project))
    }

    /// The project's explicit members and their roles.
    pub async fn members(&self, project: &str) -> Result<BTreeMap<String, Role>> {
        let groups = ROLES.map(|r| Project::group(project, r).id);
        let rows = sqlx::query(
            "SELECT user_id, group_id FROM memberships WHERE group_id IN ($1, $2, $3, $4)",
        )
        .bind(&groups[0])
        .bind(&groups[1])
        .bind(&groups[2])
        .bind(&groups[3])
        .fetch_all(&self.pool)
        .await?;
        let mut members = BTreeMap::new();
        for row in rows {
            let group: String = row.try_get("group_id")?;
            if let Some(role) = ROLES
                .iter()
                .find(|r| Project::group(project, **r).id == group)
            {
                // One role per member; were there two, the higher one.
                let slot = members.entry(row.try_get("user_id")?).or_insert(*role);
                *slot = (*slot).max(*role);
            }
        }
        Ok(members)
    }

    /// Stores a new project (its members too).
    pub async fn insert_project(&self, project: &ProjectRec) -> Result<()> {
        let groups = ROLES.map(|r| Project::group(&project.id, r).id);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO projects (id, name, owner_id, organization_id, admins_group, managers_group, editors_group, viewers_group, phase, archived, public, downloads_enabled, editors_can_share) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&project.id)
        .bind(&project.name)
        .bind(&project.owner)
        .bind(&project.organization)
        .bind(&groups[0])
        .bind(&groups[1])
        .bind(&groups[2])
        .bind(&groups[3])
        .bind(project.phase.as_str())
        .bind(project.archived)
        .bind(project.public)
        .bind(project.downloads_enabled)
        .bind(project.editors_can_share)
        .execute(&mut *tx)
        .await?;
        for (user, role) in &project.members {
            join(&mut tx, user, &Project::group(&project.id, *role).id).await?;
        }
        tx.commit().await
    }

    /// Writes the project's own fields (not its members).
    pub async fn save_project(&self, project: &ProjectRec) -> Result<()> {
        sqlx::query(
            "UPDATE projects SET name = $2, owner_id = $3, phase = $4, archived = $5, public = $6, downloads_enabled = $7, editors_can_share = $8 WHERE id = $1",
        )
        .bind(&project.id)
        .bind(&project.name)
        .bind(&project.owner)
        .bind(project.phase.as_str())
        .bind(project.archived)
        .bind(project.public)
        .bind(project.downloads_enabled)
        .bind(project.editors_can_share)
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// Deletes the project and everything of it: items, tokens, requests, invitations and
    /// its members' roles.
    pub async fn delete_project(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM access_requests WHERE project_id = $1",
            "DELETE FROM invitations WHERE project_id = $1",
            "DELETE FROM share_tokens WHERE project_id = $1",
            "DELETE FROM items WHERE project_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        for group in ROLES.map(|r| Project::group(id, r).id) {
            sqlx::query("DELETE FROM memberships WHERE group_id = $1")
                .bind(group)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Sets (or with `None` removes) `user`'s role on `project`.
    pub async fn set_member(&self, project: &str, user: &str, role: Option<Role>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        set_member(&mut tx, project, user, role).await?;
        tx.commit().await
    }

    /// Makes `to` the owner; the previous owner keeps a Full Administrator share.
    pub async fn transfer(&self, project: &ProjectRec, to: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE projects SET owner_id = $2 WHERE id = $1")
            .bind(&project.id)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        set_member(&mut tx, &project.id, to, None).await?;
        set_member(&mut tx, &project.id, &project.owner, Some(Role::Admin)).await?;
        tx.commit().await
    }

    // Items.

    /// The item, if any.
    pub async fn item(&self, id: &str) -> Result<Option<ItemRec>> {
        let row = sqlx::query("SELECT id, name, project_id, phase FROM items WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(item_from).transpose()
    }

    /// Every item of the project, by id.
    pub async fn items_of(&self, project: &str) -> Result<Vec<ItemRec>> {
        let rows = sqlx::query(
            "SELECT id, name, project_id, phase FROM items WHERE project_id = $1 ORDER BY id",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_from).collect()
    }

    /// Stores a new item.
    pub async fn insert_item(&self, item: &ItemRec) -> Result<()> {
        sqlx::query("INSERT INTO items (id, name, project_id, phase) VALUES ($1, $2, $3, $4)")
            .bind(&item.id)
            .bind(&item.name)
            .bind(&item.project)
            .bind(item.phase.as_str())
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Renames the item.
    pub async fn rename_item(&self, id: &str, name: &str) -> Result<()> {
        sqlx::query("UPDATE items SET name = $2 WHERE id = $1")
            .bind(id)
            .bind(name)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Deletes the item.
    pub async fn delete_item(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM items WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    // Invitations.

    /// Stores a new invitation.
    pub async fn insert_invitation(&self, invitation: &Invitation) -> Result<()> {
        let (user, email) = match &invitation.invitee {
            Invitee::User(user) => (Some(user), None),
            Invitee::Email(email) => (None, Some(email)),
        };
        sqlx::query(
            "INSERT INTO invitations (id, project_id, invitee_user, invitee_email, role, status, sent) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&invitation.id)
        .bind(&invitation.project)
        .bind(user)
        .bind(email)
        .bind(invitation.role.as_str())
        .bind(name_of(&invitation.status))
        .bind(invitation.sent)
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// The invitation, if any.
    pub async fn invitation(&self, id: &str) -> Result<Option<Invitation>> {
        let row = sqlx::query(
            "SELECT id, project_id, invitee_user, invitee_email, role, status, sent FROM invitations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(invitation_from).transpose()
    }

    /// The pending invitations of the user or of her address, by id.
    pub async fn pending_invitations_of(
        &self,
        user: &str,
        email: Option<&str>,
    ) -> Result<Vec<Invitation>> {
        let rows = sqlx::query(
            "SELECT id, project_id, invitee_user, invitee_email, role, status, sent FROM invitations \
             WHERE status = 'pending' AND (invitee_user = $1 OR invitee_email = $2) ORDER BY id",
        )
        .bind(user)
        .bind(email)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invitation_from).collect()
    }

    /// Moves a pending invitation to `status` (and the invitee into the project, when
    /// accepted by `user`); false when it was no longer pending.
    pub async fn close_invitation(
        &self,
        invitation: &Invitation,
        status: Status,
        user: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE invitations SET status = $2 WHERE id = $1 AND status = 'pending'")
                .bind(&invitation.id)
                .bind(name_of(&status))
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if status == Status::Accepted {
            set_member(&mut tx, &invitation.project, user, Some(invitation.role)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Counts one more sending of the invitation.
    pub async fn resend_invitation(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE invitations SET sent = sent + 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    // Share tokens.

    /// Stores a new token.
    pub async fn insert_token(&self, token: &TokenRec) -> Result<()> {
        sqlx::query(
            "INSERT INTO share_tokens (id, project_id, expires_at, revoked) VALUES ($1, $2, $3, $4)",
        )
        .bind(&token.id)
        .bind(&token.project)
        .bind(millis(token.expires_at))
        .bind(token.revoked)
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// The token, if any.
    pub async fn token(&self, id: &str) -> Result<Option<TokenRec>> {
        let columns = ["id", "project_id", "expires_at", "revoked"];
        let sql = format!(
            "SELECT {} FROM share_tokens WHERE id = $1",
            select_list("share_tokens", &columns).join(", ")
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(TokenRec {
                id: row.try_get("id")?,
                project: row.try_get("project_id")?,
                // Before the epoch reads as the epoch: long expired.
                expires_at: SystemTime::UNIX_EPOCH
                    + Duration::from_millis(
                        u64::try_from(row.try_get::<i64, _>("expires_at")?).unwrap_or(0),
                    ),
                revoked: flag(&row, "revoked")?,
            })
        })
        .transpose()
    }

    /// Revokes the token.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE share_tokens SET revoked = $2 WHERE id = $1")
            .bind(id)
            .bind(true)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    // Access requests.

    /// Stores a new access request.
    pub async fn insert_request(&self, request: &AccessRequest) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_requests (id, token_id, project_id, requester_id, status, role) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&request.id)
        .bind(&request.token)
        .bind(&request.project)
        .bind(&request.requester)
        .bind(name_of(&request.status))
        .bind(request.role.map(Role::as_str))
        .execute(&self.pool)
        .await
        .map(drop)
    }

    /// The access request, if any.
    pub async fn request(&self, id: &str) -> Result<Option<AccessRequest>> {
        let sql = format!(
            "SELECT {} FROM access_requests WHERE id = $1",
            REQUEST_COLUMNS.join(", ")
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(request_from).transpose()
    }

    /// Moves a pending request to `status` (and the requester into the project at `role`,
    /// when accepted); false when it was no longer pending.
    pub async fn close_request(
        &self,
        request: &AccessRequest,
        status: Status,
        role: Option<Role>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE access_requests SET status = $2, role = $3 WHERE id = $1 AND status = 'pending'",
        )
        .bind(&request.id)
        .bind(name_of(&status))
        .bind(role.map(Role::as_str))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if let (Status::Accepted, Some(role)) = (status, role) {
            set_member(&mut tx, &request.project, &request.requester, Some(role)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// The columns of an access request row, read by [`request_from`].
pub const REQUEST_COLUMNS: [&str; 6] = [
    "id",
    "token_id",
    "project_id",
    "requester_id",
    "status",
    "role",
];

/// `user` joins `group`.
async fn join(tx: &mut sqlx::Transaction<'_, sqlx::Any>, user: &str, group: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO memberships (user_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(user)
    .bind(group)
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// `user` leaves `group`.
async fn leave(tx: &mut sqlx::Transaction<'_, sqlx::Any>, user: &str, group: &str) -> Result<()> {
    sqlx::query("DELETE FROM memberships WHERE user_id = $1 AND group_id = $2")
        .bind(user)
        .bind(group)
        .execute(&mut **tx)
        .await
        .map(drop)
}

/// Sets (or removes) `user`'s one role on `project`.
async fn set_member(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    project: &str,
    user: &str,
    role: Option<Role>,
) -> Result<()> {
    for group in ROLES.map(|r| Project::group(project, r).id) {
        leave(tx, user, &group).await?;
    }
    if let Some(role) = role {
        join(tx, user, &Project::group(project, role).id).await?;
    }
    Ok(())
}

async fn exists(pool: &AnyPool, sql: &str, id: &str) -> Result<bool> {
    Ok(sqlx::query(sql)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .is_some())
}

/// The role a member of `org` in `groups` has, if a member.
fn org_role_of(org: &str, groups: &[String]) -> Option<OrgRole> {
    if !groups.contains(&Organization::members(org).id) {
        return None;
    }
    let has = |role: Role| groups.contains(&Organization::group(org, role).id);
    Some(if has(Role::Admin) {
        OrgRole::Admin
    } else if has(Role::Manager) {
        OrgRole::DataOwner
    } else if has(Role::Editor) {
        OrgRole::Editor
    } else if has(Role::Viewer) {
        OrgRole::Viewer
    } else {
        OrgRole::Member
    })
}

/// `$from, $from+1, …` (`count` of them).
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A boolean column: SQLite's `Any` rows carry booleans as integers. A column that reads as
/// neither is an error, never a default (`archived` or `revoked` read as false would grant).
pub fn flag(row: &AnyRow, column: &str) -> Result<bool> {
    row.try_get::<bool, _>(column)
        .or_else(|_| row.try_get::<i64, _>(column).map(|i| i != 0))
}

/// A stored enum value (`"viewer"`, `"pending"`…).
fn parse<T: DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T> {
    parse_text(column, row.try_get(column)?)
}

fn parse_text<T: DeserializeOwned>(column: &str, text: String) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text)).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: Box::new(e),
    })
}

/// An enum's stored name.
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// Milliseconds since the Unix epoch.
pub fn millis(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A project from a row of [`PROJECT_COLUMNS`] (without its members).
pub fn project_from(row: &AnyRow) -> Result<ProjectRec> {
    Ok(ProjectRec {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner_id")?,
        organization: row.try_get("organization_id")?,
        members: BTreeMap::new(),
        phase: parse(row, "phase")?,
        archived: flag(row, "archived")?,
        public: flag(row, "public")?,
        downloads_enabled: flag(row, "downloads_enabled")?,
        editors_can_share: flag(row, "editors_can_share")?,
    })
}

/// An item from its row.
pub fn item_from(row: &AnyRow) -> Result<ItemRec> {
    Ok(ItemRec {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        project: row.try_get("project_id")?,
        phase: parse(row, "phase")?,
    })
}

fn invitation_from(row: &AnyRow) -> Result<Invitation> {
    let invitee = match row.try_get::<Option<String>, _>("invitee_user")? {
        Some(user) => Invitee::User(user),
        None => Invitee::Email(row.try_get("invitee_email")?),
    };
    Ok(Invitation {
        id: row.try_get("id")?,
        project: row.try_get("project_id")?,
        invitee,
        role: parse(row, "role")?,
        status: parse(row, "status")?,
        sent: row.try_get("sent")?,
    })
}

/// An access request from a row of [`REQUEST_COLUMNS`].
pub fn request_from(row: &AnyRow) -> Result<AccessRequest> {
    let role = row
        .try_get::<Option<String>, _>("role")?
        .map(|role| parse_text("role", role))
        .transpose()?;
    Ok(AccessRequest {
        id: row.try_get("id")?,
        token: row.try_get("token_id")?,
        project: row.try_get("project_id")?,
        requester: row.try_get("requester_id")?,
        status: parse(row, "status")?,
        role,
    })
}

/// The migrations of `migrations/`, compiled in.
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Vec<Migration>, BoxDynError>> + Send + 's>>
    {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}
