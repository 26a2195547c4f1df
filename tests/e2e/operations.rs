//! Operating the daemon: SIGHUP reloads, the systemd notify protocol, and
//! stopping with a plugin stuck in a call.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use warden_test_support::receiver::Request;

use crate::harness::{Daemon, TempDir, free_port, plugin_dir};

const WAIT: Duration = Duration::from_secs(20);

fn scripted(name: &str, interval: &str, script: &Path) -> String {
    format!(
        "[[check]]\nname = \"{name}\"\nplugin = \"scripted\"\ninterval = \"{interval}\"\n\
         timeout = \"100ms\"\n[check.config]\nfile = \"{}\"\n\n",
        script.display()
    )
}

fn header(addr: &str, plugins: &Path) -> String {
    format!(
        "[server]\nlisten = \"{addr}\"\n[plugins]\ndir = \"{}\"\nbeside_executable = false\n\n",
        plugins.display()
    )
}

fn history(daemon: &Daemon, name: &str) -> Vec<serde_json::Value> {
    daemon.get(&format!("/checks/{name}")).json()["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn metric(daemon: &Daemon, series: &str) -> Option<f64> {
    let body = daemon.get("/metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn sighup_applies_a_valid_config_and_refuses_a_bad_one() {
    let dir = TempDir::new("reload");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let ok = dir.write("ok.script", "ok");
    let addr = format!("127.0.0.1:{}", free_port());
    let first = header(&addr, &plugins)
        + &scripted("kept", "100ms", &ok)
        + &scripted("changed", "100ms", &ok)
        + &scripted("removed", "100ms", &ok);
    let config = dir.write("warden.toml", &first);
    let mut daemon = Daemon::start(Some(&config), &addr, &dir);
    daemon.wait_until("runs", WAIT, |d| {
        history(d, "kept").len() >= 5 && history(d, "changed").len() >= 5
    });

    let second = header(&addr, &plugins)
        + &scripted("kept", "100ms", &ok)
        + &scripted("changed", "150ms", &ok)
        + &scripted("added", "100ms", &ok);
    std::fs::write(&config, second).unwrap();
    let kept_before = history(&daemon, "kept").len();
    daemon.signal(libc::SIGHUP);
    daemon.wait_until("the new check", WAIT, |d| {
        d.get("/checks/added").status == 200
    });
    daemon.wait_until("reload counted", WAIT, |d| {
        metric(d, "warden_reloads_total{result=\"success\"}") == Some(1.0)
    });

    daemon.wait_until("the restarted checks ran", WAIT, |d| {
        !history(d, "added").is_empty() && !history(d, "changed").is_empty()
    });
    assert_eq!(daemon.get("/checks/removed").status, 404);
    let kept = history(&daemon, "kept");
    assert!(
        kept.len() >= kept_before,
        "an unchanged check keeps its history"
    );
    let changed = daemon.get("/checks/changed").json();
    assert_eq!(changed["interval_seconds"], 0.15);
    assert!(
        changed["history"].as_array().unwrap().len() < kept.len(),
        "a changed check starts afresh: {changed}"
    );
    assert!(
        !daemon.get("/metrics").body.contains("check=\"removed\""),
        "series of a removed check dropped"
    );

    // A broken config changes nothing, and says why with its line.
    let broken = header(&addr, &plugins)
        + &scripted("kept", "100ms", &ok)
        + "[[check]]\nname = \"x\"\nplugin = \"scripted\"\nintervl = \"1s\"\n";
    std::fs::write(&config, broken).unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_until("refusal counted", WAIT, |d| {
        metric(d, "warden_reloads_total{result=\"failure\"}") == Some(1.0)
    });
    assert_eq!(
        daemon.get("/checks/added").status,
        200,
        "the running config stays"
    );
    let log = daemon.log();
    assert!(
        log.contains("reload refused")
            && log.contains("warden.toml:")
            && log.contains("unknown field `intervl`"),
        "{log}"
    );
    let readyz = daemon.get("/readyz");
    assert_eq!(readyz.status, 200, "{}", readyz.body);
}

/// A C plugin whose message carries `version`, copied over `path` in place.
fn build_versioned_plugin(dir: &TempDir, path: &Path, version: u32) {
    let source = dir.write(
        &format!("versioned{version}.c"),
        format!(
            r#"#include <stdlib.h>
#include <string.h>
#include "warden_plugin.h"
static void put(WardenBuf *o, const char *t) {{ o->len = strlen(t); o->ptr = malloc(o->len); memcpy(o->ptr, t, o->len); }}
static int32_t create(const uint8_t *c, size_t l, const WardenHost *h, void **out, WardenBuf *e) {{
    (void)c; (void)l; (void)h; (void)e; *out = malloc(1); return WARDEN_OK; }}
static int32_t check(void *i, const WardenRunContext *x, WardenBuf *o) {{
    (void)i; (void)x; put(o, "{{\"status\":\"ok\",\"message\":\"version {version}\"}}"); return WARDEN_OK; }}
static void release(WardenBuf b) {{ free(b.ptr); }}
static void destroy(void *i) {{ free(i); }}
static const WardenPluginDescriptor D = {{
    {{ WARDEN_ABI_MAGIC, WARDEN_ABI_MAJOR, WARDEN_ABI_MINOR, sizeof(WardenPluginDescriptor), 0 }},
    "versioned", "{version}.0.0", create, check, release, destroy, "reload test" }};
const WardenPluginDescriptor *warden_plugin_entry(void) {{ return &D; }}
"#
        ),
    );
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-api/include");
    let staging = path.with_extension("new");
    let built = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-Wall", "-Werror", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&staging)
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // Overwrite in place (same inode), the harshest way to replace a file
    // a running process may have mapped.
    std::fs::copy(&staging, path).unwrap();
}

#[test]
fn sighup_loads_a_replaced_plugin_file_afresh_and_spares_the_others() {
    let dir = TempDir::new("reload-plugin");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let library = plugins.join("libwarden_versioned.so");
    build_versioned_plugin(&dir, &library, 1);
    let ok = dir.write("ok.script", "ok");
    let addr = format!("127.0.0.1:{}", free_port());
    let text = header(&addr, &plugins)
        + &scripted("steady", "100ms", &ok)
        + "[[check]]\nname = \"v\"\nplugin = \"versioned\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\n";
    let config = dir.write("warden.toml", &text);
    let mut daemon = Daemon::start(Some(&config), &addr, &dir);
    daemon.wait_until("version 1", WAIT, |d| {
        d.get("/checks/v").json()["message"] == "version 1"
    });
    daemon.wait_until("steady runs", WAIT, |d| history(d, "steady").len() >= 3);
    let steady_first_run = history(&daemon, "steady").last().unwrap()["started_at"].clone();

    build_versioned_plugin(&dir, &library, 2);
    // The running code is a private copy: overwriting the file changes
    // nothing until a reload.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.get("/checks/v").json()["message"], "version 1");
    daemon.signal(libc::SIGHUP);
    daemon.wait_until("version 2", WAIT, |d| {
        d.get("/checks/v").json()["message"] == "version 2"
    });
    let steady = history(&daemon, "steady");
    assert_eq!(
        steady.last().unwrap()["started_at"],
        steady_first_run,
        "the check of an unchanged plugin kept its history"
    );
}

/// Receives notify datagrams until `want` appears; returns all seen.
fn receive_until(socket: &UnixDatagram, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = message.contains(want);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want:?} within {WAIT:?}; saw {seen:?}");
}

#[test]
fn speaks_the_systemd_notify_protocol() {
    let dir = TempDir::new("notify");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let ok = dir.write("ok.script", "ok");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.write(
        "warden.toml",
        header(&addr, &plugins) + &scripted("s", "100ms", &ok),
    );
    let env = [
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "400000"),
    ];
    let daemon = Daemon::start_with_env(Some(&config), &addr, &dir, &env);

    let startup = receive_until(&socket, "READY=1");
    assert!(startup.last().unwrap().contains("STATUS="), "{startup:?}");
    assert_eq!(
        daemon.get("/livez").status,
        200,
        "READY=1 comes after the listener is bound"
    );
    let pings = receive_until(&socket, "WATCHDOG=1");
    assert!(pings.iter().any(|m| m == "WATCHDOG=1"), "{pings:?}");

    daemon.signal(libc::SIGHUP);
    let reload = receive_until(&socket, "READY=1");
    let reloading = reload
        .iter()
        .find(|m| m.starts_with("RELOADING=1"))
        .expect("RELOADING=1 before READY=1");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC")
        .parse()
        .unwrap();
    assert!(usec > 0);

    daemon.signal(libc::SIGTERM);
    receive_until(&socket, "STOPPING=1");
    assert_eq!(daemon.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn the_watchdog_is_not_petted_for_another_pid() {
    let dir = TempDir::new("watchdog-pid");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let ok = dir.write("ok.script", "ok");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.write(
        "warden.toml",
        header(&addr, &plugins) + &scripted("s", "100ms", &ok),
    );
    let env = [
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "200000"),
        ("WATCHDOG_PID", "1"),
    ];
    let _daemon = Daemon::start_with_env(Some(&config), &addr, &dir, &env);
    receive_until(&socket, "READY=1");
    let mut buf = [0u8; 512];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        if let Ok(n) = socket.recv(&mut buf) {
            assert!(
                !buf[..n].starts_with(b"WATCHDOG=1"),
                "pinged for WATCHDOG_PID=1"
            );
        }
    }
}

