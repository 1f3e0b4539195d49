//! Every Prometheus metric gatehouse exports, in a registry owned by the app (no global
//! recorder, so several servers can live in one process, as they do in the tests).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::process::ProcessCollector;
use crate::decide::Verdict;
use crate::policy::{LoadResult, ReloadOutcome, Snapshot};

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
struct ResultLabel {
    result: String,
}

/// Labels of `gatehouse_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    result: String,
    source: String,
}

/// The policy version label of `gatehouse_policy_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

/// The reason label of `gatehouse_http_connections_closed_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// The cache label of `gatehouse_cache_bytes`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    cache: String,
}

/// The action label of `gatehouse_shadow_disagreements_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

/// Labels of `gatehouse_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    cedar: String,
}

/// Where a decision was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `POST /v1/is_authorized`.
    Question,
    /// One question of `POST /v1/is_authorized/batch`.
    Batch,
    /// One action of `POST /v1/allowed_actions`: a request decides every applicable action.
    AllowedActions,
    /// One evaluation of `POST /access/v1/evaluation` or `/access/v1/evaluations`.
    Authzen,
}

impl Source {
    const ALL: [Source; 4] = [
        Self::Question,
        Self::Batch,
        Self::AllowedActions,
        Self::Authzen,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Question => "is_authorized",
            Self::Batch => "batch",
            Self::AllowedActions => "allowed_actions",
            Self::Authzen => "authzen",
        }
    }
}

type HistogramFamily = Family<RouteLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 25 µs to ~0.8 s.
    Histogram::new(exponential_buckets(0.000_025, 2.0, 16))
}

/// The entity database's metrics (`--entities-db`), shared with its follower and readers.
#[derive(Debug, Clone)]
pub struct EntityMetrics {
    /// The position of the last change applied (an LSN as a number on PostgreSQL).
    pub applied: Gauge,
    /// PostgreSQL: how far the last known end of its WAL is past the position applied, in
    /// bytes.
    pub behind_bytes: Gauge,
    /// Seconds since the changes were last known read in full (set at each scrape).
    pub unread_seconds: Gauge<f64, AtomicU64>,
    /// Times the follower lost the changes and started again with an empty cache.
    pub restarts: Counter,
    /// Entities in the entity database's cache (set at each scrape).
    pub cached: Gauge,
    /// Reads of the database: one per level of a question's references that the cache did
    /// not hold whole (a batch of statements, one per type and owned table).
    pub reads: Counter,
    /// Entities a question needed, found in the cache.
    pub hits: Counter,
    /// Entities a question needed, read from the database.
    pub misses: Counter,
    /// Reading a question's entities, cache and database together, in seconds.
    pub load_seconds: Histogram,
    /// Reads of the database, per question.
    pub reads_per_question: Histogram,
}

impl Default for EntityMetrics {
    fn default() -> Self {
        Self {
            applied: Gauge::default(),
            behind_bytes: Gauge::default(),
            unread_seconds: Gauge::default(),
            restarts: Counter::default(),
            cached: Gauge::default(),
            reads: Counter::default(),
            hits: Counter::default(),
            misses: Counter::default(),
            load_seconds: latency_histogram(),
            reads_per_question: Histogram::new([0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0]),
        }
    }
}

