//! `warden rules export` and `warden rules test`.

use std::path::Path;
use std::process::ExitCode;

use super::{export, unit};
use crate::cli::RulesCommand;
use crate::config::Config;

/// Runs one `rules` subcommand: 0 on success, 1 on an invalid config or a
/// failed test.
pub fn rules(command: &RulesCommand, config: Option<&Path>) -> ExitCode {
    match command {
        RulesCommand::Export => {
            let config = match Config::load(config) {
                Ok(config) => config,
                Err(diagnostics) => {
                    eprintln!("{diagnostics}");
                    return ExitCode::from(1);
                }
            };
            let (yaml, warnings) = export::export(&config.alerting);
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
            println!("# Alert rules of {}, exported by warden.", config.origin);
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        RulesCommand::Test { files } => {
            let (mut passed, mut failed) = (0, 0);
            for file in files {
                match unit::run_file(file) {
                    Ok(report) => {
                        for line in &report.lines {
                            println!("{line}");
                        }
                        passed += report.passed;
                        failed += report.failed;
                    }
                    Err(error) => {
                        eprintln!("{error}");
                        failed += 1;
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}
