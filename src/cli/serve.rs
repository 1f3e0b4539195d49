//! `gatehouse serve`: the sidecar. Builds it ([`crate::app::build`]: refusing to start
//! without a valid policy set), serves the HTTP API until SIGINT or SIGTERM, then drains the
//! requests in flight and exits 0. SIGHUP opens the decision log again and reloads the
//! policy files.

use std::process::ExitCode;

use clap::Args;

use super::{exit, report_load_error};
use crate::app::StartError;
use crate::config::Config;
use crate::telemetry;

/// Arguments of `gatehouse serve`: the [`Config`], each setting also read from its
/// `GATEHOUSE_*` variable (a flag wins).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Every setting of the sidecar.
    #[command(flatten)]
    pub config: Config,
}

/// Runs the sidecar until a signal.
pub fn serve(args: &ServeArgs) -> ExitCode {
    telemetry::init_logs_as(args.config.log_format);
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
    let config = &args.config;
    let app = match runtime.block_on(crate::app::build(config)) {
        Ok(app) => app,
        Err(StartError::InvalidPolicies(error)) => {
            report_load_error(&error);
            eprintln!("error: gatehouse does not start without a valid policy set");
            return ExitCode::from(exit::INVALID);
        }
        Err(StartError::Refused(failures)) => {
            for failure in &failures {
                eprintln!("error: {failure}");
                if let Some(detail) = &failure.detail {
                    eprintln!("  {detail}");
                }
            }
            eprintln!("error: gatehouse does not start with a policy set its reload gates refuse");
            return ExitCode::from(exit::INVALID);
        }
        Err(StartError::InvalidShadowPolicies(error)) => {
            report_load_error(&error);
            eprintln!("error: the shadow policy set (--shadow-policies) is not valid");
            return ExitCode::from(exit::INVALID);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    // Installed before the sidecar says where it listens, so that a signal any time after
    // that line drains (see `shutdown_signal`).
    let (shutdown, hangups) = {
        let _runtime = runtime.enter();
        (shutdown_signal(), hangup_signal())
    };
    let snapshot = app.store().current();
    tracing::info!(
        addr = %app.address().map_or_else(|_| config.listen.clone(), |a| a.to_string()),
        policy_version = %snapshot.version,
        policies = snapshot.info.len(),
        admin_token = config.admin_token.is_some() || config.admin_token_file.is_some(),
        "gatehouse serving"
    );
    drop(snapshot);
    if let Some(shadow) = &app.state().shadow {
        let candidate = shadow.store().current();
        tracing::info!(
            policy_version = %candidate.version,
            policies = candidate.info.len(),
            dir = %shadow.store().sources().policies.display(),
            "shadow evaluation: every decision is also asked of the candidate set"
        );
    }
    match runtime.block_on(app.run(shutdown, hangups)) {
        Ok(()) => {
            tracing::info!("gatehouse stopped");
            ExitCode::from(exit::OK)
        }
        // A failure while serving is not a failure to start: say so, not "cannot listen".
        Err(e) => {
            eprintln!("error: serving stopped: {e}");
            ExitCode::from(exit::ERROR)
        }
    }
}

/// A message on every SIGHUP (the handler installed now, as for [`shutdown_signal`]): the
/// sidecar then opens its decision log again and reloads its policy files, where SIGHUP's
/// default action would kill it.
pub fn hangup_signal() -> Option<tokio::sync::mpsc::Receiver<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).ok()?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                // A hangup already waiting covers this one.
                let _ = tx.try_send(());
            }
        });
        Some(rx)
    }
    #[cfg(not(unix))]
    None
}

/// Resolves on SIGINT or SIGTERM. Both handlers are installed when this is called (inside
/// the runtime), not when the future is first polled: a signal that arrives between the
/// first accepted connection and that poll would otherwise meet the default action, and
/// kill the process instead of draining it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = received(interrupt.as_mut()) => {}
                () = received(terminate.as_mut()) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: draining requests in flight");
    }
}
