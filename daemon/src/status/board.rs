//! The status board: every check's latest result, its rise/fall state and a
//! short history, and the host verdict derived from them.
//!
//! Writers are the check tasks (one record per run); readers are HTTP
//! handlers and the metrics collector. A std `RwLock` fits: critical sections
//! are short, never span an `.await`, and readers vastly outnumber writers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

use super::record::{Outcome, RunRecord};
use crate::config::CheckConfig;

/// How many past runs each check keeps for `/checks`.
pub const HISTORY_LEN: usize = 20;

/// The fixed facts about a check, from config.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// Unique name.
    pub name: String,
    /// Plugin name.
    pub plugin: String,
    /// Failing makes the host unhealthy rather than degraded.
    pub critical: bool,
    /// Run interval.
    pub interval: Duration,
    /// Run deadline.
    pub timeout: Duration,
    /// Results older than this many intervals count as unknown.
    pub stale_after: u32,
    /// Consecutive failures to start failing.
    pub fall: u32,
    /// Consecutive successes to start passing.
    pub rise: u32,
}

impl CheckSpec {
    /// The spec of a configured check.
    pub fn from_config(check: &CheckConfig) -> Self {
        CheckSpec {
            name: check.name.clone(),
            plugin: check.plugin.clone(),
            critical: check.critical,
            interval: check.interval.get(),
            timeout: check.timeout.get(),
            stale_after: check.stale_after,
            fall: check.fall,
            rise: check.rise,
        }
    }

    /// Age beyond which a result is stale.
    pub fn stale_age(&self) -> Duration {
        self.interval.saturating_mul(self.stale_after)
    }
}

/// The rise/fall state machine's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pending,
    Passing,
    Failing,
}

/// A check's effective health at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No result yet.
    Pending,
    /// Passing, last result ok.
    Healthy,
    /// Passing, last result a warning (or a failure not yet at `fall`).
    Warning,
    /// Failing, or its result is stale.
    Unhealthy,
}

/// The host's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Every check passes.
    Healthy,
    /// Only non-critical checks fail, or some check warns.
    Degraded,
    /// A critical check fails.
    Unhealthy,
    /// A critical check has no result yet (and none fails).
    Pending,
}

impl HostStatus {
    /// The lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            HostStatus::Healthy => "healthy",
            HostStatus::Degraded => "degraded",
            HostStatus::Unhealthy => "unhealthy",
            HostStatus::Pending => "pending",
        }
    }
}

/// One past run, as `/checks` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Outcome.
    pub outcome: Outcome,
    /// Message.
    pub message: String,
    /// Start, RFC 3339.
    pub started_at: String,
    /// Duration in milliseconds.
    pub duration_ms: f64,
}

#[derive(Debug)]
struct Entry {
    spec: CheckSpec,
    phase: Phase,
    ok_streak: u32,
    fail_streak: u32,
    ever_passed: bool,
    last: Option<RunRecord>,
    history: VecDeque<HistoryEntry>,
}

/// A consistent view of one check.
#[derive(Debug, Clone)]
pub struct CheckView {
    /// Config facts.
    pub spec: CheckSpec,
    /// Effective health now.
    pub health: Health,
    /// Whether the last result is too old to count.
    pub stale: bool,
    /// Whether it has passed since start.
    pub ever_passed: bool,
    /// Latest run.
    pub last: Option<RunRecord>,
}

/// Shared state of all checks.
#[derive(Debug)]
pub struct Board {
    entries: RwLock<Entries>,
    started: Instant,
    started_wall: SystemTime,
    heartbeat_ms: AtomicU64,
    generation: AtomicU64,
}

impl Board {
    /// A board for these checks, all pending.
    pub fn new(specs: impl IntoIterator<Item = CheckSpec>) -> Arc<Board> {
        let entries = specs.into_iter().map(Entry::pending).collect();
        Arc::new(Board {
            entries: RwLock::new(Entries::new(entries)),
            started: Instant::now(),
            started_wall: SystemTime::now(),
            heartbeat_ms: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        })
    }

    /// Replaces the set of checks (reload): a check named in `keep` keeps its
    /// state and history, any other is new and pending; checks not in
    /// `specs` are dropped. Order follows `specs`.
    pub fn reconcile(&self, specs: Vec<CheckSpec>, keep: &dyn Fn(&str) -> bool) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut old: HashMap<String, Entry> = std::mem::take(&mut entries.list)
            .into_iter()
            .map(|e| (e.spec.name.clone(), e))
            .collect();
        let list = specs
            .into_iter()
            .map(|spec| {
                let kept = keep(&spec.name).then(|| old.remove(&spec.name)).flatten();
                kept.unwrap_or_else(|| Entry::pending(spec))
            })
            .collect();
        *entries = Entries::new(list);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Records a finished run of `check` and advances its rise/fall state.
    /// Returns the new and previous health when it changed.
    pub fn record(&self, check: &str, record: RunRecord) -> Option<(Health, Health)> {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get_mut(check)?;
        let now = Instant::now();
        let before = entry.health(now).0;
        if record.outcome.is_failure() {
            entry.fail_streak += 1;
            entry.ok_streak = 0;
        } else {
            entry.ok_streak += 1;
            entry.fail_streak = 0;
        }
        entry.phase = match entry.phase {
            Phase::Pending if record.outcome.is_failure() => Phase::Failing,
            Phase::Pending => Phase::Passing,
            Phase::Passing if entry.fail_streak >= entry.spec.fall => Phase::Failing,
            Phase::Failing if entry.ok_streak >= entry.spec.rise => Phase::Passing,
            phase => phase,
        };
        entry.ever_passed |= entry.phase == Phase::Passing;
        if entry.history.len() == HISTORY_LEN {
            entry.history.pop_front();
        }
        entry.history.push_back(HistoryEntry {
            outcome: record.outcome,
            message: record.message.clone(),
            started_at: rfc3339(record.started_at),
            duration_ms: record.duration.as_secs_f64() * 1000.0,
        });
        entry.last = Some(record);
        let after = entry.health(now).0;
        self.generation.fetch_add(1, Ordering::Release);
        (before != after).then_some((after, before))
    }

