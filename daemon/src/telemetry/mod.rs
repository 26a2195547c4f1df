//! What the daemon says about itself: metrics and logs.

mod logging;
mod metrics;

pub use logging::init as init_logging;
pub use metrics::{MAX_PLUGIN_SERIES_PER_CHECK, Metrics};
