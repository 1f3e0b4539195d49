//! The decision log: one JSON line per decision, written by a thread of its own so that a
//! slow disk never holds up a decision.
//!
//! Every decision is either written as a whole line or counted in
//! `gatehouse_decision_log_dropped_total`, never half written:
//!
//! - a line that cannot be queued (the writer is [`LOG_QUEUE`] lines or [`LOG_QUEUE_BYTES`]
//!   behind, or the log is closed) is dropped and counted at once;
//! - the writer writes a burst of whole lines; when a write fails part way (a full disk),
//!   the file is cut back to the end of the last whole line, and the lines not written are
//!   counted. Where the target cannot be cut (stdout, a pipe), the next write begins with a
//!   line break, so that the partial line ends there and every later line is whole.
//!
//! The log's health (lines written and dropped, the last error) is in `/v1/status`.
//! [`DecisionLog::reopen`] (SIGHUP) closes the file and opens its path again, as logrotate
//! expects after moving it away.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
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

/// How many bytes of lines may wait for the writer (a full log's lines carry entities).
pub const LOG_QUEUE_BYTES: usize = 64 << 20;

/// What the writer is told.
enum Message {
    Line(String),
    Reopen,
}

/// What the decision log writes to: a file it can cut back and open again, or a stream.
pub trait Target: Write + Send {
    /// The length of what was written, when the target can be cut back (a file).
    fn written_len(&mut self) -> Option<u64>;
    /// Cuts the target back to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Opens the target's path again (after a rotation moved it away).
    fn reopen(&mut self) -> io::Result<()>;
}

/// A file appended to.
struct FileTarget {
    path: String,
    file: File,
}

impl FileTarget {
    fn open(path: &str) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_string(),
            file,
        })
    }
}

impl Write for FileTarget {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Target for FileTarget {
    fn written_len(&mut self) -> Option<u64> {
        self.file.metadata().ok().map(|m| m.len())
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn reopen(&mut self) -> io::Result<()> {
        *self = Self::open(&self.path)?;
        Ok(())
    }
}

/// Standard output: nothing to cut back or open again.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

impl Target for Stdout {
    fn written_len(&mut self) -> Option<u64> {
        None
    }
    fn truncate(&mut self, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The decision log's health, as `/v1/status` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogStatus {
    /// The path written to, or `-` for stdout.
    pub target: String,
    /// Whether the last write succeeded.
    pub healthy: bool,
    /// Lines written since start.
    pub written: u64,
    /// Lines not written since start: dropped because the writer was behind, or lost to a
    /// write error (also `gatehouse_decision_log_dropped_total`).
    pub dropped: u64,
    /// The last write or reopen error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
    /// When the file was last opened again (SIGHUP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reopened_at: Option<String>,
}

/// What the writer and the senders share.
struct Shared {
    dropped: Counter,
    written: AtomicU64,
    queued_bytes: AtomicUsize,
    status: Mutex<LogStatus>,
}

impl Shared {
    fn drop_lines(&self, n: u64) {
        self.dropped.inc_by(n);
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dropped += n;
    }

    fn failed(&self, what: &str, error: &io::Error) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if status.healthy {
            tracing::error!(%error, "{what}: the decision log loses lines until it can write again");
        }
        status.healthy = false;
        status.last_error = Some(format!("{what}: {error}"));
        status.last_error_at = Some(now());
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The decision log's sending side. Cheap to clone.
#[derive(Clone)]
pub struct DecisionLog {
    tx: SyncSender<Message>,
    shared: Arc<Shared>,
    /// Whether to include context and entities.
    pub full: bool,
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLog")
            .field("full", &self.full)
            .finish()
    }
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
    /// Opens the log: `-` is stdout, anything else a file appended to. Lines not written
    /// are counted in `dropped`.
    pub fn open(
        target: &str,
        full: bool,
        dropped: Counter,
    ) -> io::Result<(Self, DecisionLogWriter)> {
        let out: Box<dyn Target> = if target == "-" {
            Box::new(Stdout)
        } else {
            Box::new(FileTarget::open(target)?)
        };
        Self::to(out, target, full, dropped)
    }

    /// A log writing to `out` (named `name` in the status): what [`Self::open`] does, and
    /// what tests use to write to a target that fails.
    pub fn to(
        out: Box<dyn Target>,
        name: &str,
        full: bool,
        dropped: Counter,
    ) -> io::Result<(Self, DecisionLogWriter)> {
        let shared = Arc::new(Shared {
            dropped,
            written: AtomicU64::new(0),
            queued_bytes: AtomicUsize::new(0),
            status: Mutex::new(LogStatus {
                target: name.to_string(),
                healthy: true,
                written: 0,
                dropped: 0,
                last_error: None,
                last_error_at: None,
                reopened_at: None,
            }),
        });
        let (tx, rx) = sync_channel(LOG_QUEUE);
        let writer = Writer {
            out,
            shared: Arc::clone(&shared),
            broken_line: false,
        };
        let handle = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || writer.run(&rx))?;
        Ok((Self { tx, shared, full }, DecisionLogWriter(handle)))
    }

