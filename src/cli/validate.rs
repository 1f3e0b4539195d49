//! `gatehouse validate`: parse, re-id and strictly validate a policy set against its schema.

use std::process::ExitCode;

use clap::Args;

use super::{PolicyArgs, exit, report_load_error};
use crate::policy;

/// Arguments of `gatehouse validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The policy set.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Prints `ok` and a summary, or every problem at `file:line:col`.
pub fn validate(args: &ValidateArgs) -> ExitCode {
    match policy::load(&args.policy.sources()) {
        Ok(snapshot) => {
            super::emit(&format!(
                "ok: {} policies in {} files validate strictly against `{}` (version {})",
                snapshot.info.len(),
                snapshot.files.len(),
                args.policy.schema.display(),
                snapshot.version
            ));
            ExitCode::from(exit::OK)
        }
        Err(error) => {
            report_load_error(&error);
            ExitCode::from(exit::INVALID)
        }
    }
}
