//! Deciding what to send after one hand-over: which notifiers get which
//! alerts, grouped how, and whether a firing alert is new, due for a repeat,
//! or already notified.
//!
//! Every route whose matchers all match an alert sends it to its notifiers;
//! when several routes name the same notifier, the first in the file decides
//! (grouping, repeat interval), so one notifier never gets one alert twice.
//! An alert instance is one problem from the time its expression started to
//! hold (`active_at`) until it resolves: it pages once, repeats after
//! `repeat_interval`, and resolves once. Alertmanager is different: it
//! deduplicates by itself and expires what is not refreshed, so firing
//! alerts are re-sent every `alertmanager_resend`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use super::message::{Notification, Notified};
use super::outbox::{Plan, SentState, StateKey};
use crate::alerting::{Alert, AlertState};
use crate::config::{NotifierKind, RouteConfig};

/// Alertmanager considers a firing alert alive for this many resend
/// intervals (or hand-over gaps, if longer) after each update, as
/// Prometheus does.
const ALERTMANAGER_TTL_FACTOR: u32 = 4;

/// The routing rules and the little state that need not be durable.
#[derive(Debug)]
pub struct Router {
    routes: Vec<RouteConfig>,
    kinds: BTreeMap<String, NotifierKind>,
    alertmanager_resend: Duration,
    /// A record whose alert is no longer handed over is dropped this long
    /// after it was last sent: were the alert still firing it would have
    /// been repeated by then.
    forget_after: Duration,
    /// When each new group waiting for `group_wait` was first seen. Kept in
    /// memory: after a restart a waiting group simply waits again.
    waiting: HashMap<(String, String), SystemTime>,
    last_handover: Option<SystemTime>,
}

/// Alerts of one notifier and group.
#[derive(Debug)]
struct Group<'a> {
    route: usize,
    labels: BTreeMap<String, String>,
    alerts: Vec<&'a Alert>,
}

impl Router {
    /// A router for these routes and notifier kinds.
    pub fn new(
        routes: Vec<RouteConfig>,
        kinds: BTreeMap<String, NotifierKind>,
        alertmanager_resend: Duration,
    ) -> Router {
        let longest_repeat = routes
            .iter()
            .map(|r| r.repeat_interval)
            .max()
            .unwrap_or_default();
        let forget_after = longest_repeat.max(alertmanager_resend * ALERTMANAGER_TTL_FACTOR)
            + Duration::from_secs(3600);
        Router {
            routes,
            kinds,
            alertmanager_resend,
            forget_after,
            waiting: HashMap::new(),
            last_handover: None,
        }
    }

    /// Plans one hand-over. `states` is what was notified so far; `backlog`
    /// names notifiers with undelivered entries.
    pub fn plan(
        &mut self,
        alerts: &[Alert],
        now: SystemTime,
        states: &BTreeMap<StateKey, SentState>,
        backlog: &BTreeSet<String>,
    ) -> Plan {
        let gap = self
            .last_handover
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        self.last_handover = Some(now);
        let alertmanager_ttl = self.alertmanager_resend.max(gap) * ALERTMANAGER_TTL_FACTOR;

        let (groups, present) = self.group(alerts);
        let mut plan = Plan::default();
        for ((notifier, key), group) in &groups {
            let route = &self.routes[group.route];
            let cx = GroupCx {
                notifier,
                key,
                group,
                route,
                states,
                now,
            };
            match self.kinds.get(notifier.as_str()) {
                Some(NotifierKind::Alertmanager) => {
                    let refresh_only_blocked = backlog.contains(notifier.as_str());
                    cx.alertmanager(
                        self.alertmanager_resend,
                        now + alertmanager_ttl,
                        refresh_only_blocked,
                        &mut plan,
                    );
                }
                Some(kind) => {
                    if hold(&mut self.waiting, &cx) {
                        continue;
                    }
                    self.waiting.remove(&(notifier.clone(), key.clone()));
                    cx.paging(*kind == NotifierKind::Pagerduty, &mut plan);
                }
                None => {}
            }
        }

        let live: BTreeSet<(String, String)> = groups.keys().cloned().collect();
        self.waiting.retain(|k, _| live.contains(k));
        for (key, state) in states {
            let stale = now
                .duration_since(state.last_sent)
                .is_ok_and(|age| age > self.forget_after);
            if stale && !present.contains(key) {
                plan.clear.insert(key.clone());
            }
        }
        plan
    }

    /// Sorts alerts into (notifier, group key) groups; also returns every
    /// (notifier, fingerprint) seen.
    fn group<'a>(
        &self,
        alerts: &'a [Alert],
    ) -> (BTreeMap<(String, String), Group<'a>>, BTreeSet<StateKey>) {
        let mut groups: BTreeMap<(String, String), Group<'a>> = BTreeMap::new();
        let mut claimed = BTreeSet::new();
        for alert in alerts.iter().filter(|a| a.state != AlertState::Pending) {
            let fingerprint = alert.fingerprint();
            for (index, route) in self.routes.iter().enumerate() {
                if !route.matchers.iter().all(|m| m.matches(&alert.labels)) {
                    continue;
                }
                for notifier in &route.notifiers {
                    if !claimed.insert((notifier.clone(), fingerprint)) {
                        continue;
                    }
                    let labels = group_labels(route, alert);
                    let key = group_key(index, &labels);
                    groups
                        .entry((notifier.clone(), key))
                        .or_insert_with(|| Group {
                            route: index,
                            labels,
                            alerts: Vec::new(),
                        })
                        .alerts
                        .push(alert);
                }
            }
        }
        (groups, claimed)
    }
}

