//! Logging end to end: JSON lines with check and plugin fields, log files
//! with rotation and pruning that spares other files, the request log with
//! request ids and sampled probes, the security file, and the last lines
//! reaching the disk at exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Daemon, TempDir, plugin_dir, warden};

const WAIT: Duration = Duration::from_secs(30);

/// A config with `[log]` body `log` and one scripted check running `script`.
fn config(dir: &TempDir, log: &str, script: &str) -> String {
    let plugins = plugin_dir(dir, &["warden_test_scripted"]);
    let script = dir.write("script.json", script);
    format!(
        "[server]\nlisten = \"{{addr}}\"\n[plugins]\ndir = \"{}\"\nbeside_executable = false\n\n\
         [log]\n{log}\n\n[[check]]\nname = \"probe\"\nplugin = \"scripted\"\ninterval = \"1s\"\n\
         [check.config]\nfile = \"{}\"\n",
        plugins.display(),
        script.display()
    )
}

/// Every line of `text` as JSON, panicking on one that is not an object.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(value) if value.is_object() => value,
            _ => panic!("not a JSON object: {line:?}\n{text}"),
        })
        .collect()
}

/// The request-log lines for `route`.
fn access_lines<'a>(lines: &'a [Value], route: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["target"] == "warden::http::access" && l["route"] == route)
        .collect()
}

/// The names of the files in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read log dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn json_lines_parse_and_plugin_lines_carry_check_and_plugin() {
    let dir = TempDir::new("log-json");
    let text = config(
        &dir,
        "format = \"json\"",
        r#"{"status": "ok", "log": "hello from the plugin"}"#,
    );
    let mut daemon = Daemon::with_config(&dir, &text);
    daemon.wait_until("the plugin's log line", WAIT, |d| {
        d.log().contains("hello from the plugin")
    });
    daemon.get("/checks");
    let log = daemon.log();
    let lines = json_lines(&log);
    let plugin = lines
        .iter()
        .find(|l| l["message"] == "hello from the plugin")
        .expect("plugin line");
    assert_eq!(plugin["check"], "probe", "{plugin}");
    assert_eq!(plugin["plugin"], "scripted", "{plugin}");
    assert_eq!(plugin["level"], "INFO", "{plugin}");
    assert!(plugin["timestamp"].is_string(), "{plugin}");
    let started = lines
        .iter()
        .find(|l| l["message"] == "warden started")
        .expect("start line");
    assert_eq!(started["checks"], 1, "fields are flattened: {started}");
    let request = access_lines(&lines, "/checks");
    assert_eq!(request.len(), 1, "{log}");
    assert_eq!(request[0]["status"], 200);
    assert_eq!(request[0]["method"], "GET");
    assert!(request[0]["duration_ms"].is_number(), "{}", request[0]);
}

/// Starts a daemon logging to `logs/warden.log` with `rotation` and
/// `max_files = keep` after filling `logs/` with `fakes` and files that are
/// not its own; returns the names left once it started.
fn names_after_start(rotation: &str, keep: usize, fakes: &[&str]) -> (Vec<String>, String) {
    let dir = TempDir::new(&format!("log-{rotation}"));
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let strangers = [
        "other.log",
        "warden.log.bak-keep",
        "warden.2020-01-01.log.gz",
        "warden-old.2020-01-01.log",
        "warden.2020-01-01-00.log.1",
    ];
    for name in fakes.iter().chain(&strangers) {
        std::fs::write(logs.join(name), "old\n").expect("fake file");
    }
    let log = format!(
        "file = \"{}\"\nrotation = \"{rotation}\"\nmax_files = {keep}",
        logs.join("warden.log").display()
    );
    let daemon = Daemon::with_config(&dir, &config(&dir, &log, "ok"));
    let left = names(&logs);
    assert!(daemon.stop().success());
    let current: Vec<&String> = left
        .iter()
        .filter(|n| !fakes.contains(&n.as_str()) && !strangers.contains(&n.as_str()))
        .collect();
    assert_eq!(current.len(), 1, "one new file: {left:?}");
    let written = std::fs::read_to_string(logs.join(current[0])).expect("current log");
    for stranger in strangers {
        assert!(
            left.iter().any(|n| n == stranger),
            "{stranger} survives: {left:?}"
        );
        assert_eq!(
            std::fs::read_to_string(logs.join(stranger)).expect("stranger"),
            "old\n"
        );
    }
    (left, written)
}

