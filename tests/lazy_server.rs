//! Runs the `lazy_server` example (`examples/lazy_server.rs`): its whole
//! `main`, the client's deadline against slow and fast answers, and the
//! ticking loop.
//!
//! The client tests use real sockets and the real clock, with an hour-long
//! "slow" answer: only the deadline's cancellation can end such a call, so
//! the assertions are about cause and effect, not about timing. The ticking
//! loop has no I/O and runs on tokio's paused clock.

use std::time::Duration;

use errgroup::{Cancelled, Cause, Error};
use tokio::time::Instant;

#[path = "../examples/lazy_server.rs"]
mod lazy_server;

use lazy_server::{Latency, Outcome, Server, Speed, call, speeds, tick_until_deadline};

/// Only guards against a hang if cancellation were broken; no assertion
/// depends on it.
const HANG_GUARD: Duration = Duration::from_secs(60);
/// Longer than any test runs: an answer this slow never comes.
const NEVER: Duration = Duration::from_secs(3600);
const DEADLINE: Duration = Duration::from_millis(200);

fn always(delay: Duration) -> Latency {
    Latency {
        seed: 1,
        fast: delay,
        slow: delay,
    }
}

#[test]
fn the_example_runs_to_completion() {
    lazy_server::main().expect("the lazy_server example exits 0");
}

#[tokio::test]
async fn a_slow_call_is_abandoned_at_the_deadline_and_the_server_sees_the_client_leave() {
    let mut server = Server::start(always(NEVER)).await.unwrap();

    let start = Instant::now();
    let result = tokio::time::timeout(HANG_GUARD, call(server.addr, 1, DEADLINE))
        .await
        .expect("the call did not return: the deadline did not cancel it");
    let err = result.expect_err("the answer takes an hour");

    // Cancelled from outside by the deadline, not failed by a branch.
    assert!(
        matches!(&err, Error::Cancelled(c) if *c == Cancelled::new(Cause::DeadlineExceeded)),
        "{err:?}"
    );
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert!(err.task().is_none());
    // Not before the deadline: it was the deadline that ended the call.
    assert!(start.elapsed() >= DEADLINE);

    // The request in flight was dropped with its connection: the server's
    // handler, still waiting out its hour, saw the client leave.
    let report = server.served().await.expect("the server reports the call");
    assert_eq!(report.path, "/work/1");
    assert_eq!(report.outcome, Outcome::ClientLeft);
}

#[tokio::test]
async fn a_fast_call_returns_its_body_before_the_deadline() {
    let mut server = Server::start(always(Duration::ZERO)).await.unwrap();

    let body = tokio::time::timeout(HANG_GUARD, call(server.addr, 7, HANG_GUARD))
        .await
        .expect("the call returned")
        .expect("an immediate answer beats an hour-long deadline");

    assert_eq!(body, "/work/7 done");
    let report = server.served().await.expect("the server reports the call");
    assert_eq!(report.outcome, Outcome::Answered);
}

#[tokio::test]
async fn with_random_latency_each_call_ends_as_the_server_chose() {
    const SEED: u64 = 42;
    const CALLS: u32 = 8;
    let latency = Latency {
        seed: SEED,
        fast: Duration::ZERO,
        slow: NEVER,
    };
    let mut server = Server::start(latency).await.unwrap();

    let plan = speeds(SEED, CALLS as usize);
    assert!(
        plan.contains(&Speed::Fast) && plan.contains(&Speed::Slow),
        "{plan:?}"
    );
    for (id, speed) in (1..=CALLS).zip(plan) {
        let result = tokio::time::timeout(HANG_GUARD, call(server.addr, id, DEADLINE))
            .await
            .expect("the call returned");
        let report = server.served().await.expect("the server reports the call");
        assert_eq!(report.path, format!("/work/{id}"));
        assert_eq!(report.speed, speed, "the seeded server is deterministic");
        match speed {
            Speed::Fast => {
                assert_eq!(result.unwrap(), format!("/work/{id} done"));
                assert_eq!(report.outcome, Outcome::Answered);
            }
            Speed::Slow => {
                let err = result.expect_err("a slow call hits the deadline");
                assert!(err.is_cancelled());
                assert_eq!(err.cause(), Cause::DeadlineExceeded);
                assert_eq!(report.outcome, Outcome::ClientLeft);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_ticking_loop_stops_at_the_deadline() {
    let (deadline, tick) = (Duration::from_secs(2), Duration::from_millis(300));
    let start = Instant::now();

    let (units, result) = tick_until_deadline(deadline, tick).await;

    // Ticks at 0.3 s .. 1.8 s did their work; the one due at 2.1 s never came.
    assert_eq!(units, 6);
    let err = result.expect_err("the loop ends only at its deadline");
    assert!(
        matches!(&err, Error::Cancelled(c) if *c.cause() == Cause::DeadlineExceeded),
        "{err:?}"
    );
    assert!(start.elapsed() >= deadline);
    assert!(start.elapsed() < deadline + tick);
}
