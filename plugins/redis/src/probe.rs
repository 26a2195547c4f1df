//! One run against Redis: resolve, connect (TCP, TLS, AUTH, SELECT) unless a
//! connection is kept from the last run, PING, the optional SET/GET/DEL round
//! trip, then INFO. The caller bounds the whole run with one deadline.
//!
//! Each round trip costs a wakeup of the plugin's thread and of the server,
//! so commands share one where timing allows: PING is timed alone, the
//! SET/GET/DEL round trip's three commands go as one pipeline, INFO alone.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ErrorKind, RedisError, RedisResult, ServerErrorKind, Value,
};
use warden_plugin_api::{Metric, Reason, Status};

use crate::config::Config;
use crate::failure::{
    Failure, command_failure, connect_failure, is_connection_error, is_unknown_command,
};
use crate::info::{Finding, Info, SECTIONS, Thresholds, assess, not_ready_loading};

/// The step a run is in, for the timeout message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Dns,
    Connect,
    Ping,
    Roundtrip,
    Info,
}

impl Step {
    pub(crate) fn describe(self, tls: bool) -> &'static str {
        match self {
            Step::Dns => "dns lookup",
            Step::Connect if tls => "connect (TCP, TLS handshake, AUTH)",
            Step::Connect => "connect (TCP, AUTH)",
            Step::Ping => "PING",
            Step::Roundtrip => "SET/GET/DEL round trip",
            Step::Info => "INFO",
        }
    }
}

/// What a run that reached the server found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) findings: Vec<Finding>,
    pub(crate) metrics: Vec<Metric>,
    pub(crate) summary: Vec<String>,
}

/// A connection kept between runs, and what it learnt about its server.
pub(crate) struct Session {
    conn: MultiplexedConnection,
    /// The server refused `INFO` with several sections (before Redis 7), so
    /// this connection asks for a plain `INFO`.
    plain_info: bool,
}

/// Borrowed state for one run.
pub(crate) struct Run<'a> {
    pub(crate) config: &'a Config,
    pub(crate) client: &'a Client,
    pub(crate) session: &'a mut Option<Session>,
    pub(crate) step: &'a Cell<Step>,
}

impl Run<'_> {
    pub(crate) async fn execute(self) -> Result<Report, Failure> {
        let mut report = Report::default();
        let reused = self.session.is_some();
        let mut session = match self.session.take() {
            Some(session) => session,
            None => self.open(&mut report).await?,
        };

        self.step.set(Step::Ping);
        let pinged = match ping(&mut session.conn).await {
            // A kept connection may have died since the last run (server
            // restart, idle timeout): replace it once before judging.
            Err(e) if reused && is_connection_error(&e) => {
                drop(session);
                session = self.open(&mut report).await?;
                self.step.set(Step::Ping);
                ping(&mut session.conn).await
            }
            other => other,
        };
        let ping_time = match pinged {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::BusyLoading) => {
                // Loading answers -LOADING to PING: reachable but not ready.
                report.findings.push(not_ready_loading());
                report.metrics.push(Metric::new("loading", 1.0));
                *self.session = Some(session);
                return Ok(report);
            }
            Err(e) => {
                let failure = command_failure(&e, "PING", &self.config.endpoint());
                if !failure.drop_connection {
                    *self.session = Some(session);
                }
                return Err(failure);
            }
        };
        report
            .metrics
            .push(Metric::new("ping_seconds", ping_time.as_secs_f64()).unit("seconds"));
        report
            .summary
            .push(format!("PONG in {:.1} ms", ping_time.as_secs_f64() * 1e3));
        if let Some(limit) = self.config.ping_warning
            && ping_time > limit
        {
            report.findings.push(Finding {
                status: Status::Warning,
                reason: Reason::Threshold,
                message: format!(
                    "PING took {:.1} ms, threshold {:.1} ms",
                    ping_time.as_secs_f64() * 1e3,
                    limit.as_secs_f64() * 1e3
                ),
            });
        }

        if self.config.roundtrip {
            self.step.set(Step::Roundtrip);
            match roundtrip(&mut session.conn, self.config).await {
                Ok(t) => {
                    report
                        .metrics
                        .push(Metric::new("roundtrip_seconds", t.as_secs_f64()).unit("seconds"));
                    report
                        .summary
                        .push(format!("round trip {:.1} ms", t.as_secs_f64() * 1e3));
                }
                // Read-only or full: say so, and still read INFO, which
                // shows why (replication, memory).
                Err(failure) if failure.server_state => report.findings.push(Finding {
                    status: Status::Critical,
                    reason: failure.reason,
                    message: failure.message,
                }),
                Err(failure) => {
                    if !failure.drop_connection {
                        *self.session = Some(session);
                    }
                    return Err(failure);
                }
            }
        }

        self.step.set(Step::Info);
        match info(&mut session).await {
            Ok(text) => {
                let thresholds = Thresholds {
                    warning: self.config.memory_warning_ratio,
                    critical: self.config.memory_critical_ratio,
                };
                let assessment = assess(&Info::parse(&text), thresholds);
                report.findings.extend(assessment.findings);
                report.metrics.extend(assessment.metrics);
                report.summary.push(assessment.summary);
            }
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) => {
                // A monitoring user may be allowed PING/GET/SET only: the
                // server is alive, the INFO-based view is just unavailable.
                report.findings.push(Finding {
                    status: Status::Warning,
                    reason: Reason::Auth,
                    message: "INFO denied by ACL: memory, clients and replication unavailable"
                        .to_owned(),
                });
            }
            Err(e) if is_unknown_command(&e) => {
                report.findings.push(Finding {
                    status: Status::Warning,
                    reason: Reason::Other,
                    message: "INFO is disabled (rename-command): memory, clients and replication \
                              unavailable"
                        .to_owned(),
                });
            }
            Err(e) => {
                let failure = command_failure(&e, "INFO", &self.config.endpoint());
                if !failure.drop_connection {
                    *self.session = Some(session);
                }
                return Err(failure);
            }
        }
        *self.session = Some(session);
        Ok(report)
    }

    async fn open(&self, report: &mut Report) -> Result<Session, Failure> {
        let config = self.config;
        let endpoint = config.endpoint();
        self.step.set(Step::Dns);
        // Resolve first so a name that does not resolve reads as `dns`,
        // not as a generic connect error.
        match tokio::net::lookup_host((config.host.as_str(), config.port))
            .await
            .map(|mut a| a.next())
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                let message = format!("dns: {} has no addresses", config.host);
                return Err(Failure::new(Reason::Dns, message, true));
            }
            Err(e) => {
                let message = format!("dns: cannot resolve {}: {e}", config.host);
                return Err(Failure::new(Reason::Dns, message, true));
            }
        }
        self.step.set(Step::Connect);
        let started = Instant::now();
        // The run's deadline bounds everything; the client's own timeouts
        // would cut a slow but in-time answer short.
        let options = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&options)
            .await
            .map_err(|e| connect_failure(&e, &endpoint, config.tls))?;
        report
            .metrics
            .push(Metric::new("connect_seconds", started.elapsed().as_secs_f64()).unit("seconds"));
        // A new connection may reach a different (upgraded) server.
        Ok(Session {
            conn,
            plain_info: false,
        })
    }
}

