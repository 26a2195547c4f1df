//! Turns tokio-postgres errors into a [`Reason`] and one line naming the
//! step that failed: refused, dns, tls, auth, exhausted, protocol, timeout.
//!
//! tokio-postgres keeps its error kinds private, so the kind is read from the
//! error's fixed top-level text; the SQLSTATE and any `io::Error` in the
//! source chain are read directly.

use std::error::Error as _;
use std::io;

use tokio_postgres::error::SqlState;
use warden_plugin_api::Reason;

use crate::progress::Step;

/// A classified failure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) reason: Reason,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
        }
    }
}

/// A short description of any tokio-postgres error: the server's message and
/// SQLSTATE for database errors, else the error and its cause.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    match error.source() {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// The first `io::Error` in the source chain.
fn io_kind(error: &tokio_postgres::Error) -> Option<io::ErrorKind> {
    let mut cause = error.source();
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        cause = current.source();
    }
    None
}

/// Classifies a failed connection attempt to `target` as user `user`,
/// which failed during `step`.
pub(crate) fn connect_failure(
    error: &tokio_postgres::Error,
    step: Step,
    target: &str,
    user: &str,
) -> Failure {
    if let Some(db) = error.as_db_error() {
        let text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        let code = db.code();
        return if *code == SqlState::TOO_MANY_CONNECTIONS {
            Failure::new(
                Reason::Exhausted,
                format!("connection slots are exhausted on {target}: {text}"),
            )
        } else if code.code().starts_with("28") {
            Failure::new(
                Reason::Auth,
                format!("authentication failed for user {user:?} on {target}: {text}"),
            )
        } else if *code == SqlState::CANNOT_CONNECT_NOW {
            Failure::new(
                Reason::Refused,
                format!("{target} refused connections: {text}"),
            )
        } else {
            Failure::new(
                Reason::Other,
                format!("{target} rejected the connection: {text}"),
            )
        };
    }
    let detail = describe(error);
    match error.to_string().as_str() {
        "error performing TLS handshake" => {
            return Failure::new(Reason::Tls, format!("TLS with {target} failed: {detail}"));
        }
        "authentication error" => {
            return Failure::new(
                Reason::Auth,
                format!("authentication failed for user {user:?} on {target}: {detail}"),
            );
        }
        "error parsing response from server" | "unexpected message from server" => {
            return Failure::new(
                Reason::Protocol,
                format!("{target} did not answer in the PostgreSQL protocol: {detail}"),
            );
        }
        "connection closed" => {
            return Failure::new(
                Reason::Protocol,
                format!("{target} closed the connection while {}", step.describe()),
            );
        }
        _ => {}
    }
    match io_kind(error) {
        Some(io::ErrorKind::ConnectionRefused) => {
            Failure::new(Reason::Refused, format!("connection refused by {target}"))
        }
        Some(io::ErrorKind::NotFound) => Failure::new(
            Reason::Refused,
            format!("no server socket at {target}: {detail}"),
        ),
        Some(io::ErrorKind::TimedOut) => Failure::new(
            Reason::Timeout,
            format!("timeout while {} to {target}: {detail}", step.describe()),
        ),
        Some(
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe,
        ) if step != Step::Connecting => Failure::new(
            Reason::Protocol,
            format!(
                "{target} dropped the connection while {}: {detail}",
                step.describe()
            ),
        ),
        Some(io::ErrorKind::InvalidData) => Failure::new(
            Reason::Protocol,
            format!("{target} did not answer in the PostgreSQL protocol: {detail}"),
        ),
        // Once TCP is up, any other I/O failure is the peer breaking the
        // startup exchange (garbage, then close).
        Some(_) if step != Step::Connecting => Failure::new(
            Reason::Protocol,
            format!(
                "{target} broke the startup exchange while {}: {detail}",
                step.describe()
            ),
        ),
        _ => Failure::new(
            Reason::Other,
            format!("cannot connect to {target}: {detail}"),
        ),
    }
}

/// Classifies a failed name lookup.
pub(crate) fn dns_failure(host: &str, error: &io::Error) -> Failure {
    Failure::new(
        Reason::Dns,
        format!("cannot resolve host name {host:?}: {error}"),
    )
}

/// Classifies a failure of `SELECT 1` on an established connection.
pub(crate) fn liveness_failure(error: &tokio_postgres::Error, target: &str) -> Failure {
    let detail = describe(error);
    let reason = match error.to_string().as_str() {
        "error parsing response from server" | "unexpected message from server" => Reason::Protocol,
        _ => Reason::Other,
    };
    Failure::new(reason, format!("SELECT 1 on {target} failed: {detail}"))
}
