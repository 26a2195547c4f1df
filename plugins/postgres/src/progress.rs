//! Which step a run is in, shared with the TLS connector (which learns when
//! TCP is up and when the handshake starts and ends), so a timeout can say
//! exactly where the run was when its deadline passed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// One step of a run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    /// Resolving the host name.
    Resolving = 0,
    /// Opening the TCP or unix socket connection.
    Connecting,
    /// Connected; waiting for the server to answer the SSL or startup request.
    Startup,
    /// In the TLS handshake.
    Tls,
    /// TLS done; authenticating.
    Authenticating,
    /// Waiting for `SELECT 1`.
    Liveness,
    /// Reading connection counts and role.
    Stats,
    /// Running a custom query.
    Query,
}

const STEPS: [Step; 8] = [
    Step::Resolving,
    Step::Connecting,
    Step::Startup,
    Step::Tls,
    Step::Authenticating,
    Step::Liveness,
    Step::Stats,
    Step::Query,
];

impl Step {
    /// Words for "timed out while ...".
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Step::Resolving => "resolving the host name",
            Step::Connecting => "opening the connection",
            Step::Startup => "waiting for the server's first reply (TCP connected)",
            Step::Tls => "in the TLS handshake",
            Step::Authenticating => "authenticating",
            Step::Liveness => "waiting for SELECT 1",
            Step::Stats => "reading connection counts and role",
            Step::Query => "running a custom query",
        }
    }

    /// Whether the connection was still being set up.
    pub(crate) fn is_connecting(self) -> bool {
        (self as u8) <= (Step::Authenticating as u8)
    }
}

/// The current step, cheap to clone and share.
#[derive(Debug, Clone)]
pub(crate) struct Progress(Arc<AtomicU8>);

impl Default for Progress {
    fn default() -> Self {
        Progress(Arc::new(AtomicU8::new(Step::Resolving as u8)))
    }
}

impl Progress {
    /// Records that the run entered `step`.
    pub(crate) fn set(&self, step: Step) {
        self.0.store(step as u8, Ordering::Relaxed);
    }

    /// The step last recorded.
    pub(crate) fn get(&self) -> Step {
        STEPS[usize::from(self.0.load(Ordering::Relaxed)).min(STEPS.len() - 1)]
    }
}
