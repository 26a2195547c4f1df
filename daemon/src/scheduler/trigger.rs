//! Runs on request: the admin endpoint asks a check's own task for a run
//! now, so the run goes through the same runner, is recorded like a
//! scheduled one, and never overlaps another run of that check.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::{mpsc, oneshot};

use crate::status::RunRecord;

/// Requests queued per check beyond the one running; more are refused.
const QUEUE_PER_CHECK: usize = 2;

/// A request for one run, answered with its record.
pub(super) type RunNow = oneshot::Sender<RunRecord>;

/// Why a run could not be requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// No check of that name is scheduled.
    #[error("no check named {0:?}")]
    NoSuchCheck(String),
    /// The check already has its share of requested runs queued.
    #[error("check {0:?} already has runs queued")]
    Busy(String),
}

/// Where run requests go, by check name; shared between the scheduler and
/// the HTTP handlers.
#[derive(Debug, Clone, Default)]
pub struct Triggers(Arc<RwLock<BTreeMap<String, mpsc::Sender<RunNow>>>>);

impl Triggers {
    /// Asks check `name` for a run; the receiver gets its record, or is
    /// closed if the check is removed or the daemon stops first.
    pub fn trigger(&self, name: &str) -> Result<oneshot::Receiver<RunRecord>, TriggerError> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let queue = map
            .get(name)
            .ok_or_else(|| TriggerError::NoSuchCheck(name.to_owned()))?;
        let (reply, answer) = oneshot::channel();
        queue.try_send(reply).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => TriggerError::Busy(name.to_owned()),
            mpsc::error::TrySendError::Closed(_) => TriggerError::NoSuchCheck(name.to_owned()),
        })?;
        Ok(answer)
    }

    /// Registers a check's queue, replacing an older one of the same name.
    pub(super) fn register(&self, name: &str) -> mpsc::Receiver<RunNow> {
        let (queue, requests) = mpsc::channel(QUEUE_PER_CHECK);
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), queue);
        requests
    }

    /// Forgets a check; its task then sees no further requests.
    pub(super) fn unregister(&self, name: &str) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// Forgets every check.
    pub(super) fn clear(&self) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
