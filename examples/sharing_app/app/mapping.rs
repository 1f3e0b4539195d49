//! Where the domain's attributes live in the app's tables (`migrations/`): what turns a
//! plan's condition into SQL (`gatehouse-sql`).

use gatehouse_sql::{Column, Mapping, Table};

/// The tables of `migrations/0001_records.sql`, by entity type.
pub fn mapping() -> Mapping {
    let group = |column: &str| Column::entity(column, "Group");
    Mapping::new()
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
            "Organization",
            Table::new("organizations", "id")
                .column("admins", group("admins_group"))
                .column("data_owners", group("data_owners_group"))
                .column("editors", group("editors_group"))
                .column("viewers", group("viewers_group"))
                .column("members", group("members_group")),
        )
        .table(
            "Item",
            Table::new("items", "id")
                .column("project", Column::entity("project_id", "Project"))
                .column("phase", Column::value("phase")),
        )
        .table(
            "ShareToken",
            Table::new("share_tokens", "id")
                .column("project", Column::entity("project_id", "Project"))
                .column("expires_at", Column::value("expires_at"))
                .column("revoked", Column::value("revoked")),
        )
        .table(
            "User",
            Table::new("users", "id").column("email", Column::value("email")),
        )
}
