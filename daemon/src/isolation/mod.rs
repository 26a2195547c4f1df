//! Process isolation: a check with `isolation = "process"` runs its plugin
//! in a child `warden plugin-host` process, so a plugin that crashes or
//! hangs costs that child, never the daemon.
//!
//! - [`protocol`]: the versioned JSON-lines protocol on the child's pipes.
//! - `child`: the child side, behind the hidden `plugin-host` subcommand.
//! - `host`: the daemon side, [`Process`], a scheduler runner.

mod backoff;
mod child;
mod exit;
mod host;
mod lines;
pub mod protocol;

pub use child::serve;
pub use host::{ChildSpec, Process, SCRUBBED_ENV, SELF_EXE};

/// The tracing target of plugin log lines, in both processes.
const PLUGIN_TARGET: &str = "warden::plugin";
