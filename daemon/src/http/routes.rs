//! HTTP routes. Every answer comes from cached state; no request runs a check.
//!
//! - `GET /livez`: 200 while the scheduler's heartbeat is fresh, else 503.
//! - `GET /readyz`: 200 once every critical check has passed and none fails.
//! - `GET /health`: host verdict and every check; IETF `health+json` when the
//!   client asks for it in `Accept`.
//! - `GET /health/detailed`: the above plus host resources and the daemon.
//! - `GET /checks`, `GET /checks/{name}`: latest results, metrics, history.
//! - `GET /alerts`: pending and firing alerts of the rules.
//! - `GET /metrics`: Prometheus text format 0.0.4, gzip-compressed when the
//!   client accepts it.
//!
//! `/readyz`, `/health` and `/metrics` are answered from [`AnswerCache`]s:
//! rebuilt when a check records a result, when the clock second they show
//! changes, or when a shown result turns stale, and reused otherwise.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::time::Instant;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::scheduler::HEARTBEAT;
use crate::status::{
    Board, CheckView, Health, HistoryEntry, HostStatus, host_status, readiness_errors, rfc3339,
};
use crate::telemetry::Metrics;

use super::cache::{AnswerCache, Rendered, off_workers_if};

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Check results.
    pub board: Arc<Board>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Pending and firing alerts as of the latest rule evaluation.
    pub alerts: crate::alerting::ActiveAlerts,
    /// HTTP status of `/health` while degraded; changes on reload.
    pub degraded_status: Arc<std::sync::atomic::AtomicU16>,
}

/// What the handlers share: the state, and the answers kept for reuse.
#[derive(Debug)]
struct Shared {
    state: AppState,
    readyz: AnswerCache<u64>,
    health: AnswerCache<HealthKey>,
    ietf: AnswerCache<HealthKey>,
    metrics: AnswerCache<(u64, u64)>,
}

/// What a `/health` answer depends on besides staleness: the board, the
/// second shown as `timestamp` and `uptime`, and the degraded status code.
#[derive(Debug, Clone, Copy, PartialEq)]
struct HealthKey {
    generation: u64,
    wall_secs: u64,
    uptime_secs: u64,
    degraded_status: u16,
}

type State = Arc<Shared>;

/// The heartbeat may lag this much before `/livez` fails.
const LIVENESS_GRACE: Duration = HEARTBEAT.saturating_mul(5);
const HEALTH_JSON: &str = "application/health+json";

/// All routes, with request metrics.
pub fn routes(state: AppState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let metrics = state.metrics.clone();
    let shared = Arc::new(Shared {
        state,
        readyz: AnswerCache::default(),
        health: AnswerCache::default(),
        ietf: AnswerCache::default(),
        metrics: AnswerCache::default(),
    });
    let state = warp::any().map(move || Arc::clone(&shared));
    // HEAD is answered wherever GET is (RFC 9110): some probes and load
    // balancers check with it. hyper sends the head alone.
    let get = warp::get().or(warp::head()).unify();

    let livez = warp::path!("livez").and(get).and(state.clone()).map(livez);
    let readyz = warp::path!("readyz")
        .and(get)
        .and(state.clone())
        .map(readyz);
    let health = warp::path!("health")
        .and(get)
        .and(warp::header::optional::<String>("accept"))
        .and(state.clone())
        .map(health);
    let detailed = warp::path!("health" / "detailed")
        .and(get)
        .and(state.clone())
        .map(detailed);
    let checks = warp::path!("checks")
        .and(get)
        .and(state.clone())
        .map(checks);
    let check = warp::path!("checks" / String)
        .and(get)
        .and(state.clone())
        .map(check);
    let alerts = warp::path!("alerts")
        .and(get)
        .and(state.clone())
        .map(active_alerts);
    let prometheus = warp::path!("metrics")
        .and(get)
        .and(warp::header::optional::<String>("accept-encoding"))
        .and(state)
        .map(prometheus_text);

    livez
        .or(readyz)
        .unify()
        .or(health)
        .unify()
        .or(detailed)
        .unify()
        .or(checks)
        .unify()
        .or(check)
        .unify()
        .or(alerts)
        .unify()
        .or(prometheus)
        .unify()
        .recover(recover)
        .unify()
        .with(warp::log::custom(move |info| {
            let route = route_template(info.path());
            metrics.observe_request(route, info.status().as_u16(), info.elapsed().as_secs_f64());
        }))
}

/// The route a path belongs to, for bounded metric labels.
pub(super) fn route_template(path: &str) -> &'static str {
    match path {
        "/livez" => "/livez",
        "/readyz" => "/readyz",
        "/health" => "/health",
        "/health/detailed" => "/health/detailed",
        "/checks" => "/checks",
        "/metrics" => "/metrics",
        "/alerts" => "/alerts",
        p if p.starts_with("/checks/") => "/checks/{name}",
        _ => "other",
    }
}

