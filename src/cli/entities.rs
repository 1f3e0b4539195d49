//! `gatehouse entities`: entities moved between Cedar's JSON and a database, through a
//! mapping file (the bundled domain's tables unless `--entities-map` names another).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use gatehouse_source::{MappingFile, Source};
use serde_json::Value;

use super::{PolicyArgs, exit, report_load_error};
use crate::config::EntitySourceArgs;
use crate::policy::{self, Snapshot};

/// Arguments of `gatehouse entities`.
#[derive(Debug, Args)]
pub struct EntitiesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: EntitiesCommand,
}

/// The subcommands of `gatehouse entities`.
#[derive(Debug, Subcommand)]
pub enum EntitiesCommand {
    /// Write entities (a JSON array in Cedar's entity format, checked against the schema)
    /// into the database, replacing what it held of each; `--delete` removes entities.
    Import(ImportArgs),
    /// Print entities the database holds as a JSON array in Cedar's entity format: those
    /// named, or all.
    Export(ExportArgs),
}

/// Arguments of `gatehouse entities import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The database and its mapping.
    #[command(flatten)]
    pub source: EntitySourceArgs,
    /// The policy set, whose schema the entities are checked against.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The entities to write (`-` for standard input).
    pub file: Option<PathBuf>,
    /// An entity to remove, as a uid (`User::"vera"`); repeat for several.
    #[arg(long, value_name = "UID")]
    pub delete: Vec<String>,
}

/// Arguments of `gatehouse entities export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The database and its mapping.
    #[command(flatten)]
    pub source: EntitySourceArgs,
    /// The policy set, whose schema the mapping is checked against.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// The uids to print (`User::"vera"`); every entity when none is named.
    pub uids: Vec<String>,
}

/// Runs `gatehouse entities …`.
pub fn entities(args: &EntitiesArgs) -> ExitCode {
    let (source, policy) = match &args.command {
        EntitiesCommand::Import(a) => (&a.source, &a.policy),
        EntitiesCommand::Export(a) => (&a.source, &a.policy),
    };
    let snapshot = match policy::load(&policy.sources()) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            report_load_error(&error);
            return ExitCode::from(exit::INVALID);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start a runtime: {error}")),
    };
    let result = runtime.block_on(async {
        let source = open(source, &snapshot).await?;
        match &args.command {
            EntitiesCommand::Import(a) => import(&source, &snapshot, a).await,
            EntitiesCommand::Export(a) => export(&source, a).await,
        }
    });
    match result {
        Ok(text) => {
            super::emit(&text);
            ExitCode::from(exit::OK)
        }
        Err(message) => fail(&message),
    }
}

/// The database of `args`, its mapping checked against the schema and its tables.
async fn open(args: &EntitySourceArgs, snapshot: &Snapshot) -> Result<Source, String> {
    let mapping = match &args.entities_map {
        None => MappingFile::Bundled,
        Some(path) => MappingFile::Text(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?,
        ),
    };
    Source::open(&args.entities_db, &mapping, snapshot)
        .await
        .map_err(|e| e.to_string())
}

async fn import(source: &Source, snapshot: &Snapshot, args: &ImportArgs) -> Result<String, String> {
    let mut said = Vec::new();
    if let Some(file) = &args.file {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| format!("cannot read standard input: {e}"))?
        } else {
            std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read `{}`: {e}", file.display()))?
        };
        let entities: Value = serde_json::from_str(&text)
            .map_err(|e| format!("`{}` is not JSON: {e}", file.display()))?;
        let written = source
            .import(snapshot, &entities)
            .await
            .map_err(|e| format!("`{}`: {e}", file.display()))?;
        said.push(format!("imported {written} entities"));
    }
    if !args.delete.is_empty() {
        let uids = parse_uids(&args.delete)?;
        let deleted = source.delete(&uids).await.map_err(|e| e.to_string())?;
        said.push(format!(
            "deleted {deleted} of {} entities named",
            uids.len()
        ));
    }
    if said.is_empty() {
        return Err("nothing to do: name a file of entities, or `--delete UID`".into());
    }
    // The position after the writes: a question carrying it as its token is decided on them.
    let position = source.position().await.map_err(|e| e.to_string())?;
    said.push(format!("position {}", source.show_position(position)));
    Ok(said.join("; "))
}

async fn export(source: &Source, args: &ExportArgs) -> Result<String, String> {
    let entities = if args.uids.is_empty() {
        source.export_all().await
    } else {
        source.load(&parse_uids(&args.uids)?).await
    }
    .map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&entities).map_err(|e| e.to_string())
}

/// Uids as written on the command line, in Cedar's form or `Type::plain-id`.
fn parse_uids(texts: &[String]) -> Result<Vec<cedar_policy::EntityUid>, String> {
    texts
        .iter()
        .map(|text| {
            crate::cedar_json::flexible_uid(text)
                .ok_or_else(|| format!("`{text}` is not a uid such as `User::\"vera\"`"))
        })
        .collect()
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(exit::ERROR)
}
