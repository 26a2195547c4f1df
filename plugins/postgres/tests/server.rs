//! The plugin against private PostgreSQL servers started by each test from
//! the installed binaries (see warden-test-support): results, reasons and
//! metrics for a healthy server, wrong passwords, refused ports, unknown
//! names, exhausted slots, standbys, custom queries, TLS, a non-PostgreSQL
//! peer and a postmaster paused with SIGSTOP.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_plugin_api::{CheckResult, Host, Plugin, Reason, RunContext, Status};
use warden_postgres::Postgres;
use warden_test_support::postgres::{PgOptions, PgServer};

fn plugin(config: Value) -> Postgres {
    Postgres::create(config, Host::detached()).expect("config is accepted")
}

fn run(plugin: &mut Postgres, timeout: Duration) -> CheckResult {
    plugin.check(&RunContext::with_timeout(timeout))
}

fn check(plugin: &mut Postgres) -> CheckResult {
    run(plugin, Duration::from_secs(15))
}

/// The value of the metric `name` whose labels include all of `labels`.
fn metric(result: &CheckResult, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    result
        .metrics
        .iter()
        .find(|m| {
            m.name == name
                && labels
                    .iter()
                    .all(|(k, v)| m.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|m| m.value)
}

fn setting(server: &PgServer, name: &str) -> f64 {
    server
        .psql(&format!("SHOW {name}"))
        .parse()
        .expect("numeric setting")
}

/// A port nothing listens on: bound, read, released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn healthy_server_reports_metrics_and_reuses_one_connection() {
    let mut server = PgServer::start();
    let mut check_plugin = plugin(json!({
        "url": server.url("postgres", None),
        "application_name": "warden-ok",
        "sslmode": "disable",
    }));

    let first = check(&mut check_plugin);
    assert_eq!(first.status, Status::Ok, "{first:?}");
    assert!(first.message.contains("primary"), "{}", first.message);
    assert!(metric(&first, "connect_seconds", &[]).is_some_and(|s| s > 0.0));
    assert!(metric(&first, "query_seconds", &[]).is_some_and(|s| s > 0.0));
    assert_eq!(metric(&first, "in_recovery", &[]), Some(0.0));
    assert!(metric(&first, "connections_used", &[]).is_some_and(|n| n >= 1.0));
    let max = setting(&server, "max_connections");
    let reserved = setting(&server, "superuser_reserved_connections");
    assert_eq!(metric(&first, "connections_max", &[]), Some(max));
    assert_eq!(
        metric(&first, "connections_usable", &[]),
        Some(max - reserved)
    );
    let ratio = metric(&first, "connections_usage_ratio", &[]).expect("ratio");
    let used = metric(&first, "connections_used", &[]).expect("used");
    assert!((ratio - used / (max - reserved)).abs() < 1e-9);
    assert_eq!(metric(&first, "replay_lag_seconds", &[]), None);

    // The second run reuses the connection: no connect time, one backend.
    let second = check(&mut check_plugin);
    assert_eq!(second.status, Status::Ok, "{second:?}");
    assert_eq!(metric(&second, "connect_seconds", &[]), None);
    assert_eq!(metric(&second, "connections_opened_total", &[]), Some(1.0));
    assert_eq!(server.count_backends("warden-ok"), 1);

    // A connection killed by the server is replaced within the next run.
    server.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'warden-ok'",
    );
    let third = check(&mut check_plugin);
    assert_eq!(third.status, Status::Ok, "{third:?}");
    assert_eq!(metric(&third, "connections_opened_total", &[]), Some(2.0));
    assert!(metric(&third, "connect_seconds", &[]).is_some());
    assert_eq!(server.count_backends("warden-ok"), 1);

    // A stopped server: the kept connection is dead and the retry refused.
    server.stop();
    let down = check(&mut check_plugin);
    assert_eq!(down.status, Status::Critical, "{down:?}");
    assert_eq!(down.reason, Some(Reason::Refused), "{down:?}");
    server.restart();
    let back = check(&mut check_plugin);
    assert_eq!(back.status, Status::Ok, "{back:?}");
    assert_eq!(metric(&back, "connections_opened_total", &[]), Some(3.0));

    // Dropping the instance closes its connection.
    drop(check_plugin);
    assert!(PgServer::wait_until(Duration::from_secs(10), || server
        .count_backends("warden-ok")
        == 0));
}

