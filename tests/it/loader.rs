//! Loading a policy set: all or nothing, every problem located at `file:line:col`.

use crate::common;

use gatehouse::policy::{self, PolicyEffect};

#[test]
fn the_bundled_set_loads_with_ids_files_and_lines() {
    let snapshot = common::bundled();
    assert_eq!(snapshot.info.len(), snapshot.policies.policies().count());
    let viewer = snapshot
        .info
        .iter()
        .find(|p| p.id == "roles.viewer")
        .expect("roles.viewer");
    assert_eq!(viewer.effect, PolicyEffect::Permit);
    assert!(viewer.file.ends_with("roles.cedar"));
    let text = std::fs::read_to_string(&viewer.file).expect("read");
    let line = text.lines().nth(viewer.line - 1).expect("line");
    assert_eq!(line, "@id(\"roles.viewer\")");
    assert_eq!(snapshot.version.len(), 16);
}

#[test]
fn the_version_follows_the_content() {
    let (_dir, sources) = common::scratch_copy();
    let before = policy::load(&sources).expect("loads").version;
    assert_eq!(policy::load(&sources).expect("loads").version, before);
    common::edit(
        &sources.policies.join("public.cedar"),
        "// Public projects.",
        "// Public projects!",
    );
    assert_ne!(policy::load(&sources).expect("loads").version, before);
}

#[test]
fn a_type_error_is_located_with_a_hint() {
    let (_dir, sources) = common::scratch_copy();
    let roles = sources.policies.join("roles.cedar");
    common::edit(
        &roles,
        "  principal in resource.managers ||",
        "  principal in resource.manager ||",
    );
    let error = policy::load(&sources).expect_err("must not load");
    let problem = &error.problems[0];
    assert!(problem.file.ends_with("roles.cedar"));
    let (line, col) = problem.location.expect("located");
    let text = std::fs::read_to_string(&roles).expect("read");
    assert_eq!(
        &text.lines().nth(line - 1).expect("line")[col - 1..],
        "resource.manager ||"
    );
    assert!(
        problem.message.contains("roles.manager"),
        "{}",
        problem.message
    );
    assert!(
        problem
            .help
            .as_deref()
            .unwrap_or_default()
            .contains("managers")
    );
    let rendered = problem.render(false);
    assert!(
        rendered.contains(&format!("roles.cedar:{line}:{col}")),
        "{rendered}"
    );
    assert!(
        rendered.contains("principal in resource.manager"),
        "{rendered}"
    );
}

#[test]
fn a_syntax_error_is_located() {
    let (_dir, sources) = common::scratch_copy();
    std::fs::write(
        sources.policies.join("broken.cedar"),
        "@id(\"x\")\npermit (principal, action, resource)\nwhen { 1 + };\n",
    )
    .expect("write");
    let error = policy::load(&sources).expect_err("must not load");
    assert_eq!(error.problems.len(), 1, "{error}");
    assert_eq!(error.problems[0].location, Some((3, 12)));
    assert!(error.to_string().starts_with(&format!(
        "{}:3:12: ",
        sources.policies.join("broken.cedar").display()
    )));
}

#[test]
fn a_duplicate_id_names_both_places() {
    let (_dir, sources) = common::scratch_copy();
    std::fs::write(
        sources.policies.join("zz.cedar"),
        "// again\n@id(\"roles.viewer\")\npermit (principal, action == Action::\"view\", resource is Project);\n",
    )
    .expect("write");
    let error = policy::load(&sources).expect_err("must not load");
    let message = error.to_string();
    assert!(message.contains("zz.cedar:2:1"), "{message}");
    assert!(
        message.contains("duplicate policy id `roles.viewer`"),
        "{message}"
    );
    assert!(message.contains("roles.cedar:51"), "{message}");
}

#[test]
fn a_policy_without_id_is_refused() {
    let (_dir, sources) = common::scratch_copy();
    std::fs::write(
        sources.policies.join("zz.cedar"),
        "\n\npermit (principal, action == Action::\"view\", resource is Project);\n",
    )
    .expect("write");
    let error = policy::load(&sources).expect_err("must not load");
    assert_eq!(error.problems[0].location, Some((3, 1)));
    assert!(error.problems[0].message.contains("no `@id`"));
}

