//! `--base <DIR | GIT-REV>`: the policy set a change is compared with (`gatehouse diff`,
//! `gatehouse prove`).

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use super::{exit, report_load_error};
use crate::policy::{self, Snapshot, Sources};

/// A failure: its message and the exit code.
pub type Failure = (String, u8);

/// The exit code of a command's outcome, printing a failure's message (when it has one).
pub fn exit_with(outcome: Result<u8, Failure>) -> std::process::ExitCode {
    match outcome {
        Ok(code) => std::process::ExitCode::from(code),
        Err((message, code)) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            std::process::ExitCode::from(code)
        }
    }
}

/// Loads a set, printing its problems (exit 3) when it does not load.
pub fn load(sources: &Sources) -> Result<Snapshot, Failure> {
    policy::load(sources).map_err(|error| {
        report_load_error(&error);
        (String::new(), exit::INVALID)
    })
}

/// The base set's arguments.
#[derive(Debug, Args)]
pub struct BaseArgs {
    /// The set to compare with: a policies directory, or a git revision (`HEAD`, `main~1`)
    /// whose policies (and schema) are read from the repository.
    #[arg(long = "base", value_name = "DIR|GIT-REV")]
    pub base: String,
    /// The base set's schema, for a base directory (default: the working schema).
    #[arg(long, value_name = "FILE")]
    pub base_schema: Option<PathBuf>,
}

impl BaseArgs {
    /// The base set's files: a directory as given, or a git revision's policies and schema
    /// written into `scratch`.
    pub fn sources(&self, work: &Sources, scratch: &Path) -> Result<Sources, Failure> {
        let args = self;
        let base = Path::new(&args.base);
        if base.is_dir() {
            return Ok(Sources {
                policies: base.to_path_buf(),
                schema: args
                    .base_schema
                    .clone()
                    .unwrap_or_else(|| work.schema.clone()),
                entities: None,
            });
        }
        let rev = &args.base;
        git(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")]).map_err(|(m, c)| {
            (
                format!("`--base {rev}` is neither a directory nor a git revision: {m}"),
                c,
            )
        })?;
        let top = String::from_utf8_lossy(&git(&["rev-parse", "--show-toplevel"])?)
            .trim()
            .to_string();
        let relative = |path: &Path| in_repository(&top, path);
        let policies = scratch.join("policies");
        std::fs::create_dir_all(&policies).map_err(|e| (e.to_string(), exit::ERROR))?;
        let dir = relative(&work.policies)?;
        let listed = git(&["ls-tree", "-r", "--name-only", rev, "--", &dir])?;
        for file in String::from_utf8_lossy(&listed)
            .lines()
            .filter(|f| f.ends_with(".cedar"))
        {
            let text = git(&["show", &format!("{rev}:{file}")])?;
            let name = Path::new(file).file_name().unwrap_or_default();
            std::fs::write(policies.join(name), text).map_err(|e| (e.to_string(), exit::ERROR))?;
        }
        let schema = scratch.join("schema.cedarschema");
        let schema_file = relative(&work.schema)?;
        let schema = match git(&["show", &format!("{rev}:{schema_file}")]) {
            Ok(text) => {
                std::fs::write(&schema, text).map_err(|e| (e.to_string(), exit::ERROR))?;
                schema
            }
            // A schema the revision did not track: the working one.
            Err(_) => work.schema.clone(),
        };
        Ok(Sources {
            policies,
            schema,
            entities: None,
        })
    }
}

/// The output of `git ARGS`, or why it failed.
fn git(args: &[&str]) -> Result<Vec<u8>, Failure> {
    let out = Command::new("git").args(args).output().map_err(|e| {
        (
            format!("`--base {}`: cannot run git: {e}", args.join(" ")),
            exit::ERROR,
        )
    })?;
    if !out.status.success() {
        return Err((
            format!(
                "`git {}`: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            exit::ERROR,
        ));
    }
    Ok(out.stdout)
}

/// `path` relative to the repository's top directory `top`, as git names it.
fn in_repository(top: &str, path: &Path) -> Result<String, Failure> {
    let absolute = std::path::absolute(path).map_err(|e| (e.to_string(), exit::ERROR))?;
    let top = std::fs::canonicalize(top).unwrap_or_else(|_| PathBuf::from(top));
    let absolute = absolute
        .parent()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .map_or(absolute.clone(), |p| {
            p.join(absolute.file_name().unwrap_or_default())
        });
    absolute
        .strip_prefix(&top)
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|_| {
            (
                format!("`{}` is not in the repository", path.display()),
                exit::ERROR,
            )
        })
}
