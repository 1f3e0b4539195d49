//! Logs, metrics and the decision log.
//!
//! - Logs: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON.
//! - Metrics ([`metrics`]): a Prometheus registry owned by the app, rendered at
//!   `GET /metrics`, with the standard `process_*` metrics ([`process`]).
//! - Decision log ([`decision_log`]): one JSON line per decision, written by a thread of its
//!   own.

pub mod decision_log;
pub mod metrics;
pub mod process;

use std::io;

pub use decision_log::{DecisionLog, DecisionLogWriter, LOG_QUEUE, LOG_QUEUE_BYTES};
pub use metrics::{Metrics, RouteLabel, RouteLabels, Source};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: a line of text each, colored on a terminal.
    #[default]
    Text,
    /// For log collectors: a JSON object each (`timestamp`, `level`, `target`, `fields`).
    Json,
}

/// Installs the stderr log subscriber, in text; a second call does nothing.
pub fn init_logs() {
    init_logs_as(LogFormat::Text);
}

/// Installs the stderr log subscriber in `format`; a second call does nothing.
pub fn init_logs_as(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    let _ = match format {
        LogFormat::Json => logs.json().try_init(),
        LogFormat::Text => {
            let color = std::io::IsTerminal::is_terminal(&io::stderr())
                && std::env::var_os("NO_COLOR").is_none();
            logs.with_ansi(color).try_init()
        }
    };
}
