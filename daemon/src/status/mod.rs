//! Check results as the daemon keeps them, and the host verdict.

mod board;
mod record;

pub use board::{
    Board, CheckSpec, CheckView, HISTORY_LEN, Health, HistoryEntry, HostStatus, host_status,
    readiness_errors, rfc3339,
};
pub use record::{Outcome, RunRecord, one_line};