fn json_reply(status: StatusCode, body: &Value) -> Response {
    with_status(
        status,
        "application/json",
        serde_json::to_vec(body).expect("JSON values serialise"),
    )
}

fn with_status(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    // Results are redacted when recorded; this catches what else may echo a secret.
    let body = crate::redact::Redactor::global().bytes(body);
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A cached answer as a response; the gzip form when `gzip` and there is one.
fn cached_reply(answer: &Rendered, gzip: bool) -> Response {
    let gzipped = if gzip { answer.gzip() } else { None };
    let body = gzipped.unwrap_or(&answer.body).clone();
    let mut response = Response::new(body.into());
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if answer.compressible() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzipped.is_some() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

fn rendered_json(status: StatusCode, content_type: &'static str, body: &Value) -> Rendered {
    Rendered::new(
        status,
        content_type,
        serde_json::to_vec(body).expect("JSON values serialise"),
        false,
    )
}

/// The first instant at which a result shown in `views` turns stale: until
/// then, answers derived from them hold.
fn stale_deadline(views: &[CheckView]) -> Option<Instant> {
    views
        .iter()
        .filter(|v| !v.stale)
        .filter_map(|v| {
            let last = v.last.as_ref()?;
            last.finished.checked_add(v.spec.stale_age())
        })
        .min()
}

/// Whether `Accept-Encoding` allows gzip (a `q=0` refuses it).
fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|value| {
        value.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
    })
}

fn livez(shared: State) -> Response {
    match shared.state.board.since_heartbeat() {
        Some(age) if age <= LIVENESS_GRACE => {
            json_reply(StatusCode::OK, &json!({"status": "alive"}))
        }
        age => json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({
                "status": "not alive",
                "error": "scheduler heartbeat is late",
                "heartbeat_age_ms": age.map(|a| a.as_millis() as u64),
            }),
        ),
    }
}

fn readyz(shared: State) -> Response {
    let board = &shared.state.board;
    let answer = shared
        .readyz
        .get_or_render(board.generation(), Instant::now(), || {
            let views = board.views();
            let errors = readiness_errors(&views);
            let answer = if errors.is_empty() {
                rendered_json(
                    StatusCode::OK,
                    "application/json",
                    &json!({"status": "ready"}),
                )
            } else {
                rendered_json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    &json!({"status": "not ready", "errors": errors}),
                )
            };
            (answer, stale_deadline(&views))
        });
    cached_reply(&answer, false)
}

