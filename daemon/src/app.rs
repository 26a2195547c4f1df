//! Wiring: plugins, checks, scheduler, rules, notifications and the HTTP
//! server, from a validated config to a running daemon, through reloads, and
//! back to a clean stop.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::{CheckConfig, Config, Diagnostic, Diagnostics, Isolation};
use crate::http::{self, AppState};
use crate::isolation::{ChildSpec, Process, SELF_EXE};
use crate::plugin::{Catalog, Instance, search_dirs};
use crate::scheduler::{InProcess, Runner, Scheduled, Scheduler};
use crate::status::{Board, CheckSpec};
use crate::store::Store;
use crate::systemd::Notifier;
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
    let duplicates = catalog.duplicates.iter().map(|(name, kept, refused)| {
        Diagnostic::whole_file(
            &config.origin,
            format!(
                "plugin name {name:?} is provided by both {} and {}",
                kept.display(),
                refused.display()
            ),
        )
    });
    let errors: Vec<Diagnostic> = duplicates
        .chain(config.checks.iter().filter_map(|check| {
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
        }))
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

/// How the outside world steers a running daemon.
pub struct Control {
    /// Resolves when the daemon should stop.
    pub shutdown: Shutdown,
    /// One message per reload request (SIGHUP).
    pub reloads: mpsc::UnboundedReceiver<()>,
    /// Where the config is re-read from on reload; `None` for the embedded default.
    pub config_path: Option<PathBuf>,
    /// The service manager, when there is one.
    pub notifier: Notifier,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

impl Control {
    /// Stops when `shutdown` resolves; never reloads.
    pub fn until(shutdown: impl Future<Output = ()> + Send + 'static) -> Control {
        let (_, reloads) = mpsc::unbounded_channel();
        Control {
            shutdown: Box::pin(shutdown),
            reloads,
            config_path: None,
            notifier: Notifier::default(),
        }
    }
}

/// The parts of a running daemon that a reload replaces or adjusts.
struct Running {
    config: Config,
    catalog: Catalog,
    scheduler: Scheduler,
    board: Arc<Board>,
    metrics: Metrics,
    degraded_status: Arc<AtomicU16>,
    rules: crate::alerting::Service,
    notifications: Option<crate::notify::Notifications>,
    notify_metrics: crate::notify::metrics::NotifyMetrics,
    store: Store,
    external_url: String,
}

/// Where alerts go: the notifiers, or the log when there are none.
fn alert_sink(
    notifications: Option<&crate::notify::Notifications>,
) -> Arc<dyn crate::alerting::AlertSink> {
    notifications.map_or_else(
        || Arc::new(crate::alerting::LogSink) as Arc<dyn crate::alerting::AlertSink>,
        crate::notify::Notifications::sink,
    )
}

/// Builds the runner of every check; a check that cannot run reports its
/// error on every run instead, so the host shows the problem.
fn schedule_all(catalog: &Catalog, config: &Config) -> Vec<Scheduled> {
    config
        .checks
        .iter()
        .map(|check| {
            let runner = prepare(catalog, check).unwrap_or_else(|message| {
                tracing::error!(check = %check.name, plugin = %check.plugin, %message, "check cannot run");
                Runner::Broken(message)
            });
            Scheduled { spec: CheckSpec::from_config(check), runner }
        })
        .collect()
}

impl Running {
    /// Re-reads the config and applies it if, and only if, all of it is
    /// valid: config, rules, every new or changed check's plugin section.
    /// Unchanged checks keep their schedule, state and history.
    async fn reload(&mut self, path: Option<PathBuf>, shutdown: &mut Shutdown) -> Reloaded {
        // Reading files, loading libraries and creating instances can block
        // (a secret that is a FIFO, a plugin whose create never returns), so
        // it runs off the async workers, and a stop request still wins.
        let (config, catalog) = (self.config.clone(), self.catalog.clone());
        let job =
            tokio::task::spawn_blocking(move || prepare_reload(path.as_deref(), &config, &catalog));
        let prepared = tokio::select! {
            joined = job => joined.map_err(|e| format!("reload failed: {e}")).and_then(|r| r),
            () = shutdown.as_mut() => return Reloaded::Interrupted,
        };
        match prepared {
            Ok(prepared) => Reloaded::Done(Ok(self.apply(prepared).await)),
            Err(errors) => Reloaded::Done(Err(errors)),
        }
    }

