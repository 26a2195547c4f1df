//! Process isolation end to end: plugins in child `warden plugin-host`
//! processes that crash, hang and log, while the daemon keeps serving.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::harness::{Daemon, TempDir, free_port, plugin_dir, warden};

const WAIT: Duration = Duration::from_secs(30);

/// A config with one scripted check per `(name, isolation, script path)`.
fn config(plugins: &Path, checks: &[(&str, &str, &Path)]) -> String {
    let mut text = format!(
        "[server]\nlisten = \"{{addr}}\"\n[plugins]\ndir = \"{}\"\nbeside_executable = false\n",
        plugins.display()
    );
    for (name, isolation, script) in checks {
        text.push_str(&format!(
            "\n[[check]]\nname = \"{name}\"\nplugin = \"scripted\"\ninterval = \"1s\"\n\
             timeout = \"900ms\"\nisolation = \"{isolation}\"\n[check.config]\nfile = \"{}\"\n",
            script.display()
        ));
    }
    text
}

/// A process as /proc shows it.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    state: char,
    cmdline: String,
}

/// The daemon's direct children.
fn children(parent: u32) -> Vec<Proc> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) S ppid …"; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == parent {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(Proc {
                pid,
                state,
                cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
            });
        }
    }
    found
}

fn daemon_pid(daemon: &Daemon) -> u32 {
    let pid = daemon.get("/health/detailed").json()["daemon"]["pid"].as_u64();
    pid.expect("daemon pid") as u32
}

/// Waits until the daemon has no zombie children (one may exist for the
/// instant between a child's death and its reaping), then asserts it.
fn assert_no_zombies(daemon: &mut Daemon, pid: u32) {
    daemon.wait_until("no zombie children", Duration::from_secs(5), |_| {
        children(pid).iter().all(|p| p.state != 'Z')
    });
}

/// Log lines without terminal colour codes.
fn log_lines(daemon: &Daemon) -> Vec<String> {
    daemon
        .log()
        .lines()
        .map(|line| {
            let mut plain = String::with_capacity(line.len());
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    chars.by_ref().find(|c| c.is_ascii_alphabetic());
                } else {
                    plain.push(c);
                }
            }
            plain
        })
        .collect()
}

/// The value of `name=` in a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    Some(line[start..].split_whitespace().next()?.trim_matches('"'))
}

/// `(timestamp, pid)` of every child started for `check`.
fn starts(daemon: &Daemon, check: &str) -> Vec<(SystemTime, u32)> {
    log_lines(daemon)
        .iter()
        .filter(|l| l.contains("plugin process started") && field(l, "check") == Some(check))
        .map(|l| {
            let stamp = l.split_whitespace().next().expect("timestamp");
            let at = humantime::parse_rfc3339(stamp).unwrap_or_else(|e| panic!("{e}: {l}"));
            (at, field(l, "pid").expect("pid").parse().expect("pid"))
        })
        .collect()
}

/// The backoff announced after each failure of `check`, in order.
fn backoffs(daemon: &Daemon, check: &str) -> Vec<u64> {
    log_lines(daemon)
        .iter()
        .filter(|l| field(l, "check") == Some(check))
        .filter_map(|l| field(l, "backoff_ms")?.parse().ok())
        .collect()
}

fn history_has(daemon: &Daemon, check: &str, outcome: &str, message: &str) -> bool {
    let body = daemon.get(&format!("/checks/{check}")).json();
    body["history"]
        .as_array()
        .expect("history")
        .iter()
        .any(|h| h["outcome"] == outcome && h["message"] == message)
}

