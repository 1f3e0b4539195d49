//! Helpers shared by the integration tests.

pub mod server;
pub mod world;

use std::path::{Path, PathBuf};

use gatehouse::policy::{self, Snapshot, Sources};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled policies and schema.
pub fn bundled_sources() -> Sources {
    Sources {
        policies: root().join("policies"),
        schema: root().join("schemas/project_sharing.cedarschema"),
        entities: None,
    }
}

/// The bundled set, loaded.
pub fn bundled() -> Snapshot {
    policy::load(&bundled_sources()).expect("the bundled policy set loads")
}

/// A temporary copy of the bundled policies and schema that a test may break.
pub fn scratch_copy() -> (tempfile::TempDir, Sources) {
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("mkdir");
    for entry in std::fs::read_dir(root().join("policies")).expect("read policies") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, policies.join(path.file_name().expect("name"))).expect("copy");
    }
    let schema = dir.path().join("schema.cedarschema");
    std::fs::copy(root().join("schemas/project_sharing.cedarschema"), &schema)
        .expect("copy schema");
    (
        dir,
        Sources {
            policies,
            schema,
            entities: None,
        },
    )
}

/// Replaces `from` by `to` in `file`, asserting it was there.
pub fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("read");
    assert!(text.contains(from), "`{from}` not in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).expect("write");
}
