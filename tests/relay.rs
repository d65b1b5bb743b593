//! Runs the relay example (`examples/relay.rs`): its whole `main`, and its
//! four forever-running branches against a real TCP coordinator on loopback,
//! until the coordinator dies or the relay's token parent is cancelled.

use std::io::ErrorKind;
use std::sync::atomic::Ordering;
use std::time::Duration;

use errgroup::Cause;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

#[path = "../examples/relay.rs"]
mod relay;

use relay::{Coordinator, ENDED, Stats, Stop};

/// Only guards against a hang if cancellation were broken; no assertion
/// depends on it.
const HANG_GUARD: Duration = Duration::from_secs(30);

const BRANCHES: [&str; 4] = ["preprocess", "receive", "process", "track"];

#[test]
fn the_example_runs_to_completion() {
    relay::main().expect("the relay example exits 0");
}

/// Runs the relay against a fresh coordinator, kills the coordinator once
/// `height` is committed, and returns the group's error.
async fn relay_until_killed_at(
    height: u64,
    stats: &Stats,
) -> (Coordinator, errgroup::Error<anyhow::Error>) {
    let coordinator = Coordinator::start().await.unwrap();
    let stream = TcpStream::connect(coordinator.addr).await.unwrap();
    let never = CancellationToken::new();
    let (result, reached) = timeout(HANG_GUARD, async {
        tokio::join!(
            relay::relay(stream, Duration::from_millis(1), stats, &never),
            async {
                let reached = stats.wait_for_committed(height).await;
                coordinator.kill();
                reached
            }
        )
    })
    .await
    .expect("the relay did not stop after the coordinator was killed");
    assert!(reached, "block {height} was never committed");
    let err = result.expect_err("the relay outlived its coordinator");
    (coordinator, err)
}

#[tokio::test]
async fn blocks_flow_to_the_coordinator_and_statuses_come_back_in_order() {
    let stats = Stats::default();
    let (coordinator, _err) = relay_until_killed_at(300, &stats).await;

    let sent = stats.blocks_sent.load(Ordering::Relaxed);
    let statuses = stats.statuses.load(Ordering::Relaxed);
    let committed = stats.last_committed.load(Ordering::Relaxed);
    // `process` checks each batch is exactly the next heights (1, 2, 3, ..),
    // so a committed height of 300 means statuses 1..=300 came back in order.
    assert!(committed >= 300, "last committed {committed}");
    assert!(
        statuses >= committed,
        "{statuses} statuses, {committed} committed"
    );
    assert!(sent >= statuses, "{sent} blocks sent, {statuses} statuses");
    assert!(
        coordinator.received.load(Ordering::Relaxed) >= committed,
        "the coordinator saw the blocks"
    );
    // Statuses were processed in batches: at least one per batch.
    let batches = stats.batches.load(Ordering::Relaxed);
    assert!((1..=statuses).contains(&batches), "{batches} batches");
}

#[tokio::test]
async fn killing_the_coordinator_mid_stream_stops_all_four_with_the_wrapped_cause() {
    let stats = Stats::default();
    let (_coordinator, err) = relay_until_killed_at(50, &stats).await;

    // The first branch to see the stream break failed; the group says which.
    let failed = err.task().expect("a branch failed").name().to_owned();
    assert!(
        ["preprocess", "receive"].contains(&failed.as_str()),
        "{failed}"
    );
    let inner = err.into_inner().unwrap();

    // The original cause, wrapped with the context, and nothing else.
    let io = inner
        .root_cause()
        .downcast_ref::<std::io::Error>()
        .expect("the root cause is the socket's error");
    assert!(
        matches!(
            io.kind(),
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "{io:?}"
    );
    assert_eq!(format!("{inner:#}"), format!("{ENDED}: {io}"));
    assert_eq!(inner.to_string(), ENDED);

    // Every branch stopped, and all but the failed one stopped because
    // their ctx or channel operation returned `Err(Cancelled)`.
    let stops = stats.stops();
    let mut names: Vec<_> = stops.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    let mut expected = BRANCHES;
    expected.sort_unstable();
    assert_eq!(names, expected, "{stops:?}");
    for (name, stop) in &stops {
        if *name == failed {
            assert_eq!(*stop, Stop::Failed(format!("{inner:#}")));
        } else {
            assert_eq!(
                *stop,
                Stop::Cancelled(Cause::Failed {
                    task: errgroup::TaskName::new(failed.clone())
                }),
                "{name}"
            );
        }
    }
}

/// Cancelling the relay's token parent shuts it down on purpose: all four
/// branches stop on the cancellation, none fails, and the relay returns `Ok`.
#[tokio::test]
async fn cancelling_the_token_parent_stops_all_four_and_the_relay_returns_ok() {
    let coordinator = Coordinator::start().await.unwrap();
    let stream = TcpStream::connect(coordinator.addr).await.unwrap();
    let stats = Stats::default();
    let stop = CancellationToken::new();
    let (result, reached) = timeout(HANG_GUARD, async {
        tokio::join!(
            relay::relay(stream, Duration::from_millis(1), &stats, &stop),
            async {
                let reached = stats.wait_for_committed(50).await;
                stop.cancel();
                reached
            }
        )
    })
    .await
    .expect("the relay did not stop when its token was cancelled");
    assert!(reached, "block 50 was never committed");
    result.expect("a shutdown is not a failure");

    let stops = stats.stops();
    let mut names: Vec<_> = stops.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    let mut expected = BRANCHES;
    expected.sort_unstable();
    assert_eq!(names, expected, "{stops:?}");
    let by_token = Cause::Parent(Box::new(Cause::Shutdown {
        by: errgroup::TaskName::new("token"),
    }));
    for (name, stop) in &stops {
        assert_eq!(*stop, Stop::Cancelled(by_token.clone()), "{name}");
    }
    // The coordinator is alive: it was the relay that stopped.
    assert!(stats.last_committed.load(Ordering::Relaxed) >= 50);
}
