//! The running sidecar, built in one place: [`Application::build`] loads the policy set,
//! starts the watcher, opens the decision log and makes the metrics, the decider and the
//! router, all from one [`Config`]. `gatehouse serve`, the integration tests, the client's
//! documentation example and the fuzz target all start gatehouse through it, so what they
//! exercise is the production wiring.
//!
//! The reload gates (`--require-properties`, `--require-suites`) prove and test policy sets
//! with the policy-author tools, which live in the `gatehouse` binary with the symbolic
//! compiler; the binary hands them in as an [`OpenGates`] ([`Application::build_gated`]).
//! Without one, a configuration that asks for gates is refused ([`StartError::NoGates`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::authzen::TypeMap;
use crate::config::Config;
use crate::decide::Decider;
use crate::http::{self, AppState, Authzen, HotCache, Limits, Services};
use crate::plan::Planner;
use crate::policy::watch::{self, WatchError, Watcher};
use crate::policy::{Gate, GateFailure, LoadError, PolicyStore};
use crate::shadow::{Shadow, ShadowWorker};
use crate::telemetry::{DecisionLog, DecisionLogWriter, Metrics};

/// Why the reload gates cannot be set up (a path that does not exist, no solver).
pub type GateSetupError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the reload gates of `--require-properties` and `--require-suites` (either may be
/// absent): `None` when neither is given. It may block (it starts a solver): it runs off the
/// async threads.
pub type OpenGates =
    fn(Option<&Path>, Option<&Path>) -> Result<Option<Box<dyn Gate>>, GateSetupError>;

/// How long `run_until` waits for the decision log's last lines.
const LOG_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The first load failed: gatehouse does not serve without a valid set.
    #[error("the policy set is not valid: {0}")]
    InvalidPolicies(#[source] LoadError),
    /// The admin token file cannot be read.
    #[error("cannot read the admin token file `{}`: {source}", path.display())]
    AdminTokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--authzen-types` does not parse.
    #[error("--authzen-types: {0}")]
    AuthzenTypes(String),
    /// `--admin-token` (or `GATEHOUSE_ADMIN_TOKEN`) is empty.
    #[error(
        "the admin token (--admin-token or GATEHOUSE_ADMIN_TOKEN) is empty: give a token, or unset it to leave the admin routes open"
    )]
    EmptyAdminTokenFlag,
    /// The admin token file holds no token.
    #[error("the admin token file `{}` is empty", .0.display())]
    EmptyAdminToken(PathBuf),
    /// `--require-properties` or `--require-suites` cannot be set up (a path that does not
    /// exist, no solver).
    #[error(transparent)]
    Gates(GateSetupError),
    /// `--require-properties` or `--require-suites` is given to a build without the
    /// policy-author tools ([`Application::build`] rather than the binary's).
    #[error(
        "--require-properties and --require-suites need the policy-author tools of the `gatehouse` binary, which this build does not have"
    )]
    NoGates,
    /// The first set does not pass its reload gates: gatehouse does not serve a set its
    /// gates refuse.
    #[error("the policy set does not pass its reload gates ({} failures)", .0.len())]
    Refused(Vec<GateFailure>),
    /// The shadow (candidate) set given with `--shadow-policies` does not load.
    #[error("the shadow policy set (--shadow-policies) is not valid: {0}")]
    InvalidShadowPolicies(#[source] LoadError),
    /// The shadow worker thread cannot be started.
    #[error("cannot start the shadow evaluation: {0}")]
    Shadow(#[source] std::io::Error),
    /// The policy files cannot be watched.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// The decision log cannot be opened.
    #[error("cannot open the decision log `{path}`: {source}")]
    DecisionLog {
        /// The path given.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The sidecar would listen beyond loopback with its admin routes open.
    #[error(
        "listening on `{0}`, beyond loopback, with no admin token would leave /v1/reload and /v1/policies open to whoever reaches the port: give --admin-token-file (or --admin-token), listen on 127.0.0.1, or pass --open-admin to mean it"
    )]
    OpenAdmin(std::net::SocketAddr),
    /// The entity database (`--entities-db`) cannot be opened, or its mapping does not fit
    /// the schema or the database.
    #[error("--entities-db: {0}")]
    EntitySource(String),
    /// The listening address cannot be bound.
    #[error("cannot listen on `{addr}`: {source}")]
    Listen {
        /// The address given.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Why the entity database could not be opened.
enum Unopened {
    /// It cannot be reached now (refused, down, starting): tried again.
    Unreachable(String),
    /// What it is given is wrong (the URL, the mapping): start-up fails.
    Wrong(StartError),
}

impl From<gatehouse_source::SourceError> for Unopened {
    fn from(error: gatehouse_source::SourceError) -> Self {
        match error {
            gatehouse_source::SourceError::Database(reason) => Self::Unreachable(reason),
            wrong => Self::Wrong(StartError::EntitySource(wrong.to_string())),
        }
    }
}

/// The entity database at `url`, its mapping checked against the schema and the database,
/// its changes followed.
async fn open_source(
    url: &str,
    config: &Config,
    snapshot: &crate::policy::Snapshot,
    metrics: &Metrics,
) -> Result<crate::sourced::Sourced, Unopened> {
    let mapping = match &config.entities_map {
        None => gatehouse_source::MappingFile::Bundled,
        Some(path) => {
            gatehouse_source::MappingFile::Text(std::fs::read_to_string(path).map_err(|e| {
                Unopened::Wrong(StartError::EntitySource(format!(
                    "cannot read `{}`: {e}",
                    path.display()
                )))
            })?)
        }
    };
    let source = gatehouse_source::Source::open(url, &mapping, snapshot).await?;
    let following = crate::sourced::Following {
        capacity: config.entities_cache,
        max_staleness: config.max_staleness,
        consistency_wait: config.consistency_wait,
        poll: config.entities_poll,
        metrics: metrics.entities.clone(),
    };
    Ok(crate::sourced::Sourced::new(source, config.request_entities, following).await?)
}

/// The entity database of `--entities-db`: opened now; or, unreachable, reached in the
/// background while the sidecar serves and is not ready. What is wrong with it (its URL, its
/// mapping against the schema or the tables) fails start-up.
async fn entity_db(
    config: &Config,
    store: &Arc<PolicyStore>,
    metrics: &Arc<Metrics>,
) -> Result<Option<Arc<crate::sourced::EntityDb>>, StartError> {
    let Some(url) = &config.entities_db else {
        return Ok(None);
    };
    match open_source(url, config, &store.current(), metrics).await {
        Ok(sourced) => Ok(Some(Arc::new(crate::sourced::EntityDb::open(sourced)))),
        Err(Unopened::Wrong(error)) => Err(error),
        Err(Unopened::Unreachable(reason)) => {
            tracing::warn!(%reason, "the entity database cannot be reached: not ready until it is; trying again");
            let db = Arc::new(crate::sourced::EntityDb::waiting(reason));
            tokio::spawn(reach(
                Arc::downgrade(&db),
                url.clone(),
                config.clone(),
                Arc::clone(store),
                Arc::clone(metrics),
            ));
            Ok(Some(db))
        }
    }
}

/// Tries to open the entity database until it opens (backing off from 200 ms to 5 s) or the
/// sidecar is gone.
async fn reach(
    db: std::sync::Weak<crate::sourced::EntityDb>,
    url: String,
    config: Config,
    store: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
) {
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        tokio::time::sleep(delay).await;
        let Some(slot) = db.upgrade() else {
            return;
        };
        match open_source(&url, &config, &store.current(), &metrics).await {
            Ok(sourced) => {
                tracing::info!("the entity database is reached: ready");
                slot.opened(sourced);
                return;
            }
            Err(Unopened::Unreachable(reason)) => {
                tracing::warn!(%reason, "the entity database cannot be reached yet; trying again");
                slot.still_waiting(reason);
            }
            Err(Unopened::Wrong(error)) => {
                tracing::error!(%error, "the entity database is reached but does not fit; trying again");
                slot.still_waiting(error.to_string());
            }
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}

/// The candidate set's watcher and the worker that asks it.
type ShadowRunning = (Watcher, ShadowWorker);

/// A built sidecar, not yet serving.
#[derive(Debug)]
pub struct Application {
    state: AppState,
    listener: TcpListener,
    /// Watching while the application lives; dropped once it has stopped serving.
    watcher: Watcher,
    log_writer: Option<DecisionLogWriter>,
    /// The candidate set's watcher and worker, with `--shadow-policies`.
    shadow: Option<ShadowRunning>,
}

impl Application {
    /// Loads the set (refusing to start without a valid one), starts watching the files,
    /// opens the decision log and binds `config.listen` (port 0 picks a free port). A
    /// configuration that asks for reload gates is refused: see [`Self::build_gated`].
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        Self::build_with(config, None).await
    }

    /// [`Self::build`], the reload gates the configuration asks for opened by `gates`.
    pub async fn build_gated(config: &Config, gates: OpenGates) -> Result<Self, StartError> {
        Self::build_with(config, Some(gates)).await
    }

    async fn build_with(config: &Config, gates: Option<OpenGates>) -> Result<Self, StartError> {
        let admin_token = admin_token(config)?;
        let authzen_types =
            TypeMap::parse(&config.authzen_types).map_err(StartError::AuthzenTypes)?;
        let metrics = Arc::new(Metrics::new());
        let store = open_store(config, gates).await?;
        metrics.record_start(&store.current());
        let observer = Arc::clone(&metrics);
        let store = Arc::new(
            store.with_observer(move |outcome, live| observer.record_reload(outcome, live)),
        );
        let watcher = watch::watch(Arc::clone(&store))?;
        let (log, log_writer) = open_log(config, &metrics)?.unzip();
        let budgets = config.cache_budgets();
        let (shadow, shadow_parts) = start_shadow(config, &metrics, log.as_ref())?.unzip();
        let entity_db = entity_db(config, &store, &metrics).await?;
        let state = AppState::new(Services {
            shadow,
            entity_db,
            store,
            decider: Decider::within(budgets.decider, config.cache_ttl()),
            planner: Planner::within(budgets.plans, config.cache_ttl()),
            metrics,
            log,
            limits: limits(config),
            admin_token,
            hot: HotCache::new(budgets.hot, config.cache_ttl()),
            authzen: Authzen {
                types: authzen_types,
                public_url: config.public_url.clone(),
            },
        });
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen.clone(),
                    source,
                })?;
        if let Ok(bound) = listener.local_addr()
            && !bound.ip().is_loopback()
            && state.admin_token_is_open()
            && !config.open_admin
        {
            return Err(StartError::OpenAdmin(bound));
        }
        Ok(Self {
            state,
            listener,
            watcher,
            log_writer,
            shadow: shadow_parts,
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The live policy set.
    pub fn store(&self) -> &Arc<PolicyStore> {
        &self.state.store
    }

    /// The shared state, for inspection (metrics, caches).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The API as a router, to drive with `oneshot` without the socket.
    pub fn router(&self) -> Router {
        http::app(self.state.clone())
    }

    /// Serves until `shutdown` resolves, drains the requests in flight, stops watching and
    /// flushes the decision log.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.run(shutdown, None).await
    }

    /// [`Self::run_until`], and on every message of `hangups` (SIGHUP, for `serve`): the
    /// decision log opened again and the policy files reloaded (see [`AppState::hang_up`]).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        hangups: Option<tokio::sync::mpsc::Receiver<()>>,
    ) -> std::io::Result<()> {
        let Self {
            state,
            listener,
            watcher,
            log_writer,
            shadow,
        } = self;
        let hangup = hangups.map(|mut hangups| {
            let state = state.clone();
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    state.hang_up().await;
                }
            })
        });
        let served = http::run(listener, state, shutdown).await;
        if let Some(task) = hangup {
            // It holds a decision-log sender: gone before the log is flushed.
            task.abort();
            let _ = task.await;
        }
        drop(watcher);
        if let Some((watcher, worker)) = shadow {
            drop(watcher);
            // The worker ends once the state's sender is gone and its queue is drained; it
            // holds a decision-log sender, so it goes first.
            let finished = tokio::task::spawn_blocking(|| worker.finish());
            if tokio::time::timeout(LOG_FLUSH, finished).await.is_err() {
                tracing::warn!(
                    "the shadow evaluation is still running: a router outlives the server"
                );
            }
        }
        if let Some(writer) = log_writer {
            // Every sender lives in the state, which the server has dropped, unless a router
            // taken with `router()` is still alive: then the lines are flushed when it goes.
            let flushed = tokio::task::spawn_blocking(|| writer.finish());
            if tokio::time::timeout(LOG_FLUSH, flushed).await.is_err() {
                tracing::warn!("the decision log is still open: a router outlives the server");
            }
        }
        served
    }
}

/// The decision log of `--decision-log`, and the thread that writes it.
fn open_log(
    config: &Config,
    metrics: &Metrics,
) -> Result<Option<(DecisionLog, DecisionLogWriter)>, StartError> {
    let Some(path) = &config.decision_log else {
        return Ok(None);
    };
    DecisionLog::open(
        path,
        config.decision_log_full,
        metrics.decision_log_dropped.clone(),
    )
    .map(Some)
    .map_err(|source| StartError::DecisionLog {
        path: path.clone(),
        source,
    })
}

/// The candidate set of `--shadow-policies`, watched, with the worker that asks it.
fn start_shadow(
    config: &Config,
    metrics: &Arc<Metrics>,
    log: Option<&DecisionLog>,
) -> Result<Option<(Shadow, ShadowRunning)>, StartError> {
    let Some(sources) = config.shadow_sources() else {
        return Ok(None);
    };
    let budgets = config.cache_budgets();
    let candidate = Arc::new(
        PolicyStore::open(sources)
            .map_err(StartError::InvalidShadowPolicies)?
            .with_settle(config.settle),
    );
    let watcher = watch::watch(Arc::clone(&candidate))?;
    let decider = Decider::within(budgets.shadow, config.cache_ttl());
    let (shadow, worker) = Shadow::start(
        candidate,
        decider,
        (config.shadow_queue, budgets.shadow_memo),
        Arc::clone(metrics),
        log.cloned(),
    )
    .map_err(StartError::Shadow)?;
    Ok(Some((
        shadow.sampling(config.shadow_sample),
        (watcher, worker),
    )))
}

/// The HTTP limits of `config`.
fn limits(config: &Config) -> Limits {
    Limits {
        max_body: config.max_body,
        max_batch: config.max_batch,
        max_entities: config.max_entities,
        max_concurrency: config.max_concurrency,
        request_timeout: config.request_timeout(),
        strict_entities: config.strict_entities,
        connections: crate::http::conn::ConnLimits {
            header_read: config.header_read_timeout,
            idle: config.idle_timeout,
            max_connections: config.max_connections(),
            shutdown_grace: config.shutdown_grace,
        },
    }
}

/// The live store: the first set loaded, held to the reload gates (which it must pass
/// itself), with the settle time. The gates start a solver and prove: off the async
/// threads.
async fn open_store(config: &Config, gates: Option<OpenGates>) -> Result<PolicyStore, StartError> {
    let store = PolicyStore::open(config.sources())
        .map_err(StartError::InvalidPolicies)?
        .with_settle(config.settle);
    let (properties, suites) = (
        config.require_properties.clone(),
        config.require_suites.clone(),
    );
    if properties.is_none() && suites.is_none() {
        return Ok(store);
    }
    let open = gates.ok_or(StartError::NoGates)?;
    let gated = tokio::task::spawn_blocking(move || {
        match open(properties.as_deref(), suites.as_deref()).map_err(StartError::Gates)? {
            Some(gate) => store.with_gate(gate).map_err(StartError::Refused),
            None => Ok(store),
        }
    });
    gated.await.unwrap_or_else(|e| {
        Err(StartError::Gates(
            format!("the reload gates could not be set up: {e}").into(),
        ))
    })
}

/// The admin token, from `--admin-token` or the first line of `--admin-token-file`.
fn admin_token(config: &Config) -> Result<Option<String>, StartError> {
    let Some(path) = &config.admin_token_file else {
        return match config.admin_token.as_deref() {
            // An empty token would lock the admin routes for good: a mistake, said at once.
            Some(token) if token.trim().is_empty() => Err(StartError::EmptyAdminTokenFlag),
            token => Ok(token.map(str::to_string)),
        };
    };
    let text = std::fs::read_to_string(path).map_err(|source| StartError::AdminTokenFile {
        path: path.clone(),
        source,
    })?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        return Err(StartError::EmptyAdminToken(path.clone()));
    }
    Ok(Some(token.to_string()))
}

/// Starts a sidecar on the bundled policies for the documentation's examples, through the
/// one builder.
#[doc(hidden)]
#[expect(
    clippy::expect_used,
    reason = "a documentation example's server: a failure to start is the example's failure"
)]
pub async fn doc_server() -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let config = crate::config::Config {
        listen: "127.0.0.1:0".into(),
        ..crate::config::Config::for_sources(&crate::policy::Sources {
            policies: root.join("policies"),
            schema: root.join("schemas/project_sharing.cedarschema"),
            entities: None,
        })
    };
    let app = crate::app::Application::build(&config)
        .await
        .expect("the bundled sidecar starts");
    let base = format!("http://{}", app.address().expect("addr"));
    let task = tokio::spawn(app.run_until(std::future::pending()));
    (base, task)
}
