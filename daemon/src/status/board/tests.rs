use super::*;

fn spec(name: &str, critical: bool, fall: u32, rise: u32) -> CheckSpec {
    CheckSpec {
        name: name.to_owned(),
        plugin: "scripted".to_owned(),
        critical,
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        stale_after: 3,
        fall,
        rise,
    }
}

fn run(outcome: Outcome) -> RunRecord {
    RunRecord::failed(
        outcome,
        warden_plugin_api::Reason::Other,
        outcome.as_str().to_owned(),
        SystemTime::now(),
        Duration::from_millis(3),
    )
}

fn health(board: &Board, name: &str) -> Health {
    board.view(name).unwrap().0.health
}

#[tokio::test(start_paused = true)]
async fn fall_and_rise_need_consecutive_runs() {
    let board = Board::new([spec("db", true, 2, 3)]);
    assert_eq!(health(&board, "db"), Health::Pending);
    assert_eq!(host_status(&board.views()), HostStatus::Pending);

    board.record("db", run(Outcome::Ok));
    assert_eq!(health(&board, "db"), Health::Healthy);
    assert!(readiness_errors(&board.views()).is_empty());

    board.record("db", run(Outcome::Critical));
    assert_eq!(
        health(&board, "db"),
        Health::Warning,
        "one failure is below fall=2"
    );
    board.record("db", run(Outcome::Ok));
    board.record("db", run(Outcome::Timeout));
    assert_eq!(
        health(&board, "db"),
        Health::Warning,
        "the streak was broken"
    );
    board.record("db", run(Outcome::Error));
    assert_eq!(health(&board, "db"), Health::Unhealthy);
    assert_eq!(host_status(&board.views()), HostStatus::Unhealthy);

    board.record("db", run(Outcome::Ok));
    board.record("db", run(Outcome::Ok));
    assert_eq!(
        health(&board, "db"),
        Health::Unhealthy,
        "two passes are below rise=3"
    );
    board.record("db", run(Outcome::Ok));
    assert_eq!(health(&board, "db"), Health::Healthy);
}

#[tokio::test(start_paused = true)]
async fn stale_results_count_as_failing() {
    let board = Board::new([spec("db", true, 1, 1)]);
    board.record("db", run(Outcome::Ok));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        health(&board, "db"),
        Health::Healthy,
        "exactly three intervals is not yet stale"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    let (view, _) = board.view("db").unwrap();
    assert_eq!((view.health, view.stale), (Health::Unhealthy, true));
    assert_eq!(readiness_errors(&board.views()), ["db: result is stale"]);
}

#[tokio::test(start_paused = true)]
async fn non_critical_failures_and_warnings_only_degrade() {
    let board = Board::new([spec("db", true, 1, 1), spec("auth", false, 1, 1)]);
    board.record("db", run(Outcome::Ok));
    board.record("auth", run(Outcome::Critical));
    assert_eq!(host_status(&board.views()), HostStatus::Degraded);
    assert!(readiness_errors(&board.views()).is_empty());

    board.record("auth", run(Outcome::Ok));
    board.record("db", run(Outcome::Warning));
    assert_eq!(host_status(&board.views()), HostStatus::Degraded);
    board.record("db", run(Outcome::Ok));
    assert_eq!(host_status(&board.views()), HostStatus::Healthy);
}

#[tokio::test(start_paused = true)]
async fn a_first_failure_is_not_ready_and_history_is_bounded() {
    let board = Board::new([spec("db", true, 3, 1)]);
    board.record("db", run(Outcome::Unknown));
    assert_eq!(health(&board, "db"), Health::Unhealthy);
    assert_eq!(readiness_errors(&board.views()), ["db: failing: unknown"]);
    for _ in 0..(HISTORY_LEN + 5) {
        board.record("db", run(Outcome::Ok));
    }
    assert_eq!(board.view("db").unwrap().1.len(), HISTORY_LEN);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_age_is_measured() {
    let board = Board::new([]);
    assert_eq!(board.since_heartbeat(), None);
    tokio::time::advance(Duration::from_secs(1)).await;
    board.beat();
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(board.since_heartbeat(), Some(Duration::from_secs(4)));
}

#[tokio::test(start_paused = true)]
async fn reconcile_keeps_state_only_for_kept_checks() {
    let board = Board::new([
        spec("db", true, 1, 1),
        spec("cache", true, 1, 1),
        spec("gone", true, 1, 1),
    ]);
    board.record("db", run(Outcome::Ok));
    board.record("cache", run(Outcome::Ok));
    board.reconcile(
        vec![
            spec("new", false, 1, 1),
            spec("cache", true, 1, 1),
            spec("db", true, 1, 1),
        ],
        &|name| name == "db",
    );
    let names: Vec<String> = board.views().into_iter().map(|v| v.spec.name).collect();
    assert_eq!(names, ["new", "cache", "db"]);
    assert_eq!(health(&board, "db"), Health::Healthy);
    assert_eq!(board.view("db").unwrap().1.len(), 1);
    assert_eq!(
        health(&board, "cache"),
        Health::Pending,
        "a changed check starts afresh"
    );
    assert!(board.view("gone").is_none());
}