    /// Switches to a prepared config: nothing here can fail or block long.
    async fn apply(&mut self, prepared: Prepared) -> String {
        let Prepared {
            config,
            catalog,
            plan,
            started,
        } = prepared;
        if config.server.listen != self.config.server.listen {
            tracing::warn!(
                listen = %self.config.server.listen,
                requested = %config.server.listen,
                "a new listen address takes a restart; still serving the old one"
            );
        }

        for name in &plan.stop {
            self.scheduler.remove(name);
            if let Some(old) = self.config.check(name) {
                self.metrics.forget_check(&CheckSpec::from_config(old));
            }
        }
        let keep: std::collections::BTreeSet<&str> = plan.keep.iter().map(String::as_str).collect();
        self.board.reconcile(
            config.checks.iter().map(CheckSpec::from_config).collect(),
            &|name| keep.contains(name),
        );
        for scheduled in started {
            self.scheduler.add(scheduled);
        }
        self.degraded_status
            .store(config.server.degraded_status, Ordering::Relaxed);

        // Notifications restart on the new notifiers and routes: what they
        // already sent and what waits in the outbox is in the state store,
        // so nothing is sent twice or lost. The rules keep their alerts and
        // series, and hand over to the new notifiers from now on.
        if let Some(old) = self.notifications.take() {
            old.stop().await;
        }
        self.notifications = crate::notify::start(
            &config,
            &self.store,
            &self.notify_metrics,
            self.external_url.clone(),
        );
        let sink = alert_sink(self.notifications.as_ref());
        self.rules
            .reload(crate::alerting::wiring::reload(&config, sink));
        let summary = format!(
            "{} checks: {} kept, {} started, {} stopped",
            config.checks.len(),
            plan.keep.len(),
            plan.start.len(),
            plan.stop.len() - plan.stop.iter().filter(|n| plan.start.contains(n)).count()
        );
        self.config = config;
        self.catalog = catalog;
        summary
    }
}

/// A stop request, polled by the main loop and during a reload.
type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How a reload ended.
enum Reloaded {
    /// Applied (with a summary) or refused (with every error).
    Done(Result<String, String>),
    /// A stop request came first; nothing changed.
    Interrupted,
}

/// A new config, validated in full and ready to switch to.
struct Prepared {
    config: Config,
    catalog: Catalog,
    plan: crate::reload::CheckPlan,
    started: Vec<Scheduled>,
}

/// Reads and validates the config at `path` against what runs now, and
/// builds every new or changed check's runner, touching nothing that runs:
/// a refusal leaves the daemon exactly as it was.
fn prepare_reload(
    path: Option<&std::path::Path>,
    current: &Config,
    current_catalog: &Catalog,
) -> Result<Prepared, String> {
    let (config, mut diagnostics) = Config::load_partial(path);
    let Some(config) = config else {
        return Err(diagnostics.to_string());
    };
    // Before any new runner can report them; harmless if refused below.
    crate::redact::Redactor::global().add(&config.secrets);
    let catalog = Catalog::rescan(
        &search_dirs(&config.plugins.dir, config.plugins.beside_executable),
        current_catalog,
    );
    let plan = crate::reload::plan(current, current_catalog, &config, &catalog);
    let mut started = Vec::with_capacity(plan.start.len());
    for name in &plan.start {
        let check = config.check(name).expect("planned checks exist");
        match prepare(&catalog, check) {
            Ok(runner) => started.push(Scheduled {
                spec: CheckSpec::from_config(check),
                runner,
            }),
            Err(message) => diagnostics.0.push(Diagnostic::new(
                &config.origin,
                check.config_position,
                format!("check {name:?}: {message}"),
            )),
        }
    }
    if let Err(duplicates) = validate_plugin_names(&config, &catalog) {
        diagnostics.0.extend(duplicates.0);
    }
    if !diagnostics.0.is_empty() {
        return Err(diagnostics.sorted().to_string());
    }
    Ok(Prepared {
        config,
        catalog,
        plan,
        started,
    })
}

/// Duplicate plugin names, as errors.
fn validate_plugin_names(config: &Config, catalog: &Catalog) -> Result<(), Diagnostics> {
    let errors: Vec<Diagnostic> = catalog
        .duplicates
        .iter()
        .map(|(name, kept, refused)| {
            Diagnostic::whole_file(
                &config.origin,
                format!(
                    "plugin name {name:?} is provided by both {} and {}",
                    kept.display(),
                    refused.display()
                ),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(errors))
    }
}

/// A one-line summary of the host for `systemctl status`.
fn status_line(board: &Board) -> String {
    let views = board.views();
    let failing: Vec<&str> = views
        .iter()
        .filter(|v| v.health == crate::status::Health::Unhealthy)
        .map(|v| v.spec.name.as_str())
        .collect();
    let status = crate::status::host_status(&views);
    if failing.is_empty() {
        format!("{}: {} checks", status.as_str(), views.len())
    } else {
        format!(
            "{}: {} checks, failing: {}",
            status.as_str(),
            views.len(),
            failing.join(", ")
        )
    }
}

/// Runs the daemon on `listener` until `control.shutdown` resolves,
/// reloading on every request.
///
/// A check whose plugin is missing or refuses its config does not stop the
/// daemon: it reports `error` on every run, so the host shows the problem
/// instead of hiding it.
pub async fn run(config: Config, listener: TcpListener, control: Control) {
    let Control {
        mut shutdown,
        mut reloads,
        config_path,
        notifier,
    } = control;
    // Before any check runs or any notifier is called, so neither can leak them.
    crate::redact::Redactor::global().add(&config.secrets);
    let catalog = catalog(&config);
    let scheduled = schedule_all(&catalog, &config);
    let board = Board::new(scheduled.iter().map(|s| s.spec.clone()));
    let metrics = Metrics::new(Arc::clone(&board));
    let scheduler = Scheduler::start(scheduled, Arc::clone(&board), metrics.clone());
    let store = open_store(&config);
    let external_url = listener.local_addr().map_or_else(
        |_| format!("http://{}", config.server.listen),
        |addr| format!("http://{addr}"),
    );
    let notify_metrics = crate::notify::register_metrics(&metrics);
    let notifications =
        crate::notify::start(&config, &store, &notify_metrics, external_url.clone());
    let sink = alert_sink(notifications.as_ref());
    let (rules, alerts) =
        crate::alerting::wiring::start(&config, Arc::clone(&board), &metrics, &store, sink);
    let degraded_status = Arc::new(AtomicU16::new(config.server.degraded_status));
    let state = AppState {
        board: Arc::clone(&board),
        metrics: metrics.clone(),
        alerts,
        degraded_status: Arc::clone(&degraded_status),
    };
    tracing::info!(
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        checks = config.checks.len(),
        plugins = catalog.plugins.len(),
        config = %config.origin,
        "warden started"
    );

    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = Arc::new(http::Admin::new(
        &config,
        &catalog,
        scheduler.triggers(),
        Arc::clone(&board),
        metrics.clone(),
    ));
    let server = tokio::spawn(http::serve(listener, state, Arc::clone(&admin), async {
        let _ = http_stopped.await;
    }));
    let watchdog = crate::systemd::watchdog_period()
        .filter(|_| notifier.enabled())
        .map(|period| {
            tokio::spawn(crate::systemd::watchdog(
                notifier.clone(),
                Arc::clone(&board),
                period,
            ))
        });
    notifier.ready(&status_line(&board));

    let mut running = Running {
        config,
        catalog,
        scheduler,
        board,
        metrics,
        degraded_status,
        rules,
        notifications,
        notify_metrics,
        store,
        external_url,
    };
    let mut status_ticks = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(()) = reloads.recv() => {
                notifier.reloading();
                let result = match running.reload(config_path.clone(), &mut shutdown).await {
                    Reloaded::Done(result) => result,
                    Reloaded::Interrupted => {
                        tracing::warn!("stop requested during a reload; the reload is abandoned");
                        break;
                    }
                };
                match result {
                    Ok(summary) => {
                        running.metrics.observe_reload(true);
                        admin.configure(&running.config, &running.catalog);
                        tracing::info!(target: "warden::security", %summary, "config reloaded");
                    }
                    Err(errors) => {
                        running.metrics.observe_reload(false);
                        for error in errors.lines() {
                            tracing::error!(%error, "reload refused");
                        }
                        tracing::error!("reload refused; the running config stays in force");
                    }
                }
                notifier.ready(&status_line(&running.board));
            }
            _ = status_ticks.tick() => notifier.status(&status_line(&running.board)),
        }
    }

    notifier.stopping();
    tracing::info!("stopping: no new checks, draining HTTP");
    let _ = stop_http.send(());
    let (_, served) = tokio::join!(running.scheduler.stop(), server);
    if let Err(error) = served {
        tracing::error!(%error, "HTTP server task failed");
    }
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    running.rules.stop().await;
    // After the rules: their last hand-over is written to the outbox.
    if let Some(notifications) = running.notifications {
        notifications.stop().await;
    }
    tracing::info!("warden stopped");
}
