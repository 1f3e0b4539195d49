//! Logs, metrics and the decision log.
//!
//! - Logs: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
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

/// Installs the stderr log subscriber; a second call does nothing.
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let color =
        std::io::IsTerminal::is_terminal(&io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
        .with_writer(io::stderr)
        .try_init();
}
