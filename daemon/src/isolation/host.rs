//! The daemon side: one child `warden plugin-host` process per
//! process-isolated check, started on demand, killed at a missed deadline,
//! reaped always, and restarted with backoff after it dies.
//!
//! - The child is the running executable (`/proc/self/exe`, so an upgrade
//!   on disk cannot hand us a different protocol), in its own process group
//!   (a terminal's Ctrl-C reaches only the daemon, which stops it), with
//!   `kill_on_drop`, and without the variables meant for the daemon alone
//!   ([`SCRUBBED_ENV`]).
//! - Its stdout is read by a task that turns `log` lines into tracing events
//!   at once and passes replies on; its stderr (plugin prints and panic
//!   messages) goes into the daemon's log line by line as warnings with the
//!   check and plugin fields. Inheriting stderr would break a JSON log.
//! - A run past its deadline reports `timeout` and SIGKILLs the child; the
//!   next run starts a fresh one without waiting. A child that dies, breaks
//!   the protocol or cannot be created makes the run an `error` and holds
//!   restarts back (1 s doubling to 60 s, reset by a completed check); runs
//!   meanwhile report `error` "restarting in N s".

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use warden_plugin_api::Reason;

use super::PLUGIN_TARGET;
use super::backoff::Backoff;
use super::exit;
use super::lines::{Line, read_line};
use super::protocol::{
    ErrorKind, LogLevel, MAX_LINE, PROTOCOL_VERSION, Reply, Request, decode_reply, encode,
};
use crate::status::{Outcome, RunRecord};

/// Variables for the service manager only: a child that saw them could
/// notify systemd or take over sockets in the daemon's name.
pub const SCRUBBED_ENV: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// The executable the daemon runs children from: itself.
pub const SELF_EXE: &str = "/proc/self/exe";

/// How long a child whose pipe closed gets to finish exiting before it is
/// killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long reaping a SIGKILLed child may take before it is left to
/// tokio's orphan reaper (only a process stuck in the kernel takes longer).
const REAP_LIMIT: Duration = Duration::from_secs(5);
/// Longest stderr line logged as one event; longer ones are split.
const STDERR_LINE: usize = 4096;

/// What a check's children are started with.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// The `warden` executable; [`SELF_EXE`] in the daemon.
    pub program: PathBuf,
    /// The plugin library the child loads.
    pub library: PathBuf,
    /// The plugin name the library must declare.
    pub plugin: String,
    /// The check it serves.
    pub check: String,
    /// The check's plugin config, secrets resolved.
    pub config: serde_json::Value,
}

/// A process-isolated check: its current child, if any, and the backoff.
#[derive(Debug)]
pub struct Process {
    spec: ChildSpec,
    // Boxed: a runner is one variant of an enum and should stay small.
    state: tokio::sync::Mutex<Box<State>>,
}

#[derive(Debug, Default)]
struct State {
    child: Option<Child>,
    backoff: Backoff,
    last_failure: String,
}

/// Why a run got no result from the child.
#[derive(Debug)]
enum Failure {
    /// The deadline passed.
    Timeout,
    /// The child's pipe closed: it exited or was killed.
    Died,
    /// The child said something outside the protocol.
    Protocol(String),
    /// The child could not serve: the library did not load or create
    /// refused the config.
    Refused(String),
    /// The child could not be started at all.
    Spawn(std::io::Error),
}

impl Process {
    /// A check whose child starts on its first run.
    pub fn new(spec: ChildSpec) -> Self {
        Process {
            spec,
            state: tokio::sync::Mutex::default(),
        }
    }

