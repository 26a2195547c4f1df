//! The `warden` binary: parses the command line and maps outcomes to exit
//! codes (0 clean stop, 1 invalid configuration, 2 usage, 3 runtime failure).

use std::process::ExitCode;

use clap::Parser;
use warden::cli::{Cli, Command};
use warden::config::Config;

const EXIT_CONFIG: u8 = 1;
const EXIT_RUNTIME: u8 = 3;
/// How long stuck plugin threads may delay the exit.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.config.as_deref()),
        Command::CheckConfig => check_config(cli.config.as_deref()),
        Command::Plugins => plugins(cli.config.as_deref()),
        Command::Rules(command) => warden::alerting::cli::rules(&command, cli.config.as_deref()),
        Command::PluginHost { library } => warden::isolation::serve(&library),
    }
}

fn load(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|diagnostics| {
        eprintln!("{diagnostics}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn check_config(path: Option<&std::path::Path>) -> ExitCode {
    let (config, mut diagnostics) = Config::load_partial(path);
    let Some(config) = config else {
        eprintln!("{diagnostics}");
        return ExitCode::from(EXIT_CONFIG);
    };
    let catalog = warden::app::catalog(&config);
    if let Err(plugin_errors) = warden::app::validate_checks(&config, &catalog) {
        diagnostics.0.extend(plugin_errors.0);
    }
    if !diagnostics.0.is_empty() {
        eprintln!("{}", diagnostics.sorted());
        return ExitCode::from(EXIT_CONFIG);
    }
    for warning in warden::alerting::lint::warnings(&config) {
        eprintln!("{warning}");
    }
    println!(
        "{}: ok, {} check(s), {} rule(s)",
        config.origin,
        config.checks.len(),
        config.alerting.rules.len()
    );
    ExitCode::SUCCESS
}

fn plugins(path: Option<&std::path::Path>) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let catalog = warden::app::catalog(&config);
    if catalog.found.is_empty() {
        println!("no plugin libraries found");
    }
    for found in &catalog.found {
        match &found.outcome {
            Ok(lib) => {
                println!(
                    "{:<16} {:<10} abi {}.{}  {}",
                    lib.name,
                    lib.version,
                    lib.abi.0,
                    lib.abi.1,
                    found.path.display()
                );
                if !lib.description.is_empty() {
                    println!("{:<16} {}", "", lib.description);
                }
            }
            Err(reason) => println!(
                "{:<16} {:<10} {:<8}  {}: {reason}",
                "-",
                "refused",
                "",
                found.path.display()
            ),
        }
    }
    ExitCode::SUCCESS
}

fn run(path: Option<&std::path::Path>) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // Held to the very end: dropping it writes out the last lines.
    let logging = match warden::telemetry::init_logging(&config.log) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("warden: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    // The HTTP connection cap needs more descriptors than the usual soft
    // limit of 1024; the hard limit is ours to take.
    match warden::limits::raise_open_files() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open files limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let code = runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.server.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(listen = %config.server.listen, %error, "cannot listen");
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        let control = warden::app::Control {
            shutdown: Box::pin(warden::signals::shutdown()),
            reloads: warden::signals::reloads(),
            config_path: path.map(std::path::Path::to_owned),
            notifier: warden::systemd::Notifier::from_env(),
        };
        warden::app::run(config, listener, control).await;
        ExitCode::SUCCESS
    });
    // A plugin call stuck past its deadline holds a blocking thread that
    // cannot be cancelled; do not let it hold up the exit.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    drop(logging);
    code
}
