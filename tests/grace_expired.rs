//! A stop that abandoned work never reads as a clean one: a group shut
//! down on purpose whose `grace` then expired dropped or aborted what
//! still ran. Its error is not `is_shutdown()`,
//! `allow_shutdown()` keeps it, `is_grace_expired()` says why, and its
//! message says so; whatever kind of branch or task was abandoned, and in
//! nested groups. A stop within grace is still clean.
//!
//! Every test runs on tokio's paused clock: grace expires at its instant.

use std::time::Duration;

use errgroup::{AllowShutdown, Cancelled, Error, Group, errgroup};
use tokio::time::sleep;

const HOUR: Duration = Duration::from_secs(3600);
const GRACE: Duration = Duration::from_secs(2);

/// What a clean stop and an abandoned one must each say.
fn assert_abandoned<E: std::fmt::Debug>(err: &Error<E>, stubborn: &str) {
    assert!(err.cause().is_shutdown(), "why: a shutdown ({err:?})");
    assert!(err.is_grace_expired(), "{err:?}");
    assert!(
        !err.is_shutdown(),
        "an abandoned stop is not clean: {err:?}"
    );
    let report = err.still_running().expect("the report of what was dropped");
    assert!(
        report.tasks().iter().any(|r| r.task() == stubborn),
        "{stubborn} is not in {report}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_in_task_branch_dropped_by_grace_keeps_the_error() {
    let result = errgroup! {
        grace = GRACE;
        type Error = Cancelled;
        stubborn => { sleep(HOUR).await; Ok(()) },
        admin => { ctx.shutdown(); Ok(()) },
    };
    let err = result.as_ref().unwrap_err();
    assert_abandoned(err, "stubborn");
    assert_eq!(
        err.to_string(),
        "group cancelled: shut down by `admin`, then grace expired"
    );
    assert!(result.allow_shutdown().is_err(), "work was dropped");
}

#[tokio::test(start_paused = true)]
async fn spawned_and_fanned_out_work_aborted_by_grace_keeps_the_error() {
    let result = errgroup! {
        grace = GRACE;
        type Error = Cancelled;
        #[spawn] spawned => { sleep(HOUR).await; Ok(()) },
        items => for _ in 0..2 { sleep(HOUR).await; Ok(()) },
        #[spawn] spawned_items => for _ in 0..2 { sleep(HOUR).await; Ok(()) },
        tasks => {
            ctx.spawn("task", async { sleep(HOUR).await; Ok(()) })?;
            Ok(())
        },
        admin => { ctx.shutdown(); Ok(()) },
    };
    let err = result.as_ref().unwrap_err();
    assert_abandoned(err, "spawned");
    assert_abandoned(err, "items[1]");
    assert_abandoned(err, "spawned_items[0]");
    assert_abandoned(err, "task");
    assert!(result.allow_shutdown().is_err());
}

/// A `#[blocking]` body cannot be stopped and is waited for: if it still
/// runs at grace's end, the group did not stop in time, and says so. The
/// paused clock does not advance itself while a blocking body runs: the
/// test moves it past grace, then lets the body return.
#[tokio::test(start_paused = true)]
async fn a_blocking_branch_still_running_at_grace_keeps_the_error() {
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let group = async {
        errgroup! {
            grace = GRACE;
            type Error = Cancelled;
            #[blocking] #[allow(raw_channel)] stubborn => { gate.recv().ok(); ctx.check() },
            admin => { ctx.shutdown(); Ok(()) },
        }
    };
    let clock = async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tokio::time::advance(GRACE * 2).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
    };
    let (result, ()) = tokio::join!(group, clock);
    let err = result.as_ref().unwrap_err();
    assert_abandoned(err, "stubborn");
    assert!(result.allow_shutdown().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_group_task_aborted_by_grace_keeps_the_error() {
    let mut group = Group::<Cancelled>::new().grace(GRACE);
    group.spawn("stubborn", |_| async {
        sleep(HOUR).await;
        Ok(())
    });
    group.spawn("admin", |ctx| async move {
        ctx.shutdown();
        Ok(())
    });
    let err = group.wait().await.unwrap_err();
    assert_abandoned(&err, "stubborn");
    assert!(Err::<(), _>(err).allow_shutdown().is_err());
}

/// The inner group abandoned work when its parent was shut down: the
/// outer branch sees an error that is not a clean stop either.
#[tokio::test(start_paused = true)]
async fn a_nested_group_whose_grace_expired_is_not_a_clean_stop() {
    let ((inner,), ()) = errgroup! {
        type Error = Cancelled;
        outer => {
            let inner = errgroup! {
                grace = GRACE;
                type Error = Cancelled;
                stubborn => { sleep(HOUR).await; Ok(()) },
            };
            Ok((inner,))
        },
        admin => { ctx.shutdown(); Ok(()) },
    }
    .unwrap();
    let err = inner.unwrap_err();
    assert_abandoned(&err, "stubborn");
    assert!(err.to_string().ends_with(", then grace expired"), "{err}");
}

/// The same rule after a deadline: a grace expiry is told apart from the
/// deadline itself, which is an error either way.
#[tokio::test(start_paused = true)]
async fn a_deadline_whose_grace_expired_says_so() {
    let err = errgroup! {
        timeout = Duration::from_secs(1);
        grace = GRACE;
        type Error = Cancelled;
        stubborn => { sleep(HOUR).await; Ok(()) },
        polite => ctx.sleep(HOUR).await,
    }
    .unwrap_err();
    assert!(err.is_grace_expired());
    assert!(!err.is_shutdown());
    assert_eq!(
        err.to_string(),
        "group cancelled: deadline exceeded, then grace expired"
    );
    let err = errgroup! {
        timeout = Duration::from_secs(1);
        grace = GRACE;
        type Error = Cancelled;
        polite => ctx.sleep(HOUR).await,
    }
    .unwrap_err();
    assert!(!err.is_grace_expired(), "stopped within grace");
    assert_eq!(err.to_string(), "group cancelled: deadline exceeded");
}

/// Within grace, a shutdown is clean: the service pattern's `Ok`.
#[tokio::test(start_paused = true)]
async fn a_shutdown_within_grace_is_still_clean() {
    let result = errgroup! {
        grace = GRACE;
        type Error = Cancelled;
        server => { ctx.sleep(HOUR).await?; Ok(()) },
        flush => { ctx.cancelled().await; sleep(GRACE / 2).await; Ok(()) },
        admin => { ctx.shutdown(); Ok(()) },
    };
    let err = result.as_ref().unwrap_err();
    assert!(err.is_shutdown());
    assert!(!err.is_grace_expired());
    assert_eq!(result.allow_shutdown().unwrap(), ((), (), ()));
}
