//! The `gatehouse` subcommands, one module each: an `XxxArgs` struct and an
//! `xxx(&XxxArgs) -> ExitCode` function. `main.rs` only parses and dispatches.

pub mod base;
pub mod check;
pub mod diff;
pub mod entities;
pub mod fmt;
pub mod prove;
pub mod serve;
pub mod test;
pub mod validate;

use std::io::IsTerminal;

pub use crate::config::PolicyArgs;
use crate::policy::LoadError;

/// Exit codes shared by every subcommand. 2 is clap's, for a usage error.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The command could not run: a missing path, an unreadable file.
    pub const ERROR: u8 = 1;
    /// The policy set or the schema is not valid.
    pub const INVALID: u8 = 3;
    /// A policy test failed, a suite could not be read, or required coverage is missing.
    pub const TESTS_FAILED: u8 = 4;
    /// `check`: the decision is Deny.
    pub const DENIED: u8 = 5;
    /// `fmt --check`: a file is not formatted.
    pub const UNFORMATTED: u8 = 6;
    /// `diff`: a question's answer flipped, and `--accept` does not list it.
    pub const FLIPPED: u8 = 7;
    /// `prove`: something does not hold (a policy can error, a property is refuted or
    /// vacuous, an action changed from the base).
    pub const NOT_PROVEN: u8 = 8;
}

/// Writes `text` to stdout, ending it with a newline. A closed pipe (`gatehouse test | head`)
/// ends the output quietly instead of panicking as `print!` would.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let newline = if text.ends_with('\n') { "" } else { "\n" };
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(newline.as_bytes()))
        .and_then(|()| out.flush());
}

/// `gatehouse openapi`: prints the API's OpenAPI document, as `docs/openapi.json` holds it.
pub fn openapi() -> std::process::ExitCode {
    match crate::http::openapi().to_pretty_json() {
        Ok(text) => {
            emit(&text);
            std::process::ExitCode::from(exit::OK)
        }
        Err(error) => {
            eprintln!("error: cannot write the OpenAPI document: {error}");
            std::process::ExitCode::from(exit::ERROR)
        }
    }
}

/// Whether to color output written to stderr.
pub fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Prints every problem of a failed load to stderr, compiler style.
pub fn report_load_error(error: &LoadError) {
    let color = stderr_color();
    for problem in &error.problems {
        eprintln!("{}", problem.render(color));
    }
    let n = error.problems.len();
    eprintln!(
        "error: the policy set is not valid ({n} problem{})",
        if n == 1 { "" } else { "s" }
    );
}