    /// Runs the check once in the child; returns by the deadline plus the
    /// time to kill and reap a child that missed it.
    pub(crate) async fn run(
        &self,
        timeout: Duration,
        started_at: SystemTime,
        started: Instant,
    ) -> RunRecord {
        let deadline = started + timeout;
        let failed = |outcome, reason, message: String| {
            RunRecord::failed(outcome, reason, message, started_at, started.elapsed())
        };
        let Ok(mut state) = self.state.try_lock() else {
            return failed(
                Outcome::Timeout,
                Reason::Timeout,
                "previous run has not returned yet".to_owned(),
            );
        };
        let state = &mut **state;
        // A run cancelled mid-call leaves a reply in flight; never read it as
        // this run's.
        if state.child.as_ref().is_some_and(|c| c.in_call)
            && let Some(child) = state.child.take()
        {
            child.kill_and_reap().await;
        }
        if state.child.is_none() {
            if let Some(wait) = state.backoff.remaining(Instant::now()) {
                return failed(
                    Outcome::Error,
                    Reason::Crashed,
                    format!(
                        "plugin process restarting in {} s; last failure: {}",
                        wait.as_secs_f64().ceil().max(1.0) as u64,
                        state.last_failure
                    ),
                );
            }
            if let Err(failure) = self.start(state, deadline).await {
                let (outcome, reason, message) = self.settle(state, failure, timeout).await;
                return failed(outcome, reason, message);
            }
        }
        let child = state.child.as_mut().expect("started above");
        let plugin_deadline = started + crate::scheduler::plugin_budget(timeout);
        let remaining = plugin_deadline.saturating_duration_since(Instant::now());
        let request = Request::Check {
            timeout_ms: (remaining.as_millis() as u64).max(1),
        };
        let failure = match child.call(&request, deadline).await {
            Ok(Reply::Finished { result }) => {
                state.backoff.reset();
                return RunRecord::from_result(result, started_at, started.elapsed());
            }
            Ok(Reply::Error {
                kind: kind @ (ErrorKind::Plugin | ErrorKind::BadResult),
                message,
            }) => {
                // The plugin failed this run; the child itself is fine.
                state.backoff.reset();
                let reason = match kind {
                    ErrorKind::BadResult => Reason::Protocol,
                    _ => Reason::Error,
                };
                return failed(Outcome::Error, reason, message);
            }
            Ok(other) => Failure::Protocol(format!("unexpected reply to check: {other:?}")),
            Err(failure) => failure,
        };
        let (outcome, reason, message) = self.settle(state, failure, timeout).await;
        failed(outcome, reason, message)
    }

    /// Spawns a child and creates the instance in it.
    async fn start(&self, state: &mut State, deadline: Instant) -> Result<(), Failure> {
        let child = state.child.insert(Child::spawn(&self.spec)?);
        tracing::info!(
            check = %self.spec.check,
            plugin = %self.spec.plugin,
            pid = child.pid,
            "plugin process started"
        );
        match child.receive(deadline).await? {
            Reply::Hello {
                protocol: PROTOCOL_VERSION,
                plugin,
                ..
            } if plugin == self.spec.plugin => {}
            Reply::Hello {
                protocol, plugin, ..
            } => {
                return Err(Failure::Protocol(format!(
                    "child serves plugin {plugin:?} over protocol {protocol}, \
                     expected {:?} over protocol {PROTOCOL_VERSION}",
                    self.spec.plugin
                )));
            }
            Reply::Error {
                kind: ErrorKind::Load,
                message,
            } => return Err(Failure::Refused(format!("cannot load plugin: {message}"))),
            other => {
                return Err(Failure::Protocol(format!("expected hello, got {other:?}")));
            }
        }
        let create = Request::Create {
            check: self.spec.check.clone(),
            config: self.spec.config.clone(),
        };
        match child.call(&create, deadline).await? {
            Reply::Created => Ok(()),
            Reply::Error {
                kind: ErrorKind::Plugin,
                message,
            } => Err(Failure::Refused(format!(
                "plugin {:?} rejected its config: {message}",
                self.spec.plugin
            ))),
            other => Err(Failure::Protocol(format!(
                "unexpected reply to create: {other:?}"
            ))),
        }
    }

