//! The daemon end to end: embedded default, health transitions, config
//! errors, refused plugins and the metrics exposition.

use std::time::Duration;

use crate::harness::{Daemon, TempDir, plugin_dir, plugin_lib, promtool, warden};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn embedded_default_serves_real_system_figures() {
    let dir = TempDir::new("default");
    plugin_lib("warden_system");
    let mut daemon = Daemon::start(None, "127.0.0.1:9731", &dir);
    daemon.wait_until("ready", WAIT, |d| d.get("/readyz").status == 200);

    assert_eq!(daemon.get("/livez").json()["status"], "alive");
    let health = daemon.get("/health");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.header("cache-control"), Some("no-store"));
    let body = health.json();
    let message = body["checks"]["system"]["message"].as_str().unwrap();
    // A busy test machine may push CPU past the warning threshold; then the
    // host is degraded (still 200) and the message says which figure.
    match body["status"].as_str() {
        Some("healthy") => {}
        Some("degraded") => assert!(message.contains(">= warning"), "{body}"),
        _ => panic!("unexpected host status: {body}"),
    }
    for part in ["cpu ", "memory ", "disk "] {
        assert!(message.contains(part), "{message}");
    }

    let check = daemon.get("/checks/system").json();
    let metric = |name: &str| {
        check["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
    };
    let total = metric("memory_total_bytes").expect("memory total")["value"]
        .as_f64()
        .unwrap();
    assert!(
        total > 64.0 * 1024.0 * 1024.0,
        "implausible memory total {total}"
    );
    let cpu = metric("cpu_usage_ratio").expect("cpu usage")["value"]
        .as_f64()
        .unwrap();
    assert!((0.0..=1.0).contains(&cpu), "cpu ratio {cpu}");
    let disk = metric("disk_used_ratio").expect("a disk");
    assert!(disk["labels"]["mount"].as_str().unwrap().starts_with('/'));
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn scripted_results_drive_the_host_through_every_state() {
    let dir = TempDir::new("states");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let db = dir.write("db.script", "ok");
    let auth = dir.write("auth.script", "ok");
    let config = format!(
        r#"
[server]
listen = "{{addr}}"
degraded_status = 299
[plugins]
dir = "{plugins}"
beside_executable = false

[[check]]
name = "db"
plugin = "scripted"
interval = "150ms"
timeout = "100ms"
fall = 2
rise = 2
[check.config]
file = "{db}"

[[check]]
name = "auth"
plugin = "scripted"
interval = "150ms"
timeout = "100ms"
critical = false
[check.config]
file = "{auth}"
"#,
        plugins = plugins.display(),
        db = db.display(),
        auth = auth.display(),
    );
    let mut daemon = Daemon::with_config(&dir, &config);
    let status = |d: &Daemon| {
        let r = d.get("/health");
        (r.status, r.json()["status"].as_str().unwrap().to_owned())
    };

    daemon.wait_until("healthy", WAIT, |d| status(d) == (200, "healthy".into()));
    assert_eq!(daemon.get("/readyz").status, 200);

    // A failing non-critical check only degrades, with the configured code.
    std::fs::write(&auth, "critical").unwrap();
    daemon.wait_until("degraded", WAIT, |d| status(d) == (299, "degraded".into()));
    assert_eq!(daemon.get("/readyz").status, 200, "degraded is still ready");

    // With fall = 2, one critical result leaves db passing (as a warning).
    std::fs::write(&db, "critical").unwrap();
    let mut saw_single_failure = false;
    daemon.wait_until("unhealthy", WAIT, |d| {
        let check = d.get("/checks/db").json();
        let history = check["history"].as_array().unwrap();
        let failures = history.iter().take_while(|h| h["outcome"] != "ok").count();
        if failures == 1 {
            assert_eq!(
                check["status"], "warning",
                "one failure must not trip fall = 2: {check}"
            );
            saw_single_failure = true;
        }
        check["status"] == "unhealthy"
    });
    let readyz = daemon.get("/readyz");
    assert_eq!(readyz.status, 503);
    assert!(
        readyz.json()["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("db: failing"),
        "{}",
        readyz.body
    );
    assert_eq!(status(&daemon), (503, "unhealthy".into()));
    let history = daemon.get("/checks/db").json()["history"].clone();
    let leading: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|h| h["outcome"].clone())
        .collect();
    assert_eq!(
        leading,
        ["critical", "critical"],
        "unhealthy only after two failures"
    );
    assert!(saw_single_failure || history.as_array().unwrap().len() >= 2);

    // Recovery needs rise = 2 passes.
    std::fs::write(&db, "ok").unwrap();
    std::fs::write(&auth, "ok").unwrap();
    daemon.wait_until("healthy again", WAIT, |d| {
        status(d) == (200, "healthy".into())
    });
    let history = daemon.get("/checks/db").json()["history"].clone();
    let leading: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|h| h["outcome"].clone())
        .collect();
    assert_eq!(leading, ["ok", "ok"], "healthy only after two passes");
    assert_eq!(daemon.get("/readyz").status, 200);

    // IETF health format on request.
    let ietf = daemon
        .request("GET", "/health", &[("Accept", "application/health+json")])
        .unwrap();
    assert_eq!(ietf.header("content-type"), Some("application/health+json"));
    assert_eq!(ietf.json()["status"], "pass");
    assert_eq!(
        ietf.json()["checks"]["db:responseTime"][0]["status"],
        "pass"
    );
}

