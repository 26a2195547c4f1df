//! Sorts client errors into the result's fixed reasons, with a message that
//! names the failing step and never carries the password.

use redis::{ErrorKind, RedisError, ServerErrorKind};
use warden_plugin_api::Reason;

/// What went wrong in a run, and whether the connection must be dropped.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) reason: Reason,
    pub(crate) message: String,
    /// The connection is unusable (I/O error, closed, protocol desync).
    pub(crate) drop_connection: bool,
    /// The server refused a write because of its own state (a read-only
    /// replica, memory full): a finding about the server, so the run goes
    /// on to `INFO`, whose figures matter most then.
    pub(crate) server_state: bool,
}

impl Failure {
    pub(crate) fn new(reason: Reason, message: impl Into<String>, drop_connection: bool) -> Self {
        Failure {
            reason,
            message: message.into(),
            drop_connection,
            server_state: false,
        }
    }
}

/// Whether an error means the connection itself is broken, so a reused one
/// is worth replacing and trying once more.
pub(crate) fn is_connection_error(err: &RedisError) -> bool {
    err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error()
}

/// Classifies an error from opening a connection (TCP, TLS, AUTH, SELECT).
pub(crate) fn connect_failure(err: &RedisError, endpoint: &str, tls: bool) -> Failure {
    let detail = err.to_string();
    if err.is_connection_refusal() {
        return Failure::new(
            Reason::Refused,
            format!("refused: {endpoint}: {detail}"),
            true,
        );
    }
    if is_auth_error(err) {
        return Failure::new(
            Reason::Auth,
            format!("auth: login to {endpoint} rejected: {detail}"),
            true,
        );
    }
    if tls && (err.is_io_error() || err.kind() == ErrorKind::InvalidClientConfig) {
        // With TLS on, an I/O failure while opening is the handshake or the
        // certificate check (rustls reports both as I/O errors).
        return Failure::new(
            Reason::Tls,
            format!("tls: handshake with {endpoint}: {detail}"),
            true,
        );
    }
    if err.is_io_error() {
        return Failure::new(
            Reason::Refused,
            format!("connect: {endpoint}: {detail}"),
            true,
        );
    }
    Failure::new(
        Reason::Protocol,
        format!("protocol: opening {endpoint}: {detail}"),
        true,
    )
}

/// Classifies an error from a command on an open connection.
pub(crate) fn command_failure(err: &RedisError, command: &str, endpoint: &str) -> Failure {
    let detail = err.to_string();
    if is_connection_error(err) {
        return Failure::new(
            Reason::Refused,
            format!("connection lost: {endpoint} during {command}: {detail}"),
            true,
        );
    }
    if is_auth_error(err) || err.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) {
        return Failure::new(
            Reason::Auth,
            format!("auth: {command} denied on {endpoint}: {detail}"),
            false,
        );
    }
    let state = |reason, message: String| Failure {
        server_state: true,
        ..Failure::new(reason, message, false)
    };
    match err.code() {
        Some("READONLY") => state(
            Reason::Other,
            format!("read-only: {command} refused, the server is a read-only replica: {detail}"),
        ),
        Some("OOM") => state(
            Reason::Exhausted,
            format!("memory full: {command} refused at maxmemory: {detail}"),
        ),
        _ => Failure::new(
            Reason::Protocol,
            format!("protocol: {command} failed: {detail}"),
            false,
        ),
    }
}

/// Whether the server does not know a command (renamed away or disabled
/// with `rename-command`).
pub(crate) fn is_unknown_command(err: &RedisError) -> bool {
    err.code() == Some("ERR")
        && err
            .detail()
            .is_some_and(|d| d.to_ascii_lowercase().starts_with("unknown command"))
}

fn is_auth_error(err: &RedisError) -> bool {
    if err.kind() == ErrorKind::AuthenticationFailed {
        return true;
    }
    if matches!(err.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM")) {
        return true;
    }
    // Older servers answer a bad AUTH with a plain ERR.
    let detail = err.detail().unwrap_or_default().to_ascii_lowercase();
    err.code() == Some("ERR") && (detail.contains("password") || detail.contains("auth"))
}

/// Replaces every occurrence of `secret` in `message`.
pub(crate) fn redact(message: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() => message.replace(s, "***"),
        _ => message.to_owned(),
    }
}