async fn ping(conn: &mut MultiplexedConnection) -> Result<Duration, RedisError> {
    let started = Instant::now();
    let _: String = redis::cmd("PING").query_async(conn).await?;
    Ok(started.elapsed())
}

/// `INFO` of the sections the check reads, so the server renders and sends
/// less. A server that refuses several sections (before Redis 7 only one was
/// allowed) answers `ERR`: it gets a plain `INFO`, on this connection from
/// then on.
async fn info(session: &mut Session) -> Result<String, RedisError> {
    if !session.plain_info {
        let sections = redis::cmd("INFO")
            .arg(&SECTIONS[..])
            .query_async(&mut session.conn)
            .await;
        match sections {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError) => {}
            other => return other,
        }
    }
    let text = redis::cmd("INFO").query_async(&mut session.conn).await?;
    session.plain_info = true;
    Ok(text)
}

/// SET with a TTL, GET and DEL on a fresh key under the prefix, pipelined
/// into one round trip (the server runs them in order, so GET reads what SET
/// wrote), then compare what GET read.
async fn roundtrip(conn: &mut MultiplexedConnection, config: &Config) -> Result<Duration, Failure> {
    let endpoint = config.endpoint();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let key = format!("{}check:{}:{nanos}", config.key_prefix, std::process::id());
    let value = format!("warden-{nanos}");
    let started = Instant::now();
    // Each reply is kept with its own error, so a failure names its command.
    let (set, get, del): (RedisResult<()>, RedisResult<Value>, RedisResult<()>) = redis::pipe()
        .ignore_errors()
        .cmd("SET")
        .arg(&key)
        .arg(&value)
        .arg("EX")
        .arg(config.key_ttl.as_secs())
        .cmd("GET")
        .arg(&key)
        .cmd("DEL")
        .arg(&key)
        .query_async(conn)
        .await
        .map_err(|e| command_failure(&e, "SET/GET/DEL", &endpoint))?;
    let elapsed = started.elapsed();
    set.map_err(|e| command_failure(&e, "SET", &endpoint))?;
    let read = get.map_err(|e| command_failure(&e, "GET", &endpoint))?;
    del.map_err(|e| command_failure(&e, "DEL", &endpoint))?;
    if !matches!(&read, Value::BulkString(b) if *b == value.as_bytes()) {
        let message = format!("protocol: GET {key} returned {read:?}, not the value just SET");
        return Err(Failure::new(Reason::Protocol, message, false));
    }
    Ok(elapsed)
}