    /// Queues one line; false (and counted) when it was dropped.
    pub fn write(&self, line: String) -> bool {
        let bytes = line.len() + 1;
        let queued = self.shared.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if queued + bytes > LOG_QUEUE_BYTES {
            self.shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.shared.drop_lines(1);
            return false;
        }
        match self.tx.try_send(Message::Line(line)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                self.shared.drop_lines(1);
                false
            }
        }
    }

    /// Writes `line` as one JSON line, or counts it as dropped when it cannot be written
    /// (the writer fell behind, or it does not serialize).
    pub fn write_json(&self, line: &impl Serialize) {
        match serde_json::to_string(line) {
            Ok(text) => {
                self.write(text);
            }
            Err(_) => self.shared.drop_lines(1),
        }
    }

    /// Closes the file and opens its path again once the lines queued before are written
    /// (SIGHUP, after a rotation moved the file away).
    pub fn reopen(&self) {
        // Waits for room rather than dropping: a reopen is rare and must not be lost.
        let _ = self.tx.send(Message::Reopen);
    }

    /// The log's health.
    pub fn status(&self) -> LogStatus {
        let mut status = self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        status.written = self.shared.written.load(Ordering::Relaxed);
        status
    }
}

/// The writer thread's side.
struct Writer {
    out: Box<dyn Target>,
    shared: Arc<Shared>,
    /// A partial line was left where it could not be cut back: the next write ends it.
    broken_line: bool,
}

impl Writer {
    fn run(mut self, rx: &Receiver<Message>) {
        let mut burst = Vec::new();
        let mut ends = Vec::new();
        while let Ok(message) = rx.recv() {
            let mut next = Some(message);
            // Gather what is queued, then write it at once: one write per burst, not per
            // line; a reopen writes what came before it first.
            while let Some(message) = next {
                match message {
                    Message::Line(line) => {
                        self.shared
                            .queued_bytes
                            .fetch_sub(line.len() + 1, Ordering::Relaxed);
                        burst.extend_from_slice(line.as_bytes());
                        burst.push(b'\n');
                        ends.push(burst.len());
                    }
                    Message::Reopen => {
                        self.write_burst(&mut burst, &mut ends);
                        self.reopen();
                    }
                }
                next = rx.try_recv().ok();
            }
            self.write_burst(&mut burst, &mut ends);
        }
    }

    fn reopen(&mut self) {
        match self.out.reopen() {
            Ok(()) => {
                self.broken_line = false;
                let mut status = self
                    .shared
                    .status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                status.reopened_at = Some(now());
                tracing::info!(target = %status.target, "decision log opened again");
            }
            Err(error) => self
                .shared
                .failed("cannot open the decision log again", &error),
        }
    }

    /// Writes the whole lines of `burst` (each ending at one of `ends`), or as many as fit:
    /// a line cut short is cut off again, and every line not written is counted.
    #[expect(
        clippy::indexing_slicing,
        reason = "`written` never passes `all.len()` (write returns what it wrote of the rest), and `whole` is at least 1 where `ends[whole - 1]` is read"
    )]
    fn write_burst(&mut self, burst: &mut Vec<u8>, ends: &mut Vec<usize>) {
        if ends.is_empty() {
            return;
        }
        let before = self.out.written_len();
        let prefix: &[u8] = if self.broken_line { b"\n" } else { b"" };
        let mut written = 0;
        let mut failure = None;
        let all = [prefix, burst.as_slice()].concat();
        while written < all.len() {
            match self.out.write(&all[written..]) {
                Ok(0) => {
                    failure = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let lines = written.saturating_sub(prefix.len());
        let whole = ends.iter().take_while(|&&end| end <= lines).count();
        let boundary = if whole == 0 { 0 } else { ends[whole - 1] };
        if let Some(error) = failure {
            self.shared.failed("cannot write the decision log", &error);
            self.shared.drop_lines((ends.len() - whole) as u64);
            if written < prefix.len() {
                // The line break that ends the earlier partial line is not out either.
            } else if lines > boundary {
                // Part of a line is out: cut it off, or end it with the next write.
                let cut = before.map(|len| len + (prefix.len() + boundary) as u64);
                self.broken_line = cut.is_none_or(|len| self.out.truncate(len).is_err());
            } else {
                self.broken_line = false;
            }
        } else {
            self.broken_line = false;
            let _ = self.out.flush();
            let mut status = self
                .shared
                .status
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            status.healthy = true;
        }
        self.shared
            .written
            .fetch_add(whole as u64, Ordering::Relaxed);
        burst.clear();
        ends.clear();
    }
}