#[test]
fn check_config_reports_each_error_with_its_line() {
    let dir = TempDir::new("check-config");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let config = dir.write(
        "bad.toml",
        format!(
            r#"[plugins]
dir = "{}"
beside_executable = false

[[check]]
name = "typo"
plugin = "scripted"
intreval = "10s"

[[check]]
name = "duration"
plugin = "scripted"
interval = "10"

[[check]]
name = "missing"
plugin = "nosuchplugin"
"#,
            plugins.display()
        ),
    );
    let output = warden(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    let file = config.display().to_string();
    assert!(
        lines[0].starts_with(&format!("{file}:8:1: unknown field `intreval`")),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{file}:13:12: `interval`: duration \"10\" has no unit"
        )),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{file}:17:10: check \"missing\": plugin \"nosuchplugin\" not found"
        )),
        "{stderr}"
    );

    // A plugin's own validation is reported against its config section.
    let bad_section = dir.write(
        "section.toml",
        format!(
            "[plugins]\ndir = \"{}\"\nbeside_executable = false\n\n[[check]]\nname = \"s\"\nplugin = \"scripted\"\n[check.config]\nfil = \"x\"\n",
            plugins.display()
        ),
    );
    let output = warden(&["check-config", "--config", bad_section.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            ":8:1: check \"s\": plugin \"scripted\" rejected its config: unknown field `fil`"
        ),
        "{stderr}"
    );

    let default = warden(&["check-config"]);
    assert_eq!(
        default.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&default.stderr)
    );
}

