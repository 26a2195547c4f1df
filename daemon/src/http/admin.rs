//! Admin endpoints, behind `Authorization: Bearer TOKEN`:
//!
//! - `POST /checks/{name}/run`: run the check now through its own task (so
//!   it never overlaps a scheduled run), record the result like any other,
//!   and answer with it. At most [`MAX_ADMIN_RUNS`] at once; more get 429.
//! - `GET /diagnostics`: build, plugins, the effective config with secrets
//!   redacted, runtime figures.
//!
//! Without a configured token both answer 404, as if they did not exist.
//! The token is compared as SHA-256 digests in constant time, so neither its
//! content nor its length leaks through timing. Every admin action and every
//! refused attempt is logged under target `warden::security` with the route,
//! the remote address and the outcome; never the token.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::diagnostics;
use crate::config::Config;
use crate::plugin::Catalog;
use crate::redact::Redactor;
use crate::scheduler::{TriggerError, Triggers};
use crate::status::{Board, rfc3339};
use crate::telemetry::Metrics;

/// Admin runs in progress at once; a run holds a blocking thread or a child.
pub const MAX_ADMIN_RUNS: usize = 4;
/// Largest request body an admin endpoint accepts; none reads one.
const MAX_BODY_BYTES: u64 = 1024;
/// Beyond the check's own deadlines (a scheduled run may be ahead of ours),
/// how long a run request waits before answering 504.
const RUN_WAIT_SLACK: Duration = Duration::from_secs(5);

