//! Cached answers stay correct: a new result, a result turning stale and a
//! new clock second each change what `/readyz`, `/health` and `/metrics` say.

use std::io::Read as _;
use std::sync::atomic::AtomicU16;

use warden_plugin_api::Reason;

use super::*;
use crate::status::{Outcome, RunRecord};

fn spec(name: &str) -> crate::status::CheckSpec {
    crate::status::CheckSpec {
        name: name.to_owned(),
        plugin: "scripted".to_owned(),
        critical: true,
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        stale_after: 3,
        fall: 1,
        rise: 1,
    }
}

fn run(outcome: Outcome) -> RunRecord {
    RunRecord::failed(
        outcome,
        Reason::Other,
        outcome.as_str().to_owned(),
        SystemTime::now(),
        Duration::from_millis(3),
    )
}

fn state() -> AppState {
    let board = Board::new([spec("db")]);
    AppState {
        metrics: Metrics::new(Arc::clone(&board)),
        board,
        alerts: crate::alerting::ActiveAlerts::default(),
        degraded_status: Arc::new(AtomicU16::new(200)),
    }
}

async fn get(
    filter: &(impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone + 'static),
    path: &str,
) -> (u16, String) {
    let response = warp::test::request().path(path).reply(filter).await;
    let body = String::from_utf8(response.body().to_vec()).expect("UTF-8");
    (response.status().as_u16(), body)
}

#[tokio::test(start_paused = true)]
async fn readyz_follows_new_results_and_staleness_without_a_new_result() {
    let state = state();
    let board = Arc::clone(&state.board);
    let filter = routes(state);
    assert_eq!(get(&filter, "/readyz").await.0, 503, "pending");
    board.record("db", run(Outcome::Ok));
    assert_eq!(
        get(&filter, "/readyz").await,
        (200, r#"{"status":"ready"}"#.to_owned())
    );
    assert_eq!(
        get(&filter, "/readyz").await.0,
        200,
        "served again from the cache"
    );
    // stale_after 3 x 10 s: stale just past 30 s, with no new result.
    tokio::time::advance(Duration::from_secs(30) + Duration::from_millis(1)).await;
    let (code, body) = get(&filter, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("db: result is stale"), "{body}");
    board.record("db", run(Outcome::Critical));
    let (code, body) = get(&filter, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("db: failing: critical"), "{body}");
}

#[tokio::test(start_paused = true)]
async fn health_and_metrics_follow_results() {
    let state = state();
    let board = Arc::clone(&state.board);
    let filter = routes(state);
    board.record("db", run(Outcome::Ok));
    let (code, body) = get(&filter, "/health").await;
    assert_eq!(code, 200);
    assert!(body.contains(r#""status":"healthy""#), "{body}");
    let (_, metrics) = get(&filter, "/metrics").await;
    assert!(
        metrics.contains(r#"warden_check_up{check="db",plugin="scripted"} 1"#),
        "{metrics}"
    );
    board.record("db", run(Outcome::Critical));
    let (code, body) = get(&filter, "/health").await;
    assert_eq!(code, 503);
    assert!(body.contains(r#""status":"unhealthy""#), "{body}");
    let (_, metrics) = get(&filter, "/metrics").await;
    assert!(
        metrics.contains(r#"warden_check_up{check="db",plugin="scripted"} 0"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_are_gzipped_for_clients_that_accept_it() {
    let state = state();
    state.board.record("db", run(Outcome::Ok));
    let filter = routes(state);
    let response = warp::test::request()
        .path("/metrics")
        .header("accept-encoding", "deflate, gzip;q=0.8")
        .reply(&filter)
        .await;
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert_eq!(response.headers()["vary"], "accept-encoding");
    let mut text = String::new();
    flate2::read::GzDecoder::new(response.body().as_ref())
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert!(text.contains("warden_check_up{"), "{text}");
    let plain = warp::test::request().path("/metrics").reply(&filter).await;
    assert!(plain.headers().get("content-encoding").is_none());
}

#[test]
fn gzip_acceptance_honours_q_zero() {
    assert!(accepts_gzip(Some("gzip")));
    assert!(accepts_gzip(Some("deflate, GZIP;q=0.5")));
    assert!(accepts_gzip(Some("*")));
    assert!(!accepts_gzip(Some("gzip;q=0")));
    assert!(!accepts_gzip(Some("br, identity")));
    assert!(!accepts_gzip(None));
}
