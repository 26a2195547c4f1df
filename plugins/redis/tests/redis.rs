//! The redis plugin against private `redis-server` instances started by each
//! test on free 127.0.0.1 ports (see warden-test-support's `redis` module).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_plugin_api::{CheckResult, Host, Plugin, Reason, RunContext, Status};
use warden_redis::RedisCheck;
use warden_redis::info::{Info, Thresholds, assess};
use warden_test_support::redis::{RedisOptions, RedisServer, free_port};

fn create(config: Value) -> RedisCheck {
    RedisCheck::create(config, Host::detached()).expect("config is valid")
}

fn run(check: &mut RedisCheck, timeout: Duration) -> CheckResult {
    check.check(&RunContext::with_timeout(timeout))
}

fn metric(result: &CheckResult, name: &str) -> Option<f64> {
    result
        .metrics
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value)
}

fn local(server: &RedisServer) -> Value {
    json!({"host": "127.0.0.1", "port": server.port()})
}

/// Polls `condition` every 50 ms for up to 10 s; the bound is a safety net,
/// not something the test measures.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < until, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn healthy_server_passes_and_reuses_one_connection() {
    let server = RedisServer::start().unwrap();
    let mut config = local(&server);
    config["roundtrip"] = json!(true);
    let mut check = create(config);
    for _ in 0..3 {
        let result = run(&mut check, Duration::from_secs(5));
        assert_eq!(result.status, Status::Ok, "{result:?}");
        assert!(metric(&result, "ping_seconds").is_some());
        assert!(metric(&result, "roundtrip_seconds").is_some());
        assert!(metric(&result, "connected_clients").unwrap() >= 1.0);
        assert!(metric(&result, "used_memory_bytes").unwrap() > 0.0);
        assert_eq!(metric(&result, "rejected_connections_total"), Some(0.0));
        assert_eq!(metric(&result, "evicted_keys_total"), Some(0.0));
        // One field from each INFO section the check asks for.
        assert!(metric(&result, "uptime_seconds").is_some());
        assert_eq!(metric(&result, "loading"), Some(0.0));
        let role = result.metrics.iter().find(|m| m.name == "role").unwrap();
        assert_eq!(role.labels.get("role").map(String::as_str), Some("master"));
        // maxmemory is 0 by default: no ratio at all.
        assert_eq!(metric(&result, "memory_used_ratio"), None);
    }
    assert_eq!(
        server.client_count().unwrap(),
        1,
        "the check keeps exactly one connection"
    );
    // The round trip cleans up its key.
    let keys = server.command(&["KEYS", "warden:*"]).unwrap();
    assert_eq!(keys, warden_test_support::redis::Reply::Array(Some(vec![])));
}

#[test]
fn password_with_url_special_characters_is_used_literally() {
    let password = "p@ss:w/rd#1+2$}]%41";
    let server = RedisServer::start_with(&RedisOptions {
        password: Some(password.to_owned()),
        ..RedisOptions::default()
    })
    .unwrap();
    let url = format!("redis://127.0.0.1:{}/0", server.port());
    let mut check = create(json!({"url": url, "password": password, "roundtrip": true}));
    let result = run(&mut check, Duration::from_secs(5));
    assert_eq!(result.status, Status::Ok, "{result:?}");

    let mut wrong = create(json!({"url": url, "password": "p@ss:w/rd#1+2$}]A"}));
    let result = run(&mut wrong, Duration::from_secs(5));
    assert_eq!(result.status, Status::Critical);
    assert_eq!(result.reason, Some(Reason::Auth), "{result:?}");
    assert!(result.message.starts_with("auth:"), "{}", result.message);
    assert!(!result.message.contains("p@ss"), "{}", result.message);
}

