-- The search scenario's records in SQL, as a host would keep them: one table per entity type,
-- read by gatehouse through mapping.toml (`gatehouse serve --entities-db URL --entities-map
-- examples/authzen/search/mapping.toml`). SQLite and PostgreSQL both take it.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    department TEXT NOT NULL
);

CREATE TABLE records (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    department TEXT NOT NULL,
    owner_id TEXT NOT NULL
);