    /// Ends the current child after `failure`, reaping it, and says what
    /// the run reports.
    async fn settle(
        &self,
        state: &mut State,
        failure: Failure,
        timeout: Duration,
    ) -> (Outcome, Reason, String) {
        let child = state.child.take();
        let pid = child.as_ref().map(|c| c.pid);
        let (outcome, reason, message) = match failure {
            Failure::Timeout => {
                if let Some(child) = child {
                    child.kill_and_reap().await;
                }
                tracing::warn!(
                    check = %self.spec.check,
                    plugin = %self.spec.plugin,
                    pid,
                    "plugin process missed its deadline; killed"
                );
                // A hang is not a crash: the next run starts a fresh child
                // at once, and the interval already paces those.
                return (
                    Outcome::Timeout,
                    Reason::Timeout,
                    format!(
                        "no result within {}; plugin process killed",
                        humantime::format_duration(timeout)
                    ),
                );
            }
            Failure::Died => {
                let message = match child {
                    Some(child) => exit::describe(child.reap_exited().await),
                    None => "plugin process ended".to_owned(),
                };
                (Outcome::Error, Reason::Crashed, message)
            }
            Failure::Protocol(detail) => {
                if let Some(child) = child {
                    child.kill_and_reap().await;
                }
                (
                    Outcome::Error,
                    Reason::Protocol,
                    format!("plugin process protocol error: {detail}"),
                )
            }
            Failure::Refused(message) => {
                if let Some(child) = child {
                    child.kill_and_reap().await;
                }
                (Outcome::Error, Reason::Error, message)
            }
            Failure::Spawn(error) => (
                Outcome::Error,
                Reason::Error,
                format!(
                    "cannot start plugin process {}: {error}",
                    self.spec.program.display()
                ),
            ),
        };
        let delay = state.backoff.failed(Instant::now());
        tracing::warn!(
            check = %self.spec.check,
            plugin = %self.spec.plugin,
            pid,
            reason = reason.as_str(),
            backoff_ms = delay.as_millis() as u64,
            "{message}; restarting after backoff"
        );
        state.last_failure.clone_from(&message);
        (outcome, reason, message)
    }
}

/// One running child and the ends of its pipes.
#[derive(Debug)]
struct Child {
    process: tokio::process::Child,
    pid: u32,
    stdin: ChildStdin,
    replies: mpsc::Receiver<Result<Reply, String>>,
    /// A request was sent and its reply not yet read.
    in_call: bool,
}