/// The client's address, put into each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// What the admin endpoints read; updated at start and on every reload.
pub struct Admin {
    token: RwLock<Option<[u8; 32]>>,
    snapshot: RwLock<Arc<Value>>,
    runs: Arc<Semaphore>,
    triggers: Triggers,
    board: Arc<Board>,
    metrics: Metrics,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("enabled", &self.enabled())
            .finish_non_exhaustive()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Admin {
    /// Admin state for `config`; `triggers` reach the scheduled checks.
    pub fn new(
        config: &Config,
        catalog: &Catalog,
        triggers: Triggers,
        board: Arc<Board>,
        metrics: Metrics,
    ) -> Admin {
        let admin = Admin {
            token: RwLock::new(None),
            snapshot: RwLock::new(Arc::new(Value::Null)),
            runs: Arc::new(Semaphore::new(MAX_ADMIN_RUNS)),
            triggers,
            board,
            metrics,
        };
        admin.configure(config, catalog);
        admin
    }

    /// Takes the token, secrets and config of a (re)loaded config. Secrets
    /// join the daemon-wide redactor first, so nothing shown after this
    /// returns can carry them.
    pub fn configure(&self, config: &Config, catalog: &Catalog) {
        let redactor = Redactor::global();
        redactor.add(&config.secrets);
        let token = config
            .server
            .admin_token
            .as_ref()
            .filter(|t| !t.expose().is_empty())
            .map(|t| digest(t.expose().as_bytes()));
        *self.token.write().unwrap_or_else(PoisonError::into_inner) = token;
        let snapshot = json!({
            "config": diagnostics::effective_config(config, redactor),
            "plugins": diagnostics::plugins(catalog),
        });
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
    }

    fn enabled(&self) -> bool {
        self.token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// `Ok` when `authorization` carries the token; else why not.
    fn authorize(
        &self,
        route: &'static str,
        peer: Option<Peer>,
        authorization: Option<&str>,
    ) -> Result<(), Refused> {
        let remote = peer.map_or_else(|| "unknown".to_owned(), |p| p.0.to_string());
        let Some(expected) = *self.token.read().unwrap_or_else(PoisonError::into_inner) else {
            tracing::info!(target: "warden::security", route, %remote, outcome = "disabled", "admin request without an admin token configured");
            return Err(Refused::Disabled);
        };
        let presented = authorization.and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        let Some(presented) = presented else {
            tracing::warn!(target: "warden::security", route, %remote, outcome = "missing", "admin request refused: no bearer token");
            return Err(Refused::Missing);
        };
        if bool::from(digest(presented.as_bytes()).ct_eq(&expected)) {
            tracing::info!(target: "warden::security", route, %remote, outcome = "granted", "admin request");
            Ok(())
        } else {
            tracing::warn!(target: "warden::security", route, %remote, outcome = "invalid", "admin request refused: wrong token");
            Err(Refused::Invalid)
        }
    }
}

/// Why an admin request was refused.
#[derive(Debug, Clone, Copy)]
enum Refused {
    /// No admin token is configured: the endpoints do not exist.
    Disabled,
    /// No bearer token was presented.
    Missing,
    /// The wrong one was.
    Invalid,
}

impl Refused {
    fn response(self) -> Response {
        match self {
            Refused::Disabled => error(StatusCode::NOT_FOUND, "not found"),
            Refused::Missing => unauthorized(r#"Bearer realm="warden""#),
            Refused::Invalid => unauthorized(r#"Bearer realm="warden", error="invalid_token""#),
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let body = Redactor::global().bytes(serde_json::to_vec(body).expect("JSON values serialise"));
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({"error": message}))
}

fn unauthorized(challenge: &'static str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// The admin routes; other paths are rejected so the public routes answer.
pub(super) fn routes(
    admin: Arc<Admin>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let metrics = admin.metrics.clone();
    let admin = warp::any().map(move || Arc::clone(&admin));
    let caller =
        warp::header::optional::<String>("authorization").and(warp::ext::optional::<Peer>());
    let run = warp::path!("checks" / String / "run")
        .and(warp::post())
        .and(warp::header::optional::<u64>("content-length"))
        .and(caller)
        .and(admin.clone())
        .then(run_now);
    let diagnostics = warp::path!("diagnostics")
        .and(warp::get().or(warp::head()).unify())
        .and(caller)
        .and(admin)
        .then(show_diagnostics);
    run.or(diagnostics)
        .unify()
        .with(warp::log::custom(move |info| {
            let route = if info.path() == "/diagnostics" {
                "/diagnostics"
            } else {
                "/checks/{name}/run"
            };
            metrics.observe_request(route, info.status().as_u16(), info.elapsed().as_secs_f64());
        }))
}

async fn run_now(
    name: String,
    content_length: Option<u64>,
    authorization: Option<String>,
    peer: Option<Peer>,
    admin: Arc<Admin>,
) -> Response {
    const ROUTE: &str = "/checks/{name}/run";
    if let Err(refused) = admin.authorize(ROUTE, peer, authorization.as_deref()) {
        return refused.response();
    }
    if content_length.is_some_and(|n| n > MAX_BODY_BYTES) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "this endpoint takes no body");
    }
    let name = percent_encoding::percent_decode_str(&name)
        .decode_utf8_lossy()
        .into_owned();
    let Ok(_permit) = Arc::clone(&admin.runs).try_acquire_owned() else {
        tracing::warn!(target: "warden::security", route = ROUTE, check = %name, outcome = "throttled", "admin run refused: too many at once");
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "too many admin runs at once");
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let Some((view, _)) = admin.board.view(&name) else {
        return error(StatusCode::NOT_FOUND, &format!("no check named {name:?}"));
    };
    let answer = match admin.triggers.trigger(&name) {
        Ok(answer) => answer,
        Err(TriggerError::NoSuchCheck(_)) => {
            return error(StatusCode::NOT_FOUND, &format!("no check named {name:?}"));
        }
        Err(busy @ TriggerError::Busy(_)) => {
            tracing::warn!(target: "warden::security", route = ROUTE, check = %name, outcome = "busy", "admin run refused: runs of this check already queued");
            return error(StatusCode::TOO_MANY_REQUESTS, &busy.to_string());
        }
    };
    tracing::info!(target: "warden::security", route = ROUTE, check = %name, "admin run requested");
    let wait = view.spec.timeout.saturating_mul(2) + RUN_WAIT_SLACK;
    let record = match tokio::time::timeout(wait, answer).await {
        Ok(Ok(record)) => record,
        Ok(Err(_)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the check was removed or the daemon is stopping",
            );
        }
        Err(_) => {
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                "no result in time; it is recorded when it comes",
            );
        }
    };
    let health = admin.board.view(&name).map(|(view, _)| view.health);
    json_response(
        StatusCode::OK,
        &json!({
            "name": name,
            "status": health,
            "result": record.outcome,
            "reason": record.reason.map(|r| r.as_str()),
            "message": record.message,
            "started_at": rfc3339(record.started_at),
            "duration_ms": record.duration.as_secs_f64() * 1000.0,
            "metrics": record.metrics,
        }),
    )
}

async fn show_diagnostics(
    authorization: Option<String>,
    peer: Option<Peer>,
    admin: Arc<Admin>,
) -> Response {
    if let Err(refused) = admin.authorize("/diagnostics", peer, authorization.as_deref()) {
        return refused.response();
    }
    let snapshot = Arc::clone(
        &admin
            .snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner),
    );
    json_response(
        StatusCode::OK,
        &json!({
            "build": diagnostics::build(),
            "plugins": snapshot["plugins"],
            "config": snapshot["config"],
            "runtime": diagnostics::runtime(admin.board.uptime()),
        }),
    )
}
