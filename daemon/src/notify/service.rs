//! The running notification side: an [`AlertSink`] that queues each
//! hand-over, a dispatcher that routes it into the outbox, and one delivery
//! worker per notifier.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::deliver::Worker;
use super::format::{Context, hostname};
use super::metrics::NotifyMetrics;
use super::outbox::{Outbox, OutboxError};
use super::router::Router;
use super::send::Sender;
use crate::alerting::{Alert, AlertSink};
use crate::config::Config;
use crate::store::Store;
use crate::telemetry::Metrics;

/// How long `stop` waits for the dispatcher to write queued hand-overs.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Registers the notification metrics in the daemon's registry, once per
/// process: they outlive reloads that restart notifications.
pub fn register_metrics(metrics: &Metrics) -> NotifyMetrics {
    let notify = NotifyMetrics::new();
    for collector in notify.collectors() {
        if let Err(error) = metrics.register(collector) {
            tracing::error!(%error, "cannot register notification metrics");
        }
    }
    notify
}

/// Starts notifications for `config`; `None` (the caller logs alerts
/// instead) without notifiers, or when the outbox cannot be opened (logged).
pub fn start(
    config: &Config,
    store: &Store,
    metrics: &NotifyMetrics,
    external_url: String,
) -> Option<Notifications> {
    if config.notifiers.is_empty() {
        return None;
    }
    match Notifications::start_with(config, store.clone(), external_url, metrics.clone()) {
        Ok(notifications) => Some(notifications),
        Err(error) => {
            tracing::error!(%error, "notifications cannot start; alerts are only logged");
            None
        }
    }
}

/// Receives hand-overs from the rule engine without blocking it.
#[derive(Debug, Clone)]
pub struct NotifySink {
    queue: mpsc::UnboundedSender<Vec<Alert>>,
}

impl AlertSink for NotifySink {
    fn dispatch(&self, mut alerts: Vec<Alert>) {
        // Before the outbox: nothing stored or sent carries a known secret.
        for alert in &mut alerts {
            crate::redact::Redactor::global().alert(alert);
        }
        // Fails only after stop; the next start re-evaluates anyway.
        let _ = self.queue.send(alerts);
    }
}

/// The running notification tasks.
#[derive(Debug)]
pub struct Notifications {
    sink: Arc<NotifySink>,
    metrics: NotifyMetrics,
    stop: watch::Sender<bool>,
    dispatcher: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
}

/// Why notifications could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The outbox tables could not be opened.
    #[error("notification outbox: {0}")]
    Outbox(#[from] OutboxError),
    /// The HTTP client could not be built.
    #[error("notification sender: {0}")]
    Sender(String),
}

impl Notifications {
    /// Starts delivering what the outbox holds and routing what the sink
    /// receives. `external_url` is where this daemon answers HTTP, for links
    /// in messages. Entries of notifiers no longer configured are dropped.
    pub fn start(
        config: &Config,
        store: Store,
        external_url: String,
    ) -> Result<Notifications, StartError> {
        Notifications::start_with(config, store, external_url, NotifyMetrics::new())
    }

    /// As [`Notifications::start`], counting into existing `metrics`.
    pub fn start_with(
        config: &Config,
        store: Store,
        external_url: String,
        metrics: NotifyMetrics,
    ) -> Result<Notifications, StartError> {
        let outbox = Outbox::open(store)?;
        let known: BTreeSet<&str> = config.notifiers.iter().map(|n| n.name.as_str()).collect();
        for (notifier, entries) in outbox.drop_unknown(&known)? {
            tracing::warn!(%notifier, entries, "outbox entries of a notifier no longer configured dropped");
        }
        metrics.set_outbox(outbox.len()?);
        let sender = Sender::new(Context {
            source: hostname(),
            external_url,
        })
        .map_err(StartError::Sender)?;

        let (stop, stop_rx) = watch::channel(false);
        let mut wakes = BTreeMap::new();
        let mut workers = Vec::new();
        for notifier in &config.notifiers {
            metrics.register_notifier(&notifier.name);
            let wake = Arc::new(Notify::new());
            wakes.insert(notifier.name.clone(), Arc::clone(&wake));
            let worker = Worker {
                notifier: notifier.clone(),
                outbox: outbox.clone(),
                sender: sender.clone(),
                metrics: metrics.clone(),
                settings: config.notify,
                wake,
            };
            workers.push(tokio::spawn(worker.run(stop_rx.clone())));
        }

        let kinds = config
            .notifiers
            .iter()
            .map(|n| (n.name.clone(), n.kind))
            .collect();
        let router = Router::new(
            config.routes.clone(),
            kinds,
            config.notify.alertmanager_resend,
        );
        let (queue, batches) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher {
            router,
            outbox,
            metrics: metrics.clone(),
            wakes,
        };
        let dispatcher = tokio::spawn(dispatcher.run(batches, stop_rx));
        tracing::info!(
            notifiers = config.notifiers.len(),
            routes = config.routes.len(),
            pending = metrics.outbox(),
            "notifications started"
        );
        Ok(Notifications {
            sink: Arc::new(NotifySink { queue }),
            metrics,
            stop,
            dispatcher,
            workers,
        })
    }

    /// The sink to hand alerts to.
    pub fn sink(&self) -> Arc<dyn AlertSink> {
        Arc::clone(&self.sink) as Arc<dyn AlertSink>
    }

    /// The metrics, for the daemon's registry.
    pub fn metrics(&self) -> &NotifyMetrics {
        &self.metrics
    }

    /// Writes hand-overs still queued to the outbox, then stops. Sends in
    /// flight are abandoned: their entries are still in the outbox and go
    /// out at the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_GRACE, self.dispatcher)
            .await
            .is_err()
        {
            tracing::warn!("notification dispatcher did not stop in time");
        }
        for worker in &self.workers {
            worker.abort();
        }
        for worker in self.workers {
            let _ = worker.await;
        }
    }
}

/// Routes hand-overs into the outbox, one transaction each.
#[derive(Debug)]
struct Dispatcher {
    router: Router,
    outbox: Outbox,
    metrics: NotifyMetrics,
    wakes: BTreeMap<String, Arc<Notify>>,
}

impl Dispatcher {
    async fn run(
        mut self,
        mut batches: mpsc::UnboundedReceiver<Vec<Alert>>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let batch = tokio::select! {
                batch = batches.recv() => batch,
                _ = stop.changed() => None,
            };
            let Some(batch) = batch else { break };
            self = self.route(batch).await;
        }
        // Whatever was handed over before the stop is made durable.
        while let Ok(batch) = batches.try_recv() {
            self = self.route(batch).await;
        }
    }

    async fn route(mut self, alerts: Vec<Alert>) -> Self {
        let now = SystemTime::now();
        let (router, outbox) = (self.router, self.outbox.clone());
        let (router, result) = tokio::task::spawn_blocking(move || {
            let mut router = router;
            let result = outbox
                .route(now, |states, backlog| {
                    router.plan(&alerts, now, states, backlog)
                })
                .and_then(|plan| Ok((plan, outbox.len()?)));
            (router, result)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        self.router = router;
        match result {
            Ok((plan, pending)) => {
                self.metrics.set_outbox(pending);
                let notifiers: BTreeSet<&str> =
                    plan.entries.iter().map(|n| n.notifier.as_str()).collect();
                for notifier in notifiers {
                    tracing::debug!(%notifier, "notifications queued");
                    if let Some(wake) = self.wakes.get(notifier) {
                        wake.notify_one();
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot write notifications to the outbox; this hand-over is lost");
            }
        }
        self
    }
}