impl Child {
    fn spawn(spec: &ChildSpec) -> Result<Child, Failure> {
        let mut command = Command::new(&spec.program);
        command
            .arg0("warden")
            .arg("plugin-host")
            .arg("--library")
            .arg(&spec.library)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        for name in SCRUBBED_ENV {
            command.env_remove(name);
        }
        let mut process = command.spawn().map_err(Failure::Spawn)?;
        let pid = process.id().unwrap_or_default();
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            unreachable!("all three pipes were requested");
        };
        let (sender, replies) = mpsc::channel(4);
        tokio::spawn(read_replies(
            stdout,
            sender,
            spec.check.clone(),
            spec.plugin.clone(),
        ));
        tokio::spawn(log_stderr(stderr, spec.check.clone(), spec.plugin.clone()));
        Ok(Child {
            process,
            pid,
            stdin,
            replies,
            in_call: false,
        })
    }

    /// Sends `request` and waits for its reply until `deadline`.
    async fn call(&mut self, request: &Request, deadline: Instant) -> Result<Reply, Failure> {
        self.in_call = true;
        match timeout_at(deadline, self.stdin.write_all(&encode(request))).await {
            Err(_) => return Err(Failure::Timeout),
            // A broken pipe: the child is gone, which its closed stdout
            // confirms.
            Ok(Err(_)) => return Err(Failure::Died),
            Ok(Ok(())) => {}
        }
        let reply = self.receive(deadline).await;
        self.in_call = false;
        reply
    }

    /// The next reply, by `deadline`.
    async fn receive(&mut self, deadline: Instant) -> Result<Reply, Failure> {
        match timeout_at(deadline, self.replies.recv()).await {
            Err(_) => Err(Failure::Timeout),
            Ok(None) => Err(Failure::Died),
            Ok(Some(Err(detail))) => Err(Failure::Protocol(detail)),
            Ok(Some(Ok(reply))) => Ok(reply),
        }
    }

    /// SIGKILLs the child and waits for it, so no zombie stays behind.
    async fn kill_and_reap(mut self) -> Option<ExitStatus> {
        // Fails only when the child was already reaped, which `wait` covers.
        let _ = self.process.start_kill();
        self.reap(REAP_LIMIT).await
    }

    /// Waits for a child whose pipe closed; kills it if it lingers.
    async fn reap_exited(mut self) -> ExitStatus {
        if let Some(status) = self.reap(EXIT_GRACE).await {
            return status;
        }
        let _ = self.process.start_kill();
        self.reap(REAP_LIMIT)
            .await
            .unwrap_or_else(|| std::os::unix::process::ExitStatusExt::from_raw(libc::SIGKILL))
    }

    async fn reap(&mut self, limit: Duration) -> Option<ExitStatus> {
        match tokio::time::timeout(limit, self.process.wait()).await {
            Ok(Ok(status)) => Some(status),
            Ok(Err(error)) => {
                tracing::error!(pid = self.pid, %error, "cannot wait for plugin process");
                None
            }
            Err(_) => {
                tracing::error!(
                    pid = self.pid,
                    "plugin process not reaped in time; left to the runtime's reaper"
                );
                None
            }
        }
    }
}

/// Reads the child's stdout: `log` lines become tracing events, other
/// replies go to the runner. Ends at end of file or at the first line that
/// breaks the protocol, after reporting it.
async fn read_replies(
    stdout: ChildStdout,
    replies: mpsc::Sender<Result<Reply, String>>,
    check: String,
    plugin: String,
) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        let reply = match read_line(&mut reader, &mut buf, MAX_LINE).await {
            Ok(Line::Eof) | Err(_) => return,
            Ok(Line::Partial) => Err(format!("line longer than {MAX_LINE} bytes")),
            Ok(Line::Complete) => decode_reply(&buf),
        };
        match reply {
            Ok(Reply::Log { level, message }) => log_plugin_line(level, &check, &plugin, &message),
            other => {
                let broken = other.is_err();
                if replies.send(other).await.is_err() || broken {
                    return;
                }
            }
        }
    }
}

/// Logs the child's stderr line by line.
async fn log_stderr(stderr: ChildStderr, check: String, plugin: String) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    while let Ok(Line::Complete | Line::Partial) =
        read_line(&mut reader, &mut buf, STDERR_LINE).await
    {
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::warn!(target: PLUGIN_TARGET, check = %check, plugin = %plugin, stream = "stderr", "{text}");
        }
    }
}

/// Emits a forwarded plugin log line as the in-process host does.
fn log_plugin_line(level: LogLevel, check: &str, plugin: &str, text: &str) {
    // One line per message: an embedded newline must not forge log lines.
    let text = crate::status::one_line(text);
    match level {
        LogLevel::Error => {
            tracing::error!(target: PLUGIN_TARGET, check = %check, plugin = %plugin, "{text}")
        }
        LogLevel::Warn => {
            tracing::warn!(target: PLUGIN_TARGET, check = %check, plugin = %plugin, "{text}")
        }
        LogLevel::Info => {
            tracing::info!(target: PLUGIN_TARGET, check = %check, plugin = %plugin, "{text}")
        }
        LogLevel::Debug => {
            tracing::debug!(target: PLUGIN_TARGET, check = %check, plugin = %plugin, "{text}")
        }
        LogLevel::Trace => {
            tracing::trace!(target: PLUGIN_TARGET, check = %check, plugin = %plugin, "{text}")
        }
    }
}
