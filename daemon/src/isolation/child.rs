//! The child side: `warden plugin-host --library PATH` loads one plugin
//! library and serves the [protocol](super::protocol) on its pipes.
//!
//! It runs no async runtime: one request at a time, each a blocking call
//! into the plugin, which is all the protocol needs.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use super::PLUGIN_TARGET;
use super::protocol::{ErrorKind, Reply, Request, encode};
use crate::plugin::{CallError, Instance, Library};

/// The protocol's output: the child's original stdout, one line per write.
#[derive(Debug, Clone)]
struct Output(Arc<Mutex<File>>);

impl Output {
    fn send(&self, reply: &Reply) -> std::io::Result<()> {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(&encode(reply))
    }
}

/// Serves one plugin library until stdin closes. The exit code is 0 then, 1
/// when the library cannot be loaded or stdout cannot be taken.
pub fn serve(library: &Path) -> ExitCode {
    let out = match take_stdout() {
        Ok(out) => out,
        Err(error) => {
            eprintln!("warden plugin-host: cannot set up the protocol pipe: {error}");
            return ExitCode::from(1);
        }
    };
    // Plugin log lines are tracing events (see `plugin::instance`); this
    // subscriber turns them into protocol lines.
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(Forward(out.clone())),
    );
    let library = match Library::open(library) {
        Ok(library) => Arc::new(library),
        Err(error) => {
            let _ = out.send(&Reply::Error {
                kind: ErrorKind::Load,
                message: format!("{}: {error}", library.display()),
            });
            return ExitCode::from(1);
        }
    };
    let hello = Reply::Hello {
        protocol: super::protocol::PROTOCOL_VERSION,
        plugin: library.name.clone(),
        version: library.version.clone(),
    };
    if out.send(&hello).is_err() {
        return ExitCode::from(1);
    }
    let mut instance: Option<Instance> = None;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => handle(request, &library, &mut instance),
            Err(error) => request_error(format!("cannot parse request: {error}")),
        };
        if out.send(&reply).is_err() {
            break;
        }
    }
    // Destroy the instance while the library is still loaded.
    drop(instance);
    ExitCode::SUCCESS
}

fn handle(request: Request, library: &Arc<Library>, instance: &mut Option<Instance>) -> Reply {
    match (request, instance.as_mut()) {
        (Request::Create { check, config }, None) => {
            match Instance::create(Arc::clone(library), &check, &config) {
                Ok(created) => {
                    *instance = Some(created);
                    Reply::Created
                }
                Err(error) => Reply::Error {
                    kind: ErrorKind::Plugin,
                    message: error.to_string(),
                },
            }
        }
        (Request::Create { .. }, Some(_)) => request_error("instance already created".to_owned()),
        (Request::Check { .. }, None) => request_error("check before create".to_owned()),
        (Request::Check { timeout_ms }, Some(instance)) => {
            match instance.check(Duration::from_millis(timeout_ms)) {
                Ok(result) => Reply::Finished { result },
                Err(error @ CallError::Plugin(_)) => Reply::Error {
                    kind: ErrorKind::Plugin,
                    message: error.to_string(),
                },
                Err(error @ CallError::BadResult(_)) => Reply::Error {
                    kind: ErrorKind::BadResult,
                    message: error.to_string(),
                },
            }
        }
    }
}

fn request_error(message: String) -> Reply {
    Reply::Error {
        kind: ErrorKind::Request,
        message,
    }
}

/// Moves stdout to a private close-on-exec descriptor for the protocol and
/// points fd 1 at stderr, so whatever the plugin prints lands in the
/// daemon's log instead of in the middle of a protocol line.
#[allow(unsafe_code, reason = "dup2 has no safe wrapper in std")]
fn take_stdout() -> std::io::Result<Output> {
    let protocol: OwnedFd = std::io::stdout().as_fd().try_clone_to_owned()?;
    // SAFETY: dup2 on two descriptors this process owns for its whole life
    // (1 and 2); it touches no memory. Nothing has been written to stdout
    // yet, so no buffered bytes go to the wrong place.
    if unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Output(Arc::new(Mutex::new(File::from(protocol)))))
}

/// A tracing layer forwarding plugin log events as `log` lines.
#[derive(Debug)]
struct Forward(Output);

impl<S: tracing::Subscriber> Layer<S> for Forward {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != PLUGIN_TARGET {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        // A closed pipe means the daemon is gone; the request loop ends on it.
        let _ = self.0.send(&Reply::Log {
            level: (*event.metadata().level()).into(),
            message: message.0,
        });
    }
}

/// Collects an event's `message` field.
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}