#[test]
fn daily_files_beyond_max_files_are_pruned_at_start_and_nothing_else() {
    let fakes = [
        "warden.2020-01-01.log",
        "warden.2020-01-02.log",
        "warden.2020-01-03.log",
        "warden.2020-01-04.log",
        // An hourly name is not one of a daily appender's files.
        "warden.2020-01-01-07.log",
    ];
    let (left, written) = names_after_start("daily", 2, &fakes);
    assert!(written.contains("warden started"), "{written}");
    // The current file and the newest old one.
    for (fake, kept) in fakes.iter().zip([false, false, false, true, true]) {
        assert_eq!(left.iter().any(|n| n == fake), kept, "{fake}: {left:?}");
    }
    let current = left
        .iter()
        .find(|n| n.starts_with("warden.20") && !n.starts_with("warden.2020"))
        .expect("current file");
    assert_eq!(current.len(), "warden.2026-01-31.log".len(), "{current}");
}

#[test]
fn hourly_files_beyond_max_files_are_pruned_at_start_and_nothing_else() {
    let fakes = [
        "warden.2020-01-01-00.log",
        "warden.2020-01-01-01.log",
        "warden.2020-01-01-02.log",
        "warden.2020-01-01-03.log",
        "warden.2020-01-01.log",
    ];
    let (left, written) = names_after_start("hourly", 3, &fakes);
    assert!(written.contains("warden started"), "{written}");
    for (fake, kept) in fakes.iter().zip([false, false, true, true, true]) {
        assert_eq!(left.iter().any(|n| n == fake), kept, "{fake}: {left:?}");
    }
}

#[test]
fn request_ids_are_honoured_when_sane_and_made_up_otherwise() {
    let dir = TempDir::new("log-request-id");
    let text = config(&dir, "format = \"json\"", "ok");
    let daemon = Daemon::with_config(&dir, &text);

    let given = daemon
        .request("GET", "/checks", &[("X-Request-Id", "e2e-abc-123")])
        .expect("request");
    assert_eq!(given.header("x-request-id"), Some("e2e-abc-123"));
    let made = daemon.get("/checks/probe");
    let made_id = made.header("x-request-id").expect("made-up id").to_owned();
    assert_eq!(made_id.len(), 16, "{made_id}");
    assert!(made_id.bytes().all(|c| c.is_ascii_hexdigit()), "{made_id}");
    let long = "x".repeat(65);
    for bad in ["two words", long.as_str()] {
        let replaced = daemon
            .request("GET", "/alerts", &[("X-Request-Id", bad)])
            .expect("request");
        let id = replaced.header("x-request-id").expect("id");
        assert_eq!(id.len(), 16, "{bad:?} replaced by {id}");
    }
    let missing = daemon.get("/no/such/page");
    assert_eq!(missing.status, 404);
    let missing_id = missing.header("x-request-id").expect("id on errors too");

    let lines = json_lines(&daemon.log());
    let checks = access_lines(&lines, "/checks");
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0]["request_id"], "e2e-abc-123");
    let check = access_lines(&lines, "/checks/{name}");
    assert_eq!(check.len(), 1, "the route template, not the path");
    assert_eq!(check[0]["request_id"], made_id.as_str());
    let other = access_lines(&lines, "other");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["status"], 404);
    assert_eq!(other[0]["request_id"], missing_id);
    assert_eq!(access_lines(&lines, "/alerts").len(), 2);
}

