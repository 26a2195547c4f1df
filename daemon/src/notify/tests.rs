//! Notifications against real HTTP receivers on 127.0.0.1 and a real
//! Alertmanager: validation as the services validate, retries, Retry-After,
//! permanent refusals, and an outbox that outlives the process's tasks.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use warden_test_support::receiver::{
    Answer, Receiver, Request, pagerduty_answer, pagerduty_problems, slack_answer, slack_problem,
};

use super::Notifications;
use crate::alerting::{Alert, AlertState};
use crate::config::{Config, Origin};
use crate::store::Store;

const WAIT: Duration = Duration::from_secs(20);
const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";

fn config(text: &str) -> Config {
    Config::parse(text, Origin::File("test.toml".into())).unwrap_or_else(|e| panic!("{e}"))
}

fn alert(check: &str, state: AlertState) -> Alert {
    let active_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    Alert {
        labels: [
            ("alertname".to_owned(), "CheckDown".to_owned()),
            ("check".to_owned(), check.to_owned()),
            ("severity".to_owned(), "critical".to_owned()),
        ]
        .into(),
        annotations: [(
            "summary".to_owned(),
            format!("{check} is down <since> a while & more"),
        )]
        .into(),
        state,
        active_at,
        fired_at: Some(active_at),
        resolved_at: (state == AlertState::Resolved).then(SystemTime::now),
        value: 0.0,
    }
}

