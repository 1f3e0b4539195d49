-- The sharing app's records, in SQL that SQLite and PostgreSQL both read. Each table holds
-- one entity type of docs/DOMAIN.md; a column per attribute, the groups by their ids.
-- Foreign keys keep every reference resolvable: a plan's SQL filter is exact only when the
-- rows a column references exist, as a decision needs the entities it reads.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT
);

-- A user's groups: the parents of the user's entity.
CREATE TABLE memberships (
    user_id TEXT NOT NULL REFERENCES users (id),
    group_id TEXT NOT NULL,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX memberships_group ON memberships (group_id);

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    admins_group TEXT NOT NULL,
    data_owners_group TEXT NOT NULL,
    editors_group TEXT NOT NULL,
    viewers_group TEXT NOT NULL,
    members_group TEXT NOT NULL
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    owner_id TEXT NOT NULL REFERENCES users (id),
    organization_id TEXT REFERENCES organizations (id),
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
CREATE INDEX projects_public ON projects (public);

CREATE TABLE items (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    project_id TEXT NOT NULL REFERENCES projects (id),
    phase TEXT NOT NULL
);
CREATE INDEX items_project ON items (project_id);

-- `expires_at` in milliseconds since the Unix epoch.
CREATE TABLE share_tokens (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL
);
