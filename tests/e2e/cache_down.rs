//! Issue 5's "done means": the reference config and its rule files, against a
//! private PostgreSQL, Redis and JWKS endpoint, page on CacheDown through a
//! webhook and a real Alertmanager when Redis stops, and resolve at both when
//! Redis comes back on the same port.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use warden_test_support::http::{HttpServer, Response};
use warden_test_support::postgres::PgServer;
use warden_test_support::receiver::{Answer, Receiver, Request};
use warden_test_support::redis::RedisServer;

use crate::harness::{Daemon, TempDir, free_port, http_request};
use crate::reference::{JWKS, repointed_reference};

/// Generous: the shared test machine is slow.
const WAIT: Duration = Duration::from_secs(60);

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// config/rules/warden.toml with only CacheDown's `for` shortened, written to
/// `rules/` beside the config copy so `rule_files = ["rules/*.toml"]` finds it.
fn copy_rules(dir: &TempDir) {
    let text = std::fs::read_to_string(repo_file("config/rules/warden.toml")).expect("rule file");
    let start = text
        .find("name = \"CacheDown\"")
        .expect("CacheDown in the rule file");
    let at = start
        + text[start..]
            .find("for = \"1m\"")
            .expect("CacheDown has for = \"1m\"");
    let copied = format!(
        "{}for = \"2s\"{}",
        &text[..at],
        &text[at + "for = \"1m\"".len()..]
    );
    let rules: toml::Table = copied.parse().expect("copied rules are TOML");
    let cache_down = rules["rule"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str() == Some("CacheDown"))
        .unwrap();
    assert_eq!(cache_down["for"].as_str(), Some("2s"));
    assert_eq!(cache_down["severity"].as_str(), Some("critical"));
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    dir.write("rules/warden.toml", copied);
}

/// config/warden.toml pointed at the private servers, with short intervals,
/// a state directory and both notifiers routed CacheDown.
fn config(
    dir: &TempDir,
    pg: &PgServer,
    redis_port: u16,
    jwks: &HttpServer,
    hook: &str,
    am: &str,
) -> String {
    let config = repointed_reference(pg.port(), redis_port, &jwks.url("/.well-known/jwks.json"));
    assert_eq!(
        config["rule_files"].as_array().unwrap()[0].as_str(),
        Some("rules/*.toml"),
        "the reference config's rule files"
    );
    let mut text = toml::to_string(&config).unwrap();
    text.push_str(&format!(
        r#"
[state]
dir = "{state}"
[alerting]
evaluation_interval = "500ms"
[notify]
retry_initial = "200ms"
retry_max = "1s"

[[notifier]]
name = "hook"
kind = "webhook"
url = "{hook}"
timeout = "5s"

[[notifier]]
name = "am"
kind = "alertmanager"
url = "{am}"
timeout = "5s"

[[route]]
matchers = ['alertname="CacheDown"', 'severity="critical"']
notifiers = ["hook", "am"]
"#,
        state = dir.path().join("state").display(),
    ));
    text
}

