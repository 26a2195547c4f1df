//! The command line, in clap's derive form.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Warden: host monitoring daemon with check plugins, health endpoints and
/// Prometheus metrics.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, propagate_version = true)]
pub struct Cli {
    /// Config file; without it (and without WARDEN_CONFIG) the embedded
    /// default runs the system check.
    #[arg(long, short, global = true, env = "WARDEN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate the config, rule files and every plugin's section, then exit.
    CheckConfig,
    /// List the plugin libraries found, and why any was refused.
    Plugins,
    /// Alert rules: export them for Prometheus, or run rule unit tests.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Internal: serve one plugin library to the daemon over stdin/stdout
    /// (`isolation = "process"`); see `warden::isolation::protocol`.
    #[command(hide = true)]
    PluginHost {
        /// The plugin library to load.
        #[arg(long, value_name = "PATH")]
        library: std::path::PathBuf,
    },
}

/// `warden rules ...`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Print the config's rules as a Prometheus rule file (YAML).
    Export,
    /// Run rule unit tests written in `promtool test rules` format.
    Test {
        /// Test files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}