/// Whether a group nothing was sent for yet still waits `group_wait`.
fn hold(waiting: &mut HashMap<(String, String), SystemTime>, cx: &GroupCx<'_>) -> bool {
    if cx.route.group_wait.is_zero() || cx.group.alerts.iter().any(|a| cx.known(a)) {
        return false;
    }
    let first = *waiting
        .entry((cx.notifier.to_owned(), cx.key.to_owned()))
        .or_insert(cx.now);
    cx.now < first + cx.route.group_wait
}

/// The values of the route's `group_by` labels (every label for `...`).
fn group_labels(route: &RouteConfig, alert: &Alert) -> BTreeMap<String, String> {
    if route.group_by.iter().any(|l| l == "...") {
        return alert.labels.clone();
    }
    route
        .group_by
        .iter()
        .filter_map(|l| alert.labels.get(l).map(|v| (l.clone(), v.clone())))
        .collect()
}

/// `<route index>:{name="value",...}`, stable across restarts as long as
/// the routes keep their order.
fn group_key(route: usize, labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{route}:{{{}}}", pairs.join(","))
}

/// Milliseconds since the Unix epoch (negative before it).
fn unix_ms(time: SystemTime) -> i128 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_millis()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_millis()).unwrap_or(i128::MAX),
    }
}

/// One group's decision inputs.
struct GroupCx<'a> {
    notifier: &'a str,
    key: &'a str,
    group: &'a Group<'a>,
    route: &'a RouteConfig,
    states: &'a BTreeMap<StateKey, SentState>,
    now: SystemTime,
}

impl GroupCx<'_> {
    fn state_key(&self, alert: &Alert) -> StateKey {
        (self.notifier.to_owned(), alert.fingerprint())
    }

    fn state(&self, alert: &Alert) -> Option<&SentState> {
        self.states.get(&self.state_key(alert))
    }

    /// Something was sent about this alert (any instance of it).
    fn known(&self, alert: &Alert) -> bool {
        self.state(alert).is_some()
    }

    /// Firing and never sent for this instance. Compared to the
    /// millisecond, the precision alert state is persisted with, so an
    /// alert restored after a restart is the same instance.
    fn is_new(&self, alert: &Alert) -> bool {
        self.state(alert)
            .is_none_or(|s| unix_ms(s.active_at) != unix_ms(alert.active_at))
    }

    /// Sent at least `every` ago.
    fn due(&self, alert: &Alert, every: Duration) -> bool {
        self.state(alert)
            .is_none_or(|s| self.now >= s.last_sent + every)
    }

    fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.group
            .alerts
            .iter()
            .copied()
            .filter(|a| a.state == AlertState::Firing)
    }

    fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.group
            .alerts
            .iter()
            .copied()
            .filter(|a| a.state == AlertState::Resolved)
    }

    fn notification(&self, alerts: Vec<Notified>) -> Notification {
        Notification {
            notifier: self.notifier.to_owned(),
            group_key: self.key.to_owned(),
            group_labels: self.group.labels.clone(),
            alerts,
        }
    }

    fn mark_sent(&self, alert: &Alert, plan: &mut Plan) {
        plan.set.insert(
            self.state_key(alert),
            SentState {
                active_at: alert.active_at,
                last_sent: self.now,
            },
        );
    }

    /// Slack, webhook (one message per group) and PagerDuty (one event per
    /// alert, since the Events API takes one at a time).
    fn paging(&self, per_alert: bool, plan: &mut Plan) {
        let repeat = self.route.repeat_interval;
        let mut resolved = Vec::new();
        for alert in self.resolved() {
            if self.known(alert) {
                plan.clear.insert(self.state_key(alert));
                if self.route.send_resolved {
                    resolved.push(alert);
                }
            }
        }

        if per_alert {
            for alert in self.firing() {
                if self.is_new(alert) || self.due(alert, repeat) {
                    self.mark_sent(alert, plan);
                    plan.entries
                        .push(self.notification(vec![Notified::from_alert(alert)]));
                }
            }
            for alert in resolved {
                plan.entries
                    .push(self.notification(vec![Notified::from_alert(alert)]));
            }
            return;
        }

        let changed =
            self.firing().any(|a| self.is_new(a) || self.due(a, repeat)) || !resolved.is_empty();
        if !changed {
            return;
        }
        let mut alerts = Vec::new();
        for alert in self.firing() {
            self.mark_sent(alert, plan);
            alerts.push(Notified::from_alert(alert));
        }
        alerts.extend(resolved.into_iter().map(Notified::from_alert));
        plan.entries.push(self.notification(alerts));
    }

    /// Alertmanager: every firing alert is refreshed each `resend` with an
    /// `endsAt` of `alive_until`; resolutions are always sent, since
    /// Alertmanager applies its receivers' own `send_resolved`. A refresh
    /// that changes nothing waits while older entries are undelivered.
    fn alertmanager(
        &self,
        resend: Duration,
        alive_until: SystemTime,
        backlogged: bool,
        plan: &mut Plan,
    ) {
        let resolved: Vec<&Alert> = self.resolved().filter(|a| self.known(a)).collect();
        for alert in &resolved {
            plan.clear.insert(self.state_key(alert));
        }
        let any_new = self.firing().any(|a| self.is_new(a));
        let any_due = any_new || self.firing().any(|a| self.due(a, resend));
        let news = any_new || !resolved.is_empty();
        if !news && (!any_due || backlogged) {
            return;
        }
        let mut alerts = Vec::new();
        for alert in self.firing() {
            self.mark_sent(alert, plan);
            let mut notified = Notified::from_alert(alert);
            notified.ends_at = Some(alive_until);
            alerts.push(notified);
        }
        alerts.extend(resolved.into_iter().map(Notified::from_alert));
        plan.entries.push(self.notification(alerts));
    }
}

#[cfg(test)]
mod tests;