#[test]
fn sigterm_exits_cleanly_even_with_a_plugin_stuck_in_a_call() {
    let dir = TempDir::new("stuck-stop");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let stuck = dir.write("stuck.script", r#"{"status": "ok", "sleep_ms": 60000}"#);
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.write(
        "warden.toml",
        header(&addr, &plugins)
            + "[[check]]\nname = \"stuck\"\nplugin = \"scripted\"\ninterval = \"1s\"\ntimeout = \"200ms\"\n"
            + &format!("[check.config]\nfile = \"{}\"\n", stuck.display()),
    );
    let mut daemon = Daemon::start(Some(&config), &addr, &dir);
    daemon.wait_until("a timeout", WAIT, |d| {
        d.get("/checks/stuck").json()["result"] == "timeout"
    });
    // The harness kills a daemon that has not exited 15 s after SIGTERM,
    // which would leave no exit code; the stuck call sleeps for 60 s.
    assert_eq!(daemon.stop().code(), Some(0));
}

/// A config whose rule fires while the scripted check fails, with a webhook
/// notifier at `url`; `extra` is appended to the rule (annotations etc.).
fn alerting_config(
    addr: &str,
    plugins: &Path,
    state: &Path,
    script: &Path,
    url: &str,
    rule: &str,
) -> String {
    header(addr, plugins)
        + &format!(
            "[state]\ndir = \"{}\"\n[alerting]\nevaluation_interval = \"200ms\"\n\
             [notify]\nretry_initial = \"100ms\"\n\n{rule}\n\
             [[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n\n\
             [[route]]\nmatchers = ['severity=\"critical\"']\nnotifiers = [\"hook\"]\n\n",
            state.display()
        )
        + &scripted("s", "100ms", script)
}

#[test]
fn sighup_keeps_firing_alerts_of_unchanged_rules_and_resolves_removed_ones() {
    use warden_test_support::receiver::{Answer, Receiver};

    let dir = TempDir::new("reload-rules");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let script = dir.write("s.script", "critical");
    let receiver = Receiver::start(|_, _| Answer::status(200, "")).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let state = dir.path().join("state");
    let rule = "[[rule]]\nname = \"Down\"\nexpr = 'warden_check_up == 0'\nseverity = \"critical\"\n\
                annotations = { summary = \"{{ labels.check }} is down\" }\n";
    let config = dir.write(
        "warden.toml",
        alerting_config(
            &addr,
            &plugins,
            &state,
            &script,
            &receiver.url("/hook"),
            rule,
        ),
    );
    let mut daemon = Daemon::start(Some(&config), &addr, &dir);
    daemon.wait_until("firing", WAIT, |d| {
        d.get("/alerts").body.contains("\"firing\"")
    });
    let first = receiver.wait_for(1, WAIT);
    assert_eq!(first[0].json()["status"], "firing");
    let since = |d: &Daemon| d.get("/alerts").json()["alerts"][0]["since"].clone();
    let started = since(&daemon);

    // Same rule, new annotation text: the alert keeps firing, nobody is paged again.
    let reworded = rule.replace("is down", "is still down");
    std::fs::write(
        &config,
        alerting_config(
            &addr,
            &plugins,
            &state,
            &script,
            &receiver.url("/hook"),
            &reworded,
        ),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_until("reloaded", WAIT, |d| {
        metric(d, "warden_reloads_total{result=\"success\"}") == Some(1.0)
    });
    daemon.wait_until("new annotation", WAIT, |d| {
        d.get("/alerts").body.contains("still down")
    });
    assert_eq!(since(&daemon), started, "the alert kept its start time");
    std::thread::sleep(Duration::from_millis(600));
    let after = receiver.requests();
    assert!(
        after.iter().all(|r| r.json()["status"] == "firing"),
        "no resolve for an unchanged rule: {:?}",
        after.iter().map(Request::json).collect::<Vec<_>>()
    );

    // The rule removed: its firing alert is resolved at the receiver.
    std::fs::write(
        &config,
        alerting_config(&addr, &plugins, &state, &script, &receiver.url("/hook"), ""),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    daemon.wait_until("resolve sent", WAIT, |_| {
        receiver
            .requests()
            .iter()
            .any(|r| r.json()["status"] == "resolved")
    });
    assert_eq!(
        daemon.get("/alerts").json()["alerts"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

#[test]
fn a_second_sigterm_exits_at_once() {
    use std::io::Write;

    let dir = TempDir::new("second-signal");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let ok = dir.write("ok.script", "ok");
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.write(
        "warden.toml",
        header(&addr, &plugins) + &scripted("s", "100ms", &ok),
    );
    let daemon = Daemon::start(Some(&config), &addr, &dir);

    // A request whose head never completes holds the graceful drain open.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    daemon.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(WAIT);
    assert_eq!(
        status.code(),
        Some(130),
        "the second signal did not cut the drain short"
    );
    assert!(dir.path().join("warden.log").exists());
    drop(slow);
}
