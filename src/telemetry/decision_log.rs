//! The decision log: one JSON line per decision, written by a thread of its own so that a
//! slow disk never holds up a decision; if the writer falls more than [`LOG_QUEUE`] lines
//! behind, lines are dropped and counted (`gatehouse_decision_log_dropped_total`).

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use serde::Serialize;
use serde_json::Value;

use crate::decide::{Decision, EntityList};

/// One line of the decision log.
#[derive(Debug, Serialize)]
pub struct DecisionLine<'a> {
    /// When the decision was made, RFC 3339 with microseconds.
    pub time: String,
    /// The request's `x-request-id`.
    pub request_id: &'a str,
    /// The principal, as text.
    pub principal: &'a str,
    /// The action, as text.
    pub action: &'a str,
    /// The resource, as text.
    pub resource: &'a str,
    /// The decision and its reasons and errors.
    #[serde(flatten)]
    pub decision: &'a Decision,
    /// The version of the set that decided.
    pub policy_version: &'a str,
    /// Whether the decision came from a cache.
    pub cache_hit: bool,
    /// Microseconds from the request's start to this decision.
    pub latency_us: u64,
    /// The context, with `--decision-log-full`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<&'a Value>,
    /// The question's own entities, with `--decision-log-full`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<&'a EntityList>,
    /// A batch's shared entities, with `--decision-log-full`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_entities: Option<&'a EntityList>,
}

/// What `--decision-log-full` adds to a line: the context, the question's own entities and
/// a batch's shared entities.
pub type Full<'a> = (
    Option<&'a Value>,
    Option<&'a EntityList>,
    Option<&'a EntityList>,
);

/// How many decision-log lines may wait for the writer.
pub const LOG_QUEUE: usize = 65_536;

/// The decision log's sending side. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DecisionLog {
    tx: SyncSender<String>,
    /// Whether to include context and entities.
    pub full: bool,
}

/// Joins the writer thread, flushing the log, once every [`DecisionLog`] is dropped.
#[derive(Debug)]
pub struct DecisionLogWriter(JoinHandle<()>);

impl DecisionLogWriter {
    /// Waits for the last lines to be written.
    pub fn finish(self) {
        let _ = self.0.join();
    }
}

impl DecisionLog {
    /// Opens the log: `-` is stdout, anything else a file appended to.
    pub fn open(target: &str, full: bool) -> io::Result<(Self, DecisionLogWriter)> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(OpenOptions::new().create(true).append(true).open(target)?)
        };
        let (tx, rx) = sync_channel(LOG_QUEUE);
        let handle = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_lines(rx, BufWriter::new(out)))?;
        Ok((Self { tx, full }, DecisionLogWriter(handle)))
    }

    /// Queues one line; returns false when it was dropped.
    pub fn write(&self, line: String) -> bool {
        match self.tx.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Writes `line` as one JSON line, or counts it in `dropped` when it cannot be
    /// written (the writer fell behind, or it does not serialize).
    pub fn write_json(
        &self,
        line: &impl Serialize,
        dropped: &prometheus_client::metrics::counter::Counter,
    ) {
        let written = serde_json::to_string(line).is_ok_and(|text| self.write(text));
        if !written {
            dropped.inc();
        }
    }
}

fn write_lines(rx: Receiver<String>, mut out: BufWriter<Box<dyn Write + Send>>) {
    while let Ok(line) = rx.recv() {
        let mut next = Some(line);
        // Write what is queued, then flush once: one syscall per burst, not per line.
        while let Some(line) = next {
            if writeln!(out, "{line}").is_err() {
                tracing::error!("cannot write the decision log");
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}