#[test]
fn password_errors_are_auth_and_the_password_is_never_shown() {
    let password = "Sup3r-Secret-pw";
    let server = PgServer::start_with(&PgOptions {
        password: Some(password.to_owned()),
        ..PgOptions::default()
    });
    let base = json!({"host": "127.0.0.1", "port": server.port(), "user": "postgres"});
    let with = |extra: Value| {
        let mut config = base.clone();
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        config
    };

    let wrong = "Wr0ng-Secret-pw";
    let result = check(&mut plugin(with(json!({"password": wrong}))));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Auth), "{result:?}");
    assert!(
        result.message.contains("authentication failed"),
        "{}",
        result.message
    );
    assert!(!result.message.contains(wrong), "{}", result.message);

    // The server echoes a database name; make it the password.
    let result = check(&mut plugin(with(
        json!({"password": password, "dbname": password}),
    )));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert!(result.message.contains("***"), "{}", result.message);
    assert!(!result.message.contains(password), "{}", result.message);

    // A failing custom query whose error quotes the password.
    let result = check(&mut plugin(with(json!({
        "password": password,
        "query": [{"name": "echo", "sql": format!("SELECT '{password}'::int AS x")}],
    }))));
    assert_eq!(result.status, Status::Warning, "{result:?}");
    assert!(
        result.message.contains("invalid input syntax"),
        "{}",
        result.message
    );
    assert!(result.message.contains("***"), "{}", result.message);
    assert!(!result.message.contains(password), "{}", result.message);

    // The password inside a URL is masked too, and works.
    let url = server.url("postgres", Some(password));
    let result = check(&mut plugin(json!({"url": url})));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert!(!format!("{result:?}").contains(password));
}

#[test]
fn closed_port_is_refused() {
    let port = closed_port();
    let result = check(&mut plugin(json!({"host": "127.0.0.1", "port": port})));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Refused), "{result:?}");
    assert!(
        result.message.contains("connection refused"),
        "{}",
        result.message
    );
}

#[test]
fn unknown_host_name_is_dns() {
    let result = warden_test_support::offline::without_network(|| {
        check(&mut plugin(json!({"host": "warden-no-such-host.invalid"})))
    });
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Dns), "{result:?}");
    assert!(
        result.message.contains("warden-no-such-host.invalid"),
        "{}",
        result.message
    );
}

#[test]
fn a_peer_that_is_not_postgres_is_protocol() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 512];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    let result = check(&mut plugin(
        json!({"host": "127.0.0.1", "port": port, "sslmode": "disable"}),
    ));
    peer.join().expect("peer thread");
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Protocol), "{result:?}");
}

#[test]
fn full_slots_are_a_threshold_then_exhausted() {
    // 6 slots, 3 reserved for superusers: 3 for the non-superuser monitor.
    let server = PgServer::start_with(&PgOptions {
        max_connections: 6,
        superuser_reserved_connections: 3,
        ..PgOptions::default()
    });
    server.create_role("monitor", "unused-under-trust", false);
    let config = json!({"url": server.url("monitor", None), "application_name": "warden-slots"});
    let _a = server.hold_connection("postgres", None, "filler");
    let _b = server.hold_connection("postgres", None, "filler");

    // Two fillers plus the monitor itself: 3 of 3 usable slots. The backend
    // of the test's own last psql may still be exiting and hold a slot for a
    // moment, so a first `exhausted` is retried.
    let mut monitor = plugin(config.clone());
    let mut result = check(&mut monitor);
    for _ in 0..50 {
        if result.reason != Some(Reason::Exhausted) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        result = check(&mut monitor);
    }
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Threshold), "{result:?}");
    // Superuser sessions are hidden from the monitor's pg_stat_activity
    // rows, yet counted. A psql of the test may still be exiting: at least 3.
    assert!(
        metric(&result, "connections_used", &[]).is_some_and(|n| n >= 3.0),
        "{result:?}"
    );
    assert_eq!(metric(&result, "connections_usable", &[]), Some(3.0));
    assert!(metric(&result, "connections_usage_ratio", &[]).is_some_and(|r| r >= 1.0));
    drop(monitor);
    assert!(PgServer::wait_until(Duration::from_secs(10), || server
        .count_backends("warden-slots")
        == 0));

    let _c = server.hold_connection("postgres", None, "filler");
    let result = check(&mut plugin(config));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Exhausted), "{result:?}");
    assert!(
        result.message.contains("connection slots are exhausted"),
        "{}",
        result.message
    );
}