    /// Views of every check, in config order.
    pub fn views(&self) -> Vec<CheckView> {
        let now = Instant::now();
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.list.iter().map(|e| e.view(now)).collect()
    }

    /// The view of one check, with its history.
    pub fn view(&self, check: &str) -> Option<(CheckView, Vec<HistoryEntry>)> {
        let now = Instant::now();
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(check)?;
        Some((entry.view(now), entry.history.iter().cloned().collect()))
    }

    /// Counts every change, so readers can cache what they derive.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The scheduler calls this while it is making progress.
    pub fn beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.heartbeat_ms.store(ms.max(1), Ordering::Release);
    }

    /// Time since the last heartbeat; `None` before the first.
    pub fn since_heartbeat(&self) -> Option<Duration> {
        let ms = self.heartbeat_ms.load(Ordering::Acquire);
        (ms > 0).then(|| {
            self.started
                .elapsed()
                .saturating_sub(Duration::from_millis(ms))
        })
    }

    /// Seconds since the board was created.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// When the daemon started, wall clock.
    pub fn started_wall(&self) -> SystemTime {
        self.started_wall
    }
}

/// The checks in config order, with an index by name: every run records
/// by name, so a linear search would make a round of n checks cost O(n²).
#[derive(Debug)]
struct Entries {
    list: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl Entries {
    fn new(list: Vec<Entry>) -> Entries {
        let index = list
            .iter()
            .enumerate()
            .map(|(i, e)| (e.spec.name.clone(), i))
            .collect();
        Entries { list, index }
    }

    fn get(&self, name: &str) -> Option<&Entry> {
        self.list.get(*self.index.get(name)?)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Entry> {
        self.list.get_mut(*self.index.get(name)?)
    }
}

impl Entry {
    fn pending(spec: CheckSpec) -> Entry {
        Entry {
            spec,
            phase: Phase::Pending,
            ok_streak: 0,
            fail_streak: 0,
            ever_passed: false,
            last: None,
            history: VecDeque::with_capacity(HISTORY_LEN),
        }
    }

    /// Effective health and staleness at `now`.
    fn health(&self, now: Instant) -> (Health, bool) {
        let Some(last) = &self.last else {
            return (Health::Pending, false);
        };
        if now.saturating_duration_since(last.finished) > self.spec.stale_age() {
            return (Health::Unhealthy, true);
        }
        let health = match self.phase {
            Phase::Pending => Health::Pending,
            Phase::Failing => Health::Unhealthy,
            Phase::Passing if last.outcome == Outcome::Ok => Health::Healthy,
            Phase::Passing => Health::Warning,
        };
        (health, false)
    }

    fn view(&self, now: Instant) -> CheckView {
        let (health, stale) = self.health(now);
        CheckView {
            spec: self.spec.clone(),
            health,
            stale,
            ever_passed: self.ever_passed,
            last: self.last.clone(),
        }
    }
}

/// The host verdict from check views.
pub fn host_status(views: &[CheckView]) -> HostStatus {
    let mut status = HostStatus::Healthy;
    for view in views {
        let this = match (view.health, view.spec.critical) {
            (Health::Unhealthy, true) => return HostStatus::Unhealthy,
            (Health::Pending, true) => HostStatus::Pending,
            (Health::Unhealthy | Health::Warning, _) => HostStatus::Degraded,
            _ => HostStatus::Healthy,
        };
        status = match (status, this) {
            (HostStatus::Pending, _) | (_, HostStatus::Pending) => HostStatus::Pending,
            (HostStatus::Degraded, _) | (_, HostStatus::Degraded) => HostStatus::Degraded,
            _ => HostStatus::Healthy,
        };
    }
    status
}

/// Why the host is not ready, one line per critical check; empty when ready.
pub fn readiness_errors(views: &[CheckView]) -> Vec<String> {
    views
        .iter()
        .filter(|v| v.spec.critical)
        .filter_map(|v| {
            let message = v.last.as_ref().map_or("", |l| l.message.as_str());
            match v.health {
                Health::Pending => Some(format!("{}: no result yet", v.spec.name)),
                Health::Unhealthy if v.stale => Some(format!("{}: result is stale", v.spec.name)),
                Health::Unhealthy => Some(format!("{}: failing: {message}", v.spec.name)),
                _ if !v.ever_passed => Some(format!("{}: has not passed yet", v.spec.name)),
                _ => None,
            }
        })
        .collect()
}

/// Formats a wall-clock time as RFC 3339 with second precision.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests;
