//! The routing decisions over a sequence of hand-overs, with the records
//! applied between them as the outbox would.

use super::*;
use crate::notify::Matcher;
use crate::notify::message::Status;

const MIN: Duration = Duration::from_secs(60);

fn at(minutes: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + MIN * minutes as u32
}

fn route(matchers: &[&str], notifiers: &[&str]) -> RouteConfig {
    RouteConfig {
        matchers: matchers
            .iter()
            .map(|m| Matcher::parse(m).unwrap())
            .collect(),
        notifiers: notifiers.iter().map(|n| (*n).to_owned()).collect(),
        repeat_interval: 60 * MIN,
        send_resolved: true,
        group_by: vec!["alertname".to_owned()],
        group_wait: Duration::ZERO,
        notifier_positions: Vec::new(),
    }
}

fn alert(name: &str, check: &str, severity: &str, state: AlertState, active: u64) -> Alert {
    Alert {
        labels: [
            ("alertname".to_owned(), name.to_owned()),
            ("check".to_owned(), check.to_owned()),
            ("severity".to_owned(), severity.to_owned()),
        ]
        .into(),
        annotations: BTreeMap::new(),
        state,
        active_at: at(active),
        fired_at: Some(at(active)),
        resolved_at: (state == AlertState::Resolved).then(|| at(active + 30)),
        value: 0.0,
    }
}

fn firing(check: &str) -> Alert {
    alert("Down", check, "critical", AlertState::Firing, 0)
}

fn resolved(check: &str) -> Alert {
    alert("Down", check, "critical", AlertState::Resolved, 0)
}

/// A router plus the records the outbox would hold.
struct Harness {
    router: Router,
    states: BTreeMap<StateKey, SentState>,
    backlog: BTreeSet<String>,
}

impl Harness {
    fn new(routes: Vec<RouteConfig>, kinds: &[(&str, NotifierKind)]) -> Harness {
        let kinds = kinds.iter().map(|(n, k)| ((*n).to_owned(), *k)).collect();
        Harness {
            router: Router::new(routes, kinds, MIN),
            states: BTreeMap::new(),
            backlog: BTreeSet::new(),
        }
    }

    fn hand_over(&mut self, alerts: &[Alert], minute: u64) -> Vec<Notification> {
        let plan = self
            .router
            .plan(alerts, at(minute), &self.states, &self.backlog);
        self.states.extend(plan.set.clone());
        for key in &plan.clear {
            self.states.remove(key);
        }
        plan.entries
    }
}

fn checks(n: &Notification) -> Vec<(String, Status)> {
    n.alerts
        .iter()
        .map(|a| (a.labels["check"].clone(), a.status))
        .collect()
}

