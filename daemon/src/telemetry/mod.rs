//! What the daemon says about itself: metrics and logs.

mod dropped;
mod exposition;
mod json;
mod logging;
mod metrics;
mod process;
mod rolling;

pub use dropped::dropped_lines as log_lines_dropped;
pub use exposition::MAX_PLUGIN_SERIES_PER_CHECK;
pub(crate) use exposition::for_each_sample;
pub use logging::{LogGuard, SECURITY_TARGET, init as init_logging, probe_sample};
pub use metrics::Metrics;
pub use rolling::OpenError as LogFileError;
