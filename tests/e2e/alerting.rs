//! Alert rules end to end: the example rules under `check-config`, their
//! export checked by promtool and their unit tests run by both `warden rules
//! test` and `promtool test rules`, and a scripted check driving a rule
//! through pending, firing and resolved on `/alerts` and `/metrics`, across
//! a restart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{Daemon, TempDir, free_port, plugin_dir, promtool, warden};

const WAIT: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The example rules' unit-test files.
fn example_tests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("config/rules/tests"))
        .expect("config/rules/tests")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no example rule tests");
    files
}

/// Exports the rules of `config` into `dir/rules.yml`.
fn export(config: &Path, dir: &TempDir) -> PathBuf {
    let out = warden(&["rules", "export", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "export: {}", text(&out.stderr));
    dir.write("rules.yml", &out.stdout)
}

/// A copy of the test file `test` whose `rule_files` names `rules` instead,
/// for promtool, which reads Prometheus rule files.
fn for_promtool(test: &Path, rules: &Path, dir: &TempDir) -> PathBuf {
    let original = std::fs::read_to_string(test).expect("read test file");
    assert!(
        original.contains("  - ../warden.toml\n"),
        "{}",
        test.display()
    );
    let rewritten = original.replace(
        "  - ../warden.toml\n",
        &format!("  - {}\n", rules.display()),
    );
    dir.write(test.file_name().unwrap().to_str().unwrap(), rewritten)
}

fn promtool_test(file: &Path) -> (bool, String) {
    let out = Command::new(promtool())
        .args(["test", "rules"])
        .arg(file)
        .output()
        .expect("run promtool");
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn example_rules_export_for_prometheus_and_their_tests_agree_with_promtool() {
    let dir = TempDir::new("rules-export");
    let config = dir.write(
        "warden.toml",
        format!(
            "rule_files = [\"{}/config/rules/*.toml\"]\n",
            repo().display()
        ),
    );
    let rules = export(&config, &dir);
    let check = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("run promtool");
    let checked = text(&check.stdout) + &text(&check.stderr);
    assert!(check.status.success(), "{checked}");
    assert!(checked.contains("SUCCESS: 6 rules found"), "{checked}");

    for test in example_tests() {
        let ours = warden(&["rules", "test", test.to_str().unwrap()]);
        let report = text(&ours.stdout);
        assert!(ours.status.success(), "{report}{}", text(&ours.stderr));
        assert!(report.contains(" passed, 0 failed"), "{report}");
        let (passed, output) = promtool_test(&for_promtool(&test, &rules, &dir));
        assert!(passed, "promtool disagrees on {}: {output}", test.display());
    }

    // A wrong expectation fails in both.
    let original = std::fs::read_to_string(repo().join("config/rules/tests/checks.yaml")).unwrap();
    let broken = original.replacen("Check db has been down for a minute", "Check db is fine", 1);
    assert_ne!(broken, original);
    let broken_dir = TempDir::new("rules-broken");
    std::fs::create_dir_all(broken_dir.path().join("tests")).unwrap();
    std::fs::copy(
        repo().join("config/rules/warden.toml"),
        broken_dir.path().join("warden.toml"),
    )
    .unwrap();
    let broken_test = broken_dir.write("tests/checks.yaml", &broken);
    let ours = warden(&["rules", "test", broken_test.to_str().unwrap()]);
    assert_eq!(ours.status.code(), Some(1), "{}", text(&ours.stdout));
    let report = text(&ours.stdout);
    assert!(
        report.contains("alert DatabaseDown at 3m: FAIL"),
        "{report}"
    );
    assert!(report.contains("1 failed"), "{report}");
    let (passed, output) = promtool_test(&for_promtool(&broken_test, &rules, &dir));
    assert!(!passed, "promtool passed a wrong expectation: {output}");
}

#[test]
fn check_config_accepts_the_example_rules_and_points_at_rule_errors() {
    let dir = TempDir::new("rules-check");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let script = dir.write("db.script", "ok");
    let checks = format!(
        "[plugins]\ndir = \"{}\"\nbeside_executable = false\n\n[[check]]\nname = \"db\"\nplugin = \"scripted\"\n[check.config]\nfile = \"{}\"\n",
        plugins.display(),
        script.display()
    );
    let good = dir.write(
        "good.toml",
        format!(
            "rule_files = [\"{}/config/rules/*.toml\"]\n{checks}",
            repo().display()
        ),
    );
    let out = warden(&["check-config", "--config", good.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        text(&out.stdout).contains("6 rule(s)"),
        "{}",
        text(&out.stdout)
    );
    // Warnings, not errors: no postgres check and no "cache" check here.
    assert!(
        stderr.contains("warning: rule \"DatabaseConnectionsHigh\": `warden_postgres_connections_usage_ratio` is not a series warden produces"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "warning: rule \"CacheDown\": selector matches check \"cache\", which is not configured"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("\"DatabaseDown\""), "{stderr}");

    let bad = dir.write(
        "bad.toml",
        format!(
            "{checks}\n[[rule]]\nname = \"Broken\"\nexpr = 'warden_check_up{{check=\"db\"}} == == 0'\n\n[[rule]]\nname = \"Broken\"\nexpr = \"up\"\nannotations = {{ summary = \"{{{{ labels.check \" }}\n"
        ),
    );
    let out = warden(&["check-config", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let file = bad.display().to_string();
    assert!(
        lines.iter().any(
            |l| l.starts_with(&format!("{file}:13:")) && l.contains("rule \"Broken\": `expr`:")
        ),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("{file}:18:"))
            && l.contains("annotation `summary`: template error")),
        "{stderr}"
    );
}

fn alerts(daemon: &Daemon) -> Vec<serde_json::Value> {
    daemon.get("/alerts").json()["alerts"]
        .as_array()
        .expect("alerts array")
        .clone()
}

fn metric_line(daemon: &Daemon, prefix: &str) -> Option<String> {
    daemon
        .get("/metrics")
        .body
        .lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_owned)
}

fn config(dir: &TempDir, script: &Path, state: &Path, for_: &str) -> String {
    let plugins = plugin_dir(dir, &["warden_test_scripted"]);
    format!(
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

[[check]]
name = "db"
plugin = "scripted"
interval = "100ms"
timeout = "100ms"
[check.config]
file = "{script}"

[[rule]]
name = "DatabaseDown"
expr = 'warden_check_up{{check="db"}} == 0'
for = "{for_}"
severity = "critical"
annotations = {{ summary = "{{{{ labels.check }}}} is down ({{{{ value }}}})" }}
"#,
        plugins = plugins.display(),
        state = state.display(),
        script = script.display(),
    )
}

#[test]
fn a_failing_check_drives_a_rule_from_pending_to_firing_to_resolved() {
    let dir = TempDir::new("rules-lifecycle");
    let script = dir.write("db.script", "ok");
    let state = dir.path().join("state");
    let mut daemon = Daemon::with_config(&dir, &config(&dir, &script, &state, "1500ms"));
    let firing = "warden_alerts{alertname=\"DatabaseDown\",state=\"firing\"}";
    let pending = "warden_alerts{alertname=\"DatabaseDown\",state=\"pending\"}";
    daemon.wait_until("rule metrics", WAIT, |d| metric_line(d, firing).is_some());
    assert!(alerts(&daemon).is_empty());

    std::fs::write(&script, "critical").unwrap();
    daemon.wait_until("a pending alert", WAIT, |d| {
        alerts(d).first().is_some_and(|a| a["state"] == "pending")
    });
    assert_eq!(
        metric_line(&daemon, pending).as_deref(),
        Some(&*format!("{pending} 1"))
    );
    daemon.wait_until("the alert firing", WAIT, |d| {
        alerts(d).first().is_some_and(|a| a["state"] == "firing")
    });
    let [alert] = alerts(&daemon).try_into().unwrap();
    assert_eq!(alert["name"], "DatabaseDown");
    assert_eq!(alert["labels"]["alertname"], "DatabaseDown");
    assert_eq!(alert["labels"]["check"], "db");
    assert_eq!(alert["labels"]["plugin"], "scripted");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["annotations"]["summary"], "db is down (0)");
    assert_eq!(alert["value"], 0.0);
    assert!(alert["since"].as_str().unwrap().ends_with('Z'), "{alert}");
    assert_eq!(
        metric_line(&daemon, firing).as_deref(),
        Some(&*format!("{firing} 1"))
    );
    assert!(metric_line(&daemon, "warden_rule_series ").is_some());
    assert!(metric_line(&daemon, "warden_rule_store_bytes ").is_some());
    assert_eq!(
        metric_line(
            &daemon,
            "warden_rule_evaluation_failures_total{rule=\"DatabaseDown\"}"
        )
        .as_deref(),
        Some("warden_rule_evaluation_failures_total{rule=\"DatabaseDown\"} 0")
    );

    std::fs::write(&script, "ok").unwrap();
    daemon.wait_until("the alert resolved", WAIT, |d| alerts(d).is_empty());
    daemon.wait_until("firing count back to 0", WAIT, |d| {
        metric_line(d, firing).as_deref() == Some(&*format!("{firing} 0"))
    });
    assert!(daemon.log().contains("alert resolved"), "{}", daemon.log());
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn a_restart_while_pending_keeps_the_alert_start_time() {
    let dir = TempDir::new("rules-restart");
    let script = dir.write("db.script", "critical");
    let state = dir.path().join("state");
    let text = config(&dir, &script, &state, "1h");
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.write("warden.toml", text.replace("{addr}", &addr));

    let mut daemon = Daemon::start(Some(&config), &addr, &dir);
    daemon.wait_until("a pending alert", WAIT, |d| {
        alerts(d).first().is_some_and(|a| a["state"] == "pending")
    });
    let before = alerts(&daemon)[0].clone();
    // Start times have second precision: restart in a later second, so a
    // fresh start time would differ from the stored one.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(daemon.stop().code(), Some(0));
    assert!(state.join("state.redb").exists());

    let mut daemon = Daemon::start(Some(&config), &addr, &dir);
    daemon.wait_until("the restored alert evaluated", WAIT, |d| {
        d.log().contains("alert state restored") && !alerts(d).is_empty()
    });
    std::thread::sleep(Duration::from_millis(500));
    let [after] = alerts(&daemon).try_into().unwrap();
    assert_eq!(after["state"], "pending");
    assert_eq!(after["since"], before["since"]);
    assert_eq!(after["fingerprint"], before["fingerprint"]);
    assert_eq!(daemon.stop().code(), Some(0));
}
