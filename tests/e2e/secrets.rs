//! Secrets and access: every secret the daemon resolves (admin token, check
//! config values from `{ env = }` and `{ file = }`, a notifier URL) is a
//! distinctive canary, a plugin echoes them in its message and log line, a
//! rule annotation quotes one, and no canary may surface in the log, any
//! HTTP answer, or the webhook a real local receiver gets. Admin endpoints
//! take the bearer token, refuse anything else with 401, and do not exist
//! (404) without a token.

use std::sync::Arc;
use std::time::Duration;

use warden_test_support::receiver::{Answer, Receiver};

use crate::harness::{Daemon, HttpResponse, TempDir, free_port, plugin_dir};

const WAIT: Duration = Duration::from_secs(30);
const REDACTED: &str = "[redacted]";

/// Distinctive canary strings, unique to this test process.
struct Canaries {
    token: String,
    env: String,
    file: String,
    url: String,
}

impl Canaries {
    fn new() -> Canaries {
        let pid = std::process::id();
        Canaries {
            token: format!("tok-canary-{pid}-Qx7"),
            env: format!("env-canary-{pid}-Wm3"),
            file: format!("file-canary-{pid}-Rz9"),
            url: format!("url-canary-{pid}-Kp4"),
        }
    }

    fn all(&self) -> [&str; 4] {
        [&self.token, &self.env, &self.file, &self.url]
    }

