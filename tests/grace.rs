//! `grace = d`, on tokio's paused clock: after cancellation, what still runs `d` later is dropped (in-task) or aborted (spawned, `ctx.spawn`), blocking bodies are waited for, and without cancellation nothing changes.
//!
//! On the paused clock a sleep is an exact step, so "the group returns at
//! cancellation + d" is asserted to the nanosecond. Stubborn branches ignore
//! their ctx and sleep for an hour; had grace no effect, the group would
//! return an hour later and the elapsed-time assertions would fail. Waits
//! that could hang if the code were wrong are bounded by `FAILSAFE`.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use errgroup::{Cause, errgroup};
use tokio::task::yield_now;
use tokio::time::{Instant, sleep};

mod common;
use common::{BumpOnDrop, Counter, FAILSAFE, SetOnDrop, leak, spin_until, within_failsafe};

const HOUR: Duration = Duration::from_secs(3600);
const GRACE: Duration = Duration::from_secs(5);

#[tokio::test(start_paused = true)]
async fn grace_returns_at_cancellation_plus_grace_and_drops_a_stubborn_in_task_branch() {
    let dropped = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let start = Instant::now();
    let err = errgroup! {
        grace = GRACE;
        fails => { sleep(Duration::from_secs(1)).await; Err::<(), _>("boom") },
        stubborn => {
            let _guard = SetOnDrop(&dropped);
            sleep(HOUR).await; // ignores ctx
            finished.store(true, SeqCst);
            Ok(())
        },
    }
    .unwrap_err();
    assert_eq!(
        Instant::now() - start,
        Duration::from_secs(1) + GRACE,
        "the group did not return at cancellation + grace"
    );
    assert_eq!(err.task().unwrap(), "fails");
    assert!(
        dropped.load(SeqCst),
        "the stubborn branch was not dropped when the group returned"
    );
    assert!(!finished.load(SeqCst));
}

#[tokio::test(start_paused = true)]
async fn grace_aborts_a_stubborn_spawn_branch() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let dropped = leak(Counter::default());
    let finished = leak(AtomicBool::new(false));
    let start = Instant::now();
    let err = errgroup! {
        grace = GRACE;
        fails => { sleep(Duration::from_secs(1)).await; Err::<(), _>("boom") },
        #[spawn] stubborn => {
            let _guard = BumpOnDrop(dropped);
            sleep(HOUR).await; // ignores ctx
            finished.store(true, SeqCst);
            Ok(())
        },
    }
    .unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_secs(1) + GRACE);
    assert_eq!(err.task().unwrap(), "fails");
    // The group awaited the aborted task: it has stopped by the time the group returns.
    assert_eq!(
        dropped.get(),
        1,
        "the stubborn task was still alive when the group returned"
    );
    assert_eq!(metrics.num_alive_tasks(), baseline);
    assert!(!finished.load(SeqCst));
}

#[tokio::test(start_paused = true)]
async fn grace_aborts_a_stubborn_ctx_spawn_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let dropped = leak(Counter::default());
    let finished = leak(AtomicBool::new(false));
    let start = Instant::now();
    let err = errgroup! {
        grace = GRACE;
        spawner => {
            ctx.spawn("stubborn", async {
                let _guard = BumpOnDrop(dropped);
                sleep(HOUR).await; // ignores ctx
                finished.store(true, SeqCst);
                Ok::<_, &str>(())
            })
            .unwrap();
            Ok(())
        },
        fails => { sleep(Duration::from_secs(1)).await; Err::<(), _>("boom") },
    }
    .unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_secs(1) + GRACE);
    assert_eq!(err.task().unwrap(), "fails");
    within_failsafe("the stubborn task was never aborted", dropped.reached(1)).await;
    within_failsafe("the group left its task alive", async {
        while metrics.num_alive_tasks() != baseline {
            yield_now().await;
        }
    })
    .await;
    assert!(!finished.load(SeqCst));
}

#[tokio::test(start_paused = true)]
async fn grace_drops_stubborn_fan_out_items_in_task_and_spawned() {
    let in_task = leak(Counter::default());
    let spawned = leak(Counter::default());
    let start = Instant::now();
    let err = errgroup! {
        grace = GRACE;
        local => for _ in 0..3 {
            let _guard = BumpOnDrop(in_task);
            sleep(HOUR).await;
            Ok(())
        },
        #[spawn] remote => for _ in 0..3 {
            let _guard = BumpOnDrop(spawned);
            sleep(HOUR).await;
            Ok(())
        },
        fails => { sleep(Duration::from_secs(1)).await; Err::<(), _>("boom") },
    }
    .unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_secs(1) + GRACE);
    assert_eq!(err.task().unwrap(), "fails");
    assert_eq!(in_task.get(), 3, "in-task items not dropped by the return");
    within_failsafe("the spawned items were never aborted", spawned.reached(3)).await;
}

