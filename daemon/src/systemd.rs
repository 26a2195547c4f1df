//! The systemd notify protocol, spoken directly: datagrams of `KEY=value`
//! lines to the socket named in `$NOTIFY_SOCKET`.
//!
//! - `READY=1` once the listener is bound and the checks are scheduled;
//! - `STATUS=` lines a person reads in `systemctl status`;
//! - `RELOADING=1` with `MONOTONIC_USEC`, then `READY=1`, around a reload
//!   (what `Type=notify-reload` expects);
//! - `STOPPING=1` on the way out;
//! - `WATCHDOG=1` at half of `WatchdogSec=`, only while the scheduler's
//!   heartbeat is fresh, so a wedged daemon is restarted.
//!
//! Without `$NOTIFY_SOCKET` every call does nothing.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use crate::status::Board;

/// A handle on the service manager's notification socket.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<Arc<(UnixDatagram, SocketAddr)>>,
}

impl Notifier {
    /// Connects to `$NOTIFY_SOCKET` if set; `@name` is an abstract socket.
    pub fn from_env() -> Notifier {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::default();
        };
        let path = path.to_string_lossy().into_owned();
        let address = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        match (UnixDatagram::unbound(), address) {
            (Ok(socket), Ok(address)) => Notifier {
                target: Some(Arc::new((socket, address))),
            },
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(socket = %path, %error, "cannot use NOTIFY_SOCKET");
                Notifier::default()
            }
        }
    }

    /// Whether a service manager is listening.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    fn send(&self, message: &str) {
        let Some(target) = &self.target else { return };
        let (socket, address) = target.as_ref();
        if let Err(error) = socket.send_to_addr(message.as_bytes(), address) {
            tracing::debug!(%error, "sd_notify failed");
        }
    }

    /// Startup finished.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// A reload starts.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
            monotonic_usec()
        ));
    }

    /// Shutdown starts.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// A status line for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }
}

fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

fn monotonic_usec() -> u64 {
    crate::plugin::monotonic_ns() / 1_000
}

/// The watchdog period requested for this process, if any: `$WATCHDOG_USEC`,
/// unless `$WATCHDOG_PID` names another process.
pub fn watchdog_period() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_string_lossy().trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pets the watchdog at half its period while the scheduler's heartbeat is
/// younger than the period; runs until the task is dropped.
pub async fn watchdog(notifier: Notifier, board: Arc<Board>, period: Duration) -> io::Result<()> {
    let mut ticks = tokio::time::interval(period / 2);
    loop {
        ticks.tick().await;
        match board.since_heartbeat() {
            Some(age) if age < period => notifier.watchdog(),
            age => tracing::error!(
                heartbeat_age_ms = age.map(|a| a.as_millis() as u64),
                "scheduler heartbeat is late; withholding the watchdog ping"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_the_socket() {
        let dir = std::env::temp_dir().join(format!("warden-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let address = SocketAddr::from_pathname(&path).unwrap();
        let notifier = Notifier {
            target: Some(Arc::new((UnixDatagram::unbound().unwrap(), address))),
        };
        notifier.ready("serving 4 checks\nall healthy");
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving 4 checks all healthy");
        notifier.reloading();
        let n = server.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{text}");
        let usec: u64 = text.lines().nth(1).unwrap()["MONOTONIC_USEC=".len()..]
            .parse()
            .unwrap();
        assert!(usec > 0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