#[test]
fn pages_once_repeats_after_the_interval_and_resolves_once() {
    let mut h = Harness::new(
        vec![route(&[r#"severity="critical""#], &["chat"])],
        &[("chat", NotifierKind::Slack)],
    );
    let sent = h.hand_over(&[firing("db"), firing("cache")], 0);
    assert_eq!(sent.len(), 1, "alerts firing together form one message");
    assert_eq!(
        checks(&sent[0]),
        [
            ("db".to_owned(), Status::Firing),
            ("cache".to_owned(), Status::Firing)
        ]
    );
    assert_eq!(sent[0].group_key, "0:{alertname=\"Down\"}");

    assert!(h.hand_over(&[firing("db"), firing("cache")], 1).is_empty());
    assert!(h.hand_over(&[firing("db"), firing("cache")], 59).is_empty());
    assert_eq!(h.hand_over(&[firing("db"), firing("cache")], 60).len(), 1);

    let sent = h.hand_over(&[firing("db"), resolved("cache")], 61);
    assert_eq!(
        checks(&sent[0]),
        [
            ("db".to_owned(), Status::Firing),
            ("cache".to_owned(), Status::Resolved)
        ]
    );
    // A resolved alert is handed over once, but even twice it is sent once.
    assert!(
        h.hand_over(&[firing("db"), resolved("cache")], 62)
            .is_empty()
    );
    assert_eq!(h.states.len(), 1);
}

#[test]
fn an_alert_restored_with_millisecond_precision_is_the_same_instance() {
    let mut h = Harness::new(
        vec![route(&[], &["hook"])],
        &[("hook", NotifierKind::Webhook)],
    );
    let mut precise = firing("db");
    precise.active_at += Duration::from_nanos(123_456);
    assert_eq!(h.hand_over(std::slice::from_ref(&precise), 0).len(), 1);
    assert!(h.hand_over(&[firing("db")], 1).is_empty());
}

#[test]
fn a_new_instance_of_the_same_alert_pages_again() {
    let mut h = Harness::new(
        vec![route(&[], &["hook"])],
        &[("hook", NotifierKind::Webhook)],
    );
    assert_eq!(h.hand_over(&[firing("db")], 0).len(), 1);
    // Its resolution was lost; it fires again from a later start.
    let again = alert("Down", "db", "critical", AlertState::Firing, 5);
    assert_eq!(h.hand_over(std::slice::from_ref(&again), 6).len(), 1);
    assert!(h.hand_over(&[again], 7).is_empty());
}

#[test]
fn matchers_select_routes_and_the_first_route_owns_a_notifier() {
    let mut warn = route(&[r#"severity=~"warn.*""#], &["chat"]);
    warn.repeat_interval = 5 * MIN;
    let mut h = Harness::new(
        vec![
            route(&[r#"severity="critical""#], &["pd", "chat"]),
            warn,
            route(&[], &["chat", "hook"]),
        ],
        &[
            ("pd", NotifierKind::Pagerduty),
            ("chat", NotifierKind::Slack),
            ("hook", NotifierKind::Webhook),
        ],
    );
    let alerts = [
        firing("db"),
        firing("cache"),
        alert("Slow", "web", "warning", AlertState::Firing, 0),
    ];
    let sent = h.hand_over(&alerts, 0);
    let summary: Vec<(&str, &str, usize)> = sent
        .iter()
        .map(|n| (n.notifier.as_str(), n.group_key.as_str(), n.alerts.len()))
        .collect();
    assert_eq!(
        summary,
        [
            ("chat", "0:{alertname=\"Down\"}", 2),
            ("chat", "1:{alertname=\"Slow\"}", 1),
            ("hook", "2:{alertname=\"Down\"}", 2),
            ("hook", "2:{alertname=\"Slow\"}", 1),
            // PagerDuty takes one event per alert.
            ("pd", "0:{alertname=\"Down\"}", 1),
            ("pd", "0:{alertname=\"Down\"}", 1),
        ]
    );
    // The warning's repeat interval comes from the route that owns it.
    let sent = h.hand_over(&alerts, 5);
    let summary: Vec<(&str, &str)> = sent
        .iter()
        .map(|n| (n.notifier.as_str(), n.group_key.as_str()))
        .collect();
    assert_eq!(summary, [("chat", "1:{alertname=\"Slow\"}")]);
}

#[test]
fn send_resolved_false_forgets_quietly_and_pending_alerts_never_go_out() {
    let mut quiet = route(&[], &["chat"]);
    quiet.send_resolved = false;
    let mut h = Harness::new(vec![quiet], &[("chat", NotifierKind::Slack)]);
    let pending = alert("Down", "web", "critical", AlertState::Pending, 0);
    assert!(h.hand_over(std::slice::from_ref(&pending), 0).is_empty());
    assert_eq!(h.hand_over(&[firing("db"), pending], 1).len(), 1);
    assert!(h.hand_over(&[resolved("db")], 2).is_empty());
    assert!(h.states.is_empty());
    // A resolved alert that was never sent as firing is not sent either.
    let mut h = Harness::new(
        vec![route(&[], &["chat"])],
        &[("chat", NotifierKind::Slack)],
    );
    assert!(h.hand_over(&[resolved("db")], 0).is_empty());
}

#[test]
fn group_wait_collects_alerts_into_the_first_message() {
    let mut waiting = route(&[], &["chat"]);
    waiting.group_wait = 2 * MIN;
    let mut h = Harness::new(vec![waiting], &[("chat", NotifierKind::Slack)]);
    assert!(h.hand_over(&[firing("db")], 0).is_empty());
    assert!(h.hand_over(&[firing("db"), firing("cache")], 1).is_empty());
    let sent = h.hand_over(&[firing("db"), firing("cache")], 2);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].alerts.len(), 2);
    // A group that already paged does not wait for newcomers.
    assert_eq!(
        h.hand_over(&[firing("db"), firing("cache"), firing("web")], 3)
            .len(),
        1
    );
}

#[test]
fn alertmanager_gets_refreshes_with_a_future_end_and_every_resolution() {
    let mut quiet = route(&[], &["am"]);
    quiet.send_resolved = false;
    let mut h = Harness::new(vec![quiet], &[("am", NotifierKind::Alertmanager)]);
    let sent = h.hand_over(&[firing("db")], 0);
    assert_eq!(sent[0].alerts[0].ends_at, Some(at(4)));
    assert!(h.hand_over(&[firing("db")], 0).is_empty());
    // Hand-overs every two minutes stretch the lifetime to four gaps.
    let sent = h.hand_over(&[firing("db")], 2);
    assert_eq!(sent[0].alerts[0].ends_at, Some(at(10)));

    // While entries wait, a refresh that changes nothing is not queued...
    h.backlog.insert("am".to_owned());
    assert!(h.hand_over(&[firing("db")], 4).is_empty());
    // ...but news is.
    let sent = h.hand_over(&[firing("db"), firing("web")], 5);
    assert_eq!(sent[0].alerts.len(), 2);
    let sent = h.hand_over(&[resolved("db"), firing("web")], 6);
    let last = sent[0].alerts.last().unwrap();
    assert_eq!(
        (last.status, last.ends_at),
        (Status::Resolved, Some(at(30)))
    );
}

#[test]
fn records_of_alerts_no_longer_handed_over_are_forgotten() {
    let mut h = Harness::new(
        vec![route(&[], &["chat"])],
        &[("chat", NotifierKind::Slack)],
    );
    h.hand_over(&[firing("db")], 0);
    assert!(h.hand_over(&[], 60).is_empty());
    assert_eq!(h.states.len(), 1, "kept while it might still be firing");
    h.hand_over(&[], 60 + 60 + 1);
    assert!(h.states.is_empty());
}
