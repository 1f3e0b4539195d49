-- The project-sharing domain's entities (docs/DOMAIN.md), in SQL that SQLite and PostgreSQL
-- both read: a table per entity type, a column per attribute, and a table per kind of
-- parent, as entities/mapping.toml maps them. References hold the referenced entity's id and
-- need not resolve, as a Cedar entity's attributes need not: a decision that reads a missing
-- entity is refused or denied, never guessed.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT
);

-- A user's groups: the parents of the user's entity.
CREATE TABLE user_groups (
    user_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups (group_id);

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    admins_group TEXT NOT NULL,
    data_owners_group TEXT NOT NULL,
    editors_group TEXT NOT NULL,
    viewers_group TEXT NOT NULL,
    members_group TEXT NOT NULL
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    organization_id TEXT,
    admins_group TEXT NOT NULL,
    managers_group TEXT NOT NULL,
    editors_group TEXT NOT NULL,
    viewers_group TEXT NOT NULL,
    phase TEXT NOT NULL,
    archived BOOLEAN NOT NULL,
    public BOOLEAN NOT NULL,
    downloads_enabled BOOLEAN NOT NULL,
    editors_can_share BOOLEAN NOT NULL
);
CREATE INDEX projects_owner ON projects (owner_id);
CREATE INDEX projects_organization ON projects (organization_id);
CREATE INDEX projects_admins ON projects (admins_group);
CREATE INDEX projects_managers ON projects (managers_group);
CREATE INDEX projects_editors ON projects (editors_group);
CREATE INDEX projects_viewers ON projects (viewers_group);

CREATE TABLE items (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    phase TEXT NOT NULL
);
CREATE INDEX items_project ON items (project_id);

-- An item's project, when the host lists it among the item's parents (`Item in [Project]`).
CREATE TABLE item_parents (
    item_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    PRIMARY KEY (item_id, project_id)
);

-- `expires_at` in milliseconds since the Unix epoch.
CREATE TABLE share_tokens (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL
);
CREATE INDEX share_tokens_project ON share_tokens (project_id);
