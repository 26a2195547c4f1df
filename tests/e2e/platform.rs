//! The plugin platform: a C plugin, ABI minor versions on either side,
//! deadlines, panics, plugin logs and duplicate names.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Daemon, TempDir, plugin_dir, warden};

const WAIT: Duration = Duration::from_secs(20);

fn check_block(name: &str, plugin: &str, interval: &str, timeout: &str, config: &str) -> String {
    format!(
        "[[check]]\nname = \"{name}\"\nplugin = \"{plugin}\"\ninterval = \"{interval}\"\n\
         timeout = \"{timeout}\"\n[check.config]\n{config}\n\n"
    )
}

fn config(plugins: &Path, checks: &str) -> String {
    format!(
        "[server]\nlisten = \"{{addr}}\"\n[plugins]\ndir = \"{}\"\nbeside_executable = false\n\n{checks}",
        plugins.display()
    )
}

fn check(daemon: &Daemon, name: &str) -> serde_json::Value {
    daemon.get(&format!("/checks/{name}")).json()
}

#[test]
fn the_c_example_plugin_runs_as_a_real_check() {
    let dir = TempDir::new("c-plugin");
    let plugins = plugin_dir(&dir, &[]);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api/examples/c/file_age.c");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api/include");
    let built = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-I",
        ])
        .arg(&include)
        .arg("-o")
        .arg(plugins.join("libwarden_file_age.so"))
        .arg(&source)
        .output()
        .expect("cc runs");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let fresh = dir.write("fresh-marker", "done");
    let checks = check_block(
        "backup",
        "file_age",
        "200ms",
        "100ms",
        &format!("path = \"{}\"\nmax_age_seconds = 3600", fresh.display()),
    ) + &check_block(
        "gone",
        "file_age",
        "200ms",
        "100ms",
        &format!("path = \"{}\"", dir.path().join("missing").display()),
    );
    let mut daemon = Daemon::with_config(&dir, &config(&plugins, &checks));
    daemon.wait_until("both checks ran", WAIT, |d| {
        check(d, "backup")["result"] == "ok" && check(d, "gone")["result"] == "critical"
    });
    let backup = check(&daemon, "backup");
    assert_eq!(backup["metrics"][0]["name"], "file_age_seconds");
    assert!(
        check(&daemon, "gone")["message"]
            .as_str()
            .unwrap()
            .contains("No such file")
    );
    assert!(
        daemon
            .get("/metrics")
            .body
            .contains("warden_file_age_file_age_seconds{check=\"backup\",plugin=\"file_age\"}")
    );
    let log = daemon.log();
    assert!(
        log.contains("file missing") && log.contains("check=gone"),
        "{log}"
    );

    let listing = warden(&[
        "plugins",
        "--config",
        dir.path().join("warden.toml").to_str().unwrap(),
    ]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("file_age") && listing.contains("abi 1.1"),
        "{listing}"
    );

    let bad = dir.write(
        "bad.toml",
        config(
            &plugins,
            &check_block("b", "file_age", "1s", "1s", "max_age_seconds = -1"),
        ),
    );
    let output = warden(&["check-config", "--config", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("`path` is required"));
}

#[test]
fn plugins_of_older_and_newer_minor_versions_load_and_run() {
    let dir = TempDir::new("minors");
    let plugins = plugin_dir(&dir, &["warden_test_old_minor", "warden_test_new_minor"]);
    let checks = check_block("old", "old-minor", "200ms", "100ms", "")
        + &check_block("new", "new-minor", "200ms", "100ms", "");
    let mut daemon = Daemon::with_config(&dir, &config(&plugins, &checks));
    daemon.wait_until("ready", WAIT, |d| d.get("/readyz").status == 200);
    assert_eq!(
        check(&daemon, "old")["message"],
        "ABI 1.0 plugin ran on host ABI 1.1"
    );
    assert_eq!(
        check(&daemon, "new")["message"],
        "ABI 1.9 plugin ran on host ABI 1.1"
    );

    let listing = warden(&[
        "plugins",
        "--config",
        dir.path().join("warden.toml").to_str().unwrap(),
    ]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("old-minor").contains("abi 1.0"), "{listing}");
    assert!(line("new-minor").contains("abi 1.9"), "{listing}");
}