#[test]
fn templates_are_refused() {
    let (_dir, sources) = common::scratch_copy();
    std::fs::write(
        sources.policies.join("zz.cedar"),
        "@id(\"t\")\npermit (principal == ?principal, action, resource);\n",
    )
    .expect("write");
    let error = policy::load(&sources).expect_err("must not load");
    assert!(
        error.to_string().contains("templates are not supported"),
        "{error}"
    );
}

#[test]
fn a_validation_warning_is_an_error() {
    let (_dir, sources) = common::scratch_copy();
    std::fs::write(
        sources.policies.join("zz.cedar"),
        "@id(\"impossible\")\npermit (principal, action == Action::\"view\", resource is Project) when { false };\n",
    )
    .expect("write");
    let error = policy::load(&sources).expect_err("must not load");
    assert!(
        error.to_string().contains("warning treated as an error"),
        "{error}"
    );
}

#[test]
fn empty_missing_and_hidden() {
    let dir = tempfile::tempdir().expect("temp");
    let mut sources = common::bundled_sources();
    sources.policies = dir.path().to_path_buf();
    std::fs::write(
        dir.path().join(".hidden.cedar"),
        "@id(\"h\") permit(principal, action, resource);",
    )
    .expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not a policy").expect("write");
    let error = policy::load(&sources).expect_err("an empty set is refused");
    assert!(error.to_string().contains("no `.cedar` files"), "{error}");

    sources.policies = dir.path().join("missing");
    let error = policy::load(&sources).expect_err("a missing directory is refused");
    assert!(
        error
            .to_string()
            .contains("cannot read the policies directory"),
        "{error}"
    );

    let mut sources = common::bundled_sources();
    sources.schema = dir.path().join("missing.cedarschema");
    let error = policy::load(&sources).expect_err("a missing schema is refused");
    assert!(
        error
            .to_string()
            .contains("missing.cedarschema: cannot read"),
        "{error}"
    );
}

#[test]
fn a_broken_schema_is_located() {
    let (_dir, sources) = common::scratch_copy();
    common::edit(
        &sources.schema,
        "  phase: String,\n  archived",
        "  phase: Strin,\n  archived",
    );
    let error = policy::load(&sources).expect_err("must not load");
    assert!(
        error.problems[0].file.ends_with("schema.cedarschema"),
        "{error}"
    );
    assert!(error.to_string().contains("Strin"), "{error}");
}

#[test]
fn every_problem_is_reported_even_when_the_schema_already_failed() {
    // A missing schema and an empty policies directory: two problems, neither hidden by the
    // other.
    let dir = tempfile::tempdir().expect("temp");
    let sources = policy::Sources {
        policies: dir.path().to_path_buf(),
        schema: dir.path().join("missing.cedarschema"),
        entities: None,
    };
    let error = policy::load(&sources).expect_err("nothing loads");
    let messages: Vec<String> = error.problems.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0].contains("missing.cedarschema: cannot read"),
        "{messages:#?}"
    );
    assert!(messages[1].contains("no `.cedar` files"), "{messages:#?}");
}

#[test]
fn a_broken_entities_file_is_reported_beside_a_broken_schema() {
    let dir = tempfile::tempdir().expect("temp");
    let entities = dir.path().join("entities.json");
    std::fs::write(&entities, "[{\"uid\": ").expect("write");
    let sources = policy::Sources {
        entities: Some(entities),
        schema: dir.path().join("missing.cedarschema"),
        ..common::bundled_sources()
    };
    let error = policy::load(&sources).expect_err("nothing loads");
    let messages: Vec<String> = error.problems.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages[0].contains("cannot read"), "{messages:#?}");
    assert!(
        messages[1].contains("entities.json:1:9: invalid JSON"),
        "{messages:#?}"
    );
}
