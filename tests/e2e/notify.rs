//! Notifications end to end: a scripted check failing drives a rule whose
//! alerts reach a PagerDuty-like receiver (validating like the Events API)
//! once per problem, across a clean restart and across `kill -9` in the
//! middle of a delivery.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use warden_test_support::receiver::{
    Answer, Receiver, Request, pagerduty_answer, pagerduty_problems,
};

use crate::harness::{Daemon, TempDir, free_port, plugin_dir};

const WAIT: Duration = Duration::from_secs(30);
const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";

/// A config with one scripted check per script, a rule firing while any is
/// down, and a PagerDuty notifier at `url`.
fn config(dir: &TempDir, scripts: &[(&str, &Path)], url: &str, timeout: &str) -> String {
    let plugins = plugin_dir(dir, &["warden_test_scripted"]);
    let mut text = format!(
        r#"
[server]
listen = "{{addr}}"
[plugins]
dir = "{plugins}"
beside_executable = false
[state]
dir = "{state}"
[alerting]
evaluation_interval = "200ms"
[notify]
retry_initial = "100ms"
retry_max = "500ms"

[[rule]]
name = "CheckDown"
expr = 'warden_check_up == 0'
severity = "critical"
annotations = {{ summary = "{{{{ labels.check }}}} is down" }}

[[notifier]]
name = "pd"
kind = "pagerduty"
url = "{url}"
routing_key = "{ROUTING_KEY}"
timeout = "{timeout}"

[[route]]
matchers = ['severity="critical"']
notifiers = ["pd"]
"#,
        plugins = plugins.display(),
        state = dir.path().join("state").display(),
    );
    for (name, script) in scripts {
        text.push_str(&format!(
            "\n[[check]]\nname = \"{name}\"\nplugin = \"scripted\"\ninterval = \"100ms\"\n\
             timeout = \"100ms\"\n[check.config]\nfile = \"{}\"\n",
            script.display()
        ));
    }
    text
}

fn start(dir: &TempDir, text: &str, port: u16) -> Daemon {
    let addr = format!("127.0.0.1:{port}");
    let config = dir.write("warden.toml", text.replace("{addr}", &addr));
    Daemon::start(Some(&config), &addr, dir)
}

/// (event_action, dedup_key) of a request.
fn event(request: &Request) -> (String, String) {
    let body = request.json();
    let action = body["event_action"].as_str().unwrap_or_default().to_owned();
    let key = body["dedup_key"].as_str().unwrap_or_default().to_owned();
    (action, key)
}

fn metric(daemon: &Daemon, line_prefix: &str) -> Option<String> {
    daemon
        .get("/metrics")
        .body
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .map(str::to_owned)
}

#[test]
fn a_problem_pages_once_and_resolves_once_even_across_a_restart() {
    let dir = TempDir::new("notify-page");
    let receiver = Arc::new(Receiver::start(|r, _| pagerduty_answer(&r.body)).unwrap());
    let script = dir.write("db.script", "ok");
    let text = config(&dir, &[("db", &script)], &receiver.url("/v2/enqueue"), "5s");
    let port = free_port();
    let daemon = start(&dir, &text, port);

    std::fs::write(&script, "critical").unwrap();
    let requests = receiver.wait_for(1, WAIT);
    assert_eq!(pagerduty_problems(&requests[0].body), Vec::<String>::new());
    let (action, key) = event(&requests[0]);
    assert_eq!(action, "trigger");
    assert!(key.starts_with("warden/CheckDown/"), "{key}");
    let trigger = requests[0].json();
    assert_eq!(trigger["payload"]["summary"], "db is down");
    assert_eq!(trigger["payload"]["severity"], "critical");

    // Still down across a clean restart: no second page. The next event is
    // the resolution, with the same dedup key.
    assert_eq!(daemon.stop().code(), Some(0));
    let mut daemon = start(&dir, &text, port);
    daemon.wait_until("rules evaluated again", WAIT, |d| {
        metric(
            d,
            "warden_alerts{alertname=\"CheckDown\",state=\"firing\"} 1",
        )
        .is_some()
    });
    std::fs::write(&script, "ok").unwrap();
    let requests = receiver.wait_for(2, WAIT);
    assert_eq!(event(&requests[1]), ("resolve".to_owned(), key));
    assert_eq!(pagerduty_problems(&requests[1].body), Vec::<String>::new());
    daemon.wait_until("the delivery counted", WAIT, |d| {
        metric(
            d,
            "warden_notifications_total{notifier=\"pd\",outcome=\"sent\"} 1",
        )
        .is_some()
            && metric(d, "warden_outbox_entries 0").is_some()
    });
    assert!(daemon.log().contains("notifier=pd") || daemon.log().contains("notifier=\"pd\""));
    assert_eq!(daemon.stop().code(), Some(0));
    assert_eq!(receiver.requests().len(), 2);
}

#[test]
fn kill_9_in_the_middle_of_a_delivery_loses_nothing() {
    let dir = TempDir::new("notify-kill");
    let stall = Arc::new(AtomicBool::new(true));
    let receiver = {
        let stall = Arc::clone(&stall);
        Arc::new(
            Receiver::start(move |r, _| {
                if stall.load(Ordering::SeqCst) {
                    Answer::Stall
                } else {
                    pagerduty_answer(&r.body)
                }
            })
            .unwrap(),
        )
    };
    let scripts: Vec<(String, std::path::PathBuf)> = ["db", "cache", "auth"]
        .iter()
        .map(|name| {
            (
                (*name).to_owned(),
                dir.write(&format!("{name}.script"), "critical"),
            )
        })
        .collect();
    let scripts: Vec<(&str, &Path)> = scripts
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    let text = config(&dir, &scripts, &receiver.url("/v2/enqueue"), "60s");
    let port = free_port();
    let daemon = start(&dir, &text, port);

    // The first event hangs at the receiver; the daemon dies mid-request.
    receiver.wait_for(1, WAIT);
    daemon.kill();

    stall.store(false, Ordering::SeqCst);
    let mut daemon = start(&dir, &text, port);
    let mut triggered = BTreeSet::new();
    let start = std::time::Instant::now();
    while triggered.len() < 3 {
        assert!(
            start.elapsed() < WAIT,
            "only {triggered:?} delivered\n{}",
            daemon.log()
        );
        for request in receiver.requests().iter().skip(1) {
            assert_eq!(pagerduty_problems(&request.body), Vec::<String>::new());
            let (action, key) = event(request);
            assert_eq!(action, "trigger");
            triggered.insert(key);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon.wait_until("an empty outbox", WAIT, |d| {
        metric(d, "warden_outbox_entries 0").is_some()
    });
    // The interrupted event went out again. At-least-once: an event may be
    // repeated (PagerDuty folds it by its dedup_key), but none more than the
    // interrupted attempt plus one delivery.
    let keys: Vec<String> = receiver.requests().iter().map(|r| event(r).1).collect();
    assert!(triggered.contains(&keys[0]), "{keys:?}");
    for key in &triggered {
        let sent = keys.iter().filter(|k| *k == key).count();
        assert!(sent <= 2, "{key} sent {sent} times: {keys:?}");
    }
    assert_eq!(daemon.stop().code(), Some(0));
}
