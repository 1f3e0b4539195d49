//! The crate lines hold: what a host compiles to ask the sidecar (`gatehouse-client`) or to
//! run a plan as SQL (`gatehouse-sql`), and the wire types both stand on (`gatehouse-api`),
//! pull in no Cedar, no server and no engine; the engine pulls in no server, no command line,
//! no database and no policy-author tools; the entity source (`gatehouse-source`: the engine
//! and a database) nothing that serves; the server (`gatehouse-server`) no policy-author tools:
//! the symbolic compiler, the formatter and the JUnit writer are the binary's. Read from `cargo tree` over the lock file, so a dependency added
//! to one of them fails here, not in a host's build.

use std::collections::BTreeSet;
use std::process::Command;

/// The packages `krate` compiles for a host (normal and build dependencies, no dev ones).
fn compiled_by(krate: &str) -> BTreeSet<String> {
    tree(krate, &[])
}

/// The packages `krate` names in its own manifest (normal and build dependencies).
fn named_by(krate: &str) -> BTreeSet<String> {
    tree(krate, &["--depth", "1"])
}

/// `cargo tree` of `krate`, one package name a line, with `extra` arguments.
fn tree(krate: &str, extra: &[&str]) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-p", krate])
        .args(["-e", "normal,build", "--prefix", "none", "--format", "{p}"])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree -p {krate}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let names: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(
        names.contains(krate),
        "{krate} is not in its own tree: {names:?}"
    );
    names
}

/// The packages of `names` that start with one of `forbidden`.
fn named<'a>(names: &'a BTreeSet<String>, forbidden: &[&str]) -> Vec<&'a String> {
    names
        .iter()
        .filter(|name| forbidden.iter().any(|f| name.starts_with(f)))
        .collect()
}

/// The sidecar's side of the line: Cedar, the HTTP server and its schema generator, the CLI,
/// the caches, and the sidecar crate itself.
const SIDECAR: &[&str] = &[
    "cedar-",
    "axum",
    "utoipa",
    "clap",
    "moka",
    "quick_cache",
    "prometheus",
];

/// The sidecar's pieces among `names`, its own packages included.
fn sidecar_pieces(names: &BTreeSet<String>) -> Vec<&String> {
    let mut found = named(names, SIDECAR);
    found.extend(names.iter().filter(|name| {
        ["gatehouse", "gatehouse-engine", "gatehouse-server"].contains(&name.as_str())
    }));
    found
}

/// What only the policy-author tools of the `gatehouse` binary compile: the symbolic compiler
/// and the JUnit writer. (Cedar's formatter is one of cedar-policy's own dependencies, so
/// every crate with Cedar compiles it; only the binary names it, for `gatehouse fmt`.)
const TOOLS: &[&str] = &["cedar-policy-symcc", "quick-junit"];

/// What only the binary names as a dependency of its own.
const TOOLS_NAMED: &[&str] = &[
    "cedar-policy-symcc",
    "quick-junit",
    "cedar-policy-formatter",
];

#[test]
fn the_client_compiles_no_cedar_and_no_server() {
    let names = compiled_by("gatehouse-client");
    assert_eq!(sidecar_pieces(&names), Vec::<&String>::new());
    assert_eq!(named(&names, &["sea-query"]), Vec::<&String>::new());
    assert!(
        names.contains("reqwest") && names.contains("gatehouse-api"),
        "{names:?}"
    );
}

#[test]
fn the_sql_translator_stands_on_the_wire_types_alone() {
    let names = compiled_by("gatehouse-sql");
    assert_eq!(sidecar_pieces(&names), Vec::<&String>::new());
    assert_eq!(
        named(&names, &["tokio", "reqwest", "hyper"]),
        Vec::<&String>::new()
    );
    assert!(
        names.contains("sea-query") && names.contains("gatehouse-api"),
        "{names:?}"
    );
}

#[test]
fn the_wire_types_need_serde_alone() {
    let names = compiled_by("gatehouse-api");
    assert_eq!(sidecar_pieces(&names), Vec::<&String>::new());
    assert_eq!(
        named(&names, &["tokio", "reqwest", "hyper", "sea-query"]),
        Vec::<&String>::new()
    );
}

