//! The line protocol between the daemon and its `warden plugin-host`
//! children, version [`PROTOCOL_VERSION`].
//!
//! One JSON object per line (UTF-8, `\n`-terminated, at most [`MAX_LINE`]
//! bytes), each with a `type`. The daemon writes requests to the child's
//! stdin; the child writes replies to its stdout. The child moves its stdout
//! to a private descriptor and points fd 1 at stderr before loading the
//! plugin, so a plugin that prints cannot corrupt the protocol.
//!
//! ```text
//! child:  {"type":"hello","protocol":1,"plugin":"redis","version":"0.1.0"}   first, once
//! daemon: {"type":"create","check":"cache","config":{"url":"redis://…"}}     once
//! child:  {"type":"created"}
//!       | {"type":"error","kind":"plugin","message":"unknown key `urll`"}
//! daemon: {"type":"check","timeout_ms":3000}                                  per run
//! child:  {"type":"log","level":"info","message":"…"}                         any time
//! child:  {"type":"result","result":{"status":"ok","message":"PONG", …}}
//!       | {"type":"error","kind":"plugin"|"bad_result","message":"…"}
//! ```
//!
//! - One request at a time: the daemon sends the next only after the reply
//!   to the previous one. `log` lines may come at any time, also between
//!   requests (from a plugin's own threads), and are not replies.
//! - If the child cannot load the library it writes one `error` of kind
//!   `load` in place of `hello` and exits with code 1. A request it cannot
//!   parse gets an `error` of kind `request`. It exits 0 when stdin closes,
//!   destroying the instance first.
//! - Anything else from the child (a line that is not JSON, an unknown
//!   `type`, a reply nobody asked for, another protocol version, a line over
//!   [`MAX_LINE`]) is a protocol error: the daemon kills that child and
//!   starts a new one.
//! - The version changes with any incompatible change. Daemon and child are
//!   the same executable (the daemon runs `/proc/self/exe`), so they differ
//!   only if that invariant is broken, and then the daemon refuses the child.

use serde::{Deserialize, Serialize};
use warden_plugin_api::CheckResult;

/// The protocol version in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest line either side accepts, newline excluded.
pub const MAX_LINE: usize = 1 << 20;

/// What the daemon asks of a child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Create the one instance this child serves.
    Create {
        /// The check's name, for the plugin's log lines.
        check: String,
        /// The check's plugin config, secrets resolved.
        config: serde_json::Value,
    },
    /// Run the check once.
    Check {
        /// Time the plugin has, as in the ABI's run context.
        timeout_ms: u64,
    },
}

/// What a child writes back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// First line: the child is ready and serves this plugin.
    Hello {
        /// [`PROTOCOL_VERSION`] of the child.
        protocol: u32,
        /// The plugin's name from its descriptor.
        plugin: String,
        /// The plugin's version from its descriptor.
        version: String,
    },
    /// The instance exists.
    Created,
    /// A line the plugin logged.
    Log {
        /// Its level.
        level: LogLevel,
        /// The line.
        message: String,
    },
    /// A check's result.
    #[serde(rename = "result")]
    Finished {
        /// What the plugin returned.
        result: CheckResult,
    },
    /// A request failed; the child is still usable unless `kind` is `load`.
    Error {
        /// What failed.
        kind: ErrorKind,
        /// One line for people.
        message: String,
    },
}

/// Levels of forwarded log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `ERROR`.
    Error,
    /// `WARN`.
    Warn,
    /// `INFO`.
    Info,
    /// `DEBUG`.
    Debug,
    /// `TRACE`.
    Trace,
}

impl From<tracing::Level> for LogLevel {
    fn from(level: tracing::Level) -> Self {
        match level {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::TRACE => LogLevel::Trace,
        }
    }
}

/// What an `error` reply is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The library could not be loaded; the child exits.
    Load,
    /// The request was not understood or came out of order.
    Request,
    /// The plugin returned its error code (create refused the config, or
    /// check failed).
    Plugin,
    /// The plugin's check returned bytes that are not a result.
    BadResult,
}

/// One message as a protocol line, newline included.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).expect("protocol messages serialise");
    line.push(b'\n');
    line
}

/// Parses one line from a child, newline excluded.
pub fn decode_reply(line: &[u8]) -> Result<Reply, String> {
    serde_json::from_slice(line).map_err(|e| {
        let shown = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        format!("malformed line {shown:?}: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_plugin_api::{Metric, Reason};

    #[test]
    fn lines_match_the_documented_shapes() {
        let text = |m: &Reply| String::from_utf8(encode(m)).unwrap();
        assert_eq!(
            text(&Reply::Hello {
                protocol: 1,
                plugin: "redis".into(),
                version: "0.1.0".into()
            }),
            "{\"type\":\"hello\",\"protocol\":1,\"plugin\":\"redis\",\"version\":\"0.1.0\"}\n"
        );
        assert_eq!(text(&Reply::Created), "{\"type\":\"created\"}\n");
        assert_eq!(
            String::from_utf8(encode(&Request::Check { timeout_ms: 3000 })).unwrap(),
            "{\"type\":\"check\",\"timeout_ms\":3000}\n"
        );
        let result = CheckResult::critical(Reason::Refused, "down").with_metrics([Metric::new(
            "x_seconds",
            0.5,
        )
        .label("step", "tcp")]);
        let line = encode(&Reply::Finished { result });
        assert!(line.starts_with(b"{\"type\":\"result\",\"result\":{\"status\":\"critical\""));
        assert_eq!(
            decode_reply(&line[..line.len() - 1]).unwrap(),
            Reply::Finished {
                result: CheckResult::critical(Reason::Refused, "down").with_metrics([Metric::new(
                    "x_seconds",
                    0.5
                )
                .label("step", "tcp")])
            }
        );
    }

    #[test]
    fn garbage_and_unknown_types_are_errors_naming_the_line() {
        let error = decode_reply(b"Segmentation fault").unwrap_err();
        assert!(error.contains("\"Segmentation fault\""), "{error}");
        assert!(decode_reply(br#"{"type":"teapot"}"#).is_err());
        assert!(decode_reply(br#"{"type":"result","result":{"status":"fine"}}"#).is_err());
        assert_eq!(
            decode_reply(br#"{"type":"log","level":"warn","message":"slow"}"#).unwrap(),
            Reply::Log {
                level: LogLevel::Warn,
                message: "slow".into()
            }
        );
    }
}