/// Polls `ready` every 20 ms for up to `WAIT`.
async fn eventually(what: &str, mut ready: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !ready() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits in a blocking thread, so the runtime keeps delivering meanwhile.
async fn wait_for(receiver: &Arc<Receiver>, count: usize) -> Vec<Request> {
    let receiver = Arc::clone(receiver);
    tokio::task::spawn_blocking(move || receiver.wait_for(count, WAIT))
        .await
        .unwrap()
}

fn start(config: &Config, store: &Store) -> Notifications {
    Notifications::start(config, store.clone(), "http://127.0.0.1:9731".into()).unwrap()
}

fn memory() -> Store {
    Store::open(None).unwrap()
}

/// Fast retries, so tests take seconds.
const FAST: &str = "[notify]\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n";

async fn until_idle(n: &Notifications, notifier: &str, done: u64) {
    eventually("deliveries to finish", || {
        let m = n.metrics();
        m.get(notifier, "sent") + m.get(notifier, "failed") >= done && m.outbox() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_pagerduty_accept_what_warden_sends() {
    let slack = Arc::new(Receiver::start(|r, _| slack_answer(&r.body)).unwrap());
    let pd = Arc::new(Receiver::start(|r, _| pagerduty_answer(&r.body)).unwrap());
    let config = config(&format!(
        r#"
[[notifier]]
name = "chat"
kind = "slack"
url = "{}"
[[notifier]]
name = "pd"
kind = "pagerduty"
url = "{}"
routing_key = "{ROUTING_KEY}"
[[route]]
matchers = ['severity="critical"']
notifiers = ["chat", "pd"]
"#,
        slack.url("/services/T0/B0/secret"),
        pd.url("/v2/enqueue"),
    ));
    let n = start(&config, &memory());
    let sink = n.sink();

    sink.dispatch(vec![
        alert("db", AlertState::Firing),
        alert("cache", AlertState::Firing),
    ]);
    let slack_requests = wait_for(&slack, 1).await;
    let pd_requests = wait_for(&pd, 2).await;
    until_idle(&n, "pd", 2).await;
    assert_eq!(slack_problem(&slack_requests[0].body), None);
    let message = slack_requests[0].json();
    assert_eq!(message["attachments"].as_array().unwrap().len(), 2);
    assert!(
        message["attachments"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("db is down &lt;since&gt; a while &amp; more")
    );
    let mut dedup_keys = Vec::new();
    for request in &pd_requests {
        assert_eq!(pagerduty_problems(&request.body), Vec::<String>::new());
        let event = request.json();
        assert_eq!(event["event_action"], "trigger");
        dedup_keys.push(event["dedup_key"].as_str().unwrap().to_owned());
    }
    assert_eq!(n.metrics().get("pd", "sent"), 2);
    assert_eq!(n.metrics().get("chat", "failed"), 0);

    // Still firing: nothing new. Resolved: one message, same dedup keys.
    sink.dispatch(vec![
        alert("db", AlertState::Firing),
        alert("cache", AlertState::Firing),
    ]);
    sink.dispatch(vec![
        alert("db", AlertState::Resolved),
        alert("cache", AlertState::Resolved),
    ]);
    let slack_requests = wait_for(&slack, 2).await;
    let pd_requests = wait_for(&pd, 4).await;
    until_idle(&n, "pd", 4).await;
    let resolved = slack_requests[1].json();
    assert_eq!(
        resolved["text"],
        format!("[RESOLVED:2] CheckDown on {}", super::format::hostname())
    );
    assert_eq!(resolved["attachments"][0]["color"], "#2eb886");
    let resolve_keys: Vec<String> = pd_requests[2..]
        .iter()
        .map(|r| {
            let event = r.json();
            assert_eq!(event["event_action"], "resolve");
            event["dedup_key"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(resolve_keys, dedup_keys);
    assert_eq!(n.metrics().get("chat", "sent"), 2);
    n.stop().await;
}

fn webhook_config(url: &str, extra: &str) -> Config {
    config(&format!(
        r#"
[[notifier]]
name = "hook"
kind = "webhook"
url = "{url}"
headers = {{ Authorization = "Bearer t0ken" }}
[[route]]
notifiers = ["hook"]
group_by = ["..."]
{FAST}{extra}"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_accepted() {
    let receiver = Arc::new(
        Receiver::start(|_, i| {
            if i < 3 {
                Answer::status(500, "busy")
            } else {
                Answer::status(200, "")
            }
        })
        .unwrap(),
    );
    let n = start(&webhook_config(&receiver.url("/hook"), ""), &memory());
    n.sink().dispatch(vec![alert("db", AlertState::Firing)]);
    let requests = wait_for(&receiver, 4).await;
    until_idle(&n, "hook", 1).await;
    assert_eq!(n.metrics().get("hook", "retried"), 3);
    assert_eq!(n.metrics().get("hook", "sent"), 1);
    // Every attempt carries the same message, in Alertmanager's format.
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    let body = requests[0].json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["check"], "db");
    assert_eq!(requests[0].header("authorization"), Some("Bearer t0ken"));
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let receiver = Arc::new(
        Receiver::start(|_, i| match i {
            0 => Answer::status(429, "slow down").header("Retry-After", "3"),
            _ => Answer::status(200, ""),
        })
        .unwrap(),
    );
    // The backoff alone would retry within 200 ms.
    let n = start(&webhook_config(&receiver.url("/hook"), ""), &memory());
    n.sink().dispatch(vec![alert("db", AlertState::Firing)]);
    let requests = wait_for(&receiver, 2).await;
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_secs(3), "retried after {gap:?}");
    until_idle(&n, "hook", 1).await;
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_is_refused_for_good() {
    let receiver = Arc::new(
        Receiver::start(|r, _| {
            if r.json()["alerts"][0]["labels"]["check"] == "db" {
                Answer::status(400, "bad payload")
            } else {
                Answer::status(200, "")
            }
        })
        .unwrap(),
    );
    let n = start(&webhook_config(&receiver.url("/hook"), ""), &memory());
    n.sink().dispatch(vec![alert("db", AlertState::Firing)]);
    wait_for(&receiver, 1).await;
    until_idle(&n, "hook", 1).await;
    assert_eq!(n.metrics().get("hook", "failed"), 1);
    // The next request is the next alert, not a retry of the refused one.
    n.sink().dispatch(vec![
        alert("db", AlertState::Firing),
        alert("cache", AlertState::Firing),
    ]);
    let requests = wait_for(&receiver, 2).await;
    assert_eq!(requests[1].json()["alerts"][0]["labels"]["check"], "cache");
    until_idle(&n, "hook", 2).await;
    assert_eq!(n.metrics().get("hook", "retried"), 0);
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_entries_expire_undelivered() {
    let receiver = Arc::new(Receiver::start(|_, _| Answer::status(503, "down")).unwrap());
    let n = start(
        &webhook_config(&receiver.url("/hook"), "max_age = \"500ms\"\n"),
        &memory(),
    );
    n.sink().dispatch(vec![alert("db", AlertState::Firing)]);
    until_idle(&n, "hook", 0).await;
    eventually("the entry to expire", || {
        n.metrics().get("hook", "expired") == 1
    })
    .await;
    assert!(n.metrics().get("hook", "retried") >= 1);
    assert_eq!(n.metrics().outbox(), 0);
    n.stop().await;
}

/// Runs `f` with a fresh state directory that is removed afterwards.
async fn with_state_dir<F: Future<Output = ()>>(
    tag: &str,
    f: impl FnOnce(std::path::PathBuf) -> F,
) {
    let dir = std::env::temp_dir().join(format!("warden-notify-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    f(dir.clone()).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_and_what_was_paged_survive_a_restart() {
    with_state_dir("restart", |dir| async move {
        let stall = Arc::new(AtomicBool::new(true));
        let receiver = {
            let stall = Arc::clone(&stall);
            Arc::new(
                Receiver::start(move |_, _| {
                    if stall.load(Ordering::SeqCst) {
                        Answer::Stall
                    } else {
                        Answer::status(200, "")
                    }
                })
                .unwrap(),
            )
        };
        let config = webhook_config(&receiver.url("/hook"), "");

        // The first run stops while its only delivery hangs.
        let store = Store::open(Some(&dir)).unwrap();
        let n = start(&config, &store);
        n.sink().dispatch(vec![alert("db", AlertState::Firing)]);
        wait_for(&receiver, 1).await;
        n.stop().await;
        drop(store);

        // The second run delivers it, and does not page "db" again. (A
        // blocking database call of the first run may still hold the file
        // for a moment.)
        stall.store(false, Ordering::SeqCst);
        let mut store = Store::open(Some(&dir));
        for _ in 0..250 {
            if store.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            store = Store::open(Some(&dir));
        }
        let store = store.unwrap();
        let n = start(&config, &store);
        assert_eq!(n.metrics().outbox(), 1);
        let requests = wait_for(&receiver, 2).await;
        assert_eq!(requests[1].body, requests[0].body);
        until_idle(&n, "hook", 1).await;
        n.sink().dispatch(vec![
            alert("db", AlertState::Firing),
            alert("web", AlertState::Firing),
        ]);
        let requests = wait_for(&receiver, 3).await;
        assert_eq!(requests[2].json()["alerts"][0]["labels"]["check"], "web");
        until_idle(&n, "hook", 2).await;
        n.stop().await;
    })
    .await;
}

/// A private Alertmanager on a free loopback port, killed on drop.
struct Alertmanager {
    child: std::process::Child,
    url: String,
    dir: std::path::PathBuf,
}

impl Alertmanager {
    fn start() -> Alertmanager {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("warden-am-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: none\nreceivers:\n  - name: none\n",
        )
        .unwrap();
        let child = std::process::Command::new("/usr/bin/prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("prometheus-alertmanager is installed (scripts/test installs it)");
        Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    async fn alerts(&self) -> Option<serde_json::Value> {
        // The daemon installs the crypto provider when it builds its sender;
        // this test's own client may come first in its process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .ok()?;
        serde_json::from_slice(&response.bytes().await.ok()?).ok()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_keeps_and_resolves_warden_alerts() {
    let am = Alertmanager::start();
    let mut ready = false;
    for _ in 0..500 {
        if am.alerts().await.is_some() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "alertmanager did not come up");
    let config = config(&format!(
        r#"
[[notifier]]
name = "am"
kind = "alertmanager"
url = "{}/"
[[route]]
notifiers = ["am"]
{FAST}"#,
        am.url
    ));
    let n = start(&config, &memory());
    let mut firing = alert("db", AlertState::Firing);
    firing.labels.insert("team.name".into(), "dba".into());
    n.sink().dispatch(vec![firing.clone()]);

    let mut listed = serde_json::Value::Null;
    for _ in 0..500 {
        if let Some(alerts) = am.alerts().await
            && alerts.as_array().is_some_and(|a| !a.is_empty())
        {
            listed = alerts;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = &listed[0];
    assert_eq!(listed["labels"]["check"], "db");
    assert_eq!(listed["labels"]["team_name"], "dba");
    assert_eq!(listed["status"]["state"], "active");
    let starts = humantime::parse_rfc3339(listed["startsAt"].as_str().unwrap()).unwrap();
    assert_eq!(starts, firing.active_at);
    let ends = humantime::parse_rfc3339(listed["endsAt"].as_str().unwrap()).unwrap();
    assert!(
        ends > SystemTime::now(),
        "a firing alert is kept alive ahead"
    );

    let mut resolved = firing.clone();
    resolved.state = AlertState::Resolved;
    resolved.resolved_at = Some(SystemTime::now());
    n.sink().dispatch(vec![resolved]);
    until_idle(&n, "am", 2).await;
    let mut gone = false;
    for _ in 0..500 {
        if am
            .alerts()
            .await
            .is_some_and(|a| a.as_array().is_some_and(Vec::is_empty))
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "alertmanager still lists the resolved alert");
    assert_eq!(n.metrics().get("am", "failed"), 0);
    n.stop().await;
}
