//! Cost of one fresh `/metrics` rendering (what a Prometheus scraping every
//! 10 s gets, since every scrape sees new results), plain and gzipped, for
//! the reference config's four checks and for 1,000 checks. Figures and the
//! command are in docs/benchmarks.md.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use warden::status::{Board, CheckSpec, RunRecord};
use warden::telemetry::Metrics;
use warden_plugin_api::{CheckResult, Metric, Status};

fn spec(name: &str, plugin: &str) -> CheckSpec {
    CheckSpec {
        name: name.to_owned(),
        plugin: plugin.to_owned(),
        critical: true,
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        stale_after: 3,
        fall: 1,
        rise: 1,
    }
}

/// Metrics shaped like what each shipped plugin reports (names, labels and
/// counts as in a run of the reference config).
fn plugin_metrics(plugin: &str) -> Vec<Metric> {
    let m = |name: &str, value: f64| Metric::new(name, value);
    match plugin {
        "system" => {
            let mut out = vec![
                m("cpu_usage_ratio", 0.12),
                m("load1", 0.5),
                m("load5", 0.4),
                m("load15", 0.3),
                m("memory_total_bytes", 25.0e9),
                m("memory_available_bytes", 20.0e9),
                m("memory_used_ratio", 0.2),
                m("swap_total_bytes", 0.0),
                m("swap_used_bytes", 0.0),
                m("uptime_seconds", 12345.0),
            ];
            for (mount, device) in [
                ("/", "/dev/sda1"),
                ("/boot", "/dev/sda2"),
                ("/work", "/dev/sdb"),
            ] {
                for (name, value) in [
                    ("disk_total_bytes", 1.0e11),
                    ("disk_used_bytes", 4.0e10),
                    ("disk_used_ratio", 0.4),
                    ("disk_inodes_used_ratio", 0.05),
                ] {
                    out.push(m(name, value).label("mount", mount).label("device", device));
                }
            }
            out
        }
        "postgres" => [
            ("connect_seconds", 0.003),
            ("query_seconds", 0.0004),
            ("connections", 7.0),
            ("connections_max", 100.0),
            ("connections_reserved", 3.0),
            ("connections_used_ratio", 0.07),
            ("in_recovery", 0.0),
            ("server_version_num", 160004.0),
            ("database_size_bytes", 7.5e6),
            ("xact_commit_total", 1234.0),
            ("xact_rollback_total", 3.0),
            ("deadlocks_total", 0.0),
        ]
        .into_iter()
        .map(|(n, v)| m(n, v))
        .collect(),
        "redis" => [
            ("ping_seconds", 0.0002),
            ("roundtrip_seconds", 0.0005),
            ("used_memory_bytes", 1.0e6),
            ("maxmemory_bytes", 0.0),
            ("connected_clients", 2.0),
            ("blocked_clients", 0.0),
            ("uptime_seconds", 3600.0),
            ("evicted_keys_total", 0.0),
            ("rejected_connections_total", 0.0),
            ("loading", 0.0),
        ]
        .into_iter()
        .map(|(n, v)| m(n, v))
        .collect(),
        "jwks" => vec![
            m("fetch_seconds", 0.002),
            m("body_bytes", 1800.0),
            m("keys", 2.0),
            m("keys_valid", 2.0),
            m("cache_max_age_seconds", 300.0),
            m("key_expiry_seconds", 86400.0).label("kid", "k1"),
            m("key_expiry_seconds", 172800.0).label("kid", "k2"),
        ],
        _ => vec![m("value", 1.0)],
    }
}

/// A board and its metrics with one recorded run per check, and request
/// counters for the routes a load balancer and Prometheus use.
fn populated(checks: &[(String, &str)]) -> Metrics {
    let specs: Vec<CheckSpec> = checks.iter().map(|(n, p)| spec(n, p)).collect();
    let board = Board::new(specs.clone());
    let metrics = Metrics::new(Arc::clone(&board));
    for spec in &specs {
        metrics.register_check(spec);
        let mut result = CheckResult::new(Status::Ok, "fine");
        result.metrics = plugin_metrics(&spec.plugin);
        let record = RunRecord::from_result(result, SystemTime::now(), Duration::from_millis(3));
        metrics.observe_run(spec, &record);
        board.record(&spec.name, record);
    }
    for route in ["/readyz", "/health", "/metrics", "/livez"] {
        metrics.observe_request(route, 200, 0.0002);
    }
    metrics
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

fn render(c: &mut Criterion) {
    let reference: Vec<(String, &str)> = ["system", "postgres", "redis", "jwks"]
        .into_iter()
        .map(|p| (p.to_owned(), p))
        .collect();
    let metrics = populated(&reference);
    eprintln!("reference /metrics: {} bytes", metrics.encode().len());
    c.bench_function("metrics render, reference config", |b| {
        b.iter(|| metrics.encode());
    });
    c.bench_function("metrics render + gzip, reference config", |b| {
        b.iter(|| gzip(&metrics.encode()));
    });

    let many: Vec<(String, &str)> = (0..1000).map(|i| (format!("c{i}"), "noop")).collect();
    let metrics = populated(&many);
    eprintln!("1,000 checks /metrics: {} bytes", metrics.encode().len());
    c.bench_function("metrics render, 1,000 checks", |b| {
        b.iter(|| metrics.encode());
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