#[tokio::test(start_paused = true)]
async fn grace_waits_for_a_blocking_branch_instead_of_dropping_it() {
    let release = leak(AtomicBool::new(false));
    let returned = leak(AtomicBool::new(false));
    let stubborn_dropped = AtomicBool::new(false);
    let group_returned = AtomicBool::new(false);
    let start = Instant::now();
    let group = async {
        let result = errgroup! {
            grace = GRACE;
            fails => Err::<u32, _>("boom"),
            // Dropped when the grace period is over: tells the test it is.
            stubborn => {
                let _guard = SetOnDrop(&stubborn_dropped);
                sleep(HOUR).await;
                Ok(0)
            },
            #[blocking] crunch => {
                // Ignores ctx; held until the test releases it (bounded by
                // FAILSAFE so that a broken runtime fails, not hangs).
                spin_until("the test never released the blocking body", || release.load(SeqCst));
                returned.store(true, SeqCst);
                Ok(7)
            },
        };
        assert!(
            returned.load(SeqCst),
            "the group returned before its blocking branch did"
        );
        group_returned.store(true, SeqCst);
        result
    };
    let releaser = async {
        // Let the group see its cancellation (at 0s) and arm the grace timer.
        for _ in 0..3 {
            yield_now().await;
        }
        // The clock does not advance on its own while a blocking body runs:
        // move it by hand, a second at a time, to the end of the grace period.
        let wall = std::time::Instant::now();
        while !stubborn_dropped.load(SeqCst) {
            assert!(wall.elapsed() < FAILSAFE, "the grace period never ended");
            tokio::time::advance(Duration::from_secs(1)).await;
            for _ in 0..3 {
                yield_now().await;
            }
        }
        assert_eq!(
            Instant::now() - start,
            GRACE,
            "grace ended at the wrong time"
        );
        for _ in 0..10 {
            yield_now().await;
        }
        assert!(
            !group_returned.load(SeqCst),
            "the group returned while its blocking branch still ran"
        );
        release.store(true, SeqCst);
    };
    let (result, ()) = tokio::join!(group, releaser);
    assert_eq!(result.unwrap_err().task().unwrap(), "fails");
    assert!(returned.load(SeqCst));
}

#[tokio::test(start_paused = true)]
async fn without_cancellation_grace_changes_nothing() {
    let start = Instant::now();
    let values = errgroup! {
        grace = Duration::from_secs(1);
        slow => { sleep(HOUR).await; Ok::<_, ()>(42) },
        #[spawn] spawned_slow => { sleep(HOUR).await; Ok("spawned") },
        quick => Ok("quick"),
    }
    .unwrap();
    assert_eq!(values, (42, "spawned", "quick"));
    assert_eq!(Instant::now() - start, HOUR);
}

#[tokio::test(start_paused = true)]
async fn branches_that_stop_within_grace_end_the_group_before_it_expires() {
    let start = Instant::now();
    let err = errgroup! {
        grace = GRACE;
        fails => { sleep(Duration::from_secs(1)).await; Err::<(), _>("boom") },
        // Cleans up for 2s after the cancellation, well inside the grace.
        cooperative => {
            ctx.cancelled().await;
            sleep(Duration::from_secs(2)).await;
            Ok(())
        },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "fails");
    assert_eq!(Instant::now() - start, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn grace_starts_at_a_deadline_cancellation_too() {
    let start = Instant::now();
    let dropped = AtomicBool::new(false);
    let err = errgroup! {
        timeout = Duration::from_secs(2);
        grace = GRACE;
        stubborn => {
            let _guard = SetOnDrop(&dropped);
            sleep(HOUR).await;
            Ok::<_, ()>(())
        },
    }
    .unwrap_err();
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert_eq!(Instant::now() - start, Duration::from_secs(2) + GRACE);
    assert!(dropped.load(SeqCst));
}

/// Semantic 3 for `#[spawn] for` after `grace`: the items still running are
/// aborted and awaited, so every one has stopped (its drop guard has run)
/// by the time the group returns, on two workers where an item may be
/// mid-poll on the other one when the abort is asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_aborts_and_awaits_every_item_of_a_spawn_fan_out() {
    for _ in 0..20 {
        let dropped = leak(Counter::default());
        let started = leak(Counter::default());
        let err = within_failsafe("the group never returned", async {
            errgroup! {
                grace = Duration::from_millis(20);
                #[spawn] loops => for _ in 0..4 {
                    let _guard = BumpOnDrop(dropped);
                    started.bump();
                    // Ignores ctx; bounded so that a broken abort fails the
                    // assertion below instead of spinning forever.
                    for _ in 0..600_000 {
                        sleep(Duration::from_millis(1)).await;
                    }
                    Ok(())
                },
                fails => {
                    started.reached(4).await;
                    sleep(Duration::from_millis(10)).await;
                    Err::<(), _>("boom")
                },
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.task().unwrap(), "fails");
        assert_eq!(
            dropped.get(),
            4,
            "items of the spawned fan-out still ran after the group returned"
        );
    }
}