#[test]
fn bad_libraries_are_refused_and_the_rest_keeps_serving() {
    let dir = TempDir::new("refused");
    let plugins = plugin_dir(
        &dir,
        &[
            "warden_test_scripted",
            "warden_test_no_entry",
            "warden_test_wrong_major",
        ],
    );
    std::fs::write(
        plugins.join("libgarbage.so"),
        b"this is not an ELF file at all",
    )
    .unwrap();
    // A half-copied plugin: mapping it would fault inside dlopen.
    let whole = std::fs::read(plugins.join("libwarden_test_scripted.so")).unwrap();
    std::fs::write(plugins.join("libtruncated.so"), &whole[..3000]).unwrap();
    let script = dir.write("s.script", "ok");
    let config = format!(
        "[server]\nlisten = \"{{addr}}\"\n[plugins]\ndir = \"{}\"\nbeside_executable = false\n\n\
         [[check]]\nname = \"s\"\nplugin = \"scripted\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\n\
         [check.config]\nfile = \"{}\"\n",
        plugins.display(),
        script.display()
    );
    let mut daemon = Daemon::with_config(&dir, &config);
    daemon.wait_until("ready", WAIT, |d| d.get("/readyz").status == 200);
    let log = daemon.log();
    assert!(
        log.contains("libgarbage.so") && log.contains("not a loadable library"),
        "{log}"
    );
    assert!(log.contains("no `warden_plugin_entry` symbol"), "{log}");
    assert!(
        log.contains("libtruncated.so") && log.contains("truncated ELF file"),
        "{log}"
    );
    assert!(
        log.contains("plugin ABI 2.0 is incompatible with this warden's ABI 1.x"),
        "{log}"
    );

    let listing = warden(&[
        "plugins",
        "--config",
        dir.path().join("warden.toml").to_str().unwrap(),
    ]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    let line = |needle: &str| {
        listing
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{listing}"))
            .to_owned()
    };
    assert!(line("libgarbage.so").contains("refused"), "{listing}");
    assert!(
        line("libwarden_test_no_entry.so").contains("no `warden_plugin_entry` symbol"),
        "{listing}"
    );
    assert!(
        line("libwarden_test_wrong_major.so").contains("ABI 2.0"),
        "{listing}"
    );
    let scripted = line("libwarden_test_scripted.so");
    assert!(
        scripted.starts_with("scripted") && scripted.contains("abi 1.1"),
        "{listing}"
    );
}

#[test]
fn plugins_from_a_world_writable_directory_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("writable");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = dir.write(
        "w.toml",
        format!(
            "[plugins]\ndir = \"{}\"\nbeside_executable = false\n",
            plugins.display()
        ),
    );
    let listing = warden(&["plugins", "--config", config.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("refused") && listing.contains("writable by group or others (mode 777)"),
        "{listing}"
    );
}

#[test]
fn metrics_pass_promtool_with_awkward_check_names() {
    let dir = TempDir::new("metrics");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let script = dir.write(
        "s.script",
        r#"{"status": "warning", "metrics": [
            {"name": "queue_depth", "value": 7, "labels": {"queue": "a\"b\\c\nd"}},
            {"name": "temperature_celsius", "value": 21.5, "unit": "celsius"}]}"#,
    );
    let config = format!(
        "[server]\nlisten = \"{{addr}}\"\n[plugins]\ndir = \"{}\"\nbeside_executable = false\n\n\
         [[check]]\nname = 'we\"ird\\näme-ü'\nplugin = \"scripted\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\n\
         [check.config]\nfile = \"{}\"\n",
        plugins.display(),
        script.display()
    );
    let mut daemon = Daemon::with_config(&dir, &config);
    daemon.wait_until("a result", WAIT, |d| {
        d.get("/metrics")
            .body
            .contains("warden_scripted_queue_depth")
    });
    let metrics = daemon.get("/metrics");
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = metrics.body;
    assert!(
        body.contains(r#"warden_check_up{check="we\"ird\\näme-ü",plugin="scripted"} 1"#),
        "{body}"
    );
    assert!(body.contains(r#"queue="a\"b\\c\nd""#), "{body}");
    for family in [
        "warden_check_up",
        "warden_check_runs_total",
        "warden_check_duration_seconds",
    ] {
        assert_eq!(
            body.matches(&format!("# TYPE {family} ")).count(),
            1,
            "{family}"
        );
        assert_eq!(
            body.matches(&format!("# HELP {family} ")).count(),
            1,
            "{family}"
        );
    }

    let mut promtool = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The check's own page decodes a percent-encoded name.
    let page = daemon.get("/checks/we%22ird%5Cn%C3%A4me-%C3%BC");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(daemon.get("/checks/nope").status, 404);
}
