//! Where the domain's attributes live in the app's tables (`migrations/`): the mapping file
//! `mapping.toml`, which gatehouse reads the app's entities and answers its lists through.
//! Here for `bench_lists.rs` and the tests, which also run a plan's condition as SQL on the
//! host's side (`gatehouse-sql`), as a host that prefers to run the SQL itself does.

use gatehouse_sql::Mapping;

/// The mapping file, as the app ships it.
pub const MAPPING: &str = include_str!("../mapping.toml");

/// The tables of `migrations/0001_records.sql`, by entity type.
pub fn mapping() -> Mapping {
    // The file is part of the app: a broken one is a bug of the app, found by its tests.
    Mapping::from_toml(MAPPING).unwrap_or_else(|e| panic!("examples/sharing_app/mapping.toml: {e}"))
}