#[test]
fn a_stuck_call_times_out_at_its_deadline_and_blocks_only_its_own_check() {
    let dir = TempDir::new("deadline");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let slow = dir.write(
        "slow.script",
        r#"{"status": "ok", "sleep_ms": 4000, "log": "slow call started"}"#,
    );
    let fast = dir.write("fast.script", "ok");
    let checks = check_block(
        "slow",
        "scripted",
        "300ms",
        "200ms",
        &format!("file = \"{}\"", slow.display()),
    ) + &check_block(
        "fast",
        "scripted",
        "100ms",
        "100ms",
        &format!("file = \"{}\"", fast.display()),
    );
    let mut daemon = Daemon::with_config(&dir, &config(&plugins, &checks));

    daemon.wait_until("the slow check timed out", WAIT, |d| {
        check(d, "slow")["result"] == "timeout"
    });
    let first = check(&daemon, "slow");
    let duration = first["duration_ms"].as_f64().unwrap();
    assert!(
        duration < 3000.0,
        "timeout reported at the deadline, not when the call returned: {first}"
    );
    assert_eq!(first["reason"], "timeout");

    // While the call is stuck, later runs are refused without calling the plugin.
    daemon.wait_until("a refused run", WAIT, |d| {
        check(d, "slow")["message"]
            .as_str()
            .unwrap()
            .contains("previous run has not returned")
    });
    let fast_runs = |d: &Daemon| check(d, "fast")["history"].as_array().unwrap().len();
    let before = fast_runs(&daemon);
    daemon.wait_until("the fast check keeps running", WAIT, |d| {
        fast_runs(d) >= (before + 5).min(20)
    });
    assert_eq!(check(&daemon, "fast")["status"], "healthy");
    assert_eq!(daemon.get("/livez").status, 200);
    assert_eq!(
        daemon.log().matches("slow call started").count(),
        1,
        "the stuck instance got a second call"
    );
    assert_eq!(
        daemon.get("/readyz").status,
        503,
        "a timing-out critical check is not ready"
    );
}

/// A call that overruns into the next tick is followed by that tick at
/// once, as before (tokio's `MissedTickBehavior::Skip`), not a whole
/// interval later: the check keeps one record per interval.
#[test]
fn a_tick_missed_during_an_overrun_runs_at_once() {
    let dir = TempDir::new("missed-tick");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    // Each call outlives the deadline, which equals the interval, and
    // returns 200ms after it: the missed tick finds the call still inside.
    let slow = dir.write("slow.script", r#"{"status": "ok", "sleep_ms": 500}"#);
    let checks = check_block(
        "overrun",
        "scripted",
        "300ms",
        "300ms",
        &format!("file = \"{}\"", slow.display()),
    );
    let mut daemon = Daemon::with_config(&dir, &config(&plugins, &checks));
    daemon.wait_until("eight records", WAIT, |d| {
        check(d, "overrun")["history"].as_array().unwrap().len() >= 8
    });
    let history = check(&daemon, "overrun")["history"].clone();
    let messages: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .all(|m| m.contains("no result within") || m.contains("previous run has not returned")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("previous run has not returned")),
        "no run was made at the missed tick: {messages:?}"
    );
}

/// Threads stuck in plugins are not free threads: after the checks they
/// belong to are removed and the spare threads have left, a check added
/// later still gets a thread.
#[test]
fn threads_stuck_in_plugins_do_not_starve_a_check_added_later() {
    let dir = TempDir::new("stuck-reload");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let stuck = dir.write("stuck.script", r#"{"status": "ok", "sleep_ms": 120000}"#);
    let ok = dir.write("ok.script", "ok");
    let addr = format!("127.0.0.1:{}", crate::harness::free_port());
    let write = |checks: &str| {
        dir.write(
            "warden.toml",
            config(&plugins, checks).replace("{addr}", &addr),
        )
    };
    let stuck_check = |name: &str| {
        check_block(
            name,
            "scripted",
            "200ms",
            "100ms",
            &format!("file = \"{}\"", stuck.display()),
        )
    };
    let path = write(&(stuck_check("stuck1") + &stuck_check("stuck2")));
    let mut daemon = Daemon::start(Some(&path), &addr, &dir);
    daemon.wait_until("both calls timed out", WAIT, |d| {
        check(d, "stuck1")["result"] == "timeout" && check(d, "stuck2")["result"] == "timeout"
    });

    write("");
    daemon.signal(libc::SIGHUP);
    daemon.wait_until("the stuck checks removed", WAIT, |d| {
        d.get("/checks/stuck1").status == 404
    });
    // Longer than an idle thread is kept (10 s): the spare threads leave.
    std::thread::sleep(Duration::from_secs(12));

    write(&check_block(
        "fresh",
        "scripted",
        "200ms",
        "100ms",
        &format!("file = \"{}\"", ok.display()),
    ));
    daemon.signal(libc::SIGHUP);
    daemon.wait_until("the new check runs", WAIT, |d| {
        d.get("/checks/fresh").status == 200 && check(d, "fresh")["result"] == "ok"
    });
}

/// Voluntary context switches of every thread of `pid`: each is a thread
/// going to sleep, so each later costs a wake-up.
fn sleeps(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .map(|n| n.trim().parse::<u64>().expect("a count"))
                .collect::<Vec<_>>()
        })
        .sum()
}