#[test]
fn acl_user_without_info_passes_liveness_with_a_warning() {
    let server = RedisServer::start().unwrap();
    server
        .acl_setuser(
            "mon",
            &[
                "on",
                ">mon:pw@1",
                "~warden:*",
                "+ping",
                "+get",
                "+set",
                "+del",
            ],
        )
        .unwrap();
    let mut config = local(&server);
    config["username"] = json!("mon");
    config["password"] = json!("mon:pw@1");
    config["roundtrip"] = json!(true);
    let mut check = create(config);
    let result = run(&mut check, Duration::from_secs(5));
    assert_eq!(result.status, Status::Warning, "{result:?}");
    assert!(
        result.message.contains("INFO denied by ACL"),
        "{}",
        result.message
    );
    assert!(metric(&result, "ping_seconds").is_some());
    assert!(metric(&result, "roundtrip_seconds").is_some());
    assert_eq!(metric(&result, "used_memory_bytes"), None);

    // A prefix outside the user's key pattern makes the round trip fail on auth.
    let mut config = local(&server);
    config["username"] = json!("mon");
    config["password"] = json!("mon:pw@1");
    config["roundtrip"] = json!(true);
    config["key_prefix"] = json!("other:");
    let result = run(&mut create(config), Duration::from_secs(5));
    assert_eq!(result.reason, Some(Reason::Auth), "{result:?}");
    assert!(result.message.contains("SET denied"), "{}", result.message);
}

#[test]
fn refused_port_is_refused() {
    let port = free_port().unwrap();
    let result = run(&mut create(json!({"port": port})), Duration::from_secs(5));
    assert_eq!(result.status, Status::Critical);
    assert_eq!(result.reason, Some(Reason::Refused), "{result:?}");
    assert!(result.message.starts_with("refused:"), "{}", result.message);
}

#[test]
fn unresolvable_name_is_dns() {
    let result = warden_test_support::offline::without_network(|| {
        run(
            &mut create(json!({"host": "warden-check.invalid"})),
            Duration::from_secs(10),
        )
    });
    assert_eq!(result.status, Status::Critical);
    assert_eq!(result.reason, Some(Reason::Dns), "{result:?}");
    assert!(
        result.message.contains("warden-check.invalid"),
        "{}",
        result.message
    );
}

#[test]
fn memory_ratio_only_with_maxmemory_and_thresholds_apply() {
    let server = RedisServer::start_with(&RedisOptions {
        maxmemory: Some(512 * 1024 * 1024),
        ..RedisOptions::default()
    })
    .unwrap();
    let result = run(&mut create(local(&server)), Duration::from_secs(5));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    let ratio = metric(&result, "memory_used_ratio").expect("ratio present with maxmemory");
    let used = metric(&result, "used_memory_bytes").unwrap();
    assert_eq!(
        metric(&result, "maxmemory_bytes"),
        Some(512.0 * 1024.0 * 1024.0)
    );
    assert!(
        (ratio - used / (512.0 * 1024.0 * 1024.0)).abs() < 1e-3,
        "{ratio} vs {used}"
    );

    let mut config = local(&server);
    config["memory_warning_ratio"] = json!(0.0);
    let result = run(&mut create(config), Duration::from_secs(5));
    assert_eq!(result.status, Status::Warning, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Threshold));
}

#[test]
fn replica_reports_its_master_link() {
    let mut master = RedisServer::start().unwrap();
    let replica = RedisServer::start_with(&RedisOptions {
        replica_of_port: Some(master.port()),
        ..RedisOptions::default()
    })
    .unwrap();
    let link = || {
        replica
            .info_field("replication", "master_link_status")
            .unwrap()
    };
    eventually("the replica to sync", || link().as_deref() == Some("up"));
    let mut check = create(local(&replica));
    let result = run(&mut check, Duration::from_secs(5));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert_eq!(metric(&result, "master_link_up"), Some(1.0));

    master.stop();
    eventually("the replica to see its master gone", || {
        link().as_deref() == Some("down")
    });
    let result = run(&mut check, Duration::from_secs(5));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(metric(&result, "master_link_up"), Some(0.0));
    assert!(result.message.contains("master link"), "{}", result.message);
    assert!(
        result.message.contains(&master.port().to_string()),
        "{}",
        result.message
    );

    // A write test against the read-only replica names the refusal and
    // still reports what INFO shows: the link to the master is down.
    let mut config = local(&replica);
    config["roundtrip"] = json!(true);
    let result = run(&mut create(config), Duration::from_secs(5));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert!(result.message.contains("read-only"), "{}", result.message);
    assert!(result.message.contains("master link"), "{}", result.message);
    assert_eq!(metric(&result, "master_link_up"), Some(0.0));
}

