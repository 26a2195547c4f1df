//! One instance's connection and run logic: keep at most one connection,
//! reuse it across runs, replace it when it breaks, and measure liveness,
//! connection slots, role, replay lag and the custom queries over it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_postgres::{Client, SimpleQueryMessage};
use warden_plugin_api::{CheckResult, Metric, Reason, Status};

use crate::classify::{self, Failure};
use crate::config::{ExpectedRole, Settings, Target};
use crate::custom::{CustomQuery, MAX_ROWS};
use crate::progress::{Progress, Step};
use crate::report::Report;
use crate::stats::{self, ServerStats};
use crate::tls::{self, RustlsConnector, TlsSetupError};

/// Time kept back from custom queries so the run can still report.
const REPORT_MARGIN: Duration = Duration::from_millis(50);

/// The live connection: the client and the task driving its socket.
#[derive(Debug)]
struct Session {
    client: Client,
    task: JoinHandle<()>,
}

/// The state that outlives a run.
#[derive(Debug)]
pub(crate) struct Probe {
    settings: Settings,
    target: String,
    connector: RustlsConnector,
    pub(crate) progress: Progress,
    session: Option<Session>,
    queries: Vec<CustomQuery>,
    /// The custom query running now, for timeout messages.
    pub(crate) current_query: Option<String>,
    opened_total: u64,
}

impl Probe {
    /// Builds the TLS setup once; a bad `ca_file` fails here.
    pub(crate) fn new(settings: Settings) -> Result<Probe, TlsSetupError> {
        let progress = Progress::default();
        let config = tls::client_config(settings.ca_file.as_deref())?;
        let target = match &settings.target {
            Target::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Target::Tcp { host, port } => format!("{host}:{port}"),
            Target::Unix { dir, port } => format!("{} (port {port})", dir.display()),
        };
        let queries = settings
            .queries
            .iter()
            .cloned()
            .map(CustomQuery::new)
            .collect();
        Ok(Probe {
            connector: RustlsConnector::new(config, progress.clone()),
            settings,
            target,
            progress,
            session: None,
            queries,
            current_query: None,
            opened_total: 0,
        })
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    fn user(&self) -> &str {
        self.settings.pg.get_user().unwrap_or("postgres")
    }

    /// Drops the connection at once: the socket closes, nothing is queued.
    pub(crate) async fn drop_session(&mut self) {
        if let Some(session) = self.session.take() {
            drop(session.client);
            session.task.abort();
            // Waiting for the aborted task makes sure its socket is closed
            // before any new connection is opened.
            let _ = session.task.await;
        }
    }

    /// Closes the connection politely (Terminate message) for shutdown.
    pub(crate) async fn close_session(&mut self) {
        if let Some(session) = self.session.take() {
            drop(session.client);
            let _ = session.task.await;
        }
    }

    /// Opens a connection, trying each resolved address while they refuse.
    async fn connect(&mut self) -> Result<Duration, Failure> {
        let started = Instant::now();
        let addresses: Vec<Option<IpAddr>> = match &self.settings.target {
            Target::Unix { .. } => vec![None],
            Target::Tcp { host, .. } if host.parse::<IpAddr>().is_ok() => vec![None],
            Target::Tcp { host, port } => {
                self.progress.set(Step::Resolving);
                let found = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| classify::dns_failure(host, &e))?;
                let mut ips: Vec<Option<IpAddr>> = Vec::new();
                for ip in found.map(|a| Some(a.ip())) {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                if ips.is_empty() {
                    return Err(Failure::new(
                        Reason::Dns,
                        format!("host name {host:?} has no address"),
                    ));
                }
                ips
            }
        };
        let mut last = None;
        for address in addresses {
            let mut config = self.settings.pg.clone();
            if let Some(ip) = address {
                config.hostaddr(ip);
            }
            self.progress.set(Step::Connecting);
            match config.connect(self.connector.clone()).await {
                Ok((client, connection)) => {
                    let task = tokio::spawn(async move {
                        // Its errors surface as a closed client.
                        let _ = connection.await;
                    });
                    self.session = Some(Session { client, task });
                    self.opened_total += 1;
                    return Ok(started.elapsed());
                }
                Err(e) => {
                    let failure = classify::connect_failure(
                        &e,
                        self.progress.get(),
                        &self.target,
                        self.user(),
                    );
                    if failure.reason != Reason::Refused {
                        return Err(failure);
                    }
                    last = Some(failure);
                }
            }
        }
        Err(last.unwrap_or_else(|| Failure::new(Reason::Dns, "no address to connect to")))
    }

    /// `SELECT 1` over the simple query protocol.
    async fn liveness(&self) -> Result<Duration, Failure> {
        let client = &self
            .session
            .as_ref()
            .expect("connected before liveness")
            .client;
        let started = Instant::now();
        let messages = client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| classify::liveness_failure(&e, &self.target))?;
        let elapsed = started.elapsed();
        let one = messages
            .iter()
            .any(|m| matches!(m, SimpleQueryMessage::Row(row) if row.get(0) == Some("1")));
        if one {
            Ok(elapsed)
        } else {
            Err(Failure::new(
                Reason::Protocol,
                format!("SELECT 1 on {} returned no 1", self.target),
            ))
        }
    }

