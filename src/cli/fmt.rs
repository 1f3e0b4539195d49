//! `gatehouse fmt`: formats `.cedar` policy files with Cedar's own formatter
//! (`cedar-policy-formatter`), comments and annotations kept. A file is written only when
//! the formatted text parses to the same policies (each policy's JSON form, `@id`
//! included): a formatter that changed a meaning would be refused, not obeyed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use cedar_policy::PolicySet;
use cedar_policy_formatter::{Config, policies_str_to_pretty};
use clap::Args;

use super::exit;

/// Arguments of `gatehouse fmt`.
#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Policy files, or directories searched for `*.cedar`.
    #[arg(default_value = "policies")]
    pub paths: Vec<PathBuf>,
    /// Write nothing: list the files that are not formatted and exit 6 if any.
    #[arg(long)]
    pub check: bool,
    /// The widest line.
    #[arg(long, default_value_t = 80, value_name = "N")]
    pub line_width: usize,
    /// Spaces per indentation level.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub indent: isize,
}

/// Each policy of `text` in Cedar's JSON form (annotations included), in order: what
/// formatting must not change. (A policy's `Display` is its source text, so it would not do.)
fn meaning(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let set = PolicySet::from_str(text).map_err(|e| e.to_string())?;
    set.policies()
        .map(|policy| policy.to_json().map_err(|e| e.to_string()))
        .collect()
}

/// The formatted text of `file`, checked to mean what the file means.
pub fn format_text(text: &str, config: &Config) -> Result<String, String> {
    let mut formatted = policies_str_to_pretty(text, config).map_err(|e| format!("{e:?}"))?;
    if !formatted.ends_with('\n') {
        formatted.push('\n');
    }
    if meaning(&formatted)? != meaning(text)? {
        return Err(
            "the formatter changed what the policies mean; the file is left as it is".into(),
        );
    }
    Ok(formatted)
}

/// Formats (or checks) every file; exits 6 when `--check` finds an unformatted file, 3 when
/// a file does not parse, 1 for a missing path or an unwritable file.
pub fn fmt(args: &FmtArgs) -> ExitCode {
    let files = match crate::testing::files_ending(&args.paths, ".cedar") {
        Ok(files) => files,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let config = Config {
        line_width: args.line_width,
        indent_width: args.indent,
    };
    let mut code = exit::OK;
    for file in &files {
        match format_file(file, &config, args.check) {
            Ok(Changed::No) => {}
            Ok(Changed::Yes) if args.check => {
                super::emit(&format!("not formatted: {}", file.display()));
                code = code.max(exit::UNFORMATTED);
            }
            Ok(Changed::Yes) => super::emit(&format!("formatted: {}", file.display())),
            Err((error, status)) => {
                eprintln!("error: {}: {error}", file.display());
                code = code.max(status);
            }
        }
    }
    ExitCode::from(code)
}

enum Changed {
    Yes,
    No,
}

fn format_file(file: &Path, config: &Config, check: bool) -> Result<Changed, (String, u8)> {
    let text = std::fs::read_to_string(file).map_err(|e| (e.to_string(), exit::ERROR))?;
    let formatted = format_text(&text, config).map_err(|e| (e, exit::INVALID))?;
    if formatted == text {
        return Ok(Changed::No);
    }
    if !check {
        std::fs::write(file, formatted).map_err(|e| (e.to_string(), exit::ERROR))?;
    }
    Ok(Changed::Yes)
}