    /// Panics naming the canary and the place when one shows in `text`.
    fn assert_absent(&self, place: &str, text: &str) {
        for canary in self.all() {
            assert!(
                !text.contains(canary),
                "canary {canary} leaked into {place}:\n{text}"
            );
        }
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn no_secret_surfaces_in_logs_http_or_notifications() {
    let canaries = Canaries::new();
    let dir = TempDir::new("secrets");
    let receiver = Arc::new(Receiver::start(|_, _| Answer::status(200, "ok")).unwrap());
    let hook_url = receiver.url(&format!("/hook/{}", canaries.url));

    // Check config secrets are the script paths: a driver echoing its
    // connection string is modelled by the script echoing the path.
    std::fs::create_dir_all(dir.path().join(&canaries.env)).unwrap();
    std::fs::create_dir_all(dir.path().join(&canaries.file)).unwrap();
    let db_script = dir.path().join(&canaries.env).join("db.json");
    let cache_script = dir.path().join(&canaries.file).join("cache.json");
    let (db_path, cache_path) = (
        db_script.display().to_string(),
        cache_script.display().to_string(),
    );
    let echo = format!(
        "token={} dsn={hook_url} a={db_path} b={cache_path}",
        canaries.token
    );
    let script = |status: &str| {
        serde_json::json!({
            "status": status,
            "message": format!("login failed: {echo}"),
            "log": format!("driver said {echo}"),
        })
        .to_string()
    };
    std::fs::write(&db_script, script("critical")).unwrap();
    std::fs::write(&cache_script, script("ok")).unwrap();
    let cache_secret = dir.write("cache-script.path", format!("{cache_path}\n"));
    let url_secret = dir.write("hook.url", format!("{hook_url}\n"));

    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.write(
        "warden.toml",
        format!(
            r#"
[server]
listen = "{addr}"
admin_token = {{ env = "WARDEN_E2E_ADMIN_TOKEN" }}
[plugins]
dir = "{plugins}"
beside_executable = false
[state]
dir = "{state}"
[alerting]
evaluation_interval = "200ms"

[[check]]
name = "db"
plugin = "scripted"
interval = "200ms"
timeout = "200ms"
[check.config]
file = {{ env = "WARDEN_E2E_DB_SCRIPT" }}

[[check]]
name = "cache"
plugin = "scripted"
interval = "200ms"
timeout = "200ms"
critical = false
[check.config]
file = {{ file = "{cache_secret}" }}

[[rule]]
name = "DatabaseDown"
expr = 'warden_check_up{{check="db"}} == 0'
severity = "critical"
annotations = {{ summary = "{{{{ labels.check }}}} is down; someone pasted token {token} here" }}

[[notifier]]
name = "hook"
kind = "webhook"
url = {{ file = "{url_secret}" }}

[[route]]
notifiers = ["hook"]
group_wait = "0s"
"#,
            plugins = plugins.display(),
            state = dir.path().join("state").display(),
            cache_secret = cache_secret.display(),
            url_secret = url_secret.display(),
            token = canaries.token,
        ),
    );
    let mut daemon = Daemon::start_with_env(
        Some(&config),
        &addr,
        &dir,
        &[
            ("WARDEN_E2E_ADMIN_TOKEN", &canaries.token),
            ("WARDEN_E2E_DB_SCRIPT", &db_path),
        ],
    );

    // Wait for every path a secret could take: a recorded message, a log
    // line from the plugin, a firing alert, and a delivered notification.
    daemon.wait_until("both checks ran", WAIT, |d| {
        ["db", "cache"].iter().all(|name| {
            d.get(&format!("/checks/{name}")).json()["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("login failed"))
        })
    });
    daemon.wait_until("the plugin's log line", WAIT, |d| {
        d.log().contains("driver said")
    });
    daemon.wait_until("a firing alert", WAIT, |d| {
        d.get("/alerts").body.contains("firing")
    });
    let notifications = receiver.wait_for(1, WAIT);

    // Redacted, not dropped: the text around each secret is still there.
    let db = daemon.get("/checks/db").json();
    assert_eq!(
        db["message"], "login failed: token=[redacted] dsn=[redacted] a=[redacted] b=[redacted]",
        "{db}"
    );
    let admin = [("Authorization", bearer(&canaries.token))];
    let admin: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = daemon.request("POST", "/checks/cache/run", &admin).unwrap();
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(run.json()["result"], "ok", "{}", run.body);
    assert!(run.body.contains(REDACTED), "{}", run.body);
    let diagnostics = daemon.request("GET", "/diagnostics", &admin).unwrap();
    assert_eq!(diagnostics.status, 200, "{}", diagnostics.body);
    let head = daemon.request("HEAD", "/diagnostics", &admin).unwrap();
    assert_eq!(
        (head.status, head.body.as_str()),
        (200, ""),
        "HEAD /diagnostics"
    );
    let shown = diagnostics.json();
    assert_eq!(shown["config"]["server"]["admin_token"], REDACTED);
    assert_eq!(shown["config"]["checks"][0]["config"]["file"], REDACTED);
    assert_eq!(shown["config"]["checks"][1]["config"]["file"], REDACTED);
    assert_eq!(shown["config"]["notifiers"][0]["url"], REDACTED);
    assert!(
        shown["runtime"]["open_fds"].as_u64().unwrap() > 0,
        "{shown}"
    );
    assert!(
        shown["runtime"]["rss_bytes"].as_u64().unwrap() > 0,
        "{shown}"
    );
    assert!(
        shown["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "scripted"),
        "{shown}"
    );

    let answers: Vec<(&str, HttpResponse)> = vec![
        ("/health", daemon.get("/health")),
        ("/health/detailed", daemon.get("/health/detailed")),
        ("/checks", daemon.get("/checks")),
        ("/checks/db", daemon.get("/checks/db")),
        ("/checks/cache", daemon.get("/checks/cache")),
        ("/alerts", daemon.get("/alerts")),
        ("/metrics", daemon.get("/metrics")),
        ("/readyz", daemon.get("/readyz")),
        ("POST /checks/cache/run", run),
        ("/diagnostics", diagnostics),
    ];
    for (path, answer) in &answers {
        canaries.assert_absent(path, &answer.body);
    }
    assert!(daemon.get("/alerts").body.contains(REDACTED));
    for request in &notifications {
        let body = String::from_utf8_lossy(&request.body);
        canaries.assert_absent("the webhook body", &body);
        assert!(
            body.contains("someone pasted token [redacted] here"),
            "{body}"
        );
    }
    daemon.stop();
    let log = std::fs::read_to_string(dir.path().join("warden.log")).unwrap();
    canaries.assert_absent("the daemon log", &log);
    assert!(log.contains("driver said token=[redacted]"), "{log}");
}

#[test]
fn admin_endpoints_want_the_token_and_log_every_attempt() {
    let dir = TempDir::new("admin");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let script = dir.write(
        "db.json",
        r#"{"status": "ok", "message": "fine", "sleep_ms": 500}"#,
    );
    let token = "correct horse battery staple";
    let text = format!(
        r#"
[server]
listen = "{{addr}}"
admin_token = "{token}"
[plugins]
dir = "{plugins}"
beside_executable = false
[[check]]
name = "db"
plugin = "scripted"
interval = "1h"
timeout = "2s"
[check.config]
file = "{script}"
"#,
        plugins = plugins.display(),
        script = script.display(),
    );
    let daemon = Daemon::with_config(&dir, &text);

    for (path, method) in [("/diagnostics", "GET"), ("/checks/db/run", "POST")] {
        let missing = daemon.request(method, path, &[]).unwrap();
        assert_eq!(missing.status, 401, "{path}: {}", missing.body);
        assert!(
            missing
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{path}: {:?}",
            missing.headers
        );
        let wrong = daemon
            .request(
                method,
                path,
                &[("Authorization", "Bearer guess-wrong-1234")],
            )
            .unwrap();
        assert_eq!(wrong.status, 401, "{path}: {}", wrong.body);
        // Same length as the token, one character off.
        let near = format!("Bearer {}X", &token[..token.len() - 1]);
        let near = daemon
            .request(method, path, &[("Authorization", &near)])
            .unwrap();
        assert_eq!(near.status, 401, "{path}: {}", near.body);
    }
    let auth = bearer(token);
    let run = daemon
        .request("POST", "/checks/db/run", &[("Authorization", &auth)])
        .unwrap();
    assert_eq!(run.status, 200, "{}", run.body);
    let result = run.json();
    assert_eq!(result["name"], "db");
    assert_eq!(result["result"], "ok");
    assert_eq!(result["message"], "fine");
    // Recorded like a scheduled run: the hourly check has a result now.
    assert_eq!(daemon.get("/checks/db").json()["message"], "fine");
    let missing = daemon
        .request("POST", "/checks/nope/run", &[("Authorization", &auth)])
        .unwrap();
    assert_eq!(missing.status, 404, "{}", missing.body);

    // Eight at once against a cap of four admin runs and one check that
    // runs one at a time: some wait their turn, the rest get 429, and no
    // run ever finds the previous one still in the plugin.
    let answers: Vec<HttpResponse> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    daemon
                        .request("POST", "/checks/db/run", &[("Authorization", &auth)])
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let codes: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(codes.iter().all(|c| [200, 429].contains(c)), "{codes:?}");
    assert!(codes.contains(&200) && codes.contains(&429), "{codes:?}");
    for answer in answers.iter().filter(|a| a.status == 200) {
        assert_eq!(answer.json()["message"], "fine", "{}", answer.body);
    }

    let log = daemon.log();
    assert!(!log.contains("guess-wrong-1234"), "{log}");
    assert!(!log.contains("battery staple"), "{log}");
    let security: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("warden::security"))
        .collect();
    let logged = |outcome: &str| {
        security
            .iter()
            .any(|l| l.contains(&format!("outcome=\"{outcome}\"")))
    };
    for outcome in ["missing", "invalid", "granted"] {
        assert!(
            logged(outcome),
            "no {outcome} entry in:\n{}",
            security.join("\n")
        );
    }
    assert!(
        logged("throttled") || logged("busy"),
        "no refused run in:\n{}",
        security.join("\n")
    );
    assert!(
        security.iter().any(|l| l.contains("remote=127.0.0.1:")),
        "{}",
        security.join("\n")
    );
}

#[test]
fn admin_endpoints_do_not_exist_without_a_token() {
    let dir = TempDir::new("no-admin");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let script = dir.write("db.json", "ok");
    let text = format!(
        r#"
[server]
listen = "{{addr}}"
[plugins]
dir = "{plugins}"
beside_executable = false
[[check]]
name = "db"
plugin = "scripted"
interval = "1s"
[check.config]
file = "{script}"
"#,
        plugins = plugins.display(),
        script = script.display(),
    );
    let daemon = Daemon::with_config(&dir, &text);
    for (method, path) in [("GET", "/diagnostics"), ("POST", "/checks/db/run")] {
        let answer = daemon
            .request(method, path, &[("Authorization", "Bearer anything")])
            .unwrap();
        assert_eq!(answer.status, 404, "{method} {path}: {}", answer.body);
    }
}
