//! The delivery worker of one notifier: takes its oldest outbox entry,
//! waits until it is due, tries it, and records the outcome. Entries of one
//! notifier go strictly in order, so a resolution never overtakes its page;
//! notifiers do not wait for each other.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};

use super::metrics::NotifyMetrics;
use super::outbox::{Entry, Outbox, OutboxError};
use super::send::{Outcome, Sender};
use crate::config::{NotifierConfig, NotifyConfig};

/// Pause after the state database fails, before trying again.
const DB_RETRY: Duration = Duration::from_secs(5);

/// Everything one worker needs.
#[derive(Debug)]
pub struct Worker {
    /// Its notifier.
    pub notifier: NotifierConfig,
    /// The shared outbox.
    pub outbox: Outbox,
    /// The shared HTTP sender.
    pub sender: Sender,
    /// Metrics.
    pub metrics: NotifyMetrics,
    /// Backoff and expiry settings.
    pub settings: NotifyConfig,
    /// Signalled when new entries are written.
    pub wake: Arc<Notify>,
}

/// The delay before attempt `attempts + 1`: `initial` doubled per failed
/// attempt up to `max`, then jittered down by up to half so that many
/// Wardens retrying one receiver spread out.
pub fn backoff(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1 << doublings).min(max);
    let half = base / 2;
    half + half.mul_f64(fastrand::f64())
}

impl Worker {
    /// Runs until `stop` turns true; an attempt in flight is abandoned then
    /// (its entry stays and is retried at the next start).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let name = self.notifier.name.clone();
            let entry = match self.blocking(move |outbox| outbox.first(&name)).await {
                Ok(entry) => entry,
                Err(error) => {
                    tracing::error!(notifier = %self.notifier.name, %error, "cannot read the outbox");
                    if pause(&mut stop, DB_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            let Some(entry) = entry else {
                tokio::select! {
                    () = self.wake.notified() => {}
                    _ = stop.changed() => return,
                }
                continue;
            };
            let now = SystemTime::now();
            let expires = entry.created_at + self.settings.max_age;
            if now >= expires {
                self.finish(&entry, "expired").await;
                continue;
            }
            if let Ok(wait) = entry.next_attempt_at.duration_since(now)
                && !wait.is_zero()
            {
                let wait = wait.min(expires.duration_since(now).unwrap_or_default());
                if pause(&mut stop, wait).await {
                    return;
                }
                continue;
            }
            let outcome = tokio::select! {
                outcome = self.sender.send(&self.notifier, &entry.notification) => outcome,
                _ = stop.changed() => return,
            };
            self.record(entry, outcome).await;
        }
    }

    async fn record(&self, mut entry: Entry, outcome: Outcome) {
        match outcome {
            Outcome::Sent => {
                tracing::info!(
                    notifier = %self.notifier.name,
                    group = %entry.notification.group_key,
                    alerts = entry.notification.alerts.len(),
                    attempts = entry.attempts + 1,
                    "notification sent"
                );
                self.finish(&entry, "sent").await;
            }
            Outcome::Permanent { reason } => {
                tracing::error!(
                    notifier = %self.notifier.name,
                    group = %entry.notification.group_key,
                    attempts = entry.attempts + 1,
                    %reason,
                    "notification refused; not retried"
                );
                self.finish(&entry, "failed").await;
            }
            Outcome::Retry { after, reason } => {
                entry.attempts += 1;
                let delay = after.unwrap_or_else(|| {
                    backoff(
                        entry.attempts,
                        self.settings.retry_initial,
                        self.settings.retry_max,
                    )
                });
                entry.next_attempt_at = SystemTime::now() + delay;
                tracing::warn!(
                    notifier = %self.notifier.name,
                    group = %entry.notification.group_key,
                    attempts = entry.attempts,
                    retry_in_ms = delay.as_millis() as u64,
                    retry_after = after.is_some(),
                    %reason,
                    "notification not delivered; will retry"
                );
                self.metrics.count(&self.notifier.name, "retried");
                let id = entry.id;
                if let Err(error) = self.blocking(move |outbox| outbox.update(&entry)).await {
                    tracing::error!(notifier = %self.notifier.name, id, %error, "cannot record the attempt");
                }
            }
        }
    }

    /// Removes an entry for good and counts why.
    async fn finish(&self, entry: &Entry, outcome: &'static str) {
        if outcome == "expired" {
            tracing::warn!(
                notifier = %self.notifier.name,
                group = %entry.notification.group_key,
                attempts = entry.attempts,
                max_age_s = self.settings.max_age.as_secs(),
                "notification expired undelivered; dropped"
            );
        }
        let (name, id) = (self.notifier.name.clone(), entry.id);
        let removed = self
            .blocking(move |outbox| {
                outbox.remove(&name, id)?;
                outbox.len()
            })
            .await;
        match removed {
            Ok(len) => self.metrics.set_outbox(len),
            Err(error) => {
                tracing::error!(notifier = %self.notifier.name, id, %error, "cannot remove the entry");
                // Try again later rather than spin on the same entry.
                tokio::time::sleep(DB_RETRY).await;
                return;
            }
        }
        self.metrics.count(&self.notifier.name, outcome);
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Outbox) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let outbox = self.outbox.clone();
        tokio::task::spawn_blocking(move || work(&outbox))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

/// Sleeps `wait`; true if `stop` turned true meanwhile.
async fn pause(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..50 {
            let first = backoff(1, initial, max);
            assert!(first >= Duration::from_millis(500) && first <= initial);
            let fourth = backoff(4, initial, max);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            let late = backoff(40, initial, max);
            assert!(late >= Duration::from_secs(30) && late <= max);
        }
    }
}