fn host_code(state: &AppState, status: HostStatus) -> StatusCode {
    match status {
        HostStatus::Healthy => StatusCode::OK,
        HostStatus::Degraded => StatusCode::from_u16(
            state
                .degraded_status
                .load(std::sync::atomic::Ordering::Relaxed),
        )
        .unwrap_or(StatusCode::OK),
        HostStatus::Unhealthy | HostStatus::Pending => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn latency_ms(view: &CheckView) -> Option<u64> {
    view.last.as_ref().map(|l| l.duration.as_millis() as u64)
}

fn health(accept: Option<String>, shared: State) -> Response {
    let state = &shared.state;
    let wall_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let key = HealthKey {
        generation: state.board.generation(),
        wall_secs,
        uptime_secs: state.board.uptime().as_secs(),
        degraded_status: state
            .degraded_status
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    let ietf = accept.is_some_and(|a| a.contains(HEALTH_JSON));
    let cache = if ietf { &shared.ietf } else { &shared.health };
    let answer = cache.get_or_render(key, Instant::now(), || {
        let views = state.board.views();
        let status = host_status(&views);
        let code = host_code(state, status);
        let answer = if ietf {
            rendered_json(code, HEALTH_JSON, &ietf_health(&views, status))
        } else {
            rendered_json(code, "application/json", &health_json(&views, status, key))
        };
        (answer, stale_deadline(&views))
    });
    cached_reply(&answer, false)
}

fn health_json(views: &[CheckView], status: HostStatus, key: HealthKey) -> Value {
    let checks: serde_json::Map<String, Value> = views
        .iter()
        .map(|v| {
            let body = json!({
                "status": v.health,
                "latency_ms": latency_ms(v),
                "message": v.last.as_ref().map(|l| l.message.as_str()),
                "last_run": v.last.as_ref().map(|l| rfc3339(l.started_at)),
            });
            (v.spec.name.clone(), body)
        })
        .collect();
    json!({
        "status": status.as_str(),
        "timestamp": rfc3339(UNIX_EPOCH + Duration::from_secs(key.wall_secs)),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": key.uptime_secs,
        "checks": checks,
    })
}

/// The IETF "Health Check Response Format for HTTP APIs" draft.
fn ietf_health(views: &[CheckView], status: HostStatus) -> Value {
    let word = |health: Health| match health {
        Health::Healthy => "pass",
        Health::Warning => "warn",
        Health::Unhealthy | Health::Pending => "fail",
    };
    let checks: serde_json::Map<String, Value> = views
        .iter()
        .map(|v| {
            let mut item = json!({
                "componentType": v.spec.plugin,
                "status": word(v.health),
                "observedValue": latency_ms(v),
                "observedUnit": "ms",
            });
            if let Some(last) = &v.last {
                item["time"] = json!(rfc3339(last.started_at));
                if v.health != Health::Healthy {
                    item["output"] = json!(last.message);
                }
            }
            (format!("{}:responseTime", v.spec.name), json!([item]))
        })
        .collect();
    let overall = match status {
        HostStatus::Healthy => "pass",
        HostStatus::Degraded => "warn",
        HostStatus::Unhealthy | HostStatus::Pending => "fail",
    };
    json!({
        "status": overall,
        "version": "1",
        "releaseId": env!("CARGO_PKG_VERSION"),
        "serviceId": "warden",
        "description": format!("host is {}", status.as_str()),
        "checks": checks,
    })
}

fn check_json(view: &CheckView) -> Value {
    let last = view.last.as_ref();
    json!({
        "name": view.spec.name,
        "plugin": view.spec.plugin,
        "critical": view.spec.critical,
        "status": view.health,
        "stale": view.stale,
        "result": last.map(|l| l.outcome),
        "reason": last.and_then(|l| l.reason).map(|r| r.as_str()),
        "message": last.map(|l| l.message.as_str()),
        "last_run": last.map(|l| rfc3339(l.started_at)),
        "duration_ms": last.map(|l| l.duration.as_secs_f64() * 1000.0),
        "interval_seconds": view.spec.interval.as_secs_f64(),
        "timeout_seconds": view.spec.timeout.as_secs_f64(),
        "metrics": last.map_or(&[][..], |l| l.metrics.as_slice()),
    })
}

fn detailed(shared: State) -> Response {
    let state = &shared.state;
    let views = state.board.views();
    let status = host_status(&views);
    let host = views
        .iter()
        .find(|v| v.spec.plugin == "system")
        .and_then(|v| v.last.as_ref())
        .map(|last| json!({"message": last.message, "metrics": last.metrics}));
    let body = json!({
        "status": status.as_str(),
        "timestamp": rfc3339(SystemTime::now()),
        "host": host,
        "daemon": {
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime": state.board.uptime().as_secs(),
            "started_at": rfc3339(state.board.started_wall()),
            "build": {"profile": if cfg!(debug_assertions) { "debug" } else { "release" },
                      "target_os": std::env::consts::OS, "target_arch": std::env::consts::ARCH},
        },
        "checks": views.iter().map(check_json).collect::<Vec<_>>(),
    });
    json_reply(host_code(state, status), &body)
}

fn checks(shared: State) -> Response {
    let views = shared.state.board.views();
    json_reply(
        StatusCode::OK,
        &json!({"checks": views.iter().map(check_json).collect::<Vec<_>>()}),
    )
}

fn check(name: String, shared: State) -> Response {
    let name = percent_encoding::percent_decode_str(&name).decode_utf8_lossy();
    match shared.state.board.view(&name) {
        Some((view, history)) => {
            let mut body = check_json(&view);
            body["history"] = json!(history.iter().rev().collect::<Vec<&HistoryEntry>>());
            json_reply(StatusCode::OK, &body)
        }
        None => json_reply(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no check named {name:?}")}),
        ),
    }
}

fn active_alerts(shared: State) -> Response {
    let mut body = crate::alerting::alerts_json(&shared.state.alerts.snapshot());
    // Annotations are rendered from config text, which may quote a secret.
    crate::redact::Redactor::global().json(&mut body);
    json_reply(StatusCode::OK, &body)
}

/// Boards at least this large render `/metrics` off the async workers
/// (about 10 ms of rendering at this size).
const LARGE_EXPOSITION_CHECKS: usize = 1000;

/// The exposition, rendered at most once per second of uptime unless a
/// check records a result or turns stale: counters not about checks (HTTP
/// requests, rules, notifications, process) may read up to a second old.
fn prometheus_text(accept_encoding: Option<String>, shared: State) -> Response {
    let state = &shared.state;
    let key = (state.board.generation(), state.board.uptime().as_secs());
    let answer = shared.metrics.get_or_render(key, Instant::now(), || {
        let views = state.board.views();
        let deadline = stale_deadline(&views);
        // Tens of thousands of checks take seconds to render.
        let body = off_workers_if(views.len() >= LARGE_EXPOSITION_CHECKS, || {
            state.metrics.encode_views(&views)
        });
        let answer = Rendered::new(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            body,
            true,
        );
        (answer, deadline)
    });
    cached_reply(&answer, accepts_gzip(accept_encoding.as_deref()))
}

async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let (code, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else {
        (StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(json_reply(code, &json!({"error": message})))
}

#[cfg(test)]
mod tests;
