//! The Debian package, end to end on this machine: built with cargo-deb from
//! the test build's binaries, installed with `dpkg -i`, its binary, plugins,
//! conffiles and unit checked, the daemon started the way the installed unit
//! starts it (there is no systemd as PID 1 here, so the test plays the
//! service manager), reloaded the way `systemctl reload` does, then the
//! package upgraded in place, removed and purged.
//!
//! It needs root (dpkg) and cargo-deb (scripts/test installs it); without
//! root it says loudly that it skipped. It purges any `warden` package first
//! and on the way out, so it can run again after a failure.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use warden_test_support::postgres::PgServer;
use warden_test_support::redis::RedisServer;

use crate::harness::{HttpResponse, TempDir, build_plugins, free_port, http_request};

const WAIT: Duration = Duration::from_secs(60);
const CONFIG: &str = "/etc/warden/warden.toml";
const PLUGIN_DIR: &str = "/usr/lib/warden/plugins";
const UNIT: &str = "/usr/lib/systemd/system/warden.service";
const PLUGINS: [&str; 4] = ["system", "postgres", "redis", "jwks"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env_remove("WARDEN_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs and asserts success, returning stdout.
fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn installed() -> bool {
    run("dpkg", &["-s", "warden"]).status.success()
}

fn mode(path: &str) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

/// Purges the package when dropped, so a failed run leaves nothing behind.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if installed() {
            let _ = run("dpkg", &["-P", "warden"]);
        }
    }
}

/// The daemon as the service manager would run it; killed if the test
/// fails before stopping it.
struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The unit's `key=` command line, split on whitespace (the unit quotes
/// nothing).
fn unit_command(unit: &str, key: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{UNIT} has no {key}="));
    line.split_whitespace().map(str::to_owned).collect()
}

/// `argv` with the unit's config path swapped for `config`.
fn with_config(argv: &[String], config: &Path) -> Vec<String> {
    let at = argv
        .iter()
        .position(|a| a == "--config")
        .unwrap_or_else(|| panic!("{argv:?} names no --config"));
    assert_eq!(argv[at + 1], CONFIG, "the unit runs the packaged config");
    let mut argv = argv.to_vec();
    argv[at + 1] = config.display().to_string();
    argv
}

/// The installed config, as a copy the test can point at its own servers:
/// only the listen address and the check addresses change.
fn site_config(listen: &str, pg_port: u16, redis_url: &str, jwks_url: &str) -> String {
    let text = std::fs::read_to_string(CONFIG).expect("installed config");
    let mut config: toml::Table = text.parse().expect("installed config is TOML");
    config["server"]["listen"] = listen.into();
    for check in config["check"].as_array_mut().expect("checks") {
        let check = check.as_table_mut().expect("check table");
        let name = check["name"].as_str().expect("check name").to_owned();
        let settings = check["config"].as_table_mut().expect("check config");
        match name.as_str() {
            "db" => {
                settings.insert("port".into(), i64::from(pg_port).into());
            }
            "cache" => {
                settings.insert("url".into(), redis_url.into());
            }
            "auth" => {
                settings.insert("url".into(), jwks_url.into());
            }
            _ => {}
        }
    }
    toml::to_string(&config).expect("TOML")
}

fn get(listen: &str, path: &str) -> Option<HttpResponse> {
    http_request(listen, "GET", path, &[]).ok()
}

fn wait_for(service: &mut Service, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        if done() {
            return;
        }
        if let Some(status) = service.exited() {
            panic!(
                "warden exited ({status}) while waiting for {what}\n{}",
                service.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}\n{}", service.log());
}

/// Waits for a notification datagram containing `line`.
fn wait_notify(socket: &UnixDatagram, line: &str, service: &Service) {
    socket.set_read_timeout(Some(WAIT)).expect("socket timeout");
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {line} from warden ({e})\n{}", service.log()));
        if text(&buf[..n]).lines().any(|l| l == line) {
            return;
        }
    }
}

fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn the_debian_package_installs_runs_upgrades_and_purges() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "\n*** package test SKIPPED: it installs a .deb with dpkg and must run as root ***\n"
        );
        return;
    }
    let deb_tool = run("cargo", &["deb", "--version"]);
    assert!(
        deb_tool.status.success(),
        "cargo-deb is missing: scripts/test installs it, or run \
         `cargo install cargo-deb --version 3.8.0 --locked`"
    );
    let began = Instant::now();
    build_plugins();
    eprintln!("cargo build done after {:?}", began.elapsed());
    let _purge = Purge;
    if installed() {
        ok("dpkg", &["-P", "warden"]);
    }

    // Package the binaries the tests use: `--profile dev` avoids an
    // optimised build of everything; the metadata is the release one.
    let dir = TempDir::new("package");
    let deb = dir.path().join("warden.deb");
    let built = Command::new("cargo")
        .args([
            "deb",
            "--quiet",
            "-p",
            "warden",
            "--no-build",
            "--profile",
            "dev",
            "--fast",
            "-o",
        ])
        .arg(&deb)
        .current_dir(repo())
        .output()
        .expect("run cargo deb");
    assert!(built.status.success(), "cargo deb: {}", text(&built.stderr));
    let deb = deb.to_str().expect("UTF-8 path");
    eprintln!("package built after {:?}", began.elapsed());

    ok("dpkg", &["-i", deb]);
    eprintln!("package installed after {:?}", began.elapsed());

    // Files where the unit, the config and the docs say they are.
    assert_eq!(mode("/usr/bin/warden"), 0o755);
    assert_eq!(mode(PLUGIN_DIR), 0o755);
    for plugin in PLUGINS {
        assert_eq!(mode(&format!("{PLUGIN_DIR}/libwarden_{plugin}.so")), 0o644);
    }
    assert_eq!(mode("/etc/warden/credentials"), 0o700);
    assert_eq!(
        std::fs::read(CONFIG).unwrap(),
        std::fs::read(repo().join("config/warden.toml")).unwrap()
    );
    let conffiles = ok("dpkg-query", &["-W", "-f=${Conffiles}", "warden"]);
    for conffile in [CONFIG, "/etc/warden/rules/warden.toml"] {
        assert!(
            conffiles.contains(conffile),
            "{conffile} not a conffile: {conffiles}"
        );
    }
    assert!(Path::new("/usr/share/doc/warden/operations.md").is_file());

    // The installed binary validates the installed config and rules.
    let checks = std::fs::read_to_string(CONFIG)
        .unwrap()
        .matches("[[check]]")
        .count();
    let rules = std::fs::read_to_string(repo().join("config/rules/warden.toml"))
        .unwrap()
        .matches("[[rule]]")
        .count();
    assert!(checks > 0 && rules > 0);
    assert_eq!(
        ok("/usr/bin/warden", &["check-config", "--config", CONFIG]).trim(),
        format!("{CONFIG}: ok, {checks} check(s), {rules} rule(s)")
    );

    // ... and finds exactly the four packaged plugins.
    let listed = ok("/usr/bin/warden", &["plugins", "--config", CONFIG]);
    // One line per library, each followed by its description line.
    let libraries = listed.lines().filter(|l| !l.starts_with(' ')).count();
    assert_eq!(libraries, PLUGINS.len(), "{listed}");
    for plugin in PLUGINS {
        let path = format!("{PLUGIN_DIR}/libwarden_{plugin}.so");
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(&format!("{plugin} ")) && l.ends_with(&path)),
            "{plugin} not loaded from {path}:\n{listed}"
        );
    }

    // The installed unit is valid and stays hardened.
    ok("systemd-analyze", &["verify", UNIT]);
    let security = run("systemd-analyze", &["security", "--offline=true", UNIT]);
    let report = text(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for warden.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}{}", text(&security.stderr)));
    eprintln!("systemd-analyze security exposure of the installed unit: {exposure}");
    assert!(exposure <= 2.0, "unit exposure {exposure} > 2.0:\n{report}");

    // Run the unit's command lines, as systemd would, on a copy of the
    // installed config (beside a copy of its rules) pointed at this test's
    // own servers. First Redis is not there: the host is not ready.
    eprintln!("unit verified after {:?}", began.elapsed());
    let unit = std::fs::read_to_string(UNIT).expect("installed unit");
    let pg = PgServer::start();
    let closed = format!("127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let jwks_url = format!("http://{closed}/.well-known/jwks.json");
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("rules")).unwrap();
    for rule_file in std::fs::read_dir("/etc/warden/rules").unwrap() {
        let rule_file = rule_file.unwrap().path();
        std::fs::copy(
            &rule_file,
            site.join("rules").join(rule_file.file_name().unwrap()),
        )
        .unwrap();
    }
    let config = site.join("warden.toml");
    let write_config = |redis_url: &str| {
        std::fs::write(
            &config,
            site_config(&listen, pg.port(), redis_url, &jwks_url),
        )
        .unwrap();
    };
    write_config(&format!("redis://{closed}/0"));

    let pre = with_config(&unit_command(&unit, "ExecStartPre"), &config);
    ok(
        &pre[0],
        &pre[1..].iter().map(String::as_str).collect::<Vec<_>>(),
    );

    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
    let start = with_config(&unit_command(&unit, "ExecStart"), &config);
    let log = dir.path().join("warden.log");
    let child = Command::new(&start[0])
        .args(&start[1..])
        .env_remove("WARDEN_CONFIG")
        .env_remove("RUST_LOG")
        .env("NOTIFY_SOCKET", &notify_path)
        .env("STATE_DIRECTORY", &state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start the installed warden");
    let mut service = Service { child, log };
    wait_notify(&notify, "READY=1", &service);

    wait_for(&mut service, "/readyz to name the failing cache", || {
        get(&listen, "/readyz")
            .is_some_and(|r| r.status == 503 && r.body.contains("cache: failing"))
    });
    let readyz = get(&listen, "/readyz").unwrap();
    assert_eq!(readyz.status, 503, "{}", readyz.body);
    let body = readyz.json();
    assert_eq!(body["status"], "not ready", "{body}");
    let errors: Vec<&str> = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors: {body}"))
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        errors.iter().any(|e| e.starts_with("cache: failing")),
        "{body}"
    );
    // The auth check is not critical: it never holds readiness back.
    assert!(!errors.iter().any(|e| e.starts_with("auth:")), "{body}");

    // Redis comes up; the config names it; `systemctl reload` runs the
    // unit's ExecReload with $MAINPID.
    let redis = RedisServer::start().expect("redis-server starts");
    write_config(&format!("redis://127.0.0.1:{}/0", redis.port()));
    let pid = service.child.id().to_string();
    let reload: Vec<String> = unit_command(&unit, "ExecReload")
        .into_iter()
        .map(|a| if a == "$MAINPID" { pid.clone() } else { a })
        .collect();
    ok(
        &reload[0],
        &reload[1..].iter().map(String::as_str).collect::<Vec<_>>(),
    );
    wait_notify(&notify, "RELOADING=1", &service);
    wait_notify(&notify, "READY=1", &service);

    wait_for(&mut service, "/readyz 200 after the reload", || {
        get(&listen, "/readyz").is_some_and(|r| r.status == 200)
    });
    assert_eq!(
        get(&listen, "/readyz").unwrap().json(),
        serde_json::json!({"status": "ready"})
    );
    wait_for(&mut service, "the auth check's first result", || {
        get(&listen, "/checks/auth").is_some_and(|r| r.json()["status"] == "unhealthy")
    });
    let auth = get(&listen, "/checks/auth").unwrap().json();
    assert_eq!(auth["reason"], "refused", "{auth}");
    let health = get(&listen, "/health").unwrap();
    assert_eq!(health.status, 200, "degraded_status = 200: {}", health.body);
    assert_eq!(health.json()["status"], "degraded", "{}", health.body);
    let metrics = get(&listen, "/metrics").unwrap().body;
    assert_eq!(
        metric_value(&metrics, "warden_reloads_total{result=\"success\"}"),
        Some(1.0),
        "{metrics}"
    );

    // systemctl stop: SIGTERM, a clean exit.
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(service.child.id() as libc::pid_t, libc::SIGTERM) };
    wait_notify(&notify, "STOPPING=1", &service);
    let status = service.child.wait().expect("wait for warden");
    assert_eq!(status.code(), Some(0), "{}", service.log());

    // An upgrade (here the same version again) keeps an edited conffile.
    let edited = std::fs::read_to_string(CONFIG).unwrap() + "# edited by the operator\n";
    std::fs::write(CONFIG, &edited).unwrap();
    ok("dpkg", &["-i", deb]);
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited);
    ok("/usr/bin/warden", &["check-config", "--config", CONFIG]);

    // Remove keeps the conffiles; purge deletes them.
    ok("dpkg", &["-r", "warden"]);
    assert!(!Path::new("/usr/bin/warden").exists());
    assert!(!Path::new(PLUGIN_DIR).exists());
    assert!(!Path::new(UNIT).exists());
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited);
    assert!(Path::new("/etc/warden/rules/warden.toml").is_file());
    assert_eq!(
        ok("dpkg-query", &["-W", "-f=${Status}", "warden"]),
        "deinstall ok config-files"
    );

    ok("dpkg", &["-P", "warden"]);
    assert!(!installed());
    assert!(!Path::new(CONFIG).exists());
    assert!(!Path::new("/etc/warden/rules/warden.toml").exists());
    assert!(
        !Path::new("/etc/warden").exists(),
        "purge leaves nothing in /etc"
    );
    eprintln!("package test done after {:?}", began.elapsed());
}
