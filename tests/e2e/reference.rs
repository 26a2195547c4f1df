//! The reference situation of config/warden.toml against real servers: a
//! private PostgreSQL, a private Redis and a local JWKS endpoint, so the test
//! can stop and break them without touching the machine's own services.

use std::time::{Duration, Instant};

use warden_test_support::http::{HttpServer, Response};
use warden_test_support::postgres::PgServer;
use warden_test_support::redis::RedisServer;

use crate::harness::{Daemon, TempDir, target_dir};

const WAIT: Duration = Duration::from_secs(30);

/// The RSA public key from RFC 7517 appendix A.1, as identity providers
/// publish their signing keys.
pub(crate) const JWKS: &str = r#"{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"2011-04-29","e":"AQAB",
"n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}]}"#;

/// config/warden.toml as a table, its addresses pointed at private servers
/// and its intervals shortened so a test runs in seconds. Its rule files are
/// kept; they are relative to the directory the config is written to.
pub(crate) fn repointed_reference(pg_port: u16, redis_port: u16, jwks_url: &str) -> toml::Table {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/warden.toml"
    ))
    .expect("reference config");
    let mut config: toml::Table = text.parse().expect("reference config is TOML");
    config["server"]["listen"] = "{addr}".into();
    config["plugins"]["dir"] = target_dir().display().to_string().into();
    config["plugins"]["beside_executable"] = false.into();
    for check in config["check"].as_array_mut().unwrap() {
        let check = check.as_table_mut().unwrap();
        check.insert("interval".into(), "500ms".into());
        check.insert("timeout".into(), "400ms".into());
        let name = check["name"].as_str().unwrap().to_owned();
        let settings = check["config"].as_table_mut().unwrap();
        match name.as_str() {
            "db" => {
                settings.insert("port".into(), i64::from(pg_port).into());
            }
            "cache" => {
                settings.insert(
                    "url".into(),
                    format!("redis://127.0.0.1:{redis_port}/0").into(),
                );
            }
            "auth" => {
                settings.insert("url".into(), jwks_url.into());
            }
            "system" => {
                // The test suite itself keeps the CPU busy; a CPU warning
                // here would say nothing about what these tests are about.
                let mut off = toml::Table::new();
                off.insert("warning".into(), false.into());
                settings.insert("cpu".into(), off.into());
            }
            _ => {}
        }
    }
    config
}

/// The repointed reference config without its rule files, which this test
/// does not copy (the packaging test runs them from /etc/warden).
fn reference_config(pg: &PgServer, redis: &RedisServer, jwks: &HttpServer) -> String {
    let mut config =
        repointed_reference(pg.port(), redis.port(), &jwks.url("/.well-known/jwks.json"));
    config.remove("rule_files");
    toml::to_string(&config).unwrap()
}