#[test]
fn the_engine_knows_nothing_of_http_or_the_command_line() {
    let names = compiled_by("gatehouse-engine");
    assert_eq!(
        named(
            &names,
            &[
                "axum",
                "hyper",
                "tower",
                "tokio",
                "reqwest",
                "utoipa",
                "clap",
                "prometheus",
                "sqlx",
                "sea-query",
            ]
        ),
        Vec::<&String>::new()
    );
    assert_eq!(named(&names, TOOLS), Vec::<&String>::new());
    assert_eq!(
        named(&named_by("gatehouse-engine"), TOOLS_NAMED),
        Vec::<&String>::new()
    );
    assert!(
        !names.contains("gatehouse") && !names.contains("gatehouse-server"),
        "{names:?}"
    );
    assert!(
        names.contains("cedar-policy") && names.contains("gatehouse-api"),
        "{names:?}"
    );
}

#[test]
fn the_entity_source_reads_databases_and_serves_nothing() {
    let names = compiled_by("gatehouse-source");
    assert_eq!(
        named(&names, &["axum", "hyper", "utoipa", "clap", "prometheus"]),
        Vec::<&String>::new()
    );
    assert_eq!(named(&names, TOOLS), Vec::<&String>::new());
    assert!(
        !names.contains("gatehouse") && !names.contains("gatehouse-server"),
        "{names:?}"
    );
    assert!(
        names.contains("gatehouse-engine")
            && names.contains("sqlx")
            && names.contains("gatehouse-sql"),
        "{names:?}"
    );
}

#[test]
fn the_server_has_no_policy_author_tools() {
    let names = compiled_by("gatehouse-server");
    assert_eq!(named(&names, TOOLS), Vec::<&String>::new());
    assert_eq!(
        named(&named_by("gatehouse-server"), TOOLS_NAMED),
        Vec::<&String>::new()
    );
    assert!(!names.contains("gatehouse"), "{names:?}");
    assert!(
        names.contains("gatehouse-engine") && names.contains("axum"),
        "{names:?}"
    );
}

#[test]
fn the_binary_holds_the_tools() {
    let names = named_by("gatehouse");
    for tool in TOOLS_NAMED {
        assert!(names.contains(*tool), "{tool}: {names:?}");
    }
}

/// The files a recipe's build stage copies (the `COPY` lines before its second `FROM`), each
/// copied from the repository into `into` as the recipe copies it into `/src`.
fn copy_build_context(recipe: &str, into: &std::path::Path) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(recipe)).expect("the recipe");
    let build_stage = text
        .lines()
        .skip_while(|line| !line.starts_with("FROM "))
        .skip(1)
        .take_while(|line| !line.starts_with("FROM "));
    for line in build_stage {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        let mut paths: Vec<&str> = args.split_whitespace().collect();
        let to = paths.pop().expect("a destination");
        for from in paths {
            let dest = if to.ends_with('/') {
                into.join(to).join(from)
            } else {
                into.join(to)
            };
            let status = Command::new("cp")
                .args(["-R"])
                .arg(root.join(from))
                .arg(&dest)
                .status()
                .expect("cp runs");
            assert!(status.success(), "{recipe}: COPY {from} {to}");
        }
    }
}

/// Every image recipe copies the whole workspace into its build: cargo resolves it there,
/// with the lock file as it is, offline.
#[test]
fn the_image_recipes_build_the_whole_workspace() {
    for recipe in ["Dockerfile", "examples/k8s/sharing-app.Dockerfile"] {
        let context = tempfile::tempdir().expect("temp");
        copy_build_context(recipe, context.path());
        let output = Command::new(env!("CARGO"))
            // `cargo tree` resolves the workspace for this platform alone (`cargo metadata`
            // would want every platform's packages, which an offline cache may not hold).
            .args([
                "tree",
                "--workspace",
                "--locked",
                "--offline",
                "--depth",
                "1",
            ])
            .current_dir(context.path())
            .output()
            .expect("cargo runs");
        assert!(
            output.status.success(),
            "{recipe}: cargo tree in its build context: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
