//! Wiring: plugins, checks, scheduler and HTTP server, from a validated
//! config to a running daemon and back to a clean stop.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::http::StatusCode;

use crate::config::{CheckConfig, Config, Diagnostic, Diagnostics, Isolation};
use crate::http::{self, AppState};
use crate::isolation::{ChildSpec, Process, SELF_EXE};
use crate::plugin::{Catalog, Instance, search_dirs};
use crate::scheduler::{InProcess, Runner, Scheduled, Scheduler};
use crate::status::{Board, CheckSpec};
use crate::store::Store;
use crate::telemetry::Metrics;

/// Scans the plugin directories named by `config`.
pub fn catalog(config: &Config) -> Catalog {
    Catalog::scan(&search_dirs(
        &config.plugins.dir,
        config.plugins.beside_executable,
    ))
}

/// Creates the runner behind one check: an instance here, or for
/// `isolation = "process"` a child started on the first run, so the plugin's
/// code never runs in the daemon (its config is checked in the child then).
fn prepare(catalog: &Catalog, check: &CheckConfig) -> Result<Runner, String> {
    if check.isolation == Isolation::Process {
        let library = catalog
            .get(&check.plugin)
            .ok_or_else(|| catalog.missing_reason(&check.plugin))?;
        return Ok(Runner::Process(Process::new(ChildSpec {
            program: SELF_EXE.into(),
            library: library.path.clone(),
            plugin: check.plugin.clone(),
            check: check.name.clone(),
            config: check.config.clone(),
        })));
    }
    Ok(Runner::InProcess(InProcess::new(create_instance(
        catalog, check,
    )?)))
}

/// Creates the plugin instance of one check in this process.
fn create_instance(catalog: &Catalog, check: &CheckConfig) -> Result<Instance, String> {
    let library = catalog
        .get(&check.plugin)
        .ok_or_else(|| catalog.missing_reason(&check.plugin))?;
    Instance::create(Arc::clone(library), &check.name, &check.config)
        .map_err(|e| format!("plugin {:?} rejected its config: {e}", check.plugin))
}

/// Validates every check against the plugins found, as `check-config` does:
/// each plugin creates an instance from its section and may refuse it.
///
/// Process-isolated checks are created in this process too: `create` only
/// parses and validates the config (a panic there is caught by the SDK),
/// `check-config` is a short-lived tool whose crash harms no running check,
/// and a child per check would be slower without validating anything more.
pub fn validate_checks(config: &Config, catalog: &Catalog) -> Result<(), Diagnostics> {
    let errors: Vec<Diagnostic> = config
        .checks
        .iter()
        .filter_map(|check| {
            let error = create_instance(catalog, check).err()?;
            let position = if catalog.get(&check.plugin).is_some() {
                check.config_position
            } else {
                check.plugin_position
            };
            Some(Diagnostic::new(
                &config.origin,
                position,
                format!("check {:?}: {error}", check.name),
            ))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(errors))
    }
}

/// Opens the state database in `[state] dir`, else in `$STATE_DIRECTORY`
/// (systemd's `StateDirectory=`), else in memory, saying that state will not
/// survive a restart.
pub fn open_store(config: &Config) -> Store {
    let dir = config.state.dir.clone().or_else(|| {
        let from_env = std::env::var_os("STATE_DIRECTORY")?;
        std::env::split_paths(&from_env).next()
    });
    if let Some(dir) = &dir {
        match Store::open(Some(dir)) {
            Ok(store) => return store,
            Err(error) => tracing::error!(%error, "state database unavailable"),
        }
    }
    tracing::warn!("no usable state directory: alert state is kept in memory and lost at restart");
    Store::open(None).expect("an in-memory database always opens")
}

/// Runs the daemon on `listener` until `shutdown` resolves.
///
/// A check whose plugin is missing or refuses its config does not stop the
/// daemon: it reports `error` on every run, so the host shows the problem
/// instead of hiding it.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let catalog = catalog(&config);
    let mut scheduled = Vec::with_capacity(config.checks.len());
    for check in &config.checks {
        let runner = prepare(&catalog, check).unwrap_or_else(|message| {
            tracing::error!(check = %check.name, plugin = %check.plugin, %message, "check cannot run");
            Runner::Broken(message)
        });
        scheduled.push(Scheduled {
            spec: CheckSpec::from_config(check),
            runner,
        });
    }

    let board = Board::new(scheduled.iter().map(|s| s.spec.clone()));
    let metrics = Metrics::new(Arc::clone(&board));
    let scheduler = Scheduler::start(scheduled, Arc::clone(&board), metrics.clone());
    let store = open_store(&config);
    let external_url = listener.local_addr().map_or_else(
        |_| format!("http://{}", config.server.listen),
        |addr| format!("http://{addr}"),
    );
    let notifications = crate::notify::start(&config, &store, &metrics, external_url);
    let sink = notifications.as_ref().map_or_else(
        || Arc::new(crate::alerting::LogSink) as Arc<dyn crate::alerting::AlertSink>,
        crate::notify::Notifications::sink,
    );
    let (rules, alerts) =
        crate::alerting::wiring::start(&config, Arc::clone(&board), &metrics, &store, sink);
    let state = AppState {
        board,
        metrics,
        alerts,
        degraded_status: StatusCode::from_u16(config.server.degraded_status)
            .unwrap_or(StatusCode::OK),
    };
    tracing::info!(
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        checks = config.checks.len(),
        plugins = catalog.plugins.len(),
        config = %config.origin,
        "warden started"
    );

    http::serve(listener, state, shutdown).await;
    tracing::info!("stopping checks");
    scheduler.stop().await;
    if let Some(rules) = rules {
        rules.stop().await;
    }
    // After the rules: their last hand-over is written to the outbox.
    if let Some(notifications) = notifications {
        notifications.stop().await;
    }
    tracing::info!("warden stopped");
}
