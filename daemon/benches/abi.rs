//! Plugin ABI costs: one no-op check called in process (`Instance::check`)
//! and isolated (a round trip through a `warden plugin-host` child), and the
//! JSON encode and decode of a typical check result. Figures and the command
//! that produced them are in docs/benchmarks.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use warden::isolation::{ChildSpec, Process};
use warden::plugin::{Instance, Library};
use warden::scheduler::Runner;
use warden::status::Outcome;
use warden_plugin_api::{CheckResult, Metric, Reason};

const TIMEOUT: Duration = Duration::from_secs(5);

/// The `warden` binary cargo built for this benchmark, in its profile.
fn warden_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_warden"))
}

/// Builds the no-op plugin in the benchmark's (release) profile and returns
/// its path.
fn noop_library() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "warden-test-plugin-noop",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the noop plugin failed");
    let path = warden_bin()
        .parent()
        .expect("binary has a directory")
        .join("libwarden_test_noop.so");
    assert!(path.exists(), "{} was not built", path.display());
    path
}

fn noop_check(c: &mut Criterion) {
    let path = noop_library();
    let library = Arc::new(Library::open(&path).expect("noop plugin loads"));
    let config = serde_json::json!({});

    let mut instance = Instance::create(Arc::clone(&library), "bench", &config).expect("create");
    c.bench_function("noop check, in process", |b| {
        b.iter(|| instance.check(TIMEOUT).expect("noop check"));
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let runner = Runner::Process(Process::new(ChildSpec {
        program: warden_bin(),
        library: path,
        plugin: library.name.clone(),
        check: "bench".to_owned(),
        config,
    }));
    // The first run starts the child; measure only the calls after it.
    let first = runtime.block_on(runner.run(TIMEOUT));
    assert_eq!(first.outcome, Outcome::Ok, "{}", first.message);
    c.bench_function("noop check, isolated (child process)", |b| {
        b.iter(|| {
            let record = runtime.block_on(runner.run(TIMEOUT));
            assert_eq!(record.outcome, Outcome::Ok, "{}", record.message);
        });
    });
}

/// A typical result: five metrics, each with a unit and labels.
fn typical_result() -> CheckResult {
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let metric = |name: &str, value: f64, unit: &str, pairs: &[(&str, &str)]| Metric {
        name: name.to_owned(),
        value,
        unit: Some(unit.to_owned()),
        labels: labels(pairs),
    };
    CheckResult::warning("3 of 4 replicas in sync; replay lag 2.5 s on db-3")
        .with_reason(Reason::Threshold)
        .with_metrics([
            metric("connect_seconds", 0.0021, "seconds", &[("step", "tcp")]),
            metric("query_seconds", 0.0008, "seconds", &[("query", "select_1")]),
            metric(
                "replication_lag_seconds",
                2.5,
                "seconds",
                &[("replica", "db-3"), ("slot", "standby_3")],
            ),
            metric(
                "connections_used_ratio",
                0.41,
                "ratio",
                &[("role", "primary")],
            ),
            metric(
                "database_size_bytes",
                7.3e9,
                "bytes",
                &[("database", "app")],
            ),
        ])
}

fn result_json(c: &mut Criterion) {
    let result = typical_result();
    c.bench_function("CheckResult JSON encode + decode (5 metrics)", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(std::hint::black_box(&result)).expect("encode");
            serde_json::from_slice::<CheckResult>(&bytes).expect("decode")
        });
    });
}

criterion_group!(benches, noop_check, result_json);
criterion_main!(benches);
