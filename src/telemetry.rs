//! Logs, metrics and the decision log.
//!
//! - Logs: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//! - Metrics: a Prometheus registry owned by the app (no global recorder, so several servers
//!   can live in one process, as they do in the tests), rendered at `GET /metrics`.
//! - Decision log: one JSON line per decision, written by a thread of its own so that a slow
//!   disk never holds up a decision; if the writer falls more than [`LOG_QUEUE`] lines
//!   behind, lines are dropped and counted (`gatehouse_decision_log_dropped_total`).

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::policy::{ReloadOutcome, Snapshot};

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

/// Labels of HTTP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route, e.g. `/v1/is_authorized`, or `unmatched`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// HTTP status code.
    pub status: u16,
}

/// Label of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The matched route.
    pub route: String,
}

/// A single-valued label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `Allow`/`Deny`, `hit`/`miss`, `ok`/`failed`…
    pub result: String,
}

/// The policy version label of `gatehouse_policy_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    /// The live policy version.
    pub version: String,
}

type HistogramFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 25 µs to ~0.8 s.
    Histogram::new(exponential_buckets(0.000_025, 2.0, 16))
}

/// Every metric gatehouse exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status.
    pub http_requests: Family<RouteLabels, Counter>,
    /// Request latency by route, in seconds.
    pub http_latency: HistogramFamily,
    /// Decisions by result.
    pub decisions: Family<ResultLabel, Counter>,
    /// Decision cache lookups by result (`hit`, `miss`).
    pub cache: Family<ResultLabel, Counter>,
    /// Reloads by result (`ok`, `unchanged`, `failed`).
    pub reloads: Family<ResultLabel, Counter>,
    /// Unix time of the last successful load.
    pub last_reload_success: Gauge<f64, AtomicU64>,
    /// 1, labelled with the live policy version.
    pub policy_info: Family<VersionLabel, Gauge>,
    /// Policies in the live set.
    pub policies: Gauge,
    /// Decision-log lines dropped because the writer fell behind.
    pub decision_log_dropped: Counter,
    fixed: FixedCounters,
}

/// Handles on the counters every decision touches.
struct FixedCounters {
    allow: Counter,
    deny: Counter,
    hit: Counter,
    miss: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<RouteLabels, Counter>::default();
        let http_latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let decisions = Family::<ResultLabel, Counter>::default();
        let cache = Family::<ResultLabel, Counter>::default();
        let reloads = Family::<ResultLabel, Counter>::default();
        let last_reload_success = Gauge::<f64, AtomicU64>::default();
        let policy_info = Family::<VersionLabel, Gauge>::default();
        let policies = Gauge::default();
        let decision_log_dropped = Counter::default();
        let r = &mut registry;
        r.register(
            "gatehouse_http_requests",
            "HTTP requests by route, method and status",
            http_requests.clone(),
        );
        r.register(
            "gatehouse_http_request_duration_seconds",
            "HTTP request latency by route",
            http_latency.clone(),
        );
        r.register(
            "gatehouse_decisions",
            "Decisions by result",
            decisions.clone(),
        );
        r.register(
            "gatehouse_decision_cache_lookups",
            "Decision cache lookups by result (hit, miss)",
            cache.clone(),
        );
        r.register(
            "gatehouse_reloads",
            "Policy reloads by result (ok, unchanged, failed)",
            reloads.clone(),
        );
        r.register(
            "gatehouse_last_reload_success_timestamp_seconds",
            "Unix time of the last successful policy load",
            last_reload_success.clone(),
        );
        r.register(
            "gatehouse_policy_info",
            "The live policy version (value 1)",
            policy_info.clone(),
        );
        r.register(
            "gatehouse_policies",
            "Policies in the live set",
            policies.clone(),
        );
        r.register(
            "gatehouse_decision_log_dropped",
            "Decision-log lines dropped because the writer fell behind",
            decision_log_dropped.clone(),
        );
        let result = |family: &Family<ResultLabel, Counter>, r: &str| {
            family
                .get_or_create(&ResultLabel {
                    result: r.to_string(),
                })
                .clone()
        };
        let fixed = FixedCounters {
            allow: result(&decisions, "Allow"),
            deny: result(&decisions, "Deny"),
            hit: result(&cache, "hit"),
            miss: result(&cache, "miss"),
        };
        Self {
            fixed,
            registry,
            http_requests,
            http_latency,
            decisions,
            cache,
            reloads,
            last_reload_success,
            policy_info,
            policies,
            decision_log_dropped,
        }
    }

    /// Records the live snapshot (at start-up and after each successful reload).
    pub fn set_live(&self, snapshot: &Snapshot) {
        self.policy_info.clear();
        self.policy_info
            .get_or_create(&VersionLabel {
                version: snapshot.version.clone(),
            })
            .set(1);
        self.policies.set(snapshot.info.len() as i64);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_reload_success.set(now);
    }

    /// Records a reload's outcome.
    pub fn record_reload(&self, outcome: &ReloadOutcome, live: &Snapshot) {
        let result = match outcome {
            ReloadOutcome::Swapped(_) => "ok",
            ReloadOutcome::Unchanged => "unchanged",
            ReloadOutcome::Failed(_) => "failed",
        };
        self.counter(&self.reloads, result);
        if !matches!(outcome, ReloadOutcome::Failed(_)) {
            self.set_live(live);
        }
    }

    /// Counts one decision and its cache lookup. The label sets are built once, so this
    /// allocates nothing on the hot path.
    pub fn count_decision(&self, verdict: &str, cache_hit: bool) {
        let decided = if verdict == "Allow" {
            &self.fixed.allow
        } else {
            &self.fixed.deny
        };
        decided.inc();
        if cache_hit {
            &self.fixed.hit
        } else {
            &self.fixed.miss
        }
        .inc();
    }

    /// Increments `family`'s counter for `result`.
    pub fn counter(&self, family: &Family<ResultLabel, Counter>, result: &str) {
        family
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

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