#[test]
fn standby_role_and_replay_lag() {
    let primary = PgServer::start();
    let standby = PgServer::start_standby(&primary);
    primary.psql("CREATE TABLE replicated AS SELECT 1 AS x");
    let replicated = PgServer::wait_until(Duration::from_secs(30), || {
        standby
            .try_psql("SELECT x FROM replicated")
            .is_ok_and(|x| x == "1")
    });
    assert!(replicated, "the standby never replayed the primary's table");

    let result = check(&mut plugin(json!({
        "url": standby.url("postgres", None),
        "expected_role": "standby",
    })));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert!(result.message.contains("standby"), "{}", result.message);
    assert_eq!(metric(&result, "in_recovery", &[]), Some(1.0));
    assert!(
        metric(&result, "replay_lag_seconds", &[]).is_some_and(|lag| lag >= 0.0),
        "{result:?}"
    );

    let result = check(&mut plugin(json!({
        "url": standby.url("postgres", None),
        "expected_role": "primary",
    })));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert!(
        result
            .message
            .contains("server is a standby, expected a primary"),
        "{}",
        result.message
    );

    let result = check(&mut plugin(json!({
        "url": primary.url("postgres", None),
        "expected_role": "standby",
    })));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert!(
        result
            .message
            .contains("server is a primary, expected a standby"),
        "{}",
        result.message
    );
}

#[test]
fn custom_queries_report_metrics_and_failures_without_failing_liveness() {
    let server = PgServer::start();
    let mut check_plugin = plugin(json!({
        "url": server.url("postgres", None),
        "query": [
            {"name": "databases", "sql": "SELECT datname, numbackends AS backends, 1.5::numeric AS half \
                FROM pg_stat_database WHERE datname IN ('postgres', 'template1')"},
            {"name": "broken", "sql": "SELECT 1/0 AS x"},
            {"name": "sleepy", "sql": "SELECT pg_sleep(10)", "timeout": "200ms"},
            {"name": "writes", "sql": "CREATE TABLE warden_probe (id int)"},
            {"name": "hourly", "sql": "SELECT extract(epoch FROM clock_timestamp()) AS at", "interval": "1h"},
            {"name": "every_run", "sql": "SELECT extract(epoch FROM clock_timestamp()) AS at"},
        ],
    }));
    let first = check(&mut check_plugin);
    assert_eq!(first.status, Status::Warning, "{first:?}");
    assert_eq!(first.reason, Some(Reason::Error), "{first:?}");
    let message = &first.message;
    assert!(
        message.contains("query \"broken\" failed: division by zero"),
        "{message}"
    );
    assert!(message.contains("statement timeout"), "{message}");
    assert!(message.contains("read-only transaction"), "{message}");
    assert!(message.contains("3 of 6 custom queries ok"), "{message}");

    assert!(
        metric(
            &first,
            "query_databases_backends",
            &[("datname", "postgres")]
        )
        .is_some_and(|n| n >= 1.0)
    );
    assert_eq!(
        metric(
            &first,
            "query_databases_backends",
            &[("datname", "template1")]
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(&first, "query_databases_half", &[("datname", "postgres")]),
        Some(1.5)
    );
    assert_eq!(
        metric(&first, "custom_query_success", &[("query", "databases")]),
        Some(1.0)
    );
    assert_eq!(
        metric(&first, "custom_query_success", &[("query", "broken")]),
        Some(0.0)
    );
    assert_eq!(
        metric(&first, "custom_query_success", &[("query", "sleepy")]),
        Some(0.0)
    );
    assert!(metric(&first, "query_seconds", &[]).is_some());
    assert_eq!(
        server.psql("SELECT count(*) FROM pg_class WHERE relname = 'warden_probe'"),
        "0"
    );

    // Not due: `hourly` keeps its first value, `every_run` moves on.
    std::thread::sleep(Duration::from_millis(20));
    let second = check(&mut check_plugin);
    assert_eq!(second.status, Status::Warning, "{second:?}");
    assert_eq!(
        metric(&second, "query_hourly_at", &[]),
        metric(&first, "query_hourly_at", &[]),
    );
    assert!(metric(&second, "query_every_run_at", &[]) > metric(&first, "query_every_run_at", &[]));
    // Failed queries did not cost the connection.
    assert_eq!(metric(&second, "connections_opened_total", &[]), Some(1.0));
}

#[test]
fn tls_modes() {
    let plain = PgServer::start();
    let result = check(&mut plugin(
        json!({"url": plain.url("postgres", None), "sslmode": "require"}),
    ));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Tls), "{result:?}");
    assert!(
        result.message.contains("server does not support TLS"),
        "{}",
        result.message
    );

    let secure = PgServer::start_with(&PgOptions {
        tls: true,
        ..PgOptions::default()
    });
    let ca = secure.ca_file().display().to_string();
    let result = check(&mut plugin(
        json!({"url": secure.url("postgres", None), "sslmode": "require"}),
    ));
    assert_eq!(result.status, Status::Ok, "{result:?}");

    let encrypted = || secure.psql("SELECT count(*) FROM pg_stat_ssl WHERE ssl");
    for host in ["127.0.0.1", "localhost"] {
        let config =
            json!({"host": host, "port": secure.port(), "sslmode": "verify-full", "ca_file": ca});
        let mut verified = plugin(config);
        let result = check(&mut verified);
        assert_eq!(result.status, Status::Ok, "{host}: {result:?}");
        assert!(
            PgServer::wait_until(Duration::from_secs(10), || encrypted() == "1"),
            "{host}"
        );
        drop(verified);
        assert!(
            PgServer::wait_until(Duration::from_secs(10), || encrypted() == "0"),
            "{host}"
        );
    }

    // The server's own certificate is no CA: verification fails.
    let wrong_ca = secure.data_dir().join("server.crt").display().to_string();
    let result = check(&mut plugin(json!({
        "host": "127.0.0.1", "port": secure.port(), "sslmode": "verify-full", "ca_file": wrong_ca,
    })));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Tls), "{result:?}");

    let missing = Postgres::create(
        json!({"sslmode": "verify-full", "ca_file": "/nonexistent/ca.pem"}),
        Host::detached(),
    )
    .expect_err("a missing CA file is a config error");
    assert!(
        missing.starts_with("`ca_file` /nonexistent/ca.pem"),
        "{missing}"
    );
}

