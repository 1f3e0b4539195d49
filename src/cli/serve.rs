//! `gatehouse serve`: the sidecar. Loads the policy set (refusing to start without a valid
//! one), watches the files, and serves the HTTP API until SIGINT or SIGTERM, then drains the
//! requests in flight and exits 0.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::net::TcpListener;

use super::{PolicyArgs, exit, report_load_error};
use crate::decide::Decider;
use crate::http::{self, AppState, HttpConfig, Shared};
use crate::policy::{PolicyStore, Sources, watch};
use crate::telemetry::{self, DecisionLog, Metrics};

/// Arguments of `gatehouse serve`; each also read from its `GATEHOUSE_*` variable (a flag
/// wins).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:8180")]
    pub listen: String,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Cedar entity JSON that every decision sees (watched and reloaded like the policies).
    /// An entity sent with a request replaces the stored one with the same uid.
    #[arg(long, env = "GATEHOUSE_ENTITIES", value_name = "FILE")]
    pub entities: Option<PathBuf>,
    /// Require `Authorization: Bearer <T>` on /v1/status, /v1/policies and /v1/reload.
    #[arg(
        long,
        env = "GATEHOUSE_ADMIN_TOKEN",
        value_name = "T",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Write one JSON line per decision to this file, or `-` for stdout.
    #[arg(long, env = "GATEHOUSE_DECISION_LOG", value_name = "PATH|-")]
    pub decision_log: Option<String>,
    /// Include each question's context and entities in the decision log.
    #[arg(long, env = "GATEHOUSE_DECISION_LOG_FULL")]
    pub decision_log_full: bool,
    /// Most decisions kept in the cache (0 disables it).
    #[arg(
        long,
        env = "GATEHOUSE_CACHE_CAPACITY",
        default_value_t = 100_000,
        value_name = "N"
    )]
    pub cache_capacity: u64,
    /// Most parsed request entities kept (entities repeat across questions: the project, its
    /// organization, its groups), so that each is parsed once. About 3 KiB each.
    #[arg(
        long,
        env = "GATEHOUSE_ENTITY_CACHE_CAPACITY",
        default_value_t = 1_000,
        value_name = "N"
    )]
    pub entity_cache_capacity: u64,
    /// Longest a cached decision is kept.
    #[arg(
        long,
        env = "GATEHOUSE_CACHE_TTL",
        default_value_t = 300,
        value_name = "SECS"
    )]
    pub cache_ttl: u64,
    /// Largest accepted request body.
    #[arg(long, env = "GATEHOUSE_MAX_BODY", default_value_t = 1 << 20, value_name = "BYTES")]
    pub max_body: usize,
    /// Most questions in one batch.
    #[arg(
        long,
        env = "GATEHOUSE_MAX_BATCH",
        default_value_t = 100,
        value_name = "N"
    )]
    pub max_batch: usize,
    /// Most entities in one request (per question, shared and own lists together).
    #[arg(
        long,
        env = "GATEHOUSE_MAX_ENTITIES",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub max_entities: usize,
    /// Most requests served at once; past that, 503 with `Retry-After: 1`.
    #[arg(
        long,
        env = "GATEHOUSE_MAX_CONCURRENCY",
        default_value_t = 1024,
        value_name = "N"
    )]
    pub max_concurrency: usize,
    /// Longest a request may take, body upload included (answered 408 after).
    #[arg(
        long,
        env = "GATEHOUSE_REQUEST_TIMEOUT",
        default_value_t = 10,
        value_name = "SECS"
    )]
    pub request_timeout: u64,
}

/// Runs the sidecar until a signal.
pub fn serve(args: &ServeArgs) -> ExitCode {
    telemetry::init_logs();
    let sources = Sources {
        entities: args.entities.clone(),
        ..args.policy.sources()
    };
    let metrics = Arc::new(Metrics::new());
    let store = match PolicyStore::open(sources) {
        Ok(store) => store,
        Err(error) => {
            report_load_error(&error);
            eprintln!("error: gatehouse does not start without a valid policy set");
            return ExitCode::from(exit::INVALID);
        }
    };
    metrics.set_live(&store.current());
    let observer = Arc::clone(&metrics);
    let store =
        Arc::new(store.with_observer(move |outcome, live| observer.record_reload(outcome, live)));
    let watcher = match watch::watch(Arc::clone(&store)) {
        Ok(watcher) => watcher,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let (log, writer) = match &args.decision_log {
        Some(target) => match DecisionLog::open(target, args.decision_log_full) {
            Ok((log, writer)) => (Some(log), Some(writer)),
            Err(e) => {
                eprintln!("error: cannot open the decision log `{target}`: {e}");
                return ExitCode::from(exit::ERROR);
            }
        },
        None => (None, None),
    };
    let state = AppState::new(Shared {
        store: Arc::clone(&store),
        decider: Decider::new(
            args.cache_capacity,
            args.entity_cache_capacity,
            Duration::from_secs(args.cache_ttl),
        ),
        metrics,
        log,
        config: HttpConfig {
            admin_token: args.admin_token.clone(),
            max_body: args.max_body,
            max_batch: args.max_batch,
            request_timeout: Duration::from_secs(args.request_timeout),
            // The hottest tenth of the cache also answers by the exact body's digest.
            hot_capacity: args.cache_capacity / 10,
            hot_ttl: Duration::from_secs(args.cache_ttl),
            max_entities: args.max_entities,
            max_concurrency: args.max_concurrency,
        },
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let served = runtime.block_on(async {
        let listener = TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("cannot listen on `{}`: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let snapshot = store.current();
        tracing::info!(
            %addr,
            policy_version = %snapshot.version,
            policies = snapshot.info.len(),
            watching = ?watcher.dirs(),
            "gatehouse serving"
        );
        http::run(listener, state, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    });
    drop(runtime);
    drop(watcher);
    if let Some(writer) = writer {
        writer.finish();
    }
    match served {
        Ok(()) => {
            tracing::info!("gatehouse stopped");
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::ERROR)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: draining requests in flight");
}
