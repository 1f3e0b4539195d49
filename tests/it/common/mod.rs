//! Helpers shared by the integration tests.

pub mod postgres;
pub mod server;
pub mod world;

use std::path::{Path, PathBuf};

use gatehouse::policy::{self, Snapshot, Sources};

/// Every action on a Project, in the order of docs/DOMAIN.md's table.
pub const PROJECT_ACTIONS: &[&str] = &[
    "view",
    "view_members",
    "edit",
    "delete",
    "copy",
    "download",
    "export",
    "archive",
    "restore",
    "set_visibility",
    "advance_phase",
    "run_processing",
    "export_report",
    "share",
    "change_member_role",
    "remove_member",
    "generate_share_token",
    "stop_sharing",
    "accept_access_request",
    "reject_access_request",
    "transfer_ownership",
    "leave",
];

/// The Project actions whose context has keys.
pub const CONTEXT_ACTIONS: [&str; 5] = [
    "share",
    "change_member_role",
    "remove_member",
    "accept_access_request",
    "transfer_ownership",
];

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

/// Makes `dir` a git repository whose one commit holds everything in it: `HEAD` is then
/// the set as it was, for `--base HEAD`.
pub fn commit_all(dir: &Path) {
    for args in [
        &["init", "-q"][..],
        &["add", "."],
        &["commit", "-q", "-m", "base"],
    ] {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A scratch copy committed as the git repository's `HEAD`, with a second copy of its
/// policies in `base-policies/`: the two bases `--base` takes (a revision, a directory).
pub fn scratch_with_bases() -> (tempfile::TempDir, Sources, PathBuf) {
    let (dir, sources) = scratch_copy();
    commit_all(dir.path());
    let base = dir.path().join("base-policies");
    std::fs::create_dir(&base).expect("mkdir");
    for entry in std::fs::read_dir(&sources.policies).expect("read") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, base.join(path.file_name().expect("name"))).expect("copy");
    }
    (dir, sources, base)
}

/// The README's demo change: editors share whether or not the project lets them.
pub fn demo_change(sources: &Sources) {
    edit(
        &sources.policies.join("sharing.cedar"),
        "  resource.editors_can_share &&\n",
        "  true &&\n",
    );
}

/// Runs the `gatehouse` binary in `cwd`, without the environment's policy settings.
pub fn gatehouse(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .current_dir(cwd)
        .env_remove("GATEHOUSE_POLICIES")
        .env_remove("GATEHOUSE_SCHEMA")
        .output()
        .expect("run gatehouse")
}

/// The policies that decided a Cedar response, sorted (as the sidecar reports them).
pub fn reasons(response: &cedar_policy::Response) -> Vec<String> {
    let mut reasons: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    reasons.sort();
    reasons
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Replaces `from` by `to` in `file`, asserting it was there.
pub fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).expect("read");
    assert!(text.contains(from), "`{from}` not in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).expect("write");
}
