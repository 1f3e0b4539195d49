-- gatehouse answers the app's lists in these tables a page at a time, in id order: each
-- branch of a plan's union reads `<column> = ? AND id > ? ORDER BY id LIMIT n`. An index of
-- (column, id) gives a branch its rows already in id order, so a page stops after n of them;
-- an index of the column alone makes the database fetch and sort every match first (2 000
-- public projects for a page of 100). Each replaces the index of its column alone.
DROP INDEX projects_owner;
CREATE INDEX projects_owner ON projects (owner_id, id);
DROP INDEX projects_organization;
CREATE INDEX projects_organization ON projects (organization_id, id);
DROP INDEX projects_admins;
CREATE INDEX projects_admins ON projects (admins_group, id);
DROP INDEX projects_managers;
CREATE INDEX projects_managers ON projects (managers_group, id);
DROP INDEX projects_editors;
CREATE INDEX projects_editors ON projects (editors_group, id);
DROP INDEX projects_viewers;
CREATE INDEX projects_viewers ON projects (viewers_group, id);
DROP INDEX projects_public;
CREATE INDEX projects_public ON projects (public, id);
DROP INDEX items_project;
CREATE INDEX items_project ON items (project_id, id);
