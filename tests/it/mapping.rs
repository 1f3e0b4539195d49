//! The mapping file: where each entity type lives in a host's database, read from TOML by the
//! sidecar and by hosts alike.

use gatehouse_sql::{Column, Mapping, Parents, Table, Tags};

/// The sharing app's file reads as the mapping its tables need: every form of the format.
#[test]
fn the_sharing_apps_file_reads_as_its_tables() {
    let group = |column: &str| Column::entity(column, "Group");
    let expected = Mapping::new()
        .table(
            "User",
            Table::new("users", "id")
                .column("email", Column::value("email"))
                .parents(Parents::Table {
                    table: "memberships".into(),
                    owner: "user_id".into(),
                    parent: "group_id".into(),
                    entity_type: "Group".into(),
                }),
        )
        .table(
            "Organization",
            Table::new("organizations", "id")
                .column("admins", group("admins_group"))
                .column("data_owners", group("data_owners_group"))
                .column("editors", group("editors_group"))
                .column("viewers", group("viewers_group"))
                .column("members", group("members_group")),
        )
        .table(
            "Project",
            Table::new("projects", "id")
                .column("owner", Column::entity("owner_id", "User"))
                .column(
                    "organization",
                    Column::entity("organization_id", "Organization"),
                )
                .column("admins", group("admins_group"))
                .column("managers", group("managers_group"))
                .column("editors", group("editors_group"))
                .column("viewers", group("viewers_group"))
                .column("phase", Column::value("phase"))
                .column("archived", Column::value("archived"))
                .column("public", Column::value("public"))
                .column("downloads_enabled", Column::value("downloads_enabled"))
                .column("editors_can_share", Column::value("editors_can_share")),
        )
        .table(
            "Item",
            Table::new("items", "id")
                .column("project", Column::entity("project_id", "Project"))
                .column("phase", Column::value("phase"))
                .parents(Parents::Column {
                    column: "project_id".into(),
                    entity_type: "Project".into(),
                }),
        )
        .table(
            "ShareToken",
            Table::new("share_tokens", "id")
                .column("project", Column::entity("project_id", "Project"))
                .column("expires_at", Column::value("expires_at"))
                .column("revoked", Column::value("revoked")),
        );
    assert_eq!(crate::sharing_app_host::mapping::mapping(), expected);
}

/// Sets, parents in a column, tags and `{ column }` alone read as they say.
#[test]
fn sets_parents_in_a_column_and_tags() {
    let mapping = Mapping::from_toml(
        r#"
        ["App::Doc"]
        table = "docs"
        id = "doc_id"
        attributes.title = { column = "title" }
        attributes.labels = { table = "doc_labels", owner = "doc_id", value = "label" }
        parents = [{ column = "folder_id", type = "App::Folder" }]
        tags = { table = "doc_tags", owner = "doc_id", key = "k", value = "v" }
        "#,
    )
    .expect("a valid file");
    let expected = Table::new("docs", "doc_id")
        .column("title", Column::value("title"))
        .column("labels", Column::set("doc_labels", "doc_id", "label"))
        .parents(Parents::Column {
            column: "folder_id".into(),
            entity_type: "App::Folder".into(),
        })
        .tags(Tags {
            table: "doc_tags".into(),
            owner: "doc_id".into(),
            key: "k".into(),
            value: "v".into(),
        });
    assert_eq!(mapping.table_of("App::Doc"), Some(&expected));
    assert_eq!(mapping.tables().count(), 1);
}

/// A file that says something the format does not is refused with its line and what is
/// wrong, never half read.
#[test]
fn a_wrong_file_is_refused_naming_its_line_and_key() {
    let cases = [
        ("[User]\ntable = \"users\"\n", "missing field `id`"),
        (
            "[User]\ntable = \"users\"\nid = \"id\"\ncolum = \"x\"\n",
            "unknown field `colum`",
        ),
        (
            "[User]\ntable = \"users\"\nid = \"id\"\nattributes.email = { colum = \"email\" }\n",
            "unknown field `colum`",
        ),
        (
            "[User]\ntable = \"users\"\nid = \"id\"\nattributes.email = { column = \"e\", table = \"t\" }\n",
            "`{ column }`, `{ column, entity }` or `{ table, owner, value }`",
        ),
        (
            "[User]\ntable = \"users\"\nid = \"id\"\nattributes.email = 3\n",
            "a column name",
        ),
        (
            "[User]\ntable = \"users\"\nid = \"id\"\nparents = [{ column = \"g\" }]\n",
            "missing field `type`",
        ),
        (
            "[User]\ntable = \"users\"\nid = \"id\"\nparents = [{ column = \"g\", table = \"t\", type = \"Group\" }]\n",
            "parents are `{ column, type }` or `{ table, owner, parent, type }`",
        ),
    ];
    for (text, fragment) in cases {
        let error = Mapping::from_toml(text).expect_err(text).to_string();
        assert!(
            error.contains(fragment),
            "{text}: `{error}` lacks `{fragment}`"
        );
        assert!(error.contains("line"), "{text}: `{error}` names no line");
    }
}