#[test]
fn crashing_children_are_reported_by_signal_and_restarted_with_backoff() {
    let dir = TempDir::new("iso-crash");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let segv = dir.write("segv.script", r#"{"status":"ok","crash":"segv"}"#);
    let abort = dir.write("abort.script", r#"{"status":"ok","crash":"abort"}"#);
    let steady = dir.write("steady.script", "ok");
    let text = config(
        &plugins,
        &[
            ("segv", "process", &segv),
            ("abort", "process", &abort),
            ("steady", "in-process", &steady),
        ],
    );
    let mut daemon = Daemon::with_config(&dir, &text);
    let pid = daemon_pid(&daemon);

    for (check, signal) in [("segv", "SIGSEGV"), ("abort", "SIGABRT")] {
        let crashed = format!("plugin process killed by {signal}");
        daemon.wait_until(&format!("{check} crashes"), WAIT, |d| {
            history_has(d, check, "error", &crashed)
        });
    }
    // Three crashes of one child: backoff 1 s, 2 s, 4 s, restarts spaced by
    // at least the backoff before them.
    daemon.wait_until("three segv crashes", WAIT, |d| {
        backoffs(d, "segv").len() >= 3
    });
    assert_eq!(backoffs(&daemon, "segv")[..3], [1000, 2000, 4000]);
    let started = starts(&daemon, "segv");
    assert!(started.len() >= 3, "{started:?}");
    for (pair, minimum) in started.windows(2).zip([1, 2]) {
        let gap = pair[1].0.duration_since(pair[0].0).expect("in order");
        assert!(gap >= Duration::from_secs(minimum), "{started:?}");
        assert_ne!(pair[0].1, pair[1].1, "a restart is a new process");
    }
    let during_backoff = daemon.get("/checks/segv").json();
    assert_eq!(during_backoff["result"], "error", "{during_backoff}");
    assert_eq!(during_backoff["reason"], "crashed", "{during_backoff}");
    daemon.wait_until("a backoff run", WAIT, |d| {
        let body = d.get("/checks/segv").json();
        let message = body["message"].as_str().unwrap_or_default().to_owned();
        message.starts_with("plugin process restarting in ")
            && message.ends_with("last failure: plugin process killed by SIGSEGV")
    });

    // The daemon and its other check never noticed.
    assert_eq!(daemon.get("/livez").status, 200);
    let steady_view = daemon.get("/checks/steady").json();
    assert_eq!(steady_view["status"], "healthy", "{steady_view}");
    assert_eq!(daemon.get("/checks/abort").json()["reason"], "crashed");
    assert_no_zombies(&mut daemon, pid);

    // Fixed, the next child after the backoff serves results again.
    std::fs::write(&segv, "ok").expect("rewrite script");
    daemon.wait_until("segv healthy", WAIT, |d| {
        d.get("/checks/segv").json()["status"] == "healthy"
    });
    assert_no_zombies(&mut daemon, pid);
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn a_hung_child_is_reported_timeout_killed_and_replaced() {
    let dir = TempDir::new("iso-hang");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let hang = dir.write("hang.script", r#"{"status":"ok","sleep_ms":600000}"#);
    let mut daemon = Daemon::with_config(&dir, &config(&plugins, &[("hang", "process", &hang)]));
    let pid = daemon_pid(&daemon);

    // Catch a child alive, then see it killed at its deadline.
    let mut hung = None;
    daemon.wait_until("a live child", WAIT, |_| {
        hung = children(pid)
            .into_iter()
            .find(|p| p.state != 'Z' && p.cmdline.contains("plugin-host"));
        hung.is_some()
    });
    let hung = hung.expect("found above");
    assert!(
        hung.cmdline.starts_with("warden plugin-host --library "),
        "{hung:?}"
    );
    let killed = |d: &Daemon| {
        log_lines(d).iter().any(|l| {
            l.contains("plugin process missed its deadline; killed")
                && field(l, "pid") == Some(&hung.pid.to_string())
        })
    };
    daemon.wait_until("the hung child killed", WAIT, killed);
    // It is reaped before that line is logged.
    assert!(
        !Path::new(&format!("/proc/{}", hung.pid)).exists(),
        "hung child still exists: {:?}",
        children(pid)
    );
    let body = daemon.get("/checks/hang").json();
    let timed_out = body["history"]
        .as_array()
        .expect("history")
        .iter()
        .any(|h| {
            h["outcome"] == "timeout"
                && h["message"] == "no result within 900ms; plugin process killed"
        });
    assert!(timed_out, "{body}");
    // The next run starts a fresh child at once: no crash backoff for a hang.
    daemon.wait_until("a later child", WAIT, |d| {
        starts(d, "hang").iter().any(|(_, p)| *p != hung.pid)
    });
    assert!(backoffs(&daemon, "hang").is_empty(), "{}", daemon.log());
    assert_no_zombies(&mut daemon, pid);

    std::fs::write(&hang, "ok").expect("rewrite script");
    daemon.wait_until("hang healthy", WAIT, |d| {
        d.get("/checks/hang").json()["status"] == "healthy"
    });
    assert_eq!(daemon.get("/livez").status, 200);
    assert_no_zombies(&mut daemon, pid);
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn the_child_gets_no_service_manager_variables_and_its_logs_reach_the_daemon_log() {
    let dir = TempDir::new("iso-env");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let scripts: Vec<(&str, std::path::PathBuf)> = [
        ("notify", "NOTIFY_SOCKET"),
        ("watchdog", "WATCHDOG_USEC"),
        ("invocation", "INVOCATION_ID"),
    ]
    .into_iter()
    .map(|(check, var)| {
        let script =
            format!(r#"{{"status":"ok","report_env":"{var}","log":"child logging for {check}"}}"#);
        (check, dir.write(&format!("{check}.script"), script))
    })
    .collect();
    let panics = dir.write(
        "panics.script",
        r#"{"status":"ok","panic":true,"stderr":"printed before the panic"}"#,
    );
    let mut checks: Vec<(&str, &str, &Path)> = scripts
        .iter()
        .map(|(name, path)| (*name, "process", path.as_path()))
        .collect();
    checks.push(("panics", "process", &panics));
    let addr = format!("127.0.0.1:{}", free_port());
    let path = dir.write(
        "warden.toml",
        config(&plugins, &checks).replace("{addr}", &addr),
    );
    let notify = dir.path().join("notify.sock");
    let env = [
        ("NOTIFY_SOCKET", notify.to_str().expect("utf-8 path")),
        ("WATCHDOG_USEC", "30000000"),
        ("INVOCATION_ID", "0123456789abcdef"),
    ];
    let mut daemon = Daemon::start_with_env(Some(&path), &addr, &dir, &env);

    daemon.wait_until("every env check ran", WAIT, |d| {
        scripts
            .iter()
            .all(|(name, _)| d.get(&format!("/checks/{name}")).json()["result"] == "ok")
    });
    let message = |name: &str| daemon.get(&format!("/checks/{name}")).json()["message"].clone();
    assert_eq!(message("notify"), "NOTIFY_SOCKET unset");
    assert_eq!(message("watchdog"), "WATCHDOG_USEC unset");
    assert_eq!(message("invocation"), "INVOCATION_ID=0123456789abcdef");

    // A plugin log line from the child, with the check and plugin fields.
    daemon.wait_until("the child's log line", WAIT, |d| {
        log_lines(d).iter().any(|l| {
            l.contains("child logging for watchdog")
                && field(l, "check") == Some("watchdog")
                && field(l, "plugin") == Some("scripted")
        })
    });
    // A panic is caught in the child (an error, not a crash); what the
    // plugin printed on the child's stderr lands in the daemon log.
    daemon.wait_until("the panic reported", WAIT, |d| {
        d.get("/checks/panics").json()["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("panicked: scripted panic (at "))
    });
    assert!(
        log_lines(&daemon)
            .iter()
            .any(|l| l.contains("printed before the panic")
                && field(l, "check") == Some("panics")
                && field(l, "stream") == Some("stderr")),
        "{}",
        daemon.log()
    );
    assert_eq!(
        starts(&daemon, "panics").len(),
        1,
        "a caught panic keeps its child"
    );
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn check_config_validates_process_isolated_checks() {
    let dir = TempDir::new("iso-config");
    let plugins = plugin_dir(&dir, &["warden_test_scripted"]);
    let script = dir.write("ok.script", "ok");
    let text =
        config(&plugins, &[("isolated", "process", &script)]).replace("{addr}", "127.0.0.1:9731");
    let good = dir.write("good.toml", &text);
    let output = warden(&["check-config", "--config", good.to_str().expect("utf-8")]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let bad = dir.write("bad.toml", text.replace("file = ", "fiel = "));
    let output = warden(&["check-config", "--config", bad.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("check \"isolated\"") && stderr.contains("fiel"),
        "{stderr}"
    );
}
