//! The HTTP server: warp routes behind an accept loop of our own, so that
//! connections are capped, slow or idle clients time out, and shutdown
//! drains within a bound.
//!
//! Bounds: request heads over [`MAX_HEAD_BYTES`] get 431; a connection
//! that sends no complete head within [`HEADER_TIMEOUT`] is closed, and the
//! same timer runs again between keep-alive requests, so idle connections
//! are closed after it too; at most [`MAX_CONNECTIONS`] are served at once;
//! admin endpoints read no body and refuse large ones.

mod access;
mod admin;
mod cache;
mod diagnostics;
mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use warp::Filter as _;

pub use admin::{Admin, MAX_ADMIN_RUNS, Peer};
pub use routes::{AppState, routes};

/// Most connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// A client must send its request headers within this time, and an idle
/// keep-alive connection is closed after it.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long shutdown waits for open requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `state` and the admin endpoints on `listener` until `shutdown`
/// resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    admin: Arc<Admin>,
    shutdown: impl Future<Output = ()>,
) {
    let service = access::AccessLog::new(TowerToHyperService::new(warp::service(
        admin::routes(admin).or(routes(state)),
    )));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(
                TokioIo::new(stream),
                // The client's address goes into every request, for the security log.
                hyper::service::service_fn({
                    let service = service.clone();
                    move |mut request: hyper::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(Peer(peer));
                        hyper::service::Service::call(&service, request)
                    }
                }),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }

    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_ms = DRAIN_TIMEOUT.as_millis() as u64,
            "HTTP drain timed out"
        );
    }
}