#[test]
fn the_reference_config_watches_real_servers() {
    crate::harness::build_plugins();
    let dir = TempDir::new("reference");
    let pg = PgServer::start();
    let mut redis = RedisServer::start().expect("redis-server starts");
    let jwks = HttpServer::start().expect("http server starts");
    jwks.route("/.well-known/jwks.json", Response::json(JWKS));

    let mut daemon = Daemon::with_config(&dir, &reference_config(&pg, &redis, &jwks));
    let host = |d: &Daemon| {
        let r = d.get("/health");
        (r.status, r.json())
    };
    daemon.wait_until("all four checks healthy", WAIT, |d| {
        let body = host(d).1;
        ["db", "cache", "auth", "system"]
            .iter()
            .all(|check| body["checks"][check]["status"] == "healthy")
    });
    let (code, body) = host(&daemon);
    assert_eq!(code, 200);
    for check in ["db", "cache", "auth", "system"] {
        assert_eq!(body["checks"][check]["status"], "healthy", "{body}");
    }
    let metrics = daemon.get("/metrics").body;
    for series in [
        "warden_postgres_",
        "warden_redis_",
        "warden_jwks_",
        "warden_system_",
    ] {
        assert!(metrics.contains(series), "no {series} metrics");
    }

    // The auth server failing only degrades the host.
    jwks.route(
        "/.well-known/jwks.json",
        Response::new(500).body("upstream down"),
    );
    daemon.wait_until("degraded", WAIT, |d| host(d).1["status"] == "degraded");
    assert_eq!(host(&daemon).0, 200);
    assert_eq!(daemon.get("/readyz").status, 200);
    jwks.route("/.well-known/jwks.json", Response::json(JWKS));
    daemon.wait_until("healthy again", WAIT, |d| host(d).1["status"] == "healthy");

    // Stopping Redis makes the host unhealthy on the first failed run.
    let runs_before = daemon.get("/checks/cache").json()["history"]
        .as_array()
        .unwrap()
        .len();
    let stopped = Instant::now();
    redis.stop();
    daemon.wait_until("unhealthy", WAIT, |d| host(d).0 == 503);
    let detected = stopped.elapsed();
    let cache = daemon.get("/checks/cache").json();
    assert_eq!(cache["status"], "unhealthy");
    assert_eq!(cache["reason"], "refused", "{cache}");
    let history = cache["history"].as_array().unwrap();
    let failures = history.iter().take_while(|h| h["outcome"] != "ok").count();
    assert!(
        failures <= 2,
        "unhealthy only after {failures} failed runs (fall = 1): {cache}"
    );
    assert!(history.len() >= runs_before.min(19), "history kept");
    assert_eq!(host(&daemon).1["status"], "unhealthy");
    let readyz = daemon.get("/readyz");
    assert_eq!(readyz.status, 503);
    assert!(readyz.body.contains("cache: failing"), "{}", readyz.body);
    eprintln!("detection after stopping redis: {detected:?} (interval 500ms, timeout 400ms)");
}

/// Messages of the runs recorded for `check` since it last passed.
fn failures_since_ok(daemon: &Daemon, check: &str) -> Vec<(String, String)> {
    let body = daemon.get(&format!("/checks/{check}")).json();
    let history = body["history"].as_array().expect("history");
    let last_ok = history.iter().rposition(|h| h["outcome"] == "ok");
    history[last_ok.map_or(0, |i| i + 1)..]
        .iter()
        .map(|h| {
            let text = |k: &str| h[k].as_str().unwrap_or_default().to_owned();
            (text("outcome"), text("message"))
        })
        .collect()
}

#[test]
fn a_frozen_redis_is_reported_by_the_plugin_naming_its_step() {
    crate::harness::build_plugins();
    let dir = TempDir::new("frozen");
    let redis = RedisServer::start().expect("redis-server starts");
    // The timeout equals the interval: the tightest case, where a plugin
    // that ran to the daemon's own deadline would still be busy at the next
    // tick.
    let text = format!(
        r#"
[server]
listen = "{{addr}}"
[plugins]
dir = "{plugins}"
beside_executable = false
[[check]]
name = "cache"
plugin = "redis"
interval = "1s"
timeout = "1s"
[check.config]
url = "redis://127.0.0.1:{port}/0"
"#,
        plugins = target_dir().display(),
        port = redis.port(),
    );
    let mut daemon = Daemon::with_config(&dir, &text);
    daemon.wait_until("a passing run", WAIT, |d| {
        d.try_get("/readyz").is_some_and(|r| r.status == 200)
    });
    redis.pause().expect("SIGSTOP");
    daemon.wait_until("three failing runs", WAIT, |d| {
        failures_since_ok(d, "cache").len() >= 3
    });
    let failures = failures_since_ok(&daemon, "cache");
    redis.resume().expect("SIGCONT");
    // The plugin's deadline comes before the daemon's, so every run is the
    // plugin's own report of where it waited, never the daemon's bare "no
    // result" or a refusal to call a plugin still busy.
    for (outcome, message) in &failures {
        assert_eq!(outcome, "critical", "{failures:?}");
        assert!(
            message.starts_with("timeout:") && message.contains("during PING"),
            "{failures:?}"
        );
    }
}
