//! The request log: one line per HTTP request (target
//! `warden::http::access`) with method, route template, status, duration
//! and request id, and the `X-Request-Id` header on every answer.
//!
//! An incoming `X-Request-Id` is kept when it is short printable ASCII;
//! otherwise one is made up. Successful health probes (`/livez`, `/readyz`,
//! `/health`) are logged one in `[log] probe_sample`, so a load balancer
//! asking thousands of times a second does not flood the log; every other
//! request, and every answer of 400 or more, is logged.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use tracing::Instrument as _;
use warp::http::HeaderValue;

use super::routes::route_template;

/// Target of the request log lines.
pub(crate) const ACCESS_TARGET: &str = "warden::http::access";
const X_REQUEST_ID: &str = "x-request-id";
/// Longest incoming request id kept.
const MAX_ID_LEN: usize = 64;
/// Routes whose successful answers are sampled.
const PROBES: [&str; 3] = ["/livez", "/readyz", "/health"];

/// Successful probe requests seen, for sampling.
static PROBES_SEEN: AtomicU64 = AtomicU64::new(0);

/// Wraps the routes' service with the request log.
#[derive(Debug, Clone)]
pub(crate) struct AccessLog<S> {
    inner: S,
}

impl<S> AccessLog<S> {
    pub(crate) fn new(inner: S) -> Self {
        AccessLog { inner }
    }
}

type Answer<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for AccessLog<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Answer<B, S::Error>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let started = Instant::now();
        let id = request_id(request.headers().get(X_REQUEST_ID));
        let method = method_label(request.method());
        let route = route_template(request.uri().path());
        // Whatever the handlers log carries the request id.
        let span = tracing::info_span!(target: "warden::http", "request", request_id = %id);
        let answer = span.in_scope(|| self.inner.call(request)).instrument(span);
        Box::pin(async move {
            let mut response = answer.await?;
            let status = response.status().as_u16();
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(X_REQUEST_ID, value);
            }
            if logged(route, status) {
                let duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
                tracing::info!(
                    target: ACCESS_TARGET,
                    method,
                    route,
                    status,
                    duration_ms,
                    request_id = %id,
                    "request"
                );
            }
            Ok(response)
        })
    }
}

/// The incoming id when it is 1 to 64 printable ASCII characters without
/// spaces, else 16 fresh hex digits.
fn request_id(incoming: Option<&HeaderValue>) -> String {
    match incoming.map(HeaderValue::as_bytes) {
        Some(id) if (1..=MAX_ID_LEN).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic) => {
            String::from_utf8_lossy(id).into_owned()
        }
        _ => format!("{:016x}", fastrand::u64(..)),
    }
}

/// The method, bounded: anything unusual is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Whether this answer goes into the request log.
fn logged(route: &str, status: u16) -> bool {
    if status >= 400 || !PROBES.contains(&route) {
        return true;
    }
    sampled(&PROBES_SEEN, crate::telemetry::probe_sample())
}

/// One in `every` calls is true (the first one included); never for 0.
fn sampled(seen: &AtomicU64, every: u32) -> bool {
    every != 0
        && seen
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(u64::from(every))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_incoming_id_is_kept_and_anything_else_replaced() {
        let keep = HeaderValue::from_static("abc-123_XYZ.9");
        assert_eq!(request_id(Some(&keep)), "abc-123_XYZ.9");
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_static("has space"),
            HeaderValue::from_bytes(&[b'a', 0xff]).expect("opaque bytes are allowed in headers"),
            HeaderValue::from_str(&"x".repeat(MAX_ID_LEN + 1)).expect("long"),
        ] {
            let id = request_id(Some(&bad));
            assert_eq!(id.len(), 16, "{bad:?} -> {id}");
            assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
        let made = request_id(None);
        assert_eq!(made.len(), 16);
        assert_ne!(made, request_id(None), "fresh ids differ");
    }

    #[test]
    fn sampling_logs_one_in_n_and_zero_means_none() {
        let seen = AtomicU64::new(0);
        assert_eq!((0..200).filter(|_| sampled(&seen, 100)).count(), 2);
        let seen = AtomicU64::new(0);
        assert_eq!((0..5).filter(|_| sampled(&seen, 1)).count(), 5);
        let seen = AtomicU64::new(0);
        assert_eq!((0..50).filter(|_| sampled(&seen, 0)).count(), 0);
    }

    #[test]
    fn errors_and_other_routes_are_always_logged() {
        assert!(logged("/checks", 200));
        assert!(logged("other", 404));
        assert!(logged("/readyz", 503));
    }
}