impl EntityMetrics {
    fn register(&self, registry: &mut Registry) {
        let gauges: [(&str, &str, &Gauge); 3] = [
            (
                "gatehouse_entities_applied_position",
                "The entity database's position the sidecar has applied (a change's number on SQLite, an LSN as a number on PostgreSQL)",
                &self.applied,
            ),
            (
                "gatehouse_entities_behind_bytes",
                "PostgreSQL: how far the last known end of the WAL is past the position applied, in bytes",
                &self.behind_bytes,
            ),
            (
                "gatehouse_entities_cached",
                "Entities read from the entity database and kept, exact by its changes",
                &self.cached,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "gatehouse_entities_unread_seconds",
            "Seconds since the entity database's changes were last known read in full; questions are refused past --max-staleness",
            self.unread_seconds.clone(),
        );
        let counters: [(&str, &str, &Counter); 4] = [
            (
                "gatehouse_entities_restarts",
                "Times the follower lost the entity database's changes (a connection, a slot, a pruned log) and started again with an empty cache",
                &self.restarts,
            ),
            (
                "gatehouse_entities_reads",
                "Reads of the entity database: one per level of a question's references the cache did not hold whole",
                &self.reads,
            ),
            (
                "gatehouse_entities_cache_hits",
                "Entities questions needed that the cache held",
                &self.hits,
            ),
            (
                "gatehouse_entities_cache_misses",
                "Entities questions needed that were read from the database",
                &self.misses,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "gatehouse_entities_load_seconds",
            "Reading a question's entities (cache and database), in seconds",
            self.load_seconds.clone(),
        );
        registry.register(
            "gatehouse_entities_reads_per_question",
            "Reads of the entity database per question (levels of references not all cached)",
            self.reads_per_question.clone(),
        );
    }
}

/// Every metric gatehouse exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method and status: every request, shed and timed-out ones included.
    pub http_requests: Family<RouteLabels, Counter>,
    /// Request latency by route, in seconds.
    pub http_latency: HistogramFamily,
    /// Requests being served now.
    pub in_flight: Gauge,
    /// Requests shed (503) because `--max-concurrency` were in flight.
    pub shed: Counter,
    /// Connections open now.
    pub connections_open: Gauge,
    connections_closed: Family<ReasonLabel, Counter>,
    /// Decisions not written to the decision log (the writer behind, a write error).
    pub decision_log_dropped: Counter,
    /// Decisions in the decision cache (set at each scrape).
    pub decision_cache_entries: Gauge,
    /// Parsed entities in the entity cache (set at each scrape).
    pub entity_cache_entries: Gauge,
    /// Rendered answers in the hot cache (set at each scrape).
    pub hot_cache_entries: Gauge,
    cache_bytes: Family<CacheLabel, Gauge>,
    /// Shadow jobs dropped because the candidate's queue was full.
    pub shadow_dropped: Counter,
    shadow_evaluations: Family<ResultLabel, Counter>,
    shadow_disagreements: Family<ActionLabel, Counter>,
    policy_loads: Family<ResultLabel, Counter>,
    files_valid: Gauge,
    reload_pending: Gauge,
    last_load_success: Gauge<f64, AtomicU64>,
    policy_info: Family<VersionLabel, Gauge>,
    policies: Gauge,
    /// The counters every decision touches, made once so that counting allocates nothing:
    /// `[source][verdict]`, then cache hit and miss.
    decided: [[Counter; 2]; 4],
    cache_hit: Counter,
    cache_miss: Counter,
    /// The entity database's (`--entities-db`).
    pub entities: EntityMetrics,
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
        let decisions = Family::<DecisionLabels, Counter>::default();
        let cache = Family::<ResultLabel, Counter>::default();
        let policy_loads = Family::<ResultLabel, Counter>::default();
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                cedar: cedar_policy::get_sdk_version().to_string(),
            })
            .set(1);
        // One statement per `get_or_create`: its guard lives to the end of the statement, and
        // a second call on the same family within it would deadlock.
        let result = |family: &Family<ResultLabel, Counter>, result: &str| {
            let counter = family.get_or_create(&ResultLabel {
                result: result.into(),
            });
            counter.clone()
        };
        let cache_hit = result(&cache, "hit");
        let cache_miss = result(&cache, "miss");
        let decided = Source::ALL.map(|source| {
            [Verdict::Allow, Verdict::Deny].map(|verdict| {
                let counter = decisions.get_or_create(&DecisionLabels {
                    result: format!("{verdict:?}"),
                    source: source.as_str().into(),
                });
                counter.clone()
            })
        });
        let metrics = Self {
            registry: Registry::default(),
            http_requests,
            http_latency,
            in_flight: Gauge::default(),
            connections_open: Gauge::default(),
            connections_closed: Family::default(),
            shed: Counter::default(),
            decision_log_dropped: Counter::default(),
            decision_cache_entries: Gauge::default(),
            entity_cache_entries: Gauge::default(),
            hot_cache_entries: Gauge::default(),
            cache_bytes: Family::default(),
            shadow_dropped: Counter::default(),
            shadow_evaluations: Family::default(),
            shadow_disagreements: Family::default(),
            policy_loads,
            files_valid: Gauge::default(),
            reload_pending: Gauge::default(),
            last_load_success: Gauge::default(),
            policy_info: Family::default(),
            policies: Gauge::default(),
            decided,
            cache_hit,
            cache_miss,
            entities: EntityMetrics::default(),
        };
        metrics.register_http(&mut registry);
        metrics.register_decisions(&mut registry, decisions, cache);
        metrics.register_policy(&mut registry);
        metrics.register_log_and_shadow(&mut registry);
        metrics.entities.register(&mut registry);
        registry.register(
            "gatehouse_build_info",
            "The gatehouse and Cedar versions of this binary (value 1)",
            build_info,
        );
        registry.register_collector(Box::new(ProcessCollector::new()));
        Self {
            registry,
            ..metrics
        }
    }

    /// The HTTP server's metrics: requests, latency, connections, shedding.
    fn register_http(&self, registry: &mut Registry) {
        registry.register(
            "gatehouse_http_requests",
            "HTTP requests by route, method and status, shed and timed-out ones included",
            self.http_requests.clone(),
        );
        registry.register(
            "gatehouse_http_request_duration_seconds",
            "HTTP request latency by route",
            self.http_latency.clone(),
        );
        registry.register(
            "gatehouse_http_connections_open",
            "HTTP connections open",
            self.connections_open.clone(),
        );
        registry.register(
            "gatehouse_http_connections_closed",
            "HTTP connections the server closed, by reason: header_timeout (a request head not finished in time), idle, evicted (the idlest, to make room), refused (every connection busy at the cap), shutdown, shutdown_grace (a request still in flight after the grace)",
            self.connections_closed.clone(),
        );
        registry.register(
            "gatehouse_http_requests_in_flight",
            "HTTP requests being served",
            self.in_flight.clone(),
        );
        registry.register(
            "gatehouse_http_requests_shed",
            "HTTP requests refused with 503 because --max-concurrency were in flight",
            self.shed.clone(),
        );
    }

    /// Decisions and the caches in front of them.
    fn register_decisions(
        &self,
        registry: &mut Registry,
        decisions: Family<DecisionLabels, Counter>,
        cache: Family<ResultLabel, Counter>,
    ) {
        registry.register(
            "gatehouse_decisions",
            "Decisions by result and source; allowed_actions counts one decision per action it decides",
            decisions,
        );
        registry.register(
            "gatehouse_decision_cache_lookups",
            "Decision cache lookups by result (hit, miss)",
            cache,
        );
        registry.register(
            "gatehouse_decision_cache_entries",
            "Decisions in the decision cache",
            self.decision_cache_entries.clone(),
        );
        registry.register(
            "gatehouse_entity_cache_entries",
            "Parsed request entities in the entity cache",
            self.entity_cache_entries.clone(),
        );
        registry.register(
            "gatehouse_cache_bytes",
            "The estimated bytes each cache holds (decisions, hot, entities, stores, plans), each within its share of --cache-bytes",
            self.cache_bytes.clone(),
        );
        registry.register(
            "gatehouse_hot_cache_entries",
            "Rendered answers in the hot cache",
            self.hot_cache_entries.clone(),
        );
    }

    /// The live policy set and its loads.
    fn register_policy(&self, registry: &mut Registry) {
        registry.register(
            "gatehouse_policy_loads",
            "Loads of the policy files by result (ok, unchanged, failed), the start-up load included",
            self.policy_loads.clone(),
        );
        registry.register(
            "gatehouse_policy_files_valid",
            "1 when the policy files on disk loaded (and passed the reload gates) at the last attempt, 0 when the live set is older than the files",
            self.files_valid.clone(),
        );
        registry.register(
            "gatehouse_policy_reload_pending",
            "1 while a changed set that drops live policies waits for the files to settle",
            self.reload_pending.clone(),
        );
        registry.register(
            "gatehouse_last_reload_success_timestamp_seconds",
            "Unix time of the last successful policy load",
            self.last_load_success.clone(),
        );
        registry.register(
            "gatehouse_policy_info",
            "The live policy version (value 1)",
            self.policy_info.clone(),
        );
        registry.register(
            "gatehouse_policies",
            "Policies in the live set",
            self.policies.clone(),
        );
    }

    /// What the decision log and the shadow set dropped, and how the shadow set agreed.
    fn register_log_and_shadow(&self, registry: &mut Registry) {
        registry.register(
            "gatehouse_decision_log_dropped",
            "Decisions not written to the decision log: dropped because the writer fell behind, or lost to a write error (a full disk)",
            self.decision_log_dropped.clone(),
        );
        registry.register(
            "gatehouse_shadow_evaluations",
            "Decisions asked again of the shadow (candidate) set, by result: agree, reasons_differ (same decision, other policies), disagree, error (the candidate cannot ask it)",
            self.shadow_evaluations.clone(),
        );
        registry.register(
            "gatehouse_shadow_disagreements",
            "Decisions the shadow (candidate) set decides differently, by action",
            self.shadow_disagreements.clone(),
        );
        registry.register(
            "gatehouse_shadow_dropped",
            "Shadow evaluations dropped because the candidate's queue was full",
            self.shadow_dropped.clone(),
        );
    }

    /// Records the start-up load: the set is live and the files are valid.
    pub fn record_start(&self, live: &Snapshot) {
        self.count_load(LoadResult::Ok);
        self.set_live(live);
    }

    /// Sets the estimated bytes a cache holds.
    pub fn set_cache_bytes(&self, cache: &'static str, bytes: u64) {
        self.cache_bytes
            .get_or_create(&CacheLabel {
                cache: cache.into(),
            })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Counts a connection the server closed, by reason.
    pub fn count_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Records a reload's outcome.
    pub fn record_reload(&self, outcome: &ReloadOutcome, live: &Snapshot) {
        self.count_load(outcome.result());
        self.reload_pending
            .set(i64::from(matches!(outcome, ReloadOutcome::Pending(_))));
        match outcome {
            ReloadOutcome::Failed(_) | ReloadOutcome::Refused { .. } => {
                self.files_valid.set(0);
            }
            ReloadOutcome::Swapped(_) | ReloadOutcome::Unchanged => self.set_live(live),
            // Held back is not invalid: what the files say is not live yet, for now.
            ReloadOutcome::Pending(_) => {}
        }
    }

    fn count_load(&self, result: LoadResult) {
        self.policy_loads
            .get_or_create(&ResultLabel {
                result: result.as_str().into(),
            })
            .inc();
    }

    fn set_live(&self, snapshot: &Snapshot) {
        self.files_valid.set(1);
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
        self.last_load_success.set(now);
    }

    /// Counts one shadow evaluation, and a disagreement by its action.
    pub fn count_shadow(&self, comparison: crate::shadow::Comparison, action: &str) {
        self.shadow_evaluations
            .get_or_create(&ResultLabel {
                result: comparison.as_str().into(),
            })
            .inc();
        if comparison == crate::shadow::Comparison::Disagree {
            self.shadow_disagreements
                .get_or_create(&ActionLabel {
                    action: action.into(),
                })
                .inc();
        }
    }

    /// Counts one decision.
    #[expect(
        clippy::indexing_slicing,
        reason = "both indices are enum discriminants of the arrays' own length"
    )]
    pub fn count_decision(&self, verdict: Verdict, source: Source) {
        let source = match source {
            Source::Question => 0,
            Source::Batch => 1,
            Source::AllowedActions => 2,
            Source::Authzen => 3,
        };
        let verdict = match verdict {
            Verdict::Allow => 0,
            Verdict::Deny => 1,
        };
        self.decided[source][verdict].inc();
    }

    /// Counts one lookup of the decision cache.
    pub fn count_cache_lookup(&self, hit: bool) {
        if hit {
            &self.cache_hit
        } else {
            &self.cache_miss
        }
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
