//! Runs the quickstart example (`examples/quickstart.rs`): its whole `main`, and
//! its server and `errgroup!` client with assertions on what happened.

use std::time::Duration;

use errgroup::{Cause, TaskName};

#[path = "../examples/quickstart.rs"]
mod quickstart;

use quickstart::{Outcome, Served, Server, fetch_all};

/// Only guards against a hang if cancellation were broken; no assertion
/// depends on it.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[test]
fn the_example_runs_to_completion() {
    quickstart::main().expect("the quickstart example exits 0");
}

#[tokio::test]
async fn the_failing_fetch_names_itself_and_cancels_the_slow_one_before_it_is_answered() {
    // `/orders` would take an hour: only cancellation can end that fetch, and
    // `errgroup!` returns only once every branch has returned.
    let mut server = Server::start(Duration::from_secs(3600)).await.unwrap();

    let result = tokio::time::timeout(HANG_GUARD, fetch_all(server.addr))
        .await
        .expect("errgroup! did not return: the slow fetch was not cancelled");
    let err = result.expect_err("/recommendations is broken, so the group fails");

    assert_eq!(err.task().unwrap(), "recommendations");
    assert_eq!(
        err.cause(),
        Cause::Failed {
            task: TaskName::new("recommendations")
        }
    );
    assert_eq!(
        err.to_string(),
        "task `recommendations` failed: GET /recommendations: 500 Internal Server Error"
    );

    // The server's log is written before each response goes out, so its order
    // is causal: the 500 was on its way before the /orders client hung up, and
    // /orders was never answered.
    let log = server.served(3).await;
    let order: Vec<(&str, Outcome)> = log.iter().map(|s| (s.path.as_str(), s.outcome)).collect();
    let failed = order
        .iter()
        .position(|&o| o == ("/recommendations", Outcome::Answered(500)));
    let left = order
        .iter()
        .position(|&o| o == ("/orders", Outcome::ClientLeft));
    assert!(
        matches!((failed, left), (Some(f), Some(l)) if f < l),
        "expected the 500 before /orders' client left, got {log:?}"
    );
    assert!(
        order.contains(&("/user", Outcome::Answered(200))),
        "{log:?}"
    );
}

#[tokio::test]
async fn without_the_failure_all_three_values_arrive_in_branch_order() {
    let mut server = Server::start(Duration::from_millis(200)).await.unwrap();
    server.fix_recommendations();

    let (user, orders, recommendations) = tokio::time::timeout(HANG_GUARD, fetch_all(server.addr))
        .await
        .expect("errgroup! returned")
        .expect("every fetch succeeds");

    assert_eq!(user, r#"{"id": 7, "name": "Ada Lovelace"}"#);
    assert_eq!(
        orders,
        r#"[{"id": 1, "total": 42.5}, {"id": 2, "total": 7.25}]"#
    );
    assert_eq!(
        recommendations,
        r#"["Sketch of the Analytical Engine", "Notes by the Translator"]"#
    );

    // The server answered all three: nothing was cancelled.
    let mut log: Vec<Served> = server.served(3).await;
    log.sort_by(|a, b| a.path.cmp(&b.path));
    let outcomes: Vec<(&str, Outcome)> = log.iter().map(|s| (s.path.as_str(), s.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            ("/orders", Outcome::Answered(200)),
            ("/recommendations", Outcome::Answered(200)),
            ("/user", Outcome::Answered(200)),
        ]
    );
}
