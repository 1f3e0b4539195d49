-- What the sharing flows keep beside the entities: invitations, access requests, and the
-- counter the app's ids come from. A user's project and organization roles are rows of
-- `memberships` (the user in the role's group), as gatehouse sees them.

CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id),
    -- Exactly one of the two: a user with an account, or an e-mail address.
    invitee_user TEXT REFERENCES users (id),
    invitee_email TEXT,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    sent BIGINT NOT NULL,
    CHECK ((invitee_user IS NULL) <> (invitee_email IS NULL))
);
CREATE INDEX invitations_project ON invitations (project_id);
CREATE INDEX invitations_user ON invitations (invitee_user);
CREATE INDEX invitations_email ON invitations (invitee_email);

CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    token_id TEXT NOT NULL REFERENCES share_tokens (id),
    project_id TEXT NOT NULL REFERENCES projects (id),
    requester_id TEXT NOT NULL REFERENCES users (id),
    status TEXT NOT NULL,
    role TEXT
);
CREATE INDEX access_requests_project ON access_requests (project_id, status);

CREATE INDEX share_tokens_project ON share_tokens (project_id);

-- One row: the last id handed out (`p1`, `item2`, `inv3`… share one sequence).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('ids', 0);