/// In-process checks run on the run pool, where a run wakes only the thread
/// that makes the call; a tokio timer with a hand-off to the blocking pool
/// woke about four threads per run.
#[test]
fn an_in_process_run_puts_about_one_thread_to_sleep() {
    let dir = TempDir::new("wakeups");
    let plugins = plugin_dir(&dir, &["warden_test_noop"]);
    let checks: String = (0..10)
        .map(|i| check_block(&format!("tick{i}"), "noop", "100ms", "80ms", ""))
        .collect();
    let addr = format!("127.0.0.1:{}", crate::harness::free_port());
    let path = dir.write(
        "warden.toml",
        config(&plugins, &checks).replace("{addr}", &addr),
    );
    // Quiet: a debug line per run would wake the log writer too.
    let mut daemon = Daemon::start_with_env(Some(&path), &addr, &dir, &[("RUST_LOG", "warn")]);
    let runs = |d: &Daemon| -> u64 {
        let text = d.get("/metrics").body;
        text.lines()
            .filter(|l| l.starts_with("warden_check_runs_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    daemon.wait_until("every check runs", WAIT, |d| runs(d) >= 30);
    let (runs_before, sleeps_before) = (runs(&daemon), sleeps(daemon.pid()));
    // No requests meanwhile: they would wake threads too.
    std::thread::sleep(Duration::from_secs(3));
    let slept = sleeps(daemon.pid()) - sleeps_before;
    let ran = runs(&daemon) - runs_before;
    eprintln!("{slept} sleeps over {ran} runs");
    assert!(
        ran >= 100,
        "only {ran} runs in 3 s of ten checks every 100ms"
    );
    // The heartbeat and the test's two requests add a few.
    assert!(
        slept * 2 < ran * 3,
        "{slept} threads went to sleep over {ran} runs of a no-op check"
    );
    assert_eq!(check(&daemon, "tick0")["result"], "ok");
}

#[test]
fn a_panicking_plugin_yields_an_error_with_the_message() {
    let dir = TempDir::new("panic");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let script = dir.write("p.script", r#"{"status": "ok", "panic": true}"#);
    let checks = check_block(
        "p",
        "scripted",
        "200ms",
        "100ms",
        &format!("file = \"{}\"", script.display()),
    );
    let mut daemon = Daemon::with_config(&dir, &config(&plugins, &checks));
    daemon.wait_until("an error", WAIT, |d| check(d, "p")["result"] == "error");
    let result = check(&daemon, "p");
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains("panicked: scripted panic (at tests/plugins/scripted/src/lib.rs:"),
        "{result}"
    );
    assert_eq!(daemon.get("/livez").status, 200);
    // Reported through the daemon's log, not printed by std's panic hook
    // straight to stderr (past the log's format and redaction).
    assert!(!daemon.log().contains("thread '"), "{}", daemon.log());

    std::fs::write(&script, "ok").unwrap();
    daemon.wait_until("recovered", WAIT, |d| check(d, "p")["status"] == "healthy");
}

#[test]
fn plugin_log_lines_reach_the_daemon_log_with_check_and_plugin() {
    let dir = TempDir::new("logs");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let script = dir.write(
        "l.script",
        r#"{"status": "ok", "log": "hello from the plugin"}"#,
    );
    let checks = check_block(
        "talker",
        "scripted",
        "200ms",
        "100ms",
        &format!("file = \"{}\"", script.display()),
    );
    let mut daemon = Daemon::with_config(&dir, &config(&plugins, &checks));
    daemon.wait_until("a log line", WAIT, |d| {
        d.log().contains("hello from the plugin")
    });
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("hello from the plugin"))
        .unwrap();
    assert!(
        line.contains("INFO") && line.contains("check=talker") && line.contains("plugin=scripted"),
        "{line}"
    );
}

#[test]
fn two_plugins_with_one_name_are_an_error_naming_both_paths() {
    let dir = TempDir::new("dupes");
    let first = plugin_dir(&dir, &["warden_test_scripted"]);
    let second = dir.path().join("more");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::copy(
        first.join("libwarden_test_scripted.so"),
        second.join("libwarden_scripted_copy.so"),
    )
    .unwrap();
    let config = dir.write(
        "d.toml",
        format!(
            "[plugins]\ndir = [\"{}\", \"{}\"]\nbeside_executable = false\n",
            first.display(),
            second.display()
        ),
    );
    let listing = warden(&["plugins", "--config", config.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    let refused = listing
        .lines()
        .find(|l| l.contains("libwarden_scripted_copy.so"))
        .expect(&listing);
    assert!(
        refused.contains("refused")
            && refused.contains("plugin name \"scripted\" is already provided by")
            && refused.contains(
                &first
                    .join("libwarden_test_scripted.so")
                    .display()
                    .to_string()
            ),
        "{listing}"
    );
    let output = warden(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("plugin name \"scripted\" is provided by both"),
        "{stderr}"
    );
}

#[test]
fn a_rust_plugin_built_outside_the_workspace_runs_as_a_check() {
    let dir = TempDir::new("out-of-tree");
    let plugins = plugin_dir(&dir, &[]);
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api");
    let krate = dir.path().join("ping-file");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    // The plugin from docs/plugin-guide.md, as an author would write it.
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            r#"[package]
name = "ping-file"
version = "0.3.0"
edition = "2024"
description = "Checks that a file exists"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
warden-plugin-api = {{ path = "{}" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[workspace]
"#,
            api.display()
        ),
    )
    .unwrap();
    std::fs::write(
        krate.join("src/lib.rs"),
        r#"
use serde::Deserialize;
use warden_plugin_api::{CheckResult, Host, Metric, Plugin, Reason, RunContext};

#[derive(Debug)]
pub struct FileExists {
    path: std::path::PathBuf,
    host: Host,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    path: std::path::PathBuf,
}

impl Plugin for FileExists {
    fn create(config: serde_json::Value, host: Host) -> Result<Self, String> {
        let config: Config = serde_json::from_value(config).map_err(|e| e.to_string())?;
        Ok(FileExists { path: config.path, host })
    }

    fn check(&mut self, _ctx: &RunContext) -> CheckResult {
        match std::fs::metadata(&self.path) {
            Ok(meta) => CheckResult::ok(format!("{} exists", self.path.display()))
                .with_metrics([Metric::new("file_size_bytes", meta.len() as f64).unit("bytes")]),
            Err(error) => {
                self.host.warn("file is missing");
                CheckResult::critical(Reason::Other, format!("{}: {error}", self.path.display()))
            }
        }
    }
}

warden_plugin_api::export_plugin!(FileExists, name = "file_exists");
"#,
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "--offline"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", krate.join("target"))
        .output()
        .expect("cargo runs");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::copy(
        krate.join("target/debug/libping_file.so"),
        plugins.join("libping_file.so"),
    )
    .unwrap();

    let present = dir.write("present", "12345");
    let checks = check_block(
        "there",
        "file_exists",
        "200ms",
        "100ms",
        &format!("path = \"{}\"", present.display()),
    ) + &check_block(
        "gone",
        "file_exists",
        "200ms",
        "100ms",
        &format!("path = \"{}\"", dir.path().join("nope").display()),
    );
    let mut daemon = Daemon::with_config(&dir, &config(&plugins, &checks));
    daemon.wait_until("both ran", WAIT, |d| {
        check(d, "there")["result"] == "ok" && check(d, "gone")["result"] == "critical"
    });
    assert!(
        daemon.get("/metrics").body.contains(
            "warden_file_exists_file_size_bytes{check=\"there\",plugin=\"file_exists\"} 5"
        )
    );
    let listing = warden(&[
        "plugins",
        "--config",
        dir.path().join("warden.toml").to_str().unwrap(),
    ]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("file_exists")
            && listing.contains("0.3.0")
            && listing.contains("Checks that a file exists"),
        "{listing}"
    );
    assert!(daemon.log().contains("file is missing"));
}