#[test]
fn health_probes_are_sampled_and_other_requests_all_logged() {
    let dir = TempDir::new("log-probes");
    let text = config(&dir, "format = \"json\"\nprobe_sample = 100", "ok");
    let mut daemon = Daemon::with_config(&dir, &text);
    daemon.wait_until("ready", WAIT, |d| d.get("/readyz").status == 200);
    let before = access_lines(&json_lines(&daemon.log()), "/readyz").len();
    for _ in 0..200 {
        assert_eq!(daemon.get("/readyz").status, 200);
    }
    for _ in 0..5 {
        daemon.get("/checks");
    }
    assert!(daemon.stop().success());
    let log = std::fs::read_to_string(dir.path().join("warden.log")).expect("log");
    let lines = json_lines(&log);
    let sampled = access_lines(&lines, "/readyz").len() - before;
    assert!((1..=3).contains(&sampled), "{sampled} of 200 probes logged");
    assert_eq!(access_lines(&lines, "/checks").len(), 5);
}

#[test]
fn the_security_file_gets_the_reload_and_nothing_else() {
    let dir = TempDir::new("log-security");
    let security = dir.path().join("audit").join("security.log");
    let log = format!(
        "format = \"json\"\nsecurity_file = \"{}\"\nrotation = \"never\"",
        security.display()
    );
    let mut daemon = Daemon::with_config(&dir, &config(&dir, &log, "ok"));
    daemon.get("/checks");
    daemon.get("/no/such/page");
    daemon.signal(libc::SIGHUP);
    daemon.wait_until("the reload", WAIT, |d| d.log().contains("config reloaded"));
    assert!(daemon.stop().success());

    let text = std::fs::read_to_string(&security).expect("security file");
    let lines = json_lines(&text);
    assert!(
        lines.iter().all(|l| l["target"] == "warden::security"),
        "{text}"
    );
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert_eq!(messages, ["reload requested", "config reloaded"], "{text}");
    // The main log has them too, with everything else.
    let main = std::fs::read_to_string(dir.path().join("warden.log")).expect("main log");
    let main = json_lines(&main);
    assert!(main.iter().any(|l| l["message"] == "config reloaded"));
    assert!(main.iter().any(|l| l["message"] == "warden started"));
}

#[test]
fn the_last_lines_are_on_disk_after_sigterm() {
    let dir = TempDir::new("log-exit");
    let file: PathBuf = dir.path().join("logs").join("warden.log");
    let log = format!("file = \"{}\"\nrotation = \"never\"", file.display());
    let daemon = Daemon::with_config(&dir, &config(&dir, &log, "ok"));
    for _ in 0..20 {
        daemon.get("/checks");
    }
    assert!(daemon.stop().success());
    let text = std::fs::read_to_string(&file).expect("log file");
    let last = text.lines().last().expect("a line");
    assert!(last.contains("warden stopped"), "last line: {last}\n{text}");
    assert_eq!(text.matches("route=\"/checks\"").count(), 20, "{text}");
}

#[test]
fn bad_log_settings_are_reported_at_their_place() {
    let dir = TempDir::new("log-config");
    // Each value in a file of its own: a section stops at its first error.
    for (n, (line, what)) in [
        (
            "level = \"warden=loudest\"",
            "`level`: not a tracing filter",
        ),
        ("format = \"yaml\"", "yaml"),
        ("rotation = \"weekly\"", "weekly"),
        ("max_files = 0", "`max_files` must be at least 1"),
        ("probe_sample = -1", "probe_sample"),
        ("file = \"/var/log/\"", "must be the path of a file"),
        ("security_file = \"\"", "must be the path of a file"),
    ]
    .into_iter()
    .enumerate()
    {
        let config = dir.write(
            &format!("bad{n}.toml"),
            format!("[log]\n# the bad value:\n{line}\n"),
        );
        let output = warden(&["check-config", "--config", config.to_str().expect("UTF-8")]);
        assert_eq!(output.status.code(), Some(1), "{line}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let place = format!("{}:3:", config.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&place) && l.contains(what)),
            "{line}: expected {place} and {what:?}:\n{stderr}"
        );
    }

    let same = dir.write(
        "same.toml",
        "[log]\nfile = \"/tmp/w.log\"\nsecurity_file = \"/tmp/w.log\"\n",
    );
    let output = warden(&["check-config", "--config", same.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`security_file` must differ from `file`"),
        "{stderr}"
    );
}