    /// Connects if needed and runs `SELECT 1`. A reused connection that
    /// fails is replaced once within the same run: servers, poolers and
    /// firewalls close idle connections, which says nothing of the server.
    async fn ensure_live(&mut self, report: &mut Report) -> Result<Duration, Failure> {
        let mut fresh = false;
        loop {
            if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
                self.drop_session().await;
            }
            if self.session.is_none() {
                let seconds = self.connect().await?;
                report
                    .metric(Metric::new("connect_seconds", seconds.as_secs_f64()).unit("seconds"));
                fresh = true;
            }
            self.progress.set(Step::Liveness);
            match self.liveness().await {
                Ok(elapsed) => return Ok(elapsed),
                Err(_) if !fresh => self.drop_session().await,
                Err(failure) => {
                    self.drop_session().await;
                    return Err(failure);
                }
            }
        }
    }

    /// One run; the caller bounds it with the run's deadline.
    pub(crate) async fn run(&mut self, deadline: Instant) -> CheckResult {
        self.current_query = None;
        let mut report = Report::default();
        let liveness = self.ensure_live(&mut report).await;
        report.metric(opened_metric(self.opened_total));
        let liveness = match liveness {
            Ok(elapsed) => elapsed,
            Err(failure) => return report.fail(failure),
        };
        report.metric(Metric::new("query_seconds", liveness.as_secs_f64()).unit("seconds"));
        let mut summary = Vec::new();

        self.progress.set(Step::Stats);
        let client = &self.session.as_ref().expect("live session").client;
        match stats::read(client).await {
            Ok(stats) => self.judge_stats(&stats, &mut report, &mut summary),
            Err(e) => report.finding(
                Status::Warning,
                Reason::Error,
                format!("cannot read connection counts and role: {e}"),
            ),
        }
        summary.insert(
            1.min(summary.len()),
            format!("SELECT 1 in {:.1} ms", liveness.as_secs_f64() * 1e3),
        );

        self.run_queries(deadline).await;
        self.report_queries(&mut report, &mut summary);
        report.finish(summary.join(", "))
    }

    fn judge_stats(&self, stats: &ServerStats, report: &mut Report, summary: &mut Vec<String>) {
        let s = &self.settings;
        let role = if stats.in_recovery {
            "standby"
        } else {
            "primary"
        };
        summary.push(role.to_owned());
        report.metric(Metric::new(
            "in_recovery",
            if stats.in_recovery { 1.0 } else { 0.0 },
        ));
        let expected = match s.expected_role {
            ExpectedRole::Primary => Some("primary"),
            ExpectedRole::Standby => Some("standby"),
            ExpectedRole::Any => None,
        };
        if let Some(expected) = expected.filter(|e| *e != role) {
            report.finding(
                Status::Critical,
                Reason::Other,
                format!("server is a {role}, expected a {expected}"),
            );
        }

        report.metric(Metric::new("connections_used", stats.used as f64));
        report.metric(Metric::new("connections_usable", stats.usable() as f64));
        report.metric(Metric::new("connections_max", stats.max_connections as f64));
        let usage = format!(
            "{} of {} usable connection slots in use",
            stats.used,
            stats.usable()
        );
        if let Some(ratio) = stats.usage_ratio() {
            report.metric(Metric::new("connections_usage_ratio", ratio).unit("ratio"));
            let text = format!("{usage} ({:.0}%", ratio * 100.0);
            if ratio >= s.connections_critical {
                report.finding(
                    Status::Critical,
                    Reason::Threshold,
                    format!(
                        "{text}, critical at {:.0}%)",
                        s.connections_critical * 100.0
                    ),
                );
            } else if ratio >= s.connections_warning {
                report.finding(
                    Status::Warning,
                    Reason::Threshold,
                    format!("{text}, warning at {:.0}%)", s.connections_warning * 100.0),
                );
            }
            summary.push(format!("{text})"));
        } else {
            summary.push(usage);
        }

        if let Some(lag) = stats.replay_lag {
            report.metric(Metric::new("replay_lag_seconds", lag).unit("seconds"));
            summary.push(format!("replay lag {lag:.1} s"));
            let over = |limit: Option<Duration>| limit.is_some_and(|l| lag >= l.as_secs_f64());
            if over(s.replay_lag_critical) {
                report.finding(
                    Status::Critical,
                    Reason::Threshold,
                    format!("replay lag {lag:.1} s is critical"),
                );
            } else if over(s.replay_lag_warning) {
                report.finding(
                    Status::Warning,
                    Reason::Threshold,
                    format!("replay lag {lag:.1} s is high"),
                );
            }
        }
    }

    /// Runs every due query, each bounded by what is left of the run.
    async fn run_queries(&mut self, deadline: Instant) {
        let now = Instant::now();
        for index in 0..self.queries.len() {
            if !self.queries[index].due(now) {
                continue;
            }
            let budget = deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(REPORT_MARGIN);
            let query = &mut self.queries[index];
            let Some(session) = self.session.as_mut() else {
                query.fail("skipped: the connection was dropped earlier in this run".to_owned());
                continue;
            };
            if budget.is_zero() {
                query.fail("skipped: no time left in this run".to_owned());
                continue;
            }
            self.progress.set(Step::Query);
            self.current_query = Some(query.spec.name.clone());
            let alive = query.run(&mut session.client, budget).await;
            if !alive || session.client.is_closed() {
                self.drop_session().await;
            }
        }
        self.current_query = None;
    }

    fn report_queries(&self, report: &mut Report, summary: &mut Vec<String>) {
        let mut ok = 0;
        for query in &self.queries {
            let Some(outcome) = &query.last else { continue };
            let name = query.spec.name.as_str();
            let success = if outcome.error.is_none() { 1.0 } else { 0.0 };
            report.metric(Metric::new("custom_query_success", success).label("query", name));
            report.metrics.extend(outcome.metrics.iter().cloned());
            match &outcome.error {
                Some(error) => {
                    report.finding(
                        Status::Warning,
                        Reason::Error,
                        format!("query {name:?} failed: {error}"),
                    );
                }
                None => ok += 1,
            }
            if outcome.dropped_rows > 0 {
                report.finding(
                    Status::Warning,
                    Reason::Error,
                    format!(
                        "query {name:?} returned {} rows past the first {MAX_ROWS}, dropped",
                        outcome.dropped_rows
                    ),
                );
            }
        }
        if !self.queries.is_empty() {
            summary.push(format!("{ok} of {} custom queries ok", self.queries.len()));
        }
    }
}

fn opened_metric(total: u64) -> Metric {
    Metric::new("connections_opened_total", total as f64)
}
