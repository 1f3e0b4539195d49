//! Rules of ARCHITECTURE.md that no crate line can keep, read from the source: where a status
//! code may be chosen, what the policy store may import, and that there is no global state.
//! Comments are skipped (doc links may name anything).

use std::path::{Path, PathBuf};

/// The code lines (not comments) of every `.rs` file under `dir`, with file and line number.
fn code_lines(dir: &str) -> Vec<(PathBuf, usize, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut lines = Vec::new();
    for entry in walkdir::WalkDir::new(root.join(dir)) {
        let entry = entry.expect("walk");
        if entry.path().extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("read");
        let file = entry
            .path()
            .strip_prefix(root)
            .expect("under the root")
            .to_path_buf();
        for (i, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") {
                lines.push((file.clone(), i + 1, line.to_string()));
            }
        }
    }
    assert!(!lines.is_empty(), "no source under {dir}");
    lines
}

/// `file:line: text` for each line, to print.
fn shown(lines: &[&(PathBuf, usize, String)]) -> String {
    lines
        .iter()
        .map(|(file, at, text)| format!("{}:{at}: {}", file.display(), text.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ErrorCode::status` is the only place an error becomes a status code.
#[test]
fn only_the_error_module_chooses_a_status_code() {
    let lines = code_lines("crates/gatehouse-server/src");
    let chosen: Vec<_> = lines
        .iter()
        .filter(|(file, _, text)| text.contains("StatusCode::") && !file.ends_with("http/error.rs"))
        .collect();
    assert!(
        chosen.is_empty(),
        "status codes chosen outside http/error.rs:\n{}",
        shown(&chosen)
    );
}

/// The policy store knows nothing of questions: no `decide` or `plan` in its code.
#[test]
fn the_policy_store_imports_no_question() {
    let lines = code_lines("crates/gatehouse-engine/src/policy");
    let named: Vec<_> = lines
        .iter()
        .filter(|(_, _, text)| {
            [
                "crate::decide",
                "crate::plan",
                "super::decide",
                "super::plan",
            ]
            .iter()
            .any(|path| text.contains(path))
        })
        .collect();
    assert!(
        named.is_empty(),
        "the policy store names questions:\n{}",
        shown(&named)
    );
}

/// No global state: no statics or thread-locals, but the binary's allocator.
#[test]
fn there_is_no_global_state() {
    let mut lines = code_lines("src");
    lines.extend(code_lines("crates"));
    let global: Vec<_> = lines
        .iter()
        .filter(|(file, _, text)| {
            let code = text.trim_start();
            let is_static = ["static ", "pub static ", "pub(crate) static "]
                .iter()
                .any(|start| code.starts_with(start));
            (is_static || code.contains("thread_local!"))
                && !(file.ends_with("src/main.rs") && code.contains("mimalloc::MiMalloc"))
        })
        .collect();
    assert!(global.is_empty(), "global state:\n{}", shown(&global));
}