#[test]
fn full_memory_is_exhausted_and_still_reports_memory() {
    let server = RedisServer::start_with(&RedisOptions {
        maxmemory: Some(512 * 1024 * 1024),
        ..RedisOptions::default()
    })
    .unwrap();
    // Below what the server already uses: every write is refused (the
    // default policy, noeviction).
    server
        .command(&["CONFIG", "SET", "maxmemory", "1"])
        .unwrap();
    let mut config = local(&server);
    config["roundtrip"] = json!(true);
    let result = run(&mut create(config), Duration::from_secs(5));
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Exhausted), "{result:?}");
    assert!(result.message.contains("memory full"), "{}", result.message);
    assert!(
        metric(&result, "memory_used_ratio").unwrap() > 1.0,
        "{result:?}"
    );
}

#[test]
fn loading_server_is_not_ready() {
    // INFO captured from redis-server 7.0.15 with maxmemory 64 MiB, its
    // persistence section then set to what a server shows mid-load.
    let text = include_str!("fixtures/info-loading.txt");
    let assessment = assess(
        &Info::parse(text),
        Thresholds {
            warning: 0.8,
            critical: 0.95,
        },
    );
    let finding = &assessment.findings[0];
    assert_eq!(finding.status, Status::Critical);
    assert!(finding.message.contains("not ready"), "{}", finding.message);
    let metric = |name: &str| {
        assessment
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    };
    assert_eq!(metric("loading"), Some(1.0));
    assert_eq!(metric("maxmemory_bytes"), Some(67_108_864.0));
    assert_eq!(metric("memory_used_ratio"), Some(916_936.0 / 67_108_864.0));
}

#[test]
fn paused_server_times_out_and_leaves_no_connections_behind() {
    let server = RedisServer::start().unwrap();
    let mut check = create(local(&server));
    assert_eq!(run(&mut check, Duration::from_secs(5)).status, Status::Ok);

    server.pause().unwrap();
    for _ in 0..3 {
        let result = run(&mut check, Duration::from_millis(500));
        assert_eq!(result.status, Status::Critical);
        assert_eq!(result.reason, Some(Reason::Timeout), "{result:?}");
        assert!(result.message.starts_with("timeout:"), "{}", result.message);
    }
    server.resume().unwrap();
    // The abandoned sockets were closed by the plugin; once redis catches up
    // with its backlog none of them is left.
    eventually("redis to drop the abandoned connections", || {
        server.client_count().unwrap() == 0
    });

    let result = run(&mut check, Duration::from_secs(5));
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert_eq!(server.client_count().unwrap(), 1);
}

#[test]
fn stopped_server_after_a_kept_connection_is_refused() {
    let mut server = RedisServer::start().unwrap();
    let port = server.port();
    let mut check = create(local(&server));
    assert_eq!(run(&mut check, Duration::from_secs(5)).status, Status::Ok);
    server.stop();
    let result = run(&mut check, Duration::from_secs(5));
    assert_eq!(result.reason, Some(Reason::Refused), "{result:?}");
    assert!(
        result.message.contains(&port.to_string()),
        "{}",
        result.message
    );
}

#[test]
fn tls_with_a_private_ca() {
    let server = RedisServer::start_with(&RedisOptions {
        tls: true,
        ..RedisOptions::default()
    })
    .unwrap();
    let tls_port = server.tls_port().unwrap();
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let ca = server.ca_file().display().to_string();
    let result = run(
        &mut create(json!({"url": url, "ca_file": ca, "roundtrip": true})),
        Duration::from_secs(5),
    );
    assert_eq!(result.status, Status::Ok, "{result:?}");

    // Without the CA the server's certificate is not trusted.
    let result = run(&mut create(json!({"url": url})), Duration::from_secs(5));
    assert_eq!(result.reason, Some(Reason::Tls), "{result:?}");
    assert!(result.message.starts_with("tls:"), "{}", result.message);

    // Plain Redis on a TLS port: the handshake cannot complete.
    let plain = json!({"host": "127.0.0.1", "port": tls_port});
    let result = run(&mut create(plain), Duration::from_secs(2));
    assert_eq!(result.status, Status::Critical, "{result:?}");
}

#[test]
fn config_errors_name_the_key() {
    let err = RedisCheck::create(json!({"pasword": "x"}), Host::detached()).unwrap_err();
    assert!(err.contains("`pasword`"), "{err}");
    let err = RedisCheck::create(json!({"db": -1}), Host::detached()).unwrap_err();
    assert!(err.contains("`db`"), "{err}");
}