/// A real Alertmanager on a free loopback port with one receiver, killed on
/// drop.
struct Alertmanager {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl Alertmanager {
    fn start(dir: &TempDir) -> Alertmanager {
        let dir = dir.path().join("alertmanager");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: none\nreceivers:\n  - name: none\n",
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("/usr/bin/prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("prometheus-alertmanager is installed (scripts/test installs it)");
        let am = Alertmanager { child, addr, dir };
        let ready = wait(WAIT, || am.alerts().is_some());
        assert!(ready, "alertmanager did not answer\n{}", am.log());
        am
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// GET /api/v2/alerts (active, silenced, inhibited and unprocessed).
    fn alerts(&self) -> Option<Vec<Value>> {
        let response = http_request(&self.addr, "GET", "/api/v2/alerts", &[]).ok()?;
        if response.status != 200 {
            return None;
        }
        serde_json::from_str::<Value>(&response.body)
            .ok()?
            .as_array()
            .cloned()
    }

    /// The alerts named CacheDown it lists.
    fn cache_down(&self) -> Vec<Value> {
        self.alerts()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == "CacheDown")
            .collect()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain `redis-server` on a given port (the support crate's server picks
/// its own), killed on drop.
struct RedisOnPort {
    child: Child,
}

impl RedisOnPort {
    fn start(port: u16, dir: &Path) -> RedisOnPort {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        RedisOnPort { child }
    }
}

impl Drop for RedisOnPort {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ready` every 50 ms for at most `limit`.
fn wait(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn alerts(daemon: &Daemon) -> Vec<Value> {
    daemon.get("/alerts").json()["alerts"]
        .as_array()
        .expect("alerts array")
        .clone()
}

fn cache_down(daemon: &Daemon) -> Option<Value> {
    alerts(daemon)
        .into_iter()
        .find(|a| a["name"] == "CacheDown")
}

/// Whether `request` is a webhook payload with `status` naming CacheDown.
fn webhook_of(request: &Request, status: &str) -> bool {
    let body = request.json();
    body["status"] == status
        && body["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["labels"]["alertname"] == "CacheDown"))
}

/// The first webhook request with `status` naming CacheDown.
fn webhook(receiver: &Receiver, status: &str) -> Option<Request> {
    receiver
        .requests()
        .into_iter()
        .find(|r| webhook_of(r, status))
}

fn time(value: &Value) -> SystemTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("labels {value}: {e}"))
}

#[test]
fn cache_down_pages_the_webhook_and_alertmanager_and_resolves_at_both() {
    crate::harness::build_plugins();
    let dir = TempDir::new("cache-down");
    let pg = PgServer::start();
    let mut redis = RedisServer::start().expect("redis-server starts");
    let redis_port = redis.port();
    let jwks = HttpServer::start().expect("http server starts");
    jwks.route("/.well-known/jwks.json", Response::json(JWKS));
    let hook = Receiver::start(|_, _| Answer::status(200, "")).expect("receiver starts");
    let am = Alertmanager::start(&dir);

    copy_rules(&dir);
    let text = config(&dir, &pg, redis_port, &jwks, &hook.url("/hook"), &am.url());
    let mut daemon = Daemon::with_config(&dir, &text);

    // 1. Every check passes and no alert is pending or firing.
    daemon.wait_until("all four checks healthy", WAIT, |d| {
        let health = d.get("/health").json();
        ["db", "cache", "auth", "system"]
            .iter()
            .all(|check| health["checks"][check]["status"] == "healthy")
    });
    let health = daemon.get("/health").json();
    for check in ["db", "cache", "auth", "system"] {
        assert_eq!(health["checks"][check]["status"], "healthy", "{health}");
    }
    let firing = "warden_alerts{alertname=\"CacheDown\",state=\"firing\"}";
    daemon.wait_until("the rules evaluated", WAIT, |d| {
        d.get("/metrics")
            .body
            .lines()
            .any(|l| l.starts_with(firing))
    });
    assert_eq!(cache_down(&daemon), None, "{:?}", alerts(&daemon));
    assert!(hook.requests().is_empty());
    assert!(am.cache_down().is_empty());

    // 2. Redis stops: pending, then firing after `for`, then paged at both.
    redis.stop();
    daemon.wait_until("CacheDown pending", WAIT, |d| {
        cache_down(d).is_some_and(|a| a["state"] == "pending")
    });
    daemon.wait_until("CacheDown firing", WAIT, |d| {
        cache_down(d).is_some_and(|a| a["state"] == "firing")
    });
    let alert = cache_down(&daemon).unwrap();
    assert_eq!(alert["labels"]["alertname"], "CacheDown");
    assert_eq!(alert["labels"]["check"], "cache");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(
        alert["annotations"]["summary"],
        "Check cache has been down for a minute"
    );
    let since = time(&alert["since"]);

    assert!(
        wait(WAIT, || webhook(&hook, "firing").is_some()),
        "no firing webhook: {:?}\n{}",
        hook.requests()
            .iter()
            .map(Request::json)
            .collect::<Vec<_>>(),
        daemon.log()
    );
    let request = webhook(&hook, "firing").unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook");
    let body = request.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "hook");
    let [sent] = body["alerts"]
        .as_array()
        .unwrap()
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(sent["status"], "firing");
    assert_eq!(labels(&sent["labels"]), labels(&alert["labels"]));
    let starts_at = time(&sent["startsAt"]);
    // /alerts shows whole seconds; the payloads carry milliseconds.
    assert_eq!(whole_seconds(starts_at), whole_seconds(since));

    assert!(
        wait(WAIT, || am.cache_down().len() == 1),
        "alertmanager lists {:?}\n{}\n{}",
        am.alerts(),
        am.log(),
        daemon.log()
    );
    let [listed] = am.cache_down().try_into().unwrap();
    assert_eq!(listed["status"]["state"], "active", "{listed}");
    assert_eq!(labels(&listed["labels"]), labels(&alert["labels"]));
    assert_eq!(time(&listed["startsAt"]), starts_at, "{listed}");

    // 3. Redis is back on the same port: resolved at both.
    let _redis_again = RedisOnPort::start(redis_port, &dir.path().join("redis-again"));
    daemon.wait_until("the cache check healthy again", WAIT, |d| {
        d.get("/checks/cache").json()["status"] == "healthy"
    });
    daemon.wait_until("CacheDown gone from /alerts", WAIT, |d| {
        cache_down(d).is_none()
    });
    assert!(
        wait(WAIT, || webhook(&hook, "resolved").is_some()),
        "no resolved webhook: {:?}\n{}",
        hook.requests()
            .iter()
            .map(Request::json)
            .collect::<Vec<_>>(),
        daemon.log()
    );
    let body = webhook(&hook, "resolved").unwrap().json();
    let [sent] = body["alerts"]
        .as_array()
        .unwrap()
        .clone()
        .try_into()
        .unwrap();
    assert_eq!(sent["status"], "resolved");
    assert_eq!(labels(&sent["labels"]), labels(&alert["labels"]));
    assert_eq!(time(&sent["startsAt"]), starts_at);
    assert!(time(&sent["endsAt"]) > starts_at, "{sent}");

    assert!(
        wait(WAIT, || am
            .cache_down()
            .iter()
            .all(|a| a["status"]["state"] != "active")),
        "alertmanager still lists CacheDown as active: {:?}\n{}",
        am.cache_down(),
        daemon.log()
    );
    // One page and one resolution, nothing else, at the webhook.
    let statuses: Vec<Value> = hook
        .requests()
        .iter()
        .map(|r| r.json()["status"].clone())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    assert_eq!(daemon.stop().code(), Some(0));
}