/// The postmaster is paused for about 20 s (a short stand-in for a longer
/// stall) while the check runs every 2 s with a 1 s deadline. Every run in
/// the pause must time out, and afterwards the server must see exactly one
/// connection from the monitor: none of the abandoned attempts stays.
#[test]
fn paused_postmaster_leaves_no_connection_pile_up() {
    let mut server = PgServer::start();
    let app = "warden-sigstop";
    // sslmode disable: each attempt sends its startup packet, application
    // name included, so a leaked attempt would show up in pg_stat_activity.
    let mut monitor = plugin(json!({
        "url": server.url("postgres", None),
        "application_name": app,
        "sslmode": "disable",
    }));
    let result = check(&mut monitor);
    assert_eq!(result.status, Status::Ok, "{result:?}");

    // Without its backend the monitor must reconnect, which the paused
    // postmaster cannot answer.
    server.psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{app}'"
    ));
    assert!(PgServer::wait_until(Duration::from_secs(10), || server
        .count_backends(app)
        == 0));
    server.pause();
    let paused_for = Duration::from_secs(20);
    let paused_at = Instant::now();
    let mut runs = Vec::new();
    while paused_at.elapsed() < paused_for {
        let started = Instant::now();
        runs.push(run(&mut monitor, Duration::from_secs(1)));
        std::thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
    }
    server.resume();

    assert!(runs.len() >= 5, "only {} runs in the pause", runs.len());
    // Each run got as far as TCP (the kernel's listen backlog accepts) and
    // gave up waiting for the paused postmaster, dropping the attempt.
    for result in &runs {
        assert_eq!(result.status, Status::Critical, "{result:?}");
        assert_eq!(result.reason, Some(Reason::Timeout), "{result:?}");
        assert!(
            result.message.contains("TCP connected"),
            "{}",
            result.message
        );
        assert!(
            result.message.contains("half-open connection dropped"),
            "{}",
            result.message
        );
    }

    let result = check(&mut monitor);
    assert_eq!(result.status, Status::Ok, "{result:?}");
    // The postmaster now accepts the queued, abandoned attempts; each backend
    // finds its client gone and exits. One connection remains: the monitor's.
    let settled = PgServer::wait_until(Duration::from_secs(20), || server.count_backends(app) == 1);
    assert!(
        settled,
        "{} monitor connections after the pause",
        server.count_backends(app)
    );
    let result = check(&mut monitor);
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert_eq!(server.count_backends(app), 1);
}
